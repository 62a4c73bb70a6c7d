//! `kvplug:keyvalue/entries` on the shared core: what every backend that carries the
//! extension supplies, and what is decided once for all of them.
//!
//! The decision about an insert (which options are refused, what a mode writes, the size
//! check) is `kvplug_protocol::entries`, shared with the reference server. Here: the checks
//! that run before any request, so no backend can send what they refuse, and the trait a
//! backend implements with its own native mechanism (docs/extension-design.md §2).

use alloc::string::String;
use alloc::vec::Vec;

pub use kvplug_protocol::entries::{InsertOptions, Limited, Limits, Mode, Refusal, TtlRange};

use super::{Backend, Page};
use crate::error::Error;

/// A live entry as `lookup` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: Vec<u8>,
    /// Empty when the entry has none.
    pub metadata: Vec<u8>,
    pub generation: u64,
}

/// A backend that carries the extension. The provided methods are the public face: they
/// check what can be checked before any request, then call the backend's own method.
pub trait Entries: Backend {
    /// What this bucket accepts, known without a request.
    fn limits(&self) -> Limits;
    /// The live entry at `key`, or `None` when absent or expired.
    fn read_entry(&self, key: &str) -> Result<Option<Entry>, Error>;
    /// Writes as `options` say, already checked by [`check`]; returns the new generation.
    /// A refusal is `Error::Entry`, with nothing written.
    fn write_entry(
        &self,
        key: &str,
        value: &[u8],
        options: &InsertOptions<'_>,
    ) -> Result<u64, Error>;
    /// Deletes the live entry at `key` (at `generation`, if given); `true` if there was one.
    /// A generation that does not name the live entry is `Error::Entry(GenerationMismatch)`.
    fn remove_entry(&self, key: &str, generation: Option<u64>) -> Result<bool, Error>;
    /// Live keys that start with `prefix`, at most `limit`, after `cursor` (the backend's
    /// own, as a previous page of the same prefix returned it).
    fn list_prefix(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<Page, Error>;
    /// Keys per page when the caller states no limit (the `page-size` setting).
    fn page_size(&self) -> u32;

    /// `lookup`: the live entry, if any.
    fn lookup(&self, key: &str) -> Result<Option<Entry>, Error> {
        check_key(self.limits(), key)?;
        self.read_entry(key)
    }

    /// `insert`: refuses bad options before any request, then writes.
    fn insert(&self, key: &str, value: &[u8], options: &InsertOptions<'_>) -> Result<u64, Error> {
        let limits = self.limits();
        kvplug_protocol::entries::check(options, &limits, key.len()).map_err(Error::Entry)?;
        // For append and prepend only the store knows the result's size; bytes already over
        // the limit alone make one over it whatever the store holds.
        check_value(&limits, value.len())?;
        self.write_entry(key, value, options)
    }

    /// `delete`: `true` if a live entry was deleted.
    fn delete_entry(&self, key: &str, generation: Option<u64>) -> Result<bool, Error> {
        check_key(self.limits(), key)?;
        self.remove_entry(key, generation)
    }

    /// `list`: a page of live keys with `prefix`. A limit of 0 is refused: a page that can
    /// hold nothing would never move the cursor.
    fn list_entries(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page, Error> {
        let limit = match limit {
            Some(0) => {
                return Err(Error::Invalid(String::from(
                    "list: a limit of 0 can never return a key; give at least 1",
                )));
            }
            Some(limit) => limit,
            None => self.page_size(),
        };
        self.list_prefix(prefix, cursor, limit)
    }
}

/// A key over the backend's stated limit is `too-large(key)`, before any request.
fn check_key(limits: Limits, key: &str) -> Result<(), Error> {
    match limits.max_key_bytes {
        Some(limit) if key.len() as u64 > limit => Err(Error::Entry(Refusal::TooLarge {
            what: Limited::Key,
            limit: Some(limit),
            size: key.len() as u64,
        })),
        _ => Ok(()),
    }
}

/// A value over the stated limit is `too-large(value)` before any request.
fn check_value(limits: &Limits, size: usize) -> Result<(), Error> {
    match limits.max_value_bytes {
        Some(limit) if size as u64 > limit => Err(Error::Entry(Refusal::TooLarge {
            what: Limited::Value,
            limit: Some(limit),
            size: size as u64,
        })),
        _ => Ok(()),
    }
}

/// The generation in an ETag that carries a quoted decimal (`"42"`), as the reference
/// protocol's do.
pub fn generation_of(etag: &str) -> Option<u64> {
    let inner = etag.trim().strip_prefix('"')?.strip_suffix('"')?;
    inner.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_are_quoted_decimals_only() {
        assert_eq!(generation_of("\"42\""), Some(42));
        assert_eq!(generation_of(" \"0\" "), Some(0));
        assert_eq!(generation_of("42"), None);
        assert_eq!(generation_of("W/\"42\""), None);
        assert_eq!(generation_of("\"-1\""), None);
        assert_eq!(generation_of("\"18446744073709551616\""), None);
    }

    #[test]
    fn sizes_over_the_stated_limits_are_refused_by_name() {
        let limits = Limits::new(Some(4), Some(10));
        assert_eq!(check_key(limits, "abcd"), Ok(()));
        assert_eq!(
            check_key(limits, "abcde"),
            Err(Error::Entry(Refusal::TooLarge {
                what: Limited::Key,
                limit: Some(4),
                size: 5
            }))
        );
        assert_eq!(check_value(&limits, 10), Ok(()));
        assert!(matches!(
            check_value(&limits, 11),
            Err(Error::Entry(Refusal::TooLarge {
                what: Limited::Value,
                ..
            }))
        ));
        assert_eq!(check_value(&Limits::new(None, None), usize::MAX), Ok(()));
    }
}
