//! The one trait every backend implements; the export glue (`exports`) sees nothing else.
//!
//! Each backend is a sibling module behind a cargo feature, and each build carries exactly one
//! of them, so every artifact (`kvplug-<backend>.wasm`) contains only the code it needs.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::client::Verb;
use crate::error::Error;
use crate::settings::Settings;

#[cfg(feature = "azure-table")]
pub mod azure_table;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod entries;
pub mod entry_swap;
#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "http")]
pub mod http;
#[cfg(any(feature = "etcd", feature = "dynamodb", feature = "azure-table"))]
pub mod json;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "dynamodb", feature = "azure-table"))]
pub mod retry;

/// One page of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub keys: Vec<String>,
    /// `None` on the last page.
    pub cursor: Option<String>,
}

/// What a compare-and-swap is conditional on, as the backend spells it (an ETag, a
/// `mod_revision`, …), or that the key was absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    Absent,
    Tag(String),
}

/// A value together with the version it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: Option<Vec<u8>>,
    pub version: Version,
}

impl Versioned {
    /// What a key that holds nothing reads as.
    pub const fn absent() -> Self {
        Versioned {
            value: None,
            version: Version::Absent,
        }
    }
}

/// The result of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    Done,
    /// The key moved on; this is what it holds now.
    Conflict(Versioned),
}

/// A connection to one bucket of one service. Cloning is cheap and shares nothing mutable.
pub trait Backend: Clone + Sized {
    /// Connects to `bucket`, failing with `NoSuchStore` if the service does not have it.
    fn open(settings: &Settings, bucket: &str) -> Result<Self, Error>;
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), Error>;
    /// Deleting an absent key succeeds.
    fn delete(&self, key: &str) -> Result<(), Error>;
    fn exists(&self, key: &str) -> Result<bool, Error>;
    fn list(&self, cursor: Option<&str>) -> Result<Page, Error>;
    /// Whether the default `increment` sends its first conditional write as if the key
    /// were absent, saving the read when it is: worth it where a refused write hands back
    /// what the key holds (etcd's transactions); elsewhere a refusal costs a request more.
    const INCREMENT_ASSUMES_ABSENT: bool = false;

    /// Adds `delta` to the ASCII decimal at `key` (absent is 0), atomically. By default a
    /// compare-and-swap loop on [`Backend::read_versioned`] and [`Backend::write_if`]; a
    /// service that can add overrides it.
    fn increment(&self, key: &str, delta: i64) -> Result<i64, Error> {
        let first = if Self::INCREMENT_ASSUMES_ABSENT {
            Versioned::absent()
        } else {
            self.read_versioned(key)?
        };
        increment_by_swap(key, delta, first, |version, sum| {
            self.write_if(key, version, sum.to_string().as_bytes())
        })
    }
    /// Reads the value and the version a later [`Backend::write_if`] is conditional on.
    fn read_versioned(&self, key: &str) -> Result<Versioned, Error>;
    /// Writes only if `key` is still at `expected`; never a blind write.
    fn write_if(&self, key: &str, expected: &Version, value: &[u8]) -> Result<Swap, Error>;
    /// One slot per key, in order.
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error>;
    fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), Error>;
    fn delete_many(&self, keys: &[String]) -> Result<(), Error>;
}

/// How many conditional writes an `increment` by compare-and-swap tries before it gives
/// up: each refusal means another client wrote the key in between.
pub const MAX_INCREMENT_ATTEMPTS: usize = 64;

/// Adds `delta` to the counter at `key`, which holds `current`, by writing the sum on
/// condition that the key is still at the version read; on a refusal, again from what the
/// key holds now. `write` is the backend's conditional write of a sum.
pub fn increment_by_swap(
    key: &str,
    delta: i64,
    mut current: Versioned,
    mut write: impl FnMut(&Version, i64) -> Result<Swap, Error>,
) -> Result<i64, Error> {
    for _ in 0..MAX_INCREMENT_ATTEMPTS {
        let sum = kvplug_protocol::counter::add(current.value.as_deref(), delta)
            .map_err(|e| counter_error(key, e))?;
        match write(&current.version, sum)? {
            Swap::Done => return Ok(sum),
            Swap::Conflict(now) => current = now,
        }
    }
    Err(Error::GaveUp(alloc::format!(
        "increment of `{key}`: gave up after {MAX_INCREMENT_ATTEMPTS} attempts, each lost to a concurrent write"
    )))
}

/// The error of an `increment` of `key` that the stored value or the sum refuses. Every
/// backend checks before it writes, so the message can promise that nothing changed.
pub fn counter_error(key: &str, error: kvplug_protocol::counter::CounterError) -> Error {
    Error::Invalid(alloc::format!(
        "increment of `{key}`: {error}; nothing was written"
    ))
}

