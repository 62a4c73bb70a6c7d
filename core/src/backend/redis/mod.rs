//! The `redis` backend: Redis behind webdis, one HTTP request per operation.
//!
//! A bucket is the key prefix `<prefix>!<encoded bucket>:` (`kvplug_settings::layout`; the
//! encoded name never contains `:` or `!`, so buckets cannot overlap, under any prefix), and
//! each value is a plain Redis string, so other Redis clients see ordinary keys and `INCRBY`
//! works natively. Beside each value kvplug writes, a companion hash
//! `<prefix>!<encoded bucket>#<key>` holds its generation, the SHA-1 of the value it
//! describes, and its metadata ([`scripts`]; docs/extension-design.md §2.3): every kvplug
//! write gives the key a new generation, so CAS compares generations, not values, and a
//! rewrite with identical bytes between `cas.new` and `swap` is detected. A key no kvplug
//! write touched (another client's, or one written before companions existed) has a
//! value-derived version, the SHA-1 of its value, as before.
//!
//! webdis turns `/<COMMAND>/<arg>/…` into a Redis command. Three of its quirks shape this
//! module (all measured; see the README): its RESP output (`.raw`) drops nil elements and
//! nested arrays and miscounts integers beyond 32 bits, and its JSON output is not
//! binary-safe. So every reply the adapter reads is a single string or a small integer:
//! plain commands to get or test one key, and for everything else a Lua script
//! answering one binary string (`increment` the stored decimal, the others
//! `kvplug_protocol::frames`). Values never travel in the URL: a request body is webdis's
//! last argument, binary-safe. Scripts are called by SHA-1 (`EVALSHA`) and sent in full only
//! when Redis does not have them yet (`set` and `increment` included: their scripts are too
//! long for an error message that quotes the request's start to still name the key).
//!
//! Every write (`delete` included, which is why it is a script and not `DEL`) also appends
//! its change to the bucket's stream `<prefix>!<encoded bucket>!changes` in the same script,
//! which the watch driver reads (`crate::feed::redis`; docs/watch-design.md §4.3).

mod entries;
mod scripts;

use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use kvplug_codec::base64;
use kvplug_codec::resp::{self, Reply};
use kvplug_protocol::frames::{self, FrameError};
use kvplug_protocol::names;
use kvplug_settings::layout;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};

use super::{
    Backend, Page, Swap, Version, Versioned, check_batch, check_pairs, framed_batches, large_first,
};
use crate::client::{Client, MAX_RESPONSE_BYTES, SMALL_ANSWER_BYTES, Verb};
use crate::error::Error;
use crate::settings::Settings;
#[cfg(feature = "feed")]
use scripts::READ_CHANGES;
use scripts::{
    DELETE, DELETE_MANY, GET_MANY, INCREMENT, LIST, LOOKUP, SET, SET_MANY, Script, WRITE_IF,
};

/// Entries per batch script: bounds how long one script holds Redis (scripts run alone).
const MAX_BATCH_ENTRIES: usize = 1000;
/// Key and value bytes per batch request (webdis accepts up to 128 MiB).
const MAX_BATCH_BYTES: usize = 16 << 20;

/// Array elements a reply may hold: no command the adapter sends answers with an array (the
/// scripts answer frames in one string), so a long array is not Redis's answer and is refused
/// before it is built.
const MAX_REPLY_ITEMS: usize = 16;

/// Requests from this size on may be over webdis's request limit, whose only sign is a
/// closed connection.
const LARGE_REQUEST: usize = 1 << 20;
/// Longest key. Keys travel in webdis's URLs, percent-encoded (up to 3 bytes per byte),
/// in every single-key command; batches carry them in the body, but must not store a key
/// that a single-key command then cannot reach.
const MAX_KEY_BYTES: usize = 8 * 1024;

