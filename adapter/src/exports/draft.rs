//! `wasi:keyvalue@0.2.0-draft`: numeric cursors, unsigned increment, no compare-and-swap.
//!
//! The draft's `list-keys` cursor is a `u64`, but backends continue after an opaque string
//! (a key, a continuation token). Each bucket handle keeps the strings of its most recent
//! pages under small numeric tokens: memory stays bounded however many keys there are, and a
//! token that has been evicted (more than [`KEPT_CURSORS`] pages ago) is a clear error rather
//! than a silent restart.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use core::cell::RefCell;

use super::{Adapter, shared_glue};
use crate::Active;
use crate::bindings::exports::wasi::keyvalue0_2_0_draft as kv;
use kv::{atomics, store};
use kvplug_core::backend::Backend;
use kvplug_core::error::Error;

/// How many continuation cursors a bucket handle remembers.
pub const KEPT_CURSORS: usize = 32;

/// Numeric tokens for string cursors, the newest [`KEPT_CURSORS`] of them.
#[derive(Debug, Default)]
struct Cursors {
    last_token: u64,
    kept: VecDeque<(u64, String)>,
}

impl Cursors {
    fn issue(&mut self, cursor: String) -> u64 {
        self.last_token = self.last_token.wrapping_add(1);
        if self.kept.len() == KEPT_CURSORS {
            self.kept.pop_front();
        }
        self.kept.push_back((self.last_token, cursor));
        self.last_token
    }

    fn resolve(&self, token: u64) -> Option<&str> {
        self.kept
            .iter()
            .find(|(kept, _)| *kept == token)
            .map(|(_, cursor)| cursor.as_str())
    }
}

/// The `bucket` resource of this draft.
pub struct Bucket {
    backend: Active,
    cursors: RefCell<Cursors>,
}

impl Bucket {
    fn list(&self, cursor: Option<u64>) -> Result<store::KeyResponse, Error> {
        let resolved = match cursor {
            None => None,
            Some(token) => Some(String::from(
                self.cursors.borrow().resolve(token).ok_or_else(|| {
                    Error::Invalid(format!(
                        "list-keys: cursor {token} is unknown or expired (a bucket handle keeps \
                         the cursors of its last {KEPT_CURSORS} pages)"
                    ))
                })?,
            )),
        };
        let page = self.backend.list(resolved.as_deref())?;
        Ok(store::KeyResponse {
            keys: page.keys,
            cursor: page
                .cursor
                .map(|next| self.cursors.borrow_mut().issue(next)),
        })
    }
}

shared_glue!(kv, Bucket);

impl store::Guest for Adapter {
    type Bucket = Bucket;

    fn open(identifier: String) -> Result<store::Bucket, store::Error> {
        Ok(store::Bucket::new(Bucket {
            backend: super::open_backend(&identifier)?,
            cursors: RefCell::default(),
        }))
    }
}

impl atomics::Guest for Adapter {
    /// The same stored encoding as draft2 (ASCII decimal), so both drafts can share a
    /// counter; this draft can only add, and only report non-negative results.
    fn increment(
        bucket: store::BucketBorrow<'_>,
        key: String,
        delta: u64,
    ) -> Result<u64, store::Error> {
        kvplug_core::deadline::begin();
        let delta = i64::try_from(delta).map_err(|_| {
            Error::Invalid(format!(
                "increment: delta {delta} is above the stored range (at most {})",
                i64::MAX
            ))
        })?;
        let now = bucket.get::<Bucket>().backend.increment(&key, delta)?;
        Ok(u64::try_from(now).map_err(|_| {
            Error::Invalid(format!(
                "increment: `{key}` now holds {now}, which this draft's unsigned result cannot \
                 carry (the increment was applied)"
            ))
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_bounded_and_resolve_only_while_kept() {
        let mut cursors = Cursors::default();
        let first = cursors.issue("a".into());
        assert_eq!(cursors.resolve(first), Some("a"));
        let tokens: Vec<u64> = (0..KEPT_CURSORS)
            .map(|i| cursors.issue(format!("k{i}")))
            .collect();
        assert_eq!(cursors.kept.len(), KEPT_CURSORS);
        assert_eq!(cursors.resolve(first), None, "evicted");
        assert_eq!(cursors.resolve(tokens[0]), Some("k0"));
        assert_eq!(cursors.resolve(12345), None);
    }
}