/// The error for an answer that is not the service's. A `url` that reaches another web
/// server, or a proxy's error page, must fail the call whatever the status: a 200 from it
/// would otherwise pass for a stored value or an acknowledged write. `target` is the
/// request as messages name it; `why` is what gave the answer away.
pub fn foreign(verb: Verb, target: String, status: u16, service: &str, why: &str) -> Error {
    Error::Transport {
        method: verb.name(),
        path: target,
        detail: alloc::format!(
            "the answer (HTTP {status}) is not from {service} ({why}): is `url` right?"
        ),
    }
}

/// Refuses a name (`what`: a key, a bucket name) longer than `max` bytes before anything
/// is sent. The message names the limit and where it comes from (`why`), and never the
/// name, which may be that long.
pub fn check_length(
    what: &str,
    name: &str,
    max: usize,
    backend: &str,
    why: &str,
) -> Result<(), Error> {
    if name.len() <= max {
        return Ok(());
    }
    Err(Error::Invalid(alloc::format!(
        "{backend}: a {what} of {} bytes is longer than the {max} bytes this backend takes: {why}",
        name.len()
    )))
}

/// Checks every key of a batch before anything is sent: a batch split over several
/// requests must not leave the entries before a bad one written. The error says which
/// entry.
pub fn check_batch(
    operation: &str,
    keys: &[String],
    check: fn(&str) -> Result<(), Error>,
) -> Result<(), Error> {
    let count = keys.len();
    for (at, key) in keys.iter().enumerate() {
        check(key).map_err(|error| in_batch(operation, at, count, error))?;
    }
    Ok(())
}

/// [`check_batch`] for the keys of `set-many`'s pairs.
pub fn check_pairs(
    pairs: &[(String, Vec<u8>)],
    check: fn(&str) -> Result<(), Error>,
) -> Result<(), Error> {
    let count = pairs.len();
    for (at, (key, _)) in pairs.iter().enumerate() {
        check(key).map_err(|error| in_batch("set-many", at, count, error))?;
    }
    Ok(())
}

/// `error` about entry `at` (from 0) of a batch of `count`.
pub fn in_batch(operation: &str, at: usize, count: usize, error: Error) -> Error {
    match error {
        Error::Invalid(message) => Error::Invalid(alloc::format!(
            "{operation}: entry {} of {count}: {message}",
            at + 1
        )),
        other => other,
    }
}

/// The pairs of a `set-many` in the order they are sent: those too large to share a
/// request with others (over `max_bytes`) first, largest first, then the rest as given.
/// How large a request the service takes is its own setting (etcd's
/// `--max-request-bytes`, a server's body limit), which the adapter cannot check in
/// advance; sent first, a pair over it is refused before any other pair is written. Of a
/// key that has a large pair only the last pair is sent, so that the value left is the
/// last one given whatever the order. Written without a sort or a set, which would cost
/// the artifact kilobytes for what is a handful of pairs.
pub fn large_first(pairs: Vec<&(String, Vec<u8>)>, max_bytes: usize) -> Vec<&(String, Vec<u8>)> {
    let size = |(key, value): &(String, Vec<u8>)| key.len() + value.len();
    let large_keys: Vec<&str> = pairs
        .iter()
        .filter(|pair| size(pair) > max_bytes)
        .map(|(key, _)| key.as_str())
        .collect();
    if large_keys.is_empty() {
        return pairs;
    }
    let mut ordered: Vec<&(String, Vec<u8>)> = Vec::with_capacity(pairs.len());
    let mut small = Vec::with_capacity(pairs.len());
    for (at, pair) in pairs.iter().enumerate() {
        let key = pair.0.as_str();
        let overwritten = large_keys.contains(&key)
            && pairs
                .get(at + 1..)
                .is_some_and(|later| later.iter().any(|(other, _)| other == key));
        if overwritten {
            continue;
        }
        let bytes = size(pair);
        if bytes > max_bytes {
            let place = ordered
                .iter()
                .position(|other| size(other) < bytes)
                .unwrap_or(ordered.len());
            ordered.insert(place, pair);
        } else {
            small.push(*pair);
        }
    }
    ordered.extend(small);
    ordered
}

/// Splits `items` into runs of at most `max_entries` and, where possible, `max_bytes`
/// (an item larger than `max_bytes` travels alone).
pub fn chunks<T>(
    items: &[T],
    max_entries: usize,
    max_bytes: usize,
    size: impl Fn(&T) -> usize,
) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    core::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut end = 0;
        for item in rest.iter().take(max_entries) {
            let item_bytes = size(item);
            if end > 0 && bytes + item_bytes > max_bytes {
                break;
            }
            bytes += item_bytes;
            end += 1;
        }
        let (chunk, tail) = rest.split_at_checked(end)?;
        rest = tail;
        Some(chunk)
    })
}

/// The request bodies of a batch sent as frames: one per run of `chunks`, each item written
/// by `encode`, with the run it holds.
pub fn framed_batches<'a, T>(
    items: &'a [T],
    max_entries: usize,
    max_bytes: usize,
    size: impl Fn(&T) -> usize,
    encode: impl Fn(&mut Vec<u8>, &'a T) -> Result<(), kvplug_protocol::frames::FrameError>,
) -> impl Iterator<Item = Result<(&'a [T], Vec<u8>), Error>> {
    chunks(items, max_entries, max_bytes, size).map(move |chunk| {
        let mut body = Vec::new();
        for item in chunk {
            encode(&mut body, item)
                .map_err(|e| Error::Invalid(alloc::format!("cannot encode batch: {e}")))?;
        }
        Ok((chunk, body))
    })
}