/// The most a `list-keys` page can answer: the script's 16 `SCAN` rounds may each overshoot
/// `page_size`, and every key is a frame of its length and bytes.
fn list_cap(page_size: u32) -> u64 {
    let frame = (MAX_KEY_BYTES + 4) as u64;
    (16 * u64::from(page_size) * frame + 1024).min(MAX_RESPONSE_BYTES)
}

/// Refuses a key longer than [`MAX_KEY_BYTES`] before anything is sent.
fn check_key(key: &str) -> Result<(), Error> {
    super::check_length(
        "key",
        key,
        MAX_KEY_BYTES,
        "redis",
        "keys travel in webdis's request URLs, which are limited",
    )
}

/// A bucket in a Redis database, reached through webdis.
#[derive(Debug, Clone)]
pub struct RedisBackend {
    client: Rc<Client>,
    /// `<prefix>!<encoded bucket>:`, the start of every key of the bucket.
    space: Rc<str>,
    /// `<prefix>!<encoded bucket>#`, the start of every companion hash of the bucket.
    companions: Rc<str>,
    /// `<prefix>!#generation`, the counter every generation comes from.
    counter: Rc<str>,
    /// `<prefix>!<encoded bucket>!changes`, the stream every kvplug write of the bucket
    /// appends to (the watch driver's feed).
    changes: Rc<str>,
    /// `space`'s length in decimal: the scripts find a key's name past it, for the stream.
    space_len: Rc<str>,
    page_size: u32,
}

/// What a webdis path segment escapes: everything but `A-Za-z0-9_~-`. `.` because webdis
/// strips a format extension (`.txt`, `.json`, …) from the last segment before decoding,
/// and `+` because webdis decodes it as a space.
const WEBDIS_ARG: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'~').remove(b'-');

/// Appends `arg` as one webdis path segment.
fn push_arg(path: &mut String, arg: &[u8]) {
    path.push('/');
    path.extend(percent_encode(arg, WEBDIS_ARG));
}

/// `/<COMMAND>/<args…>.raw`: the explicit extension asks for RESP and protects the last
/// argument from being read as one.
fn command(name: &str, args: &[&[u8]]) -> String {
    let mut path = String::with_capacity(64);
    path.push('/');
    path.push_str(name);
    for arg in args {
        push_arg(&mut path, arg);
    }
    path.push_str(".raw");
    path
}

