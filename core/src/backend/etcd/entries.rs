//! `kvplug:keyvalue/entries` on etcd (docs/extension-design.md §2.2).
//!
//! - The value stays at `<space>/<key>`; the metadata is in a companion key `<space>#<key>`
//!   (`#` sorts before `/`, so no listing of the bucket reaches it). The companion counts
//!   only when its `mod_revision` equals the main key's: one transaction writes both, which
//!   gives them one revision, so a plain `set`, `set-many`, `swap` or a foreign write makes
//!   a stale companion invisible without deleting it.
//! - The generation is the main key's `mod_revision`, the version compare-and-swap uses
//!   too; etcd never reuses a revision, so there is no ABA, even across delete and create.
//! - A time-to-live is a lease (`lease/grant`, one per insert, never shared) on both keys;
//!   etcd deletes them itself when it expires, so every read path sees expiry with no filter.
//!   **Granularity:** whole seconds, and etcd raises a lease below its minimum TTL (1.5 ×
//!   the election timeout, rounded up: 2 s by default) to that minimum; its lessor revokes
//!   expired leases in a loop every 0.5 s (at most 1,000 a second). So a 1 s time-to-live
//!   lives about 2 to 2.5 s, a longer one its TTL plus up to 0.5 s. The stated range stays
//!   1 s to 2^32−1 s; etcd rounds up rather than refuses.
//! - A write that replaces a key holding another lease revokes that lease afterwards, so
//!   leases of overwritten entries do not pile up until their TTL. The revoke deletes nothing
//!   live: the key now has the new lease (or none), and a companion still on the old one is
//!   stale. A failed write leaves its freshly granted lease to expire on its own.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use kvplug_codec::base64;

use super::{
    Compare, Decimal, EtcdBackend, LEASE_GRANT, LEASE_REVOKE, MAX_KEY_BYTES, RangeRequest,
    RequestOp, check_key,
};
use crate::backend::entries::{Entries, Entry, InsertOptions, Limited, Limits, Mode, Refusal};
use crate::backend::entry_swap::{Attempt, Expiry, NewEntry, Stored, SwapStore, insert_by_swap};
use crate::backend::{MAX_INCREMENT_ATTEMPTS, Page, Version, counter_error};
use crate::error::Error;

impl EtcdBackend {
    /// The etcd key of `key`'s companion (its metadata), base64-encoded for the gateway:
    /// `<prefix>!<encoded bucket>#<key>`.
    fn companion(&self, key: &str) -> String {
        let bucket = self.space.strip_suffix('/').unwrap_or(&self.space);
        let mut full = String::with_capacity(bucket.len() + 1 + key.len());
        full.push_str(bucket);
        full.push('#');
        full.push_str(key);
        base64::encode(full.as_bytes())
    }

    /// A key's two deletes: the key and its companion.
    pub(super) fn entry_deletes(&self, key: &str) -> [RequestOp<'static>; 2] {
        [
            RequestOp::Delete { key: self.key(key) },
            RequestOp::Delete {
                key: self.companion(key),
            },
        ]
    }

    /// A key's two reads, main then companion, as [`super::Answer::entry`] takes them.
    fn entry_reads(&self, key: &str) -> [RequestOp<'static>; 2] {
        [
            RequestOp::range(self.key(key)),
            RequestOp::range(self.companion(key)),
        ]
    }

