//! `kvplug:keyvalue/entries` on DynamoDB (docs/extension-design.md §2.4): an entry is the
//! item of its key, with its metadata in `m` (binary) and its expiry in `e` (epoch seconds,
//! DynamoDB's TTL attribute), at the version `ver` that compare-and-swap uses too, so a
//! generation read by `lookup` and a version read by `cas.new` never disagree.
//!
//! Requests per call (§2.6): lookup 1 (`GetItem`); overwrite and add 1 (`PutItem`, add on
//! condition that no live item is there); with a generation 1 (on `ver` and liveness), 2 for
//! the derived generation of an item written without a decimal `ver` (read, then write on
//! the `ver` read); append and prepend 2 (`GetItem`, then `PutItem` on the version read; a
//! write lost to a concurrent one reads and tries again, at most `MAX_INCREMENT_ATTEMPTS`
//! times); delete 1 (`DeleteItem` returning the old item, which says whether it was live;
//! legacy generation 2); a list page 1 (`Query` on the prefix, expired items filtered out by
//! the service, so a page may hold fewer keys than its limit, even none, before the last).
//!
//! Expiry has a granularity of one second, rounded up: `e = ceil(now_s) + ttl` by the
//! adapter's wall clock, so a time-to-live of 1 s lasts between 1 and 2 s. Reads judge it by
//! the reader's clock, to the millisecond (`e * 1000 > now_ms`).

use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;

use kvplug_protocol::entries::{Live, Plan, plan};

use super::items::{
    Condition, DeleteItem, Item, LEGACY, LIVE, MAX_KEY_BYTES, NOT_LIVE, PutItem, Query, Stored,
    Values, condition, fresh_version, live_at, max_entry_value, read_ack, read_deleted, read_query,
};
use super::json::{Attr, Number, Slashed, to_json};
use super::{Answer, DynamoBackend, now_ms, seconds};
use crate::backend::entries::{Entries, Entry, InsertOptions, Limits, Mode, Refusal};
use crate::backend::retry::Repeat;
use crate::backend::{MAX_INCREMENT_ATTEMPTS, Page, Version};
use crate::error::Error;

/// A write conditioned on the live entry's generation, when that generation is the `ver`
/// this adapter wrote.
const AT_GENERATION: &str = "ver = :old AND (attribute_not_exists(e) OR e > :now)";

/// What a `DeleteItem` did.
enum Deleted {
    /// Its condition did not hold: nothing was deleted.
    Refused,
    /// There was no item.
    Nothing,
    /// It deleted an item that expired at this second (`None`: never).
    Item(Option<i64>),
}

/// `e` for a deadline in milliseconds: the second it falls in, rounded up.
fn expiry_seconds(expires_ms: u64) -> i64 {
    i64::try_from(expires_ms.div_ceil(1000)).unwrap_or(i64::MAX)
}

/// Whether `generation` is one derived from an item without a decimal `ver`, which no
/// condition can name: a write on it reads first.
fn is_legacy(generation: u64) -> bool {
    generation & LEGACY != 0
}

impl DynamoBackend {
    /// Puts the whole item `planned` describes, if `condition` holds; its generation, or
    /// `None` when the condition failed.
    fn put_entry(
        &self,
        key: &str,
        planned: &Plan<'_>,
        condition: Option<Condition<'_>>,
        now_ms: u64,
    ) -> Result<Option<u64>, Error> {
        let (generation, version) = fresh_version();
        let item = Item::entry(
            &self.partition,
            key,
            &planned.value,
            planned.metadata,
            planned.expires_ms.map(expiry_seconds),
            version,
        )?;
        let body = to_json(&PutItem {
            table_name: self.table(),
            item,
            condition_expression: condition.map(|c| c.expression),
            expression_attribute_values: condition
                .map(|c| c.values(seconds(now_ms)))
                .unwrap_or_default(),
        })?;
        // A conditional write is repeated only when DynamoDB refused it unread.
        let repeat = if condition.is_some() {
            Repeat::IfRefused
        } else {
            Repeat::Always
        };
        match self.call("PutItem", &body, repeat)? {
            Answer::Done(bytes) => self
                .answer("PutItem", &bytes, read_ack)
                .map(|()| Some(generation)),
            Answer::ConditionFailed => Ok(None),
        }
    }

