//! The Lua scripts of the Redis backend, each named by its SHA-1 (checked by a test).
//!
//! Every kvplug write keeps a companion hash `<space>#<key>` beside the value string
//! `<space>:<key>` (docs/extension-design.md §2.3): `g` the generation, from the counter
//! `<prefix>!#generation` (seeded from `TIME` in microseconds), `h` the SHA-1 hex of the
//! value it describes, `m` the metadata if any. The companion counts only while `h` matches
//! the value, so a value rewritten by another client reads as having no metadata. The
//! version a script reports is a token: `g<generation>` with a valid companion, else
//! `h<SHA-1 hex of the value>` (value-derived, for data no kvplug write touched). CAS and
//! the extension read the same token, so they can never disagree.
//!
//! Every kvplug write also appends one entry per key written to the bucket's change stream
//! (docs/watch-design.md §4.3), in the same script so the two cannot disagree: `k` the key,
//! `v` the value as `get` would then read it, no `v` for a delete. The watch driver reads it
//! with [`READ_CHANGES`]. Writes by other Redis clients and expiry add nothing.

/// A Lua script and its SHA-1, the name `EVALSHA` knows it by.
pub(super) struct Script {
    pub sha1: &'static str,
    pub source: &'static str,
}

/// `current(main, comp)` → `false`, or the value, its version token and its metadata;
/// `matches(token, want)`: whether a token is the generation the adapter sent as `want`
/// (`g<decimal>`, or `h` + 16 hex digits of the value-derived generation shifted left once,
/// whose last bit says nothing); `entry(...)` the `P` answer: token and metadata frames,
/// then the value.
macro_rules! lua_current {
    () => {
        "local function current(main, comp)
  local v = redis.call('GET', main)
  if not v then return false end
  local sha = redis.sha1hex(v)
  local c = redis.call('HMGET', comp, 'g', 'h', 'm')
  if c[1] and c[2] == sha then return v, 'g' .. c[1], c[3] or '' end
  return v, 'h' .. sha, ''
end
local function matches(tok, want)
  if string.sub(want, 1, 1) == 'g' then return tok == want end
  if string.sub(tok, 1, 1) ~= 'h' or string.sub(tok, 2, 16) ~= string.sub(want, 2, 16) then
    return false
  end
  local a, b = tonumber(string.sub(tok, 17, 17), 16), tonumber(string.sub(want, 17, 17), 16)
  return a ~= nil and b ~= nil and math.floor(a / 2) == math.floor(b / 2)
end
local function entry(v, tok, m)
  return 'P' .. struct.pack('>I4', #tok) .. tok .. struct.pack('>I4', #m) .. m .. v
end
"
    };
}

/// `stamp(main, comp, ctr, v, m)`: after `main` was written with `v`, gives it a new
/// companion (a fresh generation, `h`, metadata `m` if any) with `main`'s deadline, and
/// returns the generation as a decimal string. The counter is read back with `GET`, never
/// through a Lua number, so no digit is lost.
macro_rules! lua_stamp {
    () => {
        "local function stamp(main, comp, ctr, v, m)
  if redis.call('EXISTS', ctr) == 0 then
    local t = redis.call('TIME')
    redis.call('SET', ctr, t[1] .. string.sub('00000' .. t[2], -6))
  end
  redis.call('INCR', ctr)
  local g = redis.call('GET', ctr)
  redis.call('DEL', comp)
  if m and #m > 0 then
    redis.call('HSET', comp, 'g', g, 'h', redis.sha1hex(v), 'm', m)
  else
    redis.call('HSET', comp, 'g', g, 'h', redis.sha1hex(v))
  end
  local at = redis.call('PEXPIRETIME', main)
  if at > 0 then redis.call('PEXPIREAT', comp, string.format('%d', at)) end
  return g
end
"
    };
}

/// `log(stream, k, v)`: appends the change of key `k` (`v` false for a delete) to the
/// bucket's change stream, which keeps about the last 100,000 (`~`: Redis trims whole nodes,
/// cheaply).
macro_rules! lua_log {
    () => {
        "local function log(stream, k, v)
  if v then
    redis.call('XADD', stream, 'MAXLEN', '~', '100000', '*', 'k', k, 'v', v)
  else
    redis.call('XADD', stream, 'MAXLEN', '~', '100000', '*', 'k', k)
  end
end
"
    };
}

/// Shared head of the batch scripts: `ARGV[1]` is the bucket's value prefix (`<space>:`),
/// `ARGV[2]` its companion prefix (`<space>#`), `ARGV[3]` the generation counter, and the
/// last argument the request body, read frame by frame. The writing ones take the bucket's
/// change stream as `KEYS[1]`.
macro_rules! with_frames {
    ($($body:expr),+) => {
        concat!(
            "local space, comps, ctr, blob, pos = ARGV[1], ARGV[2], ARGV[3], ARGV[4] or '', 1
local function frame()
  local n = struct.unpack('>I4', blob, pos)
  local s = string.sub(blob, pos + 4, pos + 3 + n)
  pos = pos + 4 + n
  return s
end
",
            $($body),+
        )
    };
}

/// `KEYS[1]` (value), `KEYS[2]` (companion) → `A` if absent, else [`lua_current`]'s `P`
/// answer. Serves both `cas.new` and `lookup`.
pub(super) const LOOKUP: Script = Script {
    sha1: "e75f6f76ea81f6e6d5df683407806afb7f65ef8d",
    source: concat!(
        lua_current!(),
        "local v, tok, m = current(KEYS[1], KEYS[2])
if v then return entry(v, tok, m) end
return 'A'"
    ),
};

/// Sets `KEYS[1]` to `ARGV[3]` (webdis drops an empty body: absent means empty), with a new
/// companion `KEYS[2]` from counter `KEYS[3]` and no expiry, only if its version token is
/// still `ARGV[1]` (`absent` for none), logs it to stream `KEYS[4]` (the key is `KEYS[1]`
/// past the `ARGV[2]` bytes of the bucket's value prefix), and answers `D`; otherwise
/// answers like LOOKUP.
pub(super) const WRITE_IF: Script = Script {
    sha1: "81ff274bf1b66b7309b14e958191bfbb7bd36fd9",
    source: concat!(
        lua_current!(),
        lua_stamp!(),
        lua_log!(),
        "local v, tok, m = current(KEYS[1], KEYS[2])
if (v and tok or 'absent') == ARGV[1] then
  local new = ARGV[3] or ''
  redis.call('SET', KEYS[1], new)
  stamp(KEYS[1], KEYS[2], KEYS[3], new, false)
  log(KEYS[4], string.sub(KEYS[1], tonumber(ARGV[2]) + 1), new)
  return 'D'
end
if v then return entry(v, tok, m) end
return 'A'"
    ),
};

/// `set`: `KEYS[1]` to `ARGV[2]` (absent: empty) with no expiry and a new companion
/// `KEYS[2]` (generation from `KEYS[3]`, no metadata), logged to stream `KEYS[4]` (the key
/// is `KEYS[1]` past the `ARGV[1]` bytes of the value prefix); answers `D`.
pub(super) const SET: Script = Script {
    sha1: "387b338eee85bdf1c92dce11ed03c5846bc7c604",
    source: concat!(
        lua_stamp!(),
        lua_log!(),
        "local v = ARGV[2] or ''
redis.call('SET', KEYS[1], v)
stamp(KEYS[1], KEYS[2], KEYS[3], v, false)
log(KEYS[4], string.sub(KEYS[1], tonumber(ARGV[1]) + 1), v)
return 'D'"
    ),
};

/// `INCRBY KEYS[1] ARGV[1]`, answered as the stored decimal string. Not INCRBY's own reply:
/// webdis 0.1.9 writes the RESP length of an integer truncated to 32 bits (`:21` for
/// 2147483648), and Lua would turn it into a double, exact only up to 2^53. The expiry
/// stays (INCRBY keeps it); the companion `KEYS[2]` gets a new generation and keeps its
/// metadata if it was valid, and the new decimal is logged to stream `KEYS[4]` (the key is
/// `KEYS[1]` past the `ARGV[2]` bytes of the value prefix). An error (not a counter,
/// overflow) aborts before anything is written.
pub(super) const INCREMENT: Script = Script {
    sha1: "826819cac68f2768a0a84a7ef4604b67074d0883",
    source: concat!(
        lua_stamp!(),
        lua_log!(),
        "local old, m = redis.call('GET', KEYS[1]), false
if old then
  local c = redis.call('HMGET', KEYS[2], 'h', 'm')
  if c[1] and c[1] == redis.sha1hex(old) then m = c[2] end
end
redis.call('INCRBY', KEYS[1], ARGV[1])
local new = redis.call('GET', KEYS[1])
stamp(KEYS[1], KEYS[2], KEYS[3], new, m)
log(KEYS[4], string.sub(KEYS[1], tonumber(ARGV[2]) + 1), new)
return new"
    ),
};

/// `delete`: `KEYS[1]` and its companion `KEYS[2]`, logged to stream `KEYS[3]` if the key
/// existed (the key is `KEYS[1]` past the `ARGV[1]` bytes of the value prefix); answers `D`.
pub(super) const DELETE: Script = Script {
    sha1: "2aac282c68b95a0652edc8622ed5c5c6555fde00",
    source: concat!(
        lua_log!(),
        "local n = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
if n > 0 then log(KEYS[3], string.sub(KEYS[1], tonumber(ARGV[1]) + 1), false) end
return 'D'"
    ),
};

/// Optional frames of the values of the keys framed in the body.
pub(super) const GET_MANY: Script = Script {
    sha1: "f60d42de743c93a92b178c5ce5c9c4786fd7e6b1",
    source: with_frames!(
        "local out = {}
while pos <= #blob do
  local v = redis.call('GET', space .. frame())
  if v then out[#out + 1] = '\\1' .. struct.pack('>I4', #v) .. v else out[#out + 1] = '\\0' end
end
return table.concat(out)"
    ),
};

/// Sets the key/value frame pairs of the body, each with a new companion, atomically (a
/// script runs alone).
pub(super) const SET_MANY: Script = Script {
    sha1: "2c1c0da0954b9ccbc5a2028c78e09b44f2f2d571",
    source: with_frames!(
        lua_stamp!(),
        lua_log!(),
        "while pos <= #blob do
  local k = frame()
  local v = frame()
  redis.call('SET', space .. k, v)
  stamp(space .. k, comps .. k, ctr, v, false)
  log(KEYS[1], k, v)
end
return 'D'"
    ),
};

/// Deletes the keys framed in the body, with their companions, logging each key that existed.
pub(super) const DELETE_MANY: Script = Script {
    sha1: "c38d9aa7613bd2ae6e07c8673b8d14536306bd72",
    source: with_frames!(
        lua_log!(),
        "while pos <= #blob do
  local k = frame()
  local n = redis.call('DEL', space .. k)
  redis.call('DEL', comps .. k)
  if n > 0 then log(KEYS[1], k, false) end
end
return 'D'"
    ),
};

/// One page of the bucket: `SCAN` from cursor `ARGV[3]` for keys matching `ARGV[2]`, until
/// `ARGV[4]` keys or 16 rounds (so one call never holds Redis for a whole large keyspace),
/// answered as the next cursor's frame then each key's frame without the bucket prefix.
pub(super) const LIST: Script = Script {
    sha1: "69e515cb5ab40b93bd6e1c249b6f4c3409a8f2ae",
    source: "local space, cursor, want, out = ARGV[1], ARGV[3], tonumber(ARGV[4]), {}
for _ = 1, 16 do
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[2], 'COUNT', want)
  cursor = r[1]
  for _, k in ipairs(r[2]) do
    local key = string.sub(k, #space + 1)
    out[#out + 1] = struct.pack('>I4', #key) .. key
  end
  if cursor == '0' or #out >= want then break end
end
return struct.pack('>I4', #cursor) .. cursor .. table.concat(out)",
};

/// The extension's `insert`. `KEYS`: value, companion, counter,
/// change stream. `ARGV`: mode (`o`verwrite,
/// `a`dd, `s`uffix = append, `p`refix = prepend); time-to-live (`k` none, `s<seconds>`);
/// metadata (`k` none, `s<bytes>`); generation wanted (`-` none, else as `matches` reads
/// it); the largest value; the length of the bucket's value prefix (the key is the value's
/// name past it, for the change stream); the bytes (the body, absent when empty). Mirrors
/// `kvplug_protocol::entries::plan`: answers `G` (generation mismatch), `E` (`add` over a
/// live key), `L<size>` (the result over the largest value), or `D<generation>` once
/// written. The deadline is one `TIME` plus the time-to-live, set with `PXAT` on the value
/// and copied to the companion: time is not frozen inside a script.
pub(super) const INSERT: Script = Script {
    sha1: "fda9f07a65295b00e3b53d667b957e74747162b6",
    source: concat!(
        lua_current!(),
        lua_stamp!(),
        lua_log!(),
        "local main, comp = KEYS[1], KEYS[2]
local mode, ttl, meta, want = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local value = ARGV[7] or ''
local v, tok, m = current(main, comp)
if want ~= '-' and not (v and matches(tok, want)) then return 'G' end
if mode == 'a' and v then return 'E' end
local keep = v and (mode == 's' or mode == 'p')
local size = #value
if keep then size = size + #v end
if size > tonumber(ARGV[5]) then return 'L' .. string.format('%d', size) end
local new = value
if keep and mode == 's' then new = v .. value elseif keep then new = value .. v end
if string.sub(ttl, 1, 1) == 's' then
  local t = redis.call('TIME')
  local at = t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(string.sub(ttl, 2)) * 1000
  redis.call('SET', main, new, 'PXAT', string.format('%d', at))
elseif keep then
  redis.call('SET', main, new, 'KEEPTTL')
else
  redis.call('SET', main, new)
end
if string.sub(meta, 1, 1) == 's' then m = string.sub(meta, 2) elseif not keep then m = '' end
local g = stamp(main, comp, KEYS[3], new, m)
log(KEYS[4], string.sub(main, tonumber(ARGV[6]) + 1), new)
return 'D' .. g"
    ),
};

/// The extension's `delete`: `KEYS` value, companion and change stream, `ARGV[1]` the
/// generation wanted (`-` none), `ARGV[2]` the length of the value prefix. Answers `G`
/// (mismatch, nothing deleted), `1` (a live entry deleted, and logged) or `0`.
pub(super) const REMOVE: Script = Script {
    sha1: "a4ba115c8a8ac50c2df5df36bc22f07ae33b5892",
    source: concat!(
        lua_current!(),
        lua_log!(),
        "if ARGV[1] ~= '-' then
  local v, tok = current(KEYS[1], KEYS[2])
  if not (v and matches(tok, ARGV[1])) then return 'G' end
end
local n = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
if n > 0 then
  log(KEYS[3], string.sub(KEYS[1], tonumber(ARGV[2]) + 1), false)
  return '1'
end
return '0'"
    ),
};

/// The extension's `list`: `ARGV[1]` the bucket's value prefix, `ARGV[2]` the glob of the
/// listed prefix, `ARGV[3]` the `SCAN` cursor (`0` to start, `e` once `SCAN` is done),
/// `ARGV[4]` the most keys to answer, and the body the frames of keys an earlier page
/// scanned but could not hold (each answered again only if it still exists). `SCAN` runs
/// with `COUNT` = keys still wanted, at most 16 rounds. Answers the next cursor's frame, the
/// frame of the number of keys in the page, the page's keys, then the keys scanned beyond
/// the limit, which the adapter carries in its cursor: no page is over the limit and no
/// scanned key is lost. A key is answered once per call.
pub(super) const LIST_PREFIX: Script = Script {
    sha1: "3105a19fc868be1ddae66f0536fcc6eaf0e0c6f3",
    source: "local space, pattern, cursor, want = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local blob, pos, out, extra, seen = ARGV[5] or '', 1, {}, {}, {}
local function add(k)
  if seen[k] then return end
  seen[k] = true
  if #out < want then out[#out + 1] = k else extra[#extra + 1] = k end
end
while pos <= #blob do
  local n = struct.unpack('>I4', blob, pos)
  local k = string.sub(blob, pos + 4, pos + 3 + n)
  pos = pos + 4 + n
  if redis.call('EXISTS', space .. k) == 1 then add(k) end
end
local rounds = 0
while cursor ~= 'e' and #out < want and rounds < 16 do
  rounds = rounds + 1
  local r = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', want - #out)
  cursor = r[1]
  if cursor == '0' then cursor = 'e' end
  for _, k in ipairs(r[2]) do add(string.sub(k, #space + 1)) end
end
local parts = {struct.pack('>I4', #cursor) .. cursor}
local count = tostring(#out)
parts[2] = struct.pack('>I4', #count) .. count
for _, k in ipairs(out) do parts[#parts + 1] = struct.pack('>I4', #k) .. k end
for _, k in ipairs(extra) do parts[#parts + 1] = struct.pack('>I4', #k) .. k end
return table.concat(parts)",
};

/// The watch driver's read of change stream `KEYS[1]` after ID `ARGV[1]` (`XRANGE` and
/// `XINFO` come back through webdis as `null`s: nested replies are lost, so the script
/// flattens them). Answers `N` when there is no stream, else `S` then frames: the last ID
/// ever added, the greatest ID deleted by `XDEL` (`0-0` if none), the first ID still held
/// (empty when none), `1` or `0` for whether the stream ever lost an entry (`entries-added`
/// over `length`: trimmed or deleted), then per change its ID, key, and optional value, up
/// to 1000 changes or until `ARGV[2]` bytes are passed (at least one change; none when
/// `ARGV[2]` is 0, which reads only the head).
#[cfg_attr(
    all(not(feature = "feed"), not(test)),
    expect(dead_code, reason = "only the watch driver reads the stream")
)]
pub(super) const READ_CHANGES: Script = Script {
    sha1: "fda0fb1caf5968bc72ad9e20e2df1a46369b2dbf",
    source: "local s, after, budget = KEYS[1], ARGV[1], tonumber(ARGV[2])
if redis.call('EXISTS', s) == 0 then return 'N' end
local info, f = redis.call('XINFO', 'STREAM', s), {}
for i = 1, #info, 2 do f[info[i]] = info[i + 1] end
local function put(x) return struct.pack('>I4', #x) .. x end
local first = ''
if f['first-entry'] then first = f['first-entry'][1] end
local lost = '0'
if f['entries-added'] > f['length'] then lost = '1' end
local out = {'S', put(f['last-generated-id']), put(f['max-deleted-entry-id']), put(first), put(lost)}
if budget == 0 then return table.concat(out) end
local size = 0
for _, e in ipairs(redis.call('XRANGE', s, '(' .. after, '+', 'COUNT', 1000)) do
  local k, v = '', false
  for i = 1, #e[2], 2 do
    if e[2][i] == 'k' then k = e[2][i + 1] elseif e[2][i] == 'v' then v = e[2][i + 1] end
  end
  local one = put(e[1]) .. put(k)
  if v then one = one .. '\\1' .. put(v) else one = one .. '\\0' end
  out[#out + 1] = one
  size = size + #one
  if size >= budget then break end
end
return table.concat(out)",
};

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::String;
    use sha1::Digest as _;

    #[test]
    fn script_names_are_their_sha1() {
        let mut wrong = String::new();
        for (name, script) in [
            ("LOOKUP", &LOOKUP),
            ("WRITE_IF", &WRITE_IF),
            ("SET", &SET),
            ("INCREMENT", &INCREMENT),
            ("GET_MANY", &GET_MANY),
            ("SET_MANY", &SET_MANY),
            ("DELETE_MANY", &DELETE_MANY),
            ("LIST", &LIST),
            ("INSERT", &INSERT),
            ("REMOVE", &REMOVE),
            ("LIST_PREFIX", &LIST_PREFIX),
            ("DELETE", &DELETE),
            ("READ_CHANGES", &READ_CHANGES),
        ] {
            let digest = sha1::Sha1::digest(script.source.as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            if script.sha1 != hex {
                wrong.push_str(&format!("{name}: {hex}\n"));
            }
        }
        assert!(
            wrong.is_empty(),
            "scripts whose name is not their SHA-1:\n{wrong}"
        );
    }
}