    /// The two writes of a whole entry: the value, and the metadata in the companion (or
    /// no companion when there is none), both on `lease` (0: none).
    fn entry_puts<'a>(
        &self,
        key: &str,
        value: &'a [u8],
        metadata: &'a [u8],
        lease: u64,
    ) -> [RequestOp<'a>; 2] {
        let lease = (lease != 0).then_some(Decimal(lease));
        let companion = if metadata.is_empty() {
            RequestOp::Delete {
                key: self.companion(key),
            }
        } else {
            RequestOp::Put {
                key: self.companion(key),
                value: super::Base64(metadata),
                lease: lease.clone(),
            }
        };
        [
            RequestOp::Put {
                key: self.key(key),
                value: super::Base64(value),
                lease,
            },
            companion,
        ]
    }

    /// A fresh lease of `ttl` seconds (etcd raises it to its minimum TTL).
    fn grant(&self, ttl: u32) -> Result<u64, Error> {
        let request = super::LeaseGrant {
            ttl: Decimal(u64::from(ttl)),
        };
        self.exchange(LEASE_GRANT, &request, |answer| answer.lease_id())
    }

    /// Revokes `lease`, which a write just replaced. Its keys are stale companions at most,
    /// and a lease that expired meanwhile is already gone, so a failure only leaves it to
    /// expire on its own: the write it follows succeeded either way.
    fn revoke(&self, lease: u64) {
        let request = super::LeaseRevoke { id: Decimal(lease) };
        if let Err(_ignored) = self.exchange(LEASE_REVOKE, &request, |_| Ok(())) {}
    }

    /// Writes the entry only if the key is still at `expected` (absent when `None`), or
    /// reports what the key and its companion hold now: one transaction.
    fn write_entry_if(
        &self,
        key: &str,
        expected: Option<u64>,
        value: &[u8],
        metadata: &[u8],
        lease: u64,
    ) -> Result<Attempt<u64>, Error> {
        let version = expected.map_or(Version::Absent, |g| Version::Tag(g.to_string()));
        let compare = [Compare::at(self.key(key), &version)];
        let puts = self.entry_puts(key, value, metadata, lease);
        self.txn_if(&compare, &puts, &self.entry_reads(key), |answer| {
            if answer.succeeded() {
                Ok(Attempt::Written(answer.revision()?))
            } else {
                Ok(Attempt::Moved(answer.entry()?))
            }
        })
    }

    /// `increment` by compare-and-swap on the key and its companion: the first transaction
    /// assumes the key absent (a plain counter, no lease), a refused one hands back the key
    /// and its companion, and the next writes the sum on the same lease with the same valid
    /// metadata. Naming the lease read, rather than `ignore_lease`, is the same under the
    /// `mod_revision` compare and also works when the companion is absent.
    pub(super) fn increment_entry(&self, key: &str, delta: i64) -> Result<i64, Error> {
        let mut current: Option<Stored<u64>> = None;
        for _ in 0..MAX_INCREMENT_ATTEMPTS {
            let value = current.as_ref().map(|entry| entry.value.as_slice());
            let sum =
                kvplug_protocol::counter::add(value, delta).map_err(|e| counter_error(key, e))?;
            let (metadata, lease) = current.as_ref().map_or((&[][..], 0), |entry| {
                (entry.metadata.as_slice(), entry.held)
            });
            let written = self.write_entry_if(
                key,
                current.as_ref().map(|entry| entry.generation),
                sum.to_string().as_bytes(),
                metadata,
                lease,
            )?;
            match written {
                Attempt::Written(_) => return Ok(sum),
                Attempt::Moved(now) => current = now,
            }
        }
        Err(Error::GaveUp(alloc::format!(
            "increment of `{key}`: gave up after {MAX_INCREMENT_ATTEMPTS} attempts, each lost to a concurrent write"
        )))
    }

    /// `overwrite` and `add`: one transaction (after a `lease/grant` for a time-to-live),
    /// guarded by `CREATE == 0` (add) or `MOD == g` (a generation), whose refusal is the
    /// precondition itself, with no read. It also reads the old key (`keys_only`) to revoke
    /// a lease the write replaces.
    fn put_entry(
        &self,
        key: &str,
        value: &[u8],
        options: &InsertOptions<'_>,
    ) -> Result<u64, Error> {
        let (compare, refusal) = match (options.mode, options.if_generation_match) {
            (Mode::Add, _) => (
                Some(Compare::at(self.key(key), &Version::Absent)),
                Refusal::KeyExists,
            ),
            (_, Some(generation)) => (
                Some(Compare::at(self.key(key), &revision(generation)?)),
                Refusal::GenerationMismatch,
            ),
            (_, None) => (None, Refusal::GenerationMismatch),
        };
        let lease = match options.ttl_sec {
            Some(ttl) => self.grant(ttl)?,
            None => 0,
        };
        let [put, companion] =
            self.entry_puts(key, value, options.metadata.unwrap_or_default(), lease);
        let old = RequestOp::Range {
            key: self.key(key),
            keys_only: true,
        };
        let success = [old, put, companion];
        let answer = self.txn_if(compare.as_slice(), &success, &[], |answer| {
            if !answer.succeeded() {
                return Ok(None);
            }
            let old_lease = answer
                .reads()
                .next()
                .flatten()
                .ok_or("a write without its read of the old key")?
                .first_lease()?;
            Ok(Some((answer.revision()?, old_lease)))
        });
        let written = answer.map_err(|error| too_large(error, value.len()))?;
        let (generation, old_lease) = written.ok_or(Error::Entry(refusal))?;
        if old_lease != 0 && old_lease != lease {
            self.revoke(old_lease);
        }
        Ok(generation)
    }
}

