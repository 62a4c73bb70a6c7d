//! `kvplug:keyvalue/entries` on Redis (docs/extension-design.md §2.3): one Lua script per
//! call, so every call is one request (after Redis has seen the script once). The scripts
//! are in [`super::scripts`]; here, what the adapter sends them and how it reads their
//! answers.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use kvplug_protocol::frames::{self, FrameError};
use kvplug_protocol::names;

use super::scripts::{INSERT, LIST_PREFIX, REMOVE};
use super::{MAX_KEY_BYTES, RedisBackend, check_key, glob_escape, list_cap};
use crate::backend::Page;
use crate::backend::entries::{Entries, Entry, InsertOptions, Limited, Limits, Mode, Refusal};
use crate::client::{MAX_RESPONSE_BYTES, SMALL_ANSWER_BYTES, Verb};
use crate::error::Error;

/// The largest value an entry may hold: what `lookup` can read back (its answer carries the
/// value, the metadata, the version token and RESP's envelope under the 256 MiB cap).
pub(super) const MAX_VALUE_BYTES: u64 = MAX_RESPONSE_BYTES - 4096;

/// Value-derived generations (a key no kvplug write touched) have this bit set; generations
/// from the counter never do.
const VALUE_DERIVED: u64 = 1 << 63;

/// A LOOKUP answer's entry: the value, its version token and its metadata.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Stored {
    pub token: String,
    /// The generation the token names.
    pub generation: u64,
    pub metadata: Vec<u8>,
    pub value: Vec<u8>,
}

/// Reads a LOOKUP answer: `A`, or `P` + token frame + metadata frame + the value. The value
/// is kept in the answer's own buffer: a large value is held once.
pub(super) fn stored(mut answer: Vec<u8>) -> Result<Option<Stored>, &'static str> {
    let ((token, generation), metadata, head) = match answer.split_first() {
        Some((b'A', [])) => return Ok(None),
        Some((b'P', rest)) => {
            let mut reader = frames::Reader::new(rest);
            let token = reader.key().map_err(|_| "no version token")?;
            let metadata = reader.frame().map_err(|_| "no metadata frame")?;
            let generation = generation(token).ok_or("not a version token")?;
            let head = 1 + 4 + token.len() + 4 + metadata.len();
            ((String::from(token), generation), metadata.to_vec(), head)
        }
        _ => return Err("not an entry answer"),
    };
    answer.drain(..head);
    Ok(Some(Stored {
        token,
        generation,
        metadata,
        value: answer,
    }))
}

/// The generation a version token names: `g<decimal>` the counter's (below 2^63), `h<SHA-1
/// hex>` the value-derived one, 2^63 | the first 63 bits of the SHA-1.
pub(super) fn generation(token: &str) -> Option<u64> {
    if let Some(decimal) = token.strip_prefix('g') {
        let generation: u64 = decimal.parse().ok()?;
        return (generation < VALUE_DERIVED && decimal.bytes().all(|b| b.is_ascii_digit()))
            .then_some(generation);
    }
    let hex = token.strip_prefix('h')?;
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let first = u64::from_str_radix(hex.get(..16)?, 16).ok()?;
    Some(VALUE_DERIVED | first >> 1)
}

/// What the scripts' `matches` compares a token with: `g<decimal>`, or for a value-derived
/// generation `h` + the 16 hex digits of its first 64 bits, the last bit unknown (zero).
pub(super) fn wanted(generation: Option<u64>) -> String {
    match generation {
        None => String::from("-"),
        Some(g) if g & VALUE_DERIVED == 0 => format!("g{g}"),
        Some(g) => format!("h{:016x}", g << 1),
    }
}

/// An optional argument with its one-byte tag: `k` none (the mode's default), `s` + bytes.
fn tagged(bytes: Option<&[u8]>) -> Vec<u8> {
    match bytes {
        None => Vec::from(*b"k"),
        Some(bytes) => {
            let mut out = Vec::with_capacity(bytes.len() + 1);
            out.push(b's');
            out.extend_from_slice(bytes);
            out
        }
    }
}