/// `text` with Redis's glob characters escaped, for `SCAN … MATCH`.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl RedisBackend {
    /// The LOOKUP script's answer for `key`: its value, companion and version token, which
    /// `lookup` and `cas.new` both read, so the generation and CAS never disagree.
    fn lookup_answer(&self, key: &str) -> Result<Vec<u8>, Error> {
        check_key(key)?;
        self.eval(
            &LOOKUP,
            &[&self.key(key), &self.companion(key)],
            &[],
            &[],
            MAX_RESPONSE_BYTES,
        )
    }

    fn key(&self, key: &str) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.space.len() + key.len());
        full.extend_from_slice(self.space.as_bytes());
        full.extend_from_slice(key.as_bytes());
        full
    }

    /// The name of `key`'s companion hash (generation, value hash, metadata).
    fn companion(&self, key: &str) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.companions.len() + key.len());
        full.extend_from_slice(self.companions.as_bytes());
        full.extend_from_slice(key.as_bytes());
        full
    }

    /// Sends one command and returns Redis's reply; Redis errors become [`Error::Refused`].
    /// `cap` is the most the command can legitimately answer (see [`Client::send_capped`]).
    fn call(&self, verb: Verb, path: &str, body: &[u8], cap: u64) -> Result<Reply, Error> {
        let response = self
            .client
            .send_capped(verb, path, &[], body, cap)
            .map_err(|error| match error {
                // webdis answers a request over its size limit by closing the connection,
                // which says nothing of the limit: name it, for a request that may be over.
                Error::Transport {
                    method,
                    path,
                    detail,
                } if body.len() >= LARGE_REQUEST => Error::Transport {
                    method,
                    path,
                    detail: format!(
                        "{detail} (a request of {} bytes may be over webdis's `http_max_request_size`, 128 MiB unless configured, which webdis answers by closing the connection)",
                        body.len()
                    ),
                },
                other => other,
            })?;
        match response.status {
            // With `.raw`, webdis answers exactly one RESP reply: an answer that does not
            // parse as one is not webdis's, and must not pass for a write done.
            200 => match resp::parse_owned(response.body, MAX_REPLY_ITEMS) {
                Ok(Reply::Error(message)) => Err(Error::Refused {
                    method: verb.name(),
                    path: self.client.target(path),
                    reason: format!("Redis: {}", self.client.scrub(&message)),
                }),
                Ok(reply) => Ok(reply),
                Err(e) => Err(super::foreign(
                    verb,
                    self.client.target(path),
                    200,
                    "webdis",
                    &format!("not one Redis reply (RESP): {e}"),
                )),
            },
            status @ 201..=299 => Err(super::foreign(
                verb,
                self.client.target(path),
                status,
                "webdis",
                "webdis answers 200",
            )),
            // webdis says 403 both for a command its ACL disables and for missing or wrong
            // credentials, and never which: not `access-denied`, which would hide the first.
            403 => Err(Error::Refused {
                method: verb.name(),
                path: self.client.target(path),
                reason: format!(
                    "HTTP 403: webdis refused `{}`: its ACL disables the command, or the `token` credentials are missing or wrong",
                    path.trim_start_matches('/')
                        .split('/')
                        .next()
                        .unwrap_or_default()
                ),
            }),
            413 => Err(self.client.status_with(
                verb,
                path,
                413,
                &format!(
                    "a request of {} bytes is over webdis's `http_max_request_size` (128 MiB unless configured)",
                    body.len()
                ),
            )),
            503 => Err(self
                .client
                .status_with(verb, path, 503, "webdis cannot reach Redis")),
            status => Err(self.client.status_with(
                verb,
                path,
                status,
                &String::from_utf8_lossy(&response.body),
            )),
        }
    }

    /// Runs `script` by its SHA-1, loading it with `EVAL` only if Redis answers that it
    /// does not know it (a fresh or restarted Redis): one request in the steady state.
    fn eval(
        &self,
        script: &Script,
        keys: &[&[u8]],
        args: &[&[u8]],
        body: &[u8],
        cap: u64,
    ) -> Result<Vec<u8>, Error> {
        let count = keys.len().to_string();
        let mut all: Vec<&[u8]> = Vec::with_capacity(keys.len() + args.len() + 2);
        all.push(script.sha1.as_bytes());
        all.push(count.as_bytes());
        all.extend_from_slice(keys);
        all.extend_from_slice(args);
        // webdis drops an empty body instead of passing an empty last argument.
        let verb = if body.is_empty() {
            Verb::Get
        } else {
            Verb::Put
        };
        let path = command("EVALSHA", &all);
        let reply = match self.call(verb, &path, body, cap) {
            Err(Error::Refused { reason, .. }) if reason.starts_with("Redis: NOSCRIPT") => {
                if let Some(name) = all.first_mut() {
                    *name = script.source.as_bytes();
                }
                let path = command("EVAL", &all);
                return self.bulk(verb, &path, self.call(verb, &path, body, cap)?);
            }
            other => other?,
        };
        self.bulk(verb, &path, reply)
    }

    /// The bytes of a bulk-string reply.
    fn bulk(&self, verb: Verb, path: &str, reply: Reply) -> Result<Vec<u8>, Error> {
        match reply {
            Reply::Bulk(Some(bytes)) => Ok(bytes),
            _ => Err(self.client.malformed(verb, path, "expected a string reply")),
        }
    }

    fn integer(&self, verb: Verb, path: &str, reply: Reply) -> Result<i64, Error> {
        match reply {
            Reply::Integer(n) => Ok(n),
            _ => Err(self
                .client
                .malformed(verb, path, "expected an integer reply")),
        }
    }

    /// A LOOKUP-shaped answer as CAS sees it: the version is the token, so CAS and the
    /// extension's generation are one notion.
    fn versioned(&self, answer: Vec<u8>) -> Result<Versioned, Error> {
        match entries::stored(answer)
            .map_err(|e| self.client.malformed(Verb::Get, "/EVALSHA", e))?
        {
            None => Ok(Versioned::absent()),
            Some(stored) => Ok(Versioned {
                value: Some(stored.value),
                version: Version::Tag(stored.token),
            }),
        }
    }

    /// One read of the bucket's change stream after stream ID `after` (checked by the
    /// caller), answered as [`READ_CHANGES`] says, up to about `budget` bytes of changes.
    #[cfg(feature = "feed")]
    pub(crate) fn read_changes(&self, after: &str, budget: usize) -> Result<Vec<u8>, Error> {
        let budget = budget.to_string();
        self.eval(
            &READ_CHANGES,
            &[self.changes.as_bytes()],
            &[after.as_bytes(), budget.as_bytes()],
            &[],
            MAX_RESPONSE_BYTES,
        )
    }

    /// An answer of Redis's that does not read as it should.
    #[cfg(feature = "feed")]
    pub(crate) fn malformed(&self, detail: &str) -> Error {
        self.client.malformed(Verb::Get, "/EVALSHA", detail)
    }

    /// Fails unless `needed` bytes are left to read a READ_CHANGES answer of `size` bytes
    /// (see [`crate::client::Client::room_for`]).
    #[cfg(feature = "feed")]
    pub(crate) fn room_for(&self, size: usize, needed: usize) -> Result<(), Error> {
        self.client
            .room_for(Verb::Get, "/EVALSHA", "a READ_CHANGES answer", size, needed)
    }

    /// The leading arguments of the batch scripts: value prefix, companion prefix,
    /// generation counter.
    fn batch_args(&self) -> [&[u8]; 3] {
        [
            self.space.as_bytes(),
            self.companions.as_bytes(),
            self.counter.as_bytes(),
        ]
    }

    /// Runs a batch script over `items` in chunks, each item written as frames.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call shape for every batch script"
    )]
    fn batch<'a, T>(
        &self,
        script: &Script,
        keys: &[&[u8]],
        items: &'a [T],
        size: impl Fn(&T) -> usize,
        encode: impl Fn(&mut Vec<u8>, &'a T) -> Result<(), FrameError>,
        mut answer: impl FnMut(&'a [T], Vec<u8>) -> Result<(), Error>,
        cap: u64,
    ) -> Result<(), Error> {
        for batch in framed_batches(items, MAX_BATCH_ENTRIES, MAX_BATCH_BYTES, size, encode) {
            let (chunk, body) = batch?;
            let reply = self.eval(script, keys, &self.batch_args(), &body, cap)?;
            answer(chunk, reply)?;
        }
        Ok(())
    }
}