    /// Overwrite or add in one request: what they write does not depend on what the key
    /// holds, so the service's condition alone decides (`add`: no live item; a generation:
    /// that `ver`, still live).
    fn write_at_once(
        &self,
        key: &str,
        value: &[u8],
        options: &InsertOptions<'_>,
    ) -> Result<u64, Error> {
        let now = now_ms();
        // The entry as over an absent key (the options' value, metadata and expiry, and the
        // size check); the precondition is the request's condition.
        let unconditional = InsertOptions {
            mode: Mode::Overwrite,
            if_generation_match: None,
            ..*options
        };
        let planned =
            plan(None, value, &unconditional, &self.limits(), now).map_err(Error::Entry)?;
        let wanted = options.if_generation_match.map(|g| g.to_string());
        let (condition, refusal) = match (options.mode, &wanted) {
            (Mode::Add, _) => (
                Some(Condition {
                    expression: NOT_LIVE,
                    old: None,
                    now: true,
                }),
                Refusal::KeyExists,
            ),
            (_, Some(wanted)) => (
                Some(Condition {
                    expression: AT_GENERATION,
                    old: Some(wanted),
                    now: true,
                }),
                Refusal::GenerationMismatch,
            ),
            // A plain overwrite has no condition: never refused.
            (_, None) => (None, Refusal::GenerationMismatch),
        };
        self.put_entry(key, &planned, condition, now)?
            .ok_or(Error::Entry(refusal))
    }

    /// Append and prepend (and a write on a derived generation): read the item, decide
    /// with `plan`, write on condition that the key is still at the version read; a write
    /// lost to a concurrent one starts again from what the key holds then.
    fn write_after_read(
        &self,
        key: &str,
        value: &[u8],
        options: &InsertOptions<'_>,
    ) -> Result<u64, Error> {
        let limits = self.limits();
        for _ in 0..MAX_INCREMENT_ATTEMPTS {
            let stored = self.read_stored(key)?;
            let now = now_ms();
            let version = stored
                .as_ref()
                .map_or(Version::Absent, |s| s.version_at(seconds(now)));
            let current = stored.as_ref().map(|s: &Stored| Live {
                value: &s.value,
                metadata: &s.metadata,
                generation: s.generation(),
                expires_ms: s.expires_ms(),
            });
            let planned = plan(current, value, options, &limits, now).map_err(Error::Entry)?;
            if let Some(generation) =
                self.put_entry(key, &planned, Some(condition(&version)), now)?
            {
                return Ok(generation);
            }
        }
        Err(Error::GaveUp(format!(
            "insert of `{key}`: gave up after {MAX_INCREMENT_ATTEMPTS} attempts, each lost to a concurrent write"
        )))
    }

    /// Deletes the item at `key` if `condition` holds, returning the old item's expiry.
    fn delete_item(
        &self,
        key: &str,
        condition: Option<Condition<'_>>,
        now_s: i64,
    ) -> Result<Deleted, Error> {
        let body = to_json(&DeleteItem {
            table_name: self.table(),
            key: self.key(key)?,
            condition_expression: condition.map(|c| c.expression),
            expression_attribute_values: condition.map(|c| c.values(now_s)).unwrap_or_default(),
            return_values: Some("ALL_OLD"),
        })?;
        match self.call("DeleteItem", &body, Repeat::IfRefused)? {
            Answer::Done(bytes) => Ok(match self.answer("DeleteItem", &bytes, read_deleted)? {
                None => Deleted::Nothing,
                Some(expires_s) => Deleted::Item(expires_s),
            }),
            Answer::ConditionFailed => Ok(Deleted::Refused),
        }
    }
}