/// The `mod_revision` compare of a generation. etcd compares an absent key as revision 0,
/// and revisions are int64: a generation of 0 or above `i64::MAX` never names a live entry,
/// so it is refused without a request (a `MOD == 0` compare would pass on an absent key).
fn revision(generation: u64) -> Result<Version, Error> {
    if generation == 0 || generation > i64::MAX as u64 {
        return Err(Error::Entry(Refusal::GenerationMismatch));
    }
    Ok(Version::Tag(generation.to_string()))
}

/// etcd's refusal of a request over its `--max-request-bytes` as the extension's
/// `too-large(value)`, without a limit: the cluster's setting, which etcd does not state.
/// `size` is the value the write would have stored.
fn too_large(error: Error, size: usize) -> Error {
    match error {
        Error::Status { reason, .. }
            if reason.contains("request is too large") || reason.contains("larger than max") =>
        {
            Error::Entry(Refusal::TooLarge {
                what: Limited::Value,
                limit: None,
                size: size as u64,
            })
        }
        other => other,
    }
}

/// Append and prepend on etcd, for [`insert_by_swap`]: a read is the two-range transaction,
/// a write the guarded transaction whose failure branch is that read. A lease for a new
/// time-to-live is granted at the first write and reused by any retry.
struct Swapper<'b> {
    backend: &'b EtcdBackend,
    granted: Option<u64>,
}

impl SwapStore for Swapper<'_> {
    type Held = u64;
    const ASSUMES_ABSENT: bool = true;

    fn read_stored(&mut self, key: &str) -> Result<Option<Stored<u64>>, Error> {
        let reads = self.backend.entry_reads(key);
        self.backend
            .txn_if(&[], &reads, &[], |answer| answer.entry())
    }

    fn write_stored(
        &mut self,
        key: &str,
        expected: Option<&Stored<u64>>,
        new: &NewEntry<'_>,
    ) -> Result<Attempt<u64>, Error> {
        let held = expected.map_or(0, |entry| entry.held);
        let lease = match new.expiry {
            Expiry::Never => 0,
            Expiry::Keep => held,
            Expiry::After(ttl) => match self.granted {
                Some(lease) => lease,
                None => *self.granted.insert(self.backend.grant(ttl)?),
            },
        };
        let generation = expected.map(|entry| entry.generation);
        let written = self
            .backend
            .write_entry_if(key, generation, new.value, new.metadata, lease)
            .map_err(|error| too_large(error, new.value.len()))?;
        if matches!(written, Attempt::Written(_)) && held != 0 && held != lease {
            self.backend.revoke(held);
        }
        Ok(written)
    }
}

impl Entries for EtcdBackend {
    fn page_size(&self) -> u32 {
        self.page_size
    }

    /// Keys as long as the backend's own limit; values as large as etcd's
    /// `--max-request-bytes` lets them be (the cluster's setting, so `None`).
    fn limits(&self) -> Limits {
        Limits::new(Some(MAX_KEY_BYTES as u64), None)
    }

    /// One transaction: the key and its companion.
    fn read_entry(&self, key: &str) -> Result<Option<Entry>, Error> {
        let reads = self.entry_reads(key);
        let stored = self.txn_if(&[], &reads, &[], |answer| answer.entry())?;
        Ok(stored.map(|stored| Entry {
            value: stored.value,
            metadata: stored.metadata,
            generation: stored.generation,
        }))
    }

    fn write_entry(
        &self,
        key: &str,
        value: &[u8],
        options: &InsertOptions<'_>,
    ) -> Result<u64, Error> {
        match options.mode {
            Mode::Overwrite | Mode::Add => self.put_entry(key, value, options),
            Mode::Append | Mode::Prepend => {
                if let Some(generation) = options.if_generation_match {
                    revision(generation)?;
                }
                let mut swapper = Swapper {
                    backend: self,
                    granted: None,
                };
                // etcd judges expiry itself (expired keys are gone), so "now" is not needed.
                insert_by_swap(&mut swapper, key, value, options, &self.limits(), 0)
            }
        }
    }

    /// One transaction deleting the key and its companion, guarded by `MOD == g` when a
    /// generation is given; `true` when the key itself was deleted.
    fn remove_entry(&self, key: &str, generation: Option<u64>) -> Result<bool, Error> {
        let compare: Vec<Compare> = match generation {
            Some(generation) => alloc::vec![Compare::at(self.key(key), &revision(generation)?)],
            None => Vec::new(),
        };
        let deleted = self.txn_if(&compare, &self.entry_deletes(key), &[], |answer| {
            if answer.succeeded() {
                answer.first_deleted().map(Some)
            } else {
                Ok(None)
            }
        })?;
        deleted.ok_or(Error::Entry(Refusal::GenerationMismatch))
    }