impl Backend for RedisBackend {
    fn open(settings: &Settings, bucket: &str) -> Result<Self, Error> {
        kvplug_settings::backend::redis_space(&settings.prefix, bucket).map_err(Error::Invalid)?;
        // A bucket is a key prefix and always exists: opening one needs no request.
        let authorization = settings
            .token
            .as_ref()
            .map(|credentials| format!("Basic {}", base64::encode(credentials.as_bytes())));
        let companions = layout::namespace(&settings.prefix, bucket, names::encode, Some('#'))?;
        // `namespace` refuses an encoded name holding `!` (`layout::MARKER`), and
        // `names::encode` never writes one (it escapes every byte but `A-Za-z0-9_-`, and
        // writes `~` for the empty name), so the `!` after the name ends it: this key is
        // never a value (`…:`), a companion (`…#`), the counter (`<prefix>!#…`), nor the
        // stream of another bucket, under any prefix (a prefix holds no `!`).
        let mut changes = layout::namespace(&settings.prefix, bucket, names::encode, Some('!'))?;
        changes.push_str("changes");
        let space = layout::namespace(&settings.prefix, bucket, names::encode, Some(':'))?;
        Ok(RedisBackend {
            client: Rc::new(Client::new(settings, authorization)),
            space_len: Rc::from(space.len().to_string()),
            space: Rc::from(space),
            companions: Rc::from(companions),
            counter: Rc::from(format!("{}!#generation", settings.prefix)),
            changes: Rc::from(changes),
            page_size: settings.page_size,
        })
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        check_key(key)?;
        let path = command("GET", &[&self.key(key)]);
        match self.call(Verb::Get, &path, &[], MAX_RESPONSE_BYTES)? {
            Reply::Bulk(value) => Ok(value),
            _ => Err(self
                .client
                .malformed(Verb::Get, &path, "expected a string reply")),
        }
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        check_key(key)?;
        // A script: SET, and a new companion (so the key's generation changes, even when
        // the bytes do not). The value is the body, webdis's last argument; an empty value
        // is no body, which the script reads as empty.
        let answer = self.eval(
            &SET,
            &[
                &self.key(key),
                &self.companion(key),
                self.counter.as_bytes(),
                self.changes.as_bytes(),
            ],
            &[self.space_len.as_bytes()],
            value,
            SMALL_ANSWER_BYTES,
        )?;
        match answer.as_slice() {
            b"D" => Ok(()),
            _ => Err(self.client.malformed(Verb::Put, "/EVALSHA", "expected D")),
        }
    }

