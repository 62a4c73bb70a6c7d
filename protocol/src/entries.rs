//! Entries (`kvplug:keyvalue/entries`, docs/extension-design.md): a value with metadata, a
//! generation and an optional expiry, written in one of four insert modes.
//!
//! [`check`] and [`plan`] are the one decision every store makes: the reference server runs
//! [`plan`] inside its write transaction, an adapter between a read and a conditional write.
//! Keeping it here, pure and clock-free (the caller passes "now"), is what keeps the stores
//! from drifting apart. The wire names of the server's entries endpoints live here too.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::{BUCKETS_PREFIX, names};

/// The path segment under a bucket that holds the entries endpoints.
pub const ENTRIES_SEGMENT: &str = "entries";

/// Base64 (standard alphabet, padded) of an entry's metadata, on reads and writes. Absent on a
/// write: the mode's default; present and empty: no metadata.
pub const HEADER_METADATA: &str = "kvplug-metadata";
/// On a `413 too-large`: which size was refused and its limit, `value=<n>` or `metadata=<n>`.
pub const HEADER_LIMIT: &str = "kvplug-limit";
/// On a `413 too-large` of an entry write: the size refused, in bytes (for append and
/// prepend, the value the write would have made).
pub const HEADER_SIZE: &str = "kvplug-size";
/// On a `400 bad-ttl`: the accepted range in seconds, `<min>-<max>`.
pub const HEADER_TTL_RANGE: &str = "kvplug-ttl-range";
/// On an entry `DELETE`: `1` if a live entry was deleted, `0` if there was none.
pub const HEADER_DELETED: &str = "kvplug-deleted";
/// On `HEAD` of a bucket: `1` when the server has the entries endpoints.
pub const HEADER_ENTRIES: &str = "kvplug-entries";
/// On `HEAD` of a bucket: the largest value the server stores, in bytes.
pub const HEADER_MAX_VALUE: &str = "kvplug-max-value";

/// Most bytes of metadata an entry may hold, on every backend.
pub const MAX_METADATA_BYTES: u32 = 2000;
/// The time-to-live range every backend accepts today.
pub const TTL_RANGE: TtlRange = TtlRange {
    min_sec: 1,
    max_sec: u32::MAX,
};

/// How an insert treats what the key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Replace value, metadata and expiry.
    Overwrite,
    /// Write only if the key holds no live entry.
    Add,
    /// Add the bytes after the live value (absent or expired = empty).
    Append,
    /// Add the bytes before the live value (absent or expired = empty).
    Prepend,
}

impl Mode {
    /// Every mode, for tables and tests.
    pub const ALL: [Mode; 4] = [Mode::Overwrite, Mode::Add, Mode::Append, Mode::Prepend];

    /// The value of the `mode` query parameter.
    pub fn as_query(self) -> &'static str {
        match self {
            Mode::Overwrite => "overwrite",
            Mode::Add => "add",
            Mode::Append => "append",
            Mode::Prepend => "prepend",
        }
    }

    /// The mode a `mode` query value names, if any.
    pub fn from_query(value: &str) -> Option<Self> {
        Mode::ALL.into_iter().find(|mode| mode.as_query() == value)
    }

    /// Append and prepend start from the live entry, so what the options leave out is kept.
    fn keeps_unstated(self) -> bool {
        matches!(self, Mode::Append | Mode::Prepend)
    }
}

/// What an insert asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsertOptions<'a> {
    /// How to treat the current entry.
    pub mode: Mode,
    /// Seconds until the entry expires. `None`: no expiry (overwrite, add) or unchanged
    /// (append, prepend).
    pub ttl_sec: Option<u32>,
    /// `None`: no metadata (overwrite, add) or unchanged (append, prepend). Empty: none.
    pub metadata: Option<&'a [u8]>,
    /// Write only if the live entry is at this generation.
    pub if_generation_match: Option<u64>,
}

impl InsertOptions<'_> {
    /// A plain overwrite: no expiry, no metadata, no condition.
    pub fn new(mode: Mode) -> Self {
        InsertOptions {
            mode,
            ttl_sec: None,
            metadata: None,
            if_generation_match: None,
        }
    }
}

/// An entry as the store holds it, expired or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live<'a> {
    /// The stored value.
    pub value: &'a [u8],
    /// Empty when the entry has none.
    pub metadata: &'a [u8],
    /// Changes on every write.
    pub generation: u64,
    /// Absolute deadline, milliseconds since the Unix epoch; the entry is gone from then on.
    pub expires_ms: Option<u64>,
}

/// Seconds a time-to-live may take, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlRange {
    /// Shortest accepted time-to-live.
    pub min_sec: u32,
    /// Longest accepted time-to-live.
    pub max_sec: u32,
}