/// The INSERT script's mode argument.
fn mode_arg(mode: Mode) -> &'static [u8] {
    match mode {
        Mode::Overwrite => b"o",
        Mode::Add => b"a",
        Mode::Append => b"s",
        Mode::Prepend => b"p",
    }
}

/// Reads an INSERT answer: the generation written, or the refusal.
pub(super) fn inserted(
    answer: &[u8],
    max_value: u64,
) -> Result<Result<u64, Refusal>, &'static str> {
    match answer.split_first() {
        Some((b'G', [])) => Ok(Err(Refusal::GenerationMismatch)),
        Some((b'E', [])) => Ok(Err(Refusal::KeyExists)),
        Some((b'L', size)) => {
            let size = decimal(size).ok_or("a size refusal without a size")?;
            Ok(Err(Refusal::TooLarge {
                what: Limited::Value,
                limit: Some(max_value),
                size,
            }))
        }
        Some((b'D', generation)) => {
            let text = core::str::from_utf8(generation).map_err(|_| "not a generation")?;
            let token = format!("g{text}");
            match super::entries::generation(&token) {
                Some(generation) => Ok(Ok(generation)),
                None => Err("not a generation"),
            }
        }
        _ => Err("not an insert answer"),
    }
}

/// Reads a REMOVE answer: whether a live entry was deleted, or the refusal.
pub(super) fn removed(answer: &[u8]) -> Result<Result<bool, Refusal>, &'static str> {
    match answer {
        b"1" => Ok(Ok(true)),
        b"0" => Ok(Ok(false)),
        b"G" => Ok(Err(Refusal::GenerationMismatch)),
        _ => Err("not a delete answer"),
    }
}