    fn delete(&self, key: &str) -> Result<(), Error> {
        check_key(key)?;
        // A script, not `DEL`, so the delete and its change-stream entry are one atomic
        // request.
        let answer = self.eval(
            &DELETE,
            &[
                &self.key(key),
                &self.companion(key),
                self.changes.as_bytes(),
            ],
            &[self.space_len.as_bytes()],
            &[],
            SMALL_ANSWER_BYTES,
        )?;
        match answer.as_slice() {
            b"D" => Ok(()),
            _ => Err(self.client.malformed(Verb::Get, "/EVALSHA", "expected D")),
        }
    }

    fn exists(&self, key: &str) -> Result<bool, Error> {
        check_key(key)?;
        let path = command("EXISTS", &[&self.key(key)]);
        let reply = self.call(Verb::Get, &path, &[], SMALL_ANSWER_BYTES)?;
        Ok(self.integer(Verb::Get, &path, reply)? > 0)
    }

    fn list(&self, cursor: Option<&str>) -> Result<Page, Error> {
        let pattern = format!("{}*", glob_escape(&self.space));
        let count = self.page_size.to_string();
        let answer = self.eval(
            &LIST,
            &[],
            &[
                self.space.as_bytes(),
                pattern.as_bytes(),
                cursor.unwrap_or("0").as_bytes(),
                count.as_bytes(),
            ],
            &[],
            list_cap(self.page_size),
        )?;
        let bad = |e: FrameError| self.client.malformed(Verb::Get, "/EVALSHA", e);
        let mut reader = frames::Reader::new(&answer);
        let next = reader.key().map_err(bad)?;
        let mut keys = Vec::new();
        while !reader.is_empty() {
            keys.push(String::from(reader.key().map_err(bad)?));
        }
        let cursor = (next != "0").then(|| String::from(next));
        Ok(Page { keys, cursor })
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, Error> {
        use kvplug_protocol::counter::{self, CounterError};
        check_key(key)?;
        let delta = delta.to_string();
        let answer = match self.eval(
            &INCREMENT,
            &[
                &self.key(key),
                &self.companion(key),
                self.counter.as_bytes(),
                self.changes.as_bytes(),
            ],
            &[delta.as_bytes(), self.space_len.as_bytes()],
            &[],
            SMALL_ANSWER_BYTES,
        ) {
            // Redis's own words (unchanged since 2.x); its grammar is the shared one.
            Err(Error::Refused { reason, .. }) if reason.contains("would overflow") => {
                return Err(super::counter_error(key, CounterError::Overflow));
            }
            Err(Error::Refused { reason, .. }) if reason.contains("not an integer") => {
                return Err(super::counter_error(key, CounterError::NotANumber));
            }
            other => other?,
        };
        counter::parse(&answer).ok_or_else(|| {
            self.client.malformed(
                Verb::Get,
                "/EVALSHA",
                "the increment was applied, but the answer is not a decimal",
            )
        })
    }

    fn read_versioned(&self, key: &str) -> Result<Versioned, Error> {
        let answer = self.lookup_answer(key)?;
        self.versioned(answer)
    }

    fn write_if(&self, key: &str, expected: &Version, value: &[u8]) -> Result<Swap, Error> {
        check_key(key)?;
        let version = match expected {
            Version::Absent => "absent",
            Version::Tag(token) => token.as_str(),
        };
        // An empty value travels as no body at all, which the script reads as empty.
        let answer = self.eval(
            &WRITE_IF,
            &[
                &self.key(key),
                &self.companion(key),
                self.counter.as_bytes(),
                self.changes.as_bytes(),
            ],
            &[version.as_bytes(), self.space_len.as_bytes()],
            value,
            MAX_RESPONSE_BYTES,
        )?;
        if answer == b"D" {
            Ok(Swap::Done)
        } else {
            Ok(Swap::Conflict(self.versioned(answer)?))
        }
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        check_batch("get-many", keys, check_key)?;
        let mut values = Vec::with_capacity(keys.len());
        self.batch(
            &GET_MANY,
            &[],
            keys,
            String::len,
            |body, key| frames::put(body, key.as_bytes()),
            |chunk, answer| {
                let bad = |e| self.client.malformed(Verb::Put, "/EVALSHA", e);
                let mut reader = frames::Reader::new(&answer);
                for _ in chunk {
                    values.push(reader.optional().map_err(bad)?.map(<[u8]>::to_vec));
                }
                Ok(())
            },
            MAX_RESPONSE_BYTES,
        )?;
        Ok(values)
    }

    fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), Error> {
        check_pairs(pairs, check_key)?;
        let pairs = large_first(pairs.iter().collect(), MAX_BATCH_BYTES);
        self.batch(
            &SET_MANY,
            &[self.changes.as_bytes()],
            &pairs,
            |(key, value)| key.len() + value.len(),
            |body, (key, value)| {
                frames::put(body, key.as_bytes())?;
                frames::put(body, value)
            },
            |_, _| Ok(()),
            SMALL_ANSWER_BYTES,
        )
    }