/// What a store accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest key in bytes, `None` when the store states no limit.
    pub max_key_bytes: Option<u64>,
    /// Largest value in bytes, `None` when the service's own configuration decides.
    pub max_value_bytes: Option<u64>,
    /// Most metadata bytes.
    pub max_metadata_bytes: u32,
    /// Accepted time-to-live.
    pub ttl: TtlRange,
}

impl Limits {
    /// The limits of a store with these key and value limits, and the common metadata and
    /// time-to-live limits.
    pub fn new(max_key_bytes: Option<u64>, max_value_bytes: Option<u64>) -> Self {
        Limits {
            max_key_bytes,
            max_value_bytes,
            max_metadata_bytes: MAX_METADATA_BYTES,
            ttl: TTL_RANGE,
        }
    }
}

/// Which size a [`Refusal::TooLarge`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// The key.
    Key,
    /// The value (after concatenation, for append and prepend).
    Value,
    /// The metadata.
    Metadata,
}

impl Limited {
    fn name(self) -> &'static str {
        match self {
            Limited::Key => "key",
            Limited::Value => "value",
            Limited::Metadata => "metadata",
        }
    }
}

/// Why an insert was not made. Nothing is written in any of these cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `add` found a live entry.
    KeyExists,
    /// `if-generation-match` did not name the live entry's generation (or there is none).
    GenerationMismatch,
    /// A size over its limit.
    TooLarge {
        /// Which size.
        what: Limited,
        /// The limit, if the store states one.
        limit: Option<u64>,
        /// The size refused.
        size: u64,
    },
    /// A time-to-live outside the store's range.
    TtlOutOfRange(TtlRange),
    /// Options that contradict each other.
    Invalid(&'static str),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::KeyExists => f.write_str("the key holds a live entry"),
            Refusal::GenerationMismatch => {
                f.write_str("the key holds no live entry at the given generation")
            }
            Refusal::TooLarge {
                what,
                limit: Some(limit),
                size,
            } => write!(
                f,
                "a {} of {size} bytes is over the limit of {limit} bytes",
                what.name()
            ),
            Refusal::TooLarge {
                what,
                limit: None,
                size,
            } => write!(f, "a {} of {size} bytes is too large", what.name()),
            Refusal::TtlOutOfRange(range) => write!(
                f,
                "the time-to-live must be {} to {} seconds",
                range.min_sec, range.max_sec
            ),
            Refusal::Invalid(reason) => f.write_str(reason),
        }
    }
}

fn size_of(bytes: usize) -> u64 {
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

/// Refuses what no store state can make valid, before any I/O: `add` with a generation,
/// metadata over its limit, a time-to-live out of range, a key over its limit.
pub fn check(options: &InsertOptions<'_>, limits: &Limits, key_len: usize) -> Result<(), Refusal> {
    if let Some(limit) = limits.max_key_bytes {
        let size = size_of(key_len);
        if size > limit {
            return Err(Refusal::TooLarge {
                what: Limited::Key,
                limit: Some(limit),
                size,
            });
        }
    }
    check_options(options, limits)
}

fn check_options(options: &InsertOptions<'_>, limits: &Limits) -> Result<(), Refusal> {
    if options.mode == Mode::Add && options.if_generation_match.is_some() {
        return Err(Refusal::Invalid(
            "`add` writes only an absent key, so it cannot take a generation",
        ));
    }
    if let Some(metadata) = options.metadata {
        let size = size_of(metadata.len());
        let limit = u64::from(limits.max_metadata_bytes);
        if size > limit {
            return Err(Refusal::TooLarge {
                what: Limited::Metadata,
                limit: Some(limit),
                size,
            });
        }
    }
    if let Some(ttl) = options.ttl_sec
        && (ttl < limits.ttl.min_sec || ttl > limits.ttl.max_sec)
    {
        return Err(Refusal::TtlOutOfRange(limits.ttl));
    }
    Ok(())
}

/// Whether an entry with this deadline is gone at `now_ms`: the deadline itself is outside.
pub fn is_expired(expires_ms: Option<u64>, now_ms: u64) -> bool {
    expires_ms.is_some_and(|deadline| deadline <= now_ms)
}

/// The deadline of a time-to-live starting at `now_ms`.
pub fn deadline(now_ms: u64, ttl_sec: u32) -> u64 {
    now_ms.saturating_add(u64::from(ttl_sec).saturating_mul(1000))
}

/// What to write: the whole new entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<'a> {
    /// The new value.
    pub value: Cow<'a, [u8]>,
    /// The new metadata; empty for none.
    pub metadata: &'a [u8],
    /// The new deadline, milliseconds since the Unix epoch.
    pub expires_ms: Option<u64>,
}