    /// `range [<space><prefix>, prefix end)`, keys only, at most `limit`; the cursor is the
    /// last key of the previous page, as for `list-keys`.
    fn list_prefix(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<Page, Error> {
        check_key(prefix)?;
        let mut first = String::from(&*self.space);
        first.push_str(prefix);
        let start = match cursor {
            None => base64::encode(first.as_bytes()),
            Some(last) if last.starts_with(prefix) => {
                let mut after = String::from(last);
                after.push('\0');
                self.key(&after)
            }
            Some(_) => {
                return Err(Error::Invalid(String::from(
                    "list: a cursor of another prefix",
                )));
            }
        };
        let end = base64::encode(&prefix_end(first.as_bytes()));
        let request = RangeRequest {
            range_end: Some(&end),
            limit: Some(Decimal(u64::from(limit))),
            keys_only: true,
            ..RangeRequest::of(&start)
        };
        self.exchange(super::RANGE, &request, |answer| {
            let keys = answer.keys(&self.space)?;
            let cursor = if answer.more() {
                keys.last().cloned()
            } else {
                None
            };
            Ok(Page { keys, cursor })
        })
    }
}

/// The smallest key above every key that starts with `prefix`: its last byte below 0xff
/// plus one, the bytes after it dropped. `prefix` always starts with the bucket's space,
/// whose `/` is such a byte, so it never runs out.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            break;
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::etcd::tests::backend;

    fn decoded(key: &str) -> String {
        String::from_utf8(base64::decode(key).unwrap()).unwrap()
    }

    #[test]
    fn the_companion_sits_beside_the_bucket_outside_its_range() {
        let b = backend();
        assert_eq!(decoded(&b.key("k")), "!b/k");
        assert_eq!(decoded(&b.companion("k")), "!b#k");
        assert_eq!(decoded(&b.companion("a/b")), "!b#a/b");
        // `#` sorts before `/`, so `[!b/, !b0)` never reaches a companion.
        let companion = decoded(&b.companion("k"));
        assert!(companion.as_str() < "!b/" || companion.as_str() >= "!b0");
    }

    #[test]
    fn prefix_ends_bound_exactly_the_keys_with_the_prefix() {
        assert_eq!(prefix_end(b"!b/"), b"!b0");
        assert_eq!(prefix_end(b"!b/p"), b"!b/q");
        assert_eq!(prefix_end("!b/é".as_bytes()), b"!b/\xc3\xaa");
        assert_eq!(prefix_end(b"!b/a\xff\xff"), b"!b/b");
    }

    #[test]
    fn generations_etcd_cannot_hold_are_refused_without_a_request() {
        for generation in [0, i64::MAX as u64 + 1, u64::MAX] {
            assert_eq!(
                revision(generation),
                Err(Error::Entry(Refusal::GenerationMismatch))
            );
        }
        assert_eq!(revision(7), Ok(Version::Tag(String::from("7"))));
    }

    #[test]
    fn entry_writes_are_the_gateways_json() {
        let b = backend();
        let text = |ops: &[RequestOp<'_>], compare: &[Compare]| {
            String::from_utf8(
                super::super::to_json(&super::super::TxnRequest {
                    compare,
                    failure: &[],
                    success: ops,
                })
                .unwrap(),
            )
            .unwrap()
        };
        let compare = [Compare::at(b.key("k"), &Version::Tag(String::from("9")))];
        assert_eq!(
            text(&b.entry_puts("k", b"hi", b"m", 42), &compare),
            r#"{"compare":[{"key":"IWIvaw==","target":"MOD","result":"EQUAL","mod_revision":"9"}],"success":[{"request_put":{"key":"IWIvaw==","value":"aGk=","lease":"42"}},{"request_put":{"key":"IWIjaw==","value":"bQ==","lease":"42"}}]}"#
        );
        // No metadata: no companion; no lease: none named (a put detaches the old one).
        assert_eq!(
            text(&b.entry_puts("k", b"hi", b"", 0), &[]),
            r#"{"success":[{"request_put":{"key":"IWIvaw==","value":"aGk="}},{"request_delete_range":{"key":"IWIjaw=="}}]}"#
        );
        let grant = super::super::to_json(&super::super::LeaseGrant { ttl: Decimal(1) });
        assert_eq!(grant.unwrap(), br#"{"TTL":"1"}"#);
        let revoke = super::super::to_json(&super::super::LeaseRevoke { id: Decimal(5) });
        assert_eq!(revoke.unwrap(), br#"{"ID":"5"}"#);
    }
}