    fn delete_many(&self, keys: &[String]) -> Result<(), Error> {
        check_batch("delete-many", keys, check_key)?;
        self.batch(
            &DELETE_MANY,
            &[self.changes.as_bytes()],
            keys,
            String::len,
            |body, key| frames::put(body, key.as_bytes()),
            |_, _| Ok(()),
            SMALL_ANSWER_BYTES,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_survive_webdis_path_rules() {
        assert_eq!(
            command("SET", &[b"b:x.txt", b"a+b c/d"]),
            "/SET/b%3Ax%2Etxt/a%2Bb%20c%2Fd.raw"
        );
        assert_eq!(command("GET", &[b"k", b""]), "/GET/k/.raw");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn the_change_stream_sits_beside_the_bucket_and_is_no_key_of_it() {
        let settings = Settings::from_lookup(|name| {
            Ok(match name {
                "url" => Some(String::from("http://127.0.0.1:7379")),
                "prefix" => Some(String::from("app")),
                _ => None,
            })
        })
        .unwrap();
        for (bucket, stream) in [
            ("b", "app!b!changes"),
            ("a:b#c!d", "app!a%3Ab%23c%21d!changes"),
        ] {
            let backend = RedisBackend::open(&settings, bucket).unwrap();
            assert_eq!(&*backend.changes, stream);
            assert!(!backend.changes.starts_with(&*backend.space));
            assert!(!backend.changes.starts_with(&*backend.companions));
            assert_eq!(
                backend.space_len.parse::<usize>().unwrap(),
                backend.space.len()
            );
        }
    }
}