/// The pairs of a batch with each key once, holding its last value: what sequential sets
/// would leave behind. Services that refuse a key twice in one transaction need this.
pub fn last_wins(pairs: &[(String, Vec<u8>)]) -> Vec<&(String, Vec<u8>)> {
    let mut seen = alloc::collections::BTreeSet::new();
    let mut kept: Vec<_> = pairs
        .iter()
        .rev()
        .filter(|(key, _)| seen.insert(key.as_str()))
        .collect();
    kept.reverse();
    kept
}

/// The keys of a batch, each once, in first-seen order.
pub fn distinct(keys: &[String]) -> Vec<&String> {
    let mut seen = alloc::collections::BTreeSet::new();
    keys.iter()
        .filter(|key| seen.insert(key.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn chunks_respect_entry_and_byte_limits() {
        let items = [1usize, 1, 1, 1, 1];
        let sizes: Vec<usize> = chunks(&items, 2, 100, |n| *n).map(<[usize]>::len).collect();
        assert_eq!(sizes, [2, 2, 1]);
        let big = [60usize, 60, 10, 200, 1];
        let sizes: Vec<usize> = chunks(&big, 10, 100, |n| *n).map(<[usize]>::len).collect();
        assert_eq!(sizes, [1, 2, 1, 1]);
        assert_eq!(chunks(&[] as &[usize], 2, 2, |n| *n).count(), 0);
    }

    /// `pairs` of a key and a value of that many bytes.
    fn sized(pairs: &[(&str, usize)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, n)| (String::from(*k), alloc::vec![0; *n]))
            .collect()
    }

    fn sizes<'a>(pairs: &[&'a (String, Vec<u8>)]) -> Vec<(&'a str, usize)> {
        pairs.iter().map(|(k, v)| (k.as_str(), v.len())).collect()
    }

    #[test]
    fn pairs_too_large_to_share_a_request_go_first_largest_first() {
        let pairs = sized(&[
            ("a", 3),
            ("b", 50),
            ("c", 1),
            ("d", 70),
            ("e", 60),
            ("c", 2),
        ]);
        let sent = large_first(pairs.iter().collect(), 10);
        assert_eq!(
            sizes(&sent),
            [
                ("d", 70),
                ("e", 60),
                ("b", 50),
                ("a", 3),
                ("c", 1),
                ("c", 2)
            ]
        );
        // Small pairs only: sent as given, a repeated key too.
        let small = sized(&[("a", 3), ("c", 1), ("c", 2)]);
        let sent = large_first(small.iter().collect(), 10);
        assert_eq!(sizes(&sent), [("a", 3), ("c", 1), ("c", 2)]);
    }

    #[test]
    fn a_key_with_a_large_pair_keeps_its_last_value_whatever_the_order() {
        let pairs = sized(&[("k", 1), ("x", 2), ("k", 50), ("y", 40), ("y", 3)]);
        let sent = large_first(pairs.iter().collect(), 10);
        // `k`'s small pair is overwritten by its large one, `y`'s large pair by its small one.
        assert_eq!(sizes(&sent), [("k", 50), ("x", 2), ("y", 3)]);
    }

    #[test]
    fn batches_name_the_entry_whose_key_is_refused() {
        let (longest, too_long) = ("k".repeat(2048), "k".repeat(2049));
        let keys = ["a", longest.as_str(), too_long.as_str()].map(String::from);
        let check = |key: &str| check_length("key", key, 2048, "test", "why");
        let Err(Error::Invalid(message)) = check_batch("set-many", &keys, check) else {
            panic!("the third key is too long");
        };
        assert_eq!(
            message,
            "set-many: entry 3 of 3: test: a key of 2049 bytes is longer than the 2048 bytes this backend takes: why"
        );
        assert_eq!(check_batch("get-many", &keys[..2], check), Ok(()));
    }

    #[test]
    fn duplicates_keep_the_last_value_and_first_position() {
        let pairs: Vec<(String, Vec<u8>)> = [("a", 1u8), ("b", 2), ("a", 3), ("c", 4)]
            .iter()
            .map(|(k, v)| (String::from(*k), alloc::vec![*v]))
            .collect();
        let kept: Vec<(&str, u8)> = last_wins(&pairs)
            .iter()
            .map(|(k, v)| (k.as_str(), v[0]))
            .collect();
        assert_eq!(kept, [("b", 2), ("a", 3), ("c", 4)]);
        let keys: Vec<String> = ["x", "y", "x"].iter().map(|k| String::from(*k)).collect();
        assert_eq!(distinct(&keys), [&keys[0], &keys[1]]);
    }
}