impl Entries for DynamoBackend {
    /// Keys: the sort key's 1024 bytes less the adapter's `/`. Values: what a 400 KB item
    /// holds beside its key and bucket, its `ver` and an expiry, with an empty key and no
    /// metadata (`items::max_entry_value`); a longer key or metadata leaves less, and the
    /// write says how much (`too-large(value)` with the room left).
    fn limits(&self) -> Limits {
        Limits::new(
            Some(MAX_KEY_BYTES as u64),
            Some(max_entry_value(&self.partition) as u64),
        )
    }

    fn page_size(&self) -> u32 {
        self.account.page_size
    }

    fn read_entry(&self, key: &str) -> Result<Option<Entry>, Error> {
        let stored = self.read_stored(key)?;
        let now_s = seconds(now_ms());
        Ok(stored.filter(|s| s.is_live(now_s)).map(|s| Entry {
            generation: s.generation(),
            value: s.value,
            metadata: s.metadata,
        }))
    }

    fn write_entry(
        &self,
        key: &str,
        value: &[u8],
        options: &InsertOptions<'_>,
    ) -> Result<u64, Error> {
        let concatenates = matches!(options.mode, Mode::Append | Mode::Prepend);
        if concatenates || options.if_generation_match.is_some_and(is_legacy) {
            self.write_after_read(key, value, options)
        } else {
            self.write_at_once(key, value, options)
        }
    }

    fn remove_entry(&self, key: &str, generation: Option<u64>) -> Result<bool, Error> {
        let mismatch = || Error::Entry(Refusal::GenerationMismatch);
        let now_s = seconds(now_ms());
        let deleted = match generation {
            None => self.delete_item(key, None, now_s)?,
            Some(wanted) if is_legacy(wanted) => {
                // No condition names a derived generation: read, then delete on the `ver` read.
                let stored = self.read_stored(key)?;
                let now_s = seconds(now_ms());
                let Some(stored) = stored.filter(|s| s.is_live(now_s) && s.generation() == wanted)
                else {
                    return Err(mismatch());
                };
                let version = stored.version_at(now_s);
                self.delete_item(key, Some(condition(&version)), now_s)?
            }
            Some(wanted) => {
                let wanted = wanted.to_string();
                let at = Condition {
                    expression: AT_GENERATION,
                    old: Some(&wanted),
                    now: true,
                };
                self.delete_item(key, Some(at), now_s)?
            }
        };
        match deleted {
            Deleted::Refused => Err(mismatch()),
            Deleted::Nothing => Ok(false),
            // Without a condition, an expired item is deleted too, but was not live.
            Deleted::Item(expires_s) => Ok(live_at(expires_s, now_s)),
        }
    }

    fn list_prefix(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<Page, Error> {
        if prefix.len() > MAX_KEY_BYTES {
            // No key is that long: nothing to ask for.
            return Ok(Page {
                keys: Vec::new(),
                cursor: None,
            });
        }
        let body = to_json(&Query {
            table_name: self.table(),
            key_condition_expression: "b = :b AND begins_with(k, :p)",
            filter_expression: LIVE,
            expression_attribute_values: Values {
                b: Some(Attr::S(&self.partition)),
                p: Some(Attr::Sort(Slashed(prefix))),
                now: Some(Attr::N(Number(seconds(now_ms())))),
                ..Values::default()
            },
            projection_expression: "k",
            consistent_read: true,
            limit,
            exclusive_start_key: cursor.map(|last| self.key(last)).transpose()?,
        })?;
        self.exchange("Query", &body, read_query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_to_the_second() {
        assert_eq!(expiry_seconds(1_700_000_000_000), 1_700_000_000);
        assert_eq!(expiry_seconds(1_700_000_000_001), 1_700_000_001);
        assert_eq!(expiry_seconds(1_700_000_000_999), 1_700_000_001);
        assert_eq!(expiry_seconds(u64::MAX), 18_446_744_073_709_552);
    }
}