/// The entry an insert of `value` writes over `current` at `now_ms`, or why it writes nothing.
/// An expired `current` counts as absent. Runs [`check`]'s option checks too, so a caller
/// that skipped them still cannot write what they refuse.
pub fn plan<'a>(
    current: Option<Live<'a>>,
    value: &'a [u8],
    options: &InsertOptions<'a>,
    limits: &Limits,
    now_ms: u64,
) -> Result<Plan<'a>, Refusal> {
    check_options(options, limits)?;
    let live = current.filter(|entry| !is_expired(entry.expires_ms, now_ms));
    if let Some(wanted) = options.if_generation_match
        && live.is_none_or(|entry| entry.generation != wanted)
    {
        return Err(Refusal::GenerationMismatch);
    }
    if options.mode == Mode::Add && live.is_some() {
        return Err(Refusal::KeyExists);
    }
    let kept = live.filter(|_| options.mode.keeps_unstated());
    let before: &[u8] = kept.map_or(&[], |entry| entry.value);
    let size = size_of(before.len()).saturating_add(size_of(value.len()));
    if let Some(limit) = limits.max_value_bytes
        && size > limit
    {
        return Err(Refusal::TooLarge {
            what: Limited::Value,
            limit: Some(limit),
            size,
        });
    }
    let new_value = match (options.mode, before.is_empty()) {
        (Mode::Overwrite | Mode::Add, _) | (_, true) => Cow::Borrowed(value),
        (Mode::Append, false) => Cow::Owned([before, value].concat()),
        (Mode::Prepend, false) => Cow::Owned([value, before].concat()),
    };
    let metadata = match (options.metadata, kept) {
        (Some(metadata), _) => metadata,
        (None, Some(entry)) => entry.metadata,
        (None, None) => &[],
    };
    let expires_ms = match (options.ttl_sec, kept) {
        (Some(ttl), _) => Some(deadline(now_ms, ttl)),
        (None, Some(entry)) => entry.expires_ms,
        (None, None) => None,
    };
    Ok(Plan {
        value: new_value,
        metadata,
        expires_ms,
    })
}

/// `/v1/buckets/{bucket}/entries/{key}`: one entry.
pub fn entry_path(bucket: &str, key: &str) -> String {
    format!(
        "{BUCKETS_PREFIX}{}/{ENTRIES_SEGMENT}/{}",
        names::encode(bucket),
        names::encode(key)
    )
}

/// `/v1/buckets/{bucket}/entries`: listing by prefix.
pub fn entries_path(bucket: &str) -> String {
    format!(
        "{BUCKETS_PREFIX}{}/{ENTRIES_SEGMENT}",
        names::encode(bucket)
    )
}

/// The query of an entry `PUT`: `mode=<mode>[&ttl=<seconds>]`.
pub fn insert_query(mode: Mode, ttl_sec: Option<u32>) -> String {
    match ttl_sec {
        Some(ttl) => format!("mode={}&ttl={ttl}", mode.as_query()),
        None => format!("mode={}", mode.as_query()),
    }
}

/// The value of [`HEADER_METADATA`].
pub fn encode_metadata(metadata: &[u8]) -> String {
    kvplug_codec::base64::encode(metadata)
}

/// The metadata in a [`HEADER_METADATA`] value. Its length is [`check`]'s business.
pub fn decode_metadata(value: &str) -> Result<Vec<u8>, Refusal> {
    kvplug_codec::base64::decode(value.trim())
        .map_err(|_| Refusal::Invalid("`kvplug-metadata` is not base64"))
}

/// The value of [`HEADER_LIMIT`]: `value=<n>`, `metadata=<n>` or `key=<n>`.
pub fn format_limit(what: Limited, limit: u64) -> String {
    format!("{}={limit}", what.name())
}

/// What a [`HEADER_LIMIT`] value says.
pub fn parse_limit(value: &str) -> Option<(Limited, u64)> {
    let (name, limit) = value.trim().split_once('=')?;
    let what = [Limited::Key, Limited::Value, Limited::Metadata]
        .into_iter()
        .find(|what| what.name() == name)?;
    Some((what, limit.parse().ok()?))
}

/// The value of [`HEADER_TTL_RANGE`]: `<min>-<max>`.
pub fn format_ttl_range(range: TtlRange) -> String {
    format!("{}-{}", range.min_sec, range.max_sec)
}

/// What a [`HEADER_TTL_RANGE`] value says.
pub fn parse_ttl_range(value: &str) -> Option<TtlRange> {
    let (min, max) = value.trim().split_once('-')?;
    Some(TtlRange {
        min_sec: min.parse().ok()?,
        max_sec: max.parse().ok()?,
    })
}

#[cfg(test)]
mod tests;