fn decimal(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    core::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Where a prefix listing goes on: the `SCAN` cursor (`0` to start, `e` once `SCAN` is
/// done) and the keys an earlier page scanned but could not hold.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ListCursor {
    pub scan: String,
    pub carried: Vec<String>,
}

impl ListCursor {
    /// The cursor's text: the `SCAN` cursor, then `/` and each carried key, encoded.
    pub fn encode(&self) -> String {
        let mut out = self.scan.clone();
        for key in &self.carried {
            out.push('/');
            out.push_str(&names::encode(key));
        }
        out
    }

    /// A cursor as [`ListCursor::encode`] wrote it.
    pub fn decode(text: &str) -> Option<ListCursor> {
        let mut parts = text.split('/');
        let scan = parts.next()?;
        let valid_scan =
            scan == "e" || (!scan.is_empty() && scan.bytes().all(|b| b.is_ascii_digit()));
        if !valid_scan || scan == "0" {
            return None;
        }
        let carried = parts
            .map(|part| names::decode(part).ok())
            .collect::<Option<Vec<_>>>()?;
        Some(ListCursor {
            scan: String::from(scan),
            carried,
        })
    }
}

/// Reads a LIST_PREFIX answer: the page, and the cursor of the next one (`None` when `SCAN`
/// is done and nothing is carried).
pub(super) fn listed(answer: &[u8]) -> Result<(Vec<String>, Option<ListCursor>), FrameError> {
    let mut reader = frames::Reader::new(answer);
    let scan = String::from(reader.key()?);
    let count: usize = reader.key()?.parse().map_err(|_| FrameError::Truncated)?;
    let mut keys = Vec::new();
    for _ in 0..count {
        keys.push(String::from(reader.key()?));
    }
    let mut carried = Vec::new();
    while !reader.is_empty() {
        carried.push(String::from(reader.key()?));
    }
    let next = (scan != "e" || !carried.is_empty()).then_some(ListCursor { scan, carried });
    Ok((keys, next))
}

impl Entries for RedisBackend {
    fn page_size(&self) -> u32 {
        self.page_size
    }

    fn limits(&self) -> Limits {
        Limits::new(Some(MAX_KEY_BYTES as u64), Some(MAX_VALUE_BYTES))
    }

    fn read_entry(&self, key: &str) -> Result<Option<Entry>, Error> {
        let answer = self.lookup_answer(key)?;
        let stored = stored(answer).map_err(|e| self.client.malformed(Verb::Get, "/EVALSHA", e))?;
        Ok(stored.map(|stored| Entry {
            generation: stored.generation,
            value: stored.value,
            metadata: stored.metadata,
        }))
    }

    fn write_entry(
        &self,
        key: &str,
        value: &[u8],
        options: &InsertOptions<'_>,
    ) -> Result<u64, Error> {
        check_key(key)?;
        let ttl = options.ttl_sec.map(|ttl| ttl.to_string());
        let answer = self.eval(
            &INSERT,
            &[
                &self.key(key),
                &self.companion(key),
                self.counter.as_bytes(),
                self.changes.as_bytes(),
            ],
            &[
                mode_arg(options.mode),
                &tagged(ttl.as_deref().map(str::as_bytes)),
                &tagged(options.metadata),
                wanted(options.if_generation_match).as_bytes(),
                MAX_VALUE_BYTES.to_string().as_bytes(),
                self.space_len.as_bytes(),
            ],
            value,
            SMALL_ANSWER_BYTES,
        )?;
        inserted(&answer, MAX_VALUE_BYTES)
            .map_err(|e| self.client.malformed(Verb::Put, "/EVALSHA", e))?
            .map_err(Error::Entry)
    }

    fn remove_entry(&self, key: &str, generation: Option<u64>) -> Result<bool, Error> {
        check_key(key)?;
        let answer = self.eval(
            &REMOVE,
            &[
                &self.key(key),
                &self.companion(key),
                self.changes.as_bytes(),
            ],
            &[wanted(generation).as_bytes(), self.space_len.as_bytes()],
            &[],
            SMALL_ANSWER_BYTES,
        )?;
        removed(&answer)
            .map_err(|e| self.client.malformed(Verb::Get, "/EVALSHA", e))?
            .map_err(Error::Entry)
    }

    fn list_prefix(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<Page, Error> {
        let from = match cursor {
            None => ListCursor {
                scan: String::from("0"),
                carried: Vec::new(),
            },
            Some(text) => ListCursor::decode(text).ok_or_else(|| {
                Error::Invalid(String::from("list: not a cursor this listing returned"))
            })?,
        };
        let pattern = format!("{}{}*", glob_escape(&self.space), glob_escape(prefix));
        let want = limit.to_string();
        let mut body = Vec::new();
        for key in &from.carried {
            frames::put(&mut body, key.as_bytes())
                .map_err(|e| Error::Invalid(format!("list: a cursor key: {e}")))?;
        }
        let answer = self.eval(
            &LIST_PREFIX,
            &[],
            &[
                self.space.as_bytes(),
                pattern.as_bytes(),
                from.scan.as_bytes(),
                want.as_bytes(),
            ],
            &body,
            list_cap(limit),
        )?;
        let (keys, next) =
            listed(&answer).map_err(|e| self.client.malformed(Verb::Get, "/EVALSHA", e))?;
        Ok(Page {
            keys,
            cursor: next.map(|next| next.encode()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn frame(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        frames::put(&mut out, bytes).unwrap();
        out
    }

    #[test]
    fn lookup_answers_carry_token_metadata_and_value() {
        assert_eq!(stored(b"A".to_vec()), Ok(None));
        let mut answer = vec![b'P'];
        answer.extend(frame(b"g1764900000000001"));
        answer.extend(frame(b"m\0\xff"));
        answer.extend_from_slice(b"the value");
        assert_eq!(
            stored(answer),
            Ok(Some(Stored {
                token: String::from("g1764900000000001"),
                generation: 1_764_900_000_000_001,
                metadata: b"m\0\xff".to_vec(),
                value: b"the value".to_vec(),
            }))
        );
        let mut empty = vec![b'P'];
        empty.extend(frame(b"hda39a3ee5e6b4b0d3255bfef95601890afd80709"));
        empty.extend(frame(b""));
        let entry = stored(empty).unwrap().unwrap();
        assert_eq!((entry.metadata.len(), entry.value.len()), (0, 0));
        for bad in [
            &b""[..],
            b"X",
            b"A!",
            b"P",
            b"P\0\0\0\x05g1",
            b"P\0\0\0\x02x1\0\0\0\0",
        ] {
            assert!(stored(bad.to_vec()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tokens_name_generations_and_wanted_matches_them() {
        assert_eq!(generation("g42"), Some(42));
        assert_eq!(generation("g9223372036854775807"), Some((1 << 63) - 1));
        assert_eq!(generation("g9223372036854775808"), None);
        assert_eq!(generation("g+1"), None);
        assert_eq!(generation("g"), None);
        // SHA-1("") = da39a3ee5e6b4b0d…: its first 64 bits, shifted right once, with bit 63.
        let empty = generation("hda39a3ee5e6b4b0d3255bfef95601890afd80709").unwrap();
        assert_eq!(empty, (1 << 63) | (0xda39_a3ee_5e6b_4b0d >> 1));
        assert_eq!(generation("hda39"), None);
        assert_eq!(generation("x42"), None);
        assert_eq!(wanted(None), "-");
        assert_eq!(wanted(Some(42)), "g42");
        // The script compares 15 hex digits and the 16th without its last bit.
        assert_eq!(wanted(Some(empty)), "hda39a3ee5e6b4b0c");
    }

    #[test]
    fn insert_and_delete_answers() {
        assert_eq!(
            inserted(b"D1764900000000001", 9),
            Ok(Ok(1_764_900_000_000_001))
        );
        assert_eq!(inserted(b"G", 9), Ok(Err(Refusal::GenerationMismatch)));
        assert_eq!(inserted(b"E", 9), Ok(Err(Refusal::KeyExists)));
        assert_eq!(
            inserted(b"L13", 9),
            Ok(Err(Refusal::TooLarge {
                what: Limited::Value,
                limit: Some(9),
                size: 13
            }))
        );
        for bad in [&b""[..], b"D", b"Dx", b"D-1", b"L", b"L1e3", b"GG", b"OK"] {
            assert!(inserted(bad, 9).is_err(), "{bad:?}");
        }
        assert_eq!(removed(b"1"), Ok(Ok(true)));
        assert_eq!(removed(b"0"), Ok(Ok(false)));
        assert_eq!(removed(b"G"), Ok(Err(Refusal::GenerationMismatch)));
        assert!(removed(b"2").is_err());
        assert_eq!(tagged(None), b"k");
        assert_eq!(tagged(Some(b"")), b"s");
        assert_eq!(tagged(Some(b"ab")), b"sab");
    }

    #[test]
    fn list_answers_and_cursors() {
        let mut answer = frame(b"17");
        answer.extend(frame(b"1"));
        answer.extend(frame(b"p/a"));
        answer.extend(frame("p語".as_bytes()));
        let (keys, next) = listed(&answer).unwrap();
        assert_eq!(keys, vec![String::from("p/a")]);
        let next = next.unwrap();
        assert_eq!(next.carried, vec![String::from("p語")]);
        assert_eq!(ListCursor::decode(&next.encode()), Some(next));
        let mut done = frame(b"e");
        done.extend(frame(b"0"));
        assert_eq!(listed(&done).unwrap(), (Vec::new(), None));
        let mut carried = frame(b"e");
        carried.extend(frame(b"0"));
        carried.extend(frame(b"k"));
        assert!(listed(&carried).unwrap().1.is_some());
        let mut short = frame(b"e");
        short.extend(frame(b"2"));
        short.extend(frame(b"k"));
        assert!(listed(&short).is_err());
        for bad in ["", "0", "x", "12/%zz", "-1", "e/"] {
            assert_eq!(ListCursor::decode(bad), None, "{bad}");
        }
        assert_eq!(
            ListCursor::decode("e/~"),
            Some(ListCursor {
                scan: String::from("e"),
                carried: vec![String::new()]
            })
        );
    }
}
