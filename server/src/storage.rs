//! Durable storage on redb.
//!
//! Why redb: it is pure Rust (no C toolchain, builds in seconds), ACID with a durable commit
//! (`fsync` before `commit` returns), and its tuple keys sort `(bucket, key)` so a bucket's keys
//! are one contiguous, ordered range, which makes cursor paging a range scan.
//!
//! Every write stamps the entry with a fresh version from one database-wide counter, so a key
//! deleted and re-created never gets an old version back (no ABA for compare-and-swap).

use std::ops::Bound;
use std::path::Path;

use kvplug_protocol::counter::{self, CounterError};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

const ENTRIES: TableDefinition<(&str, &str), (u64, &[u8])> = TableDefinition::new("entries");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const LAST_VERSION: &str = "last-version";

/// A storage failure; the service answers it with a 500.
#[derive(Debug)]
pub struct StorageError(String);

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "storage: {}", self.0)
    }
}

impl std::error::Error for StorageError {}

fn storage_err(e: impl std::fmt::Display) -> StorageError {
    StorageError(e.to_string())
}

/// A stored value and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Changes on every write of the key.
    pub version: u64,
    /// The value's bytes.
    pub value: Vec<u8>,
}

/// When a write may happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Always.
    Always,
    /// Only if the key is absent (`If-None-Match: *`).
    Absent,
    /// Only if the key is present at this version (`If-Match`).
    Version(u64),
}

/// What a conditional write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written with this new version.
    Written(u64),
    /// The condition failed; this is what is stored now.
    Conflict(Option<Entry>),
}

/// Why an increment was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncrementError {
    /// The stored value does not follow the counter grammar (`kvplug_protocol::counter`).
    NotANumber,
    /// The sum leaves the signed 64-bit range.
    Overflow,
}

/// One page of a bucket's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Keys in order.
    pub keys: Vec<String>,
    /// Whether keys follow the last one.
    pub more: bool,
}

/// The database.
pub struct Storage {
    db: Database,
    durable: bool,
}

impl Storage {
    /// Opens (or creates) the database file at `path`. With `durable`, every commit is
    /// on disk before it returns.
    pub fn open(path: &Path, durable: bool) -> Result<Self, StorageError> {
        let db = Database::create(path).map_err(storage_err)?;
        let txn = db.begin_write().map_err(storage_err)?;
        txn.open_table(ENTRIES).map_err(storage_err)?;
        txn.open_table(META).map_err(storage_err)?;
        txn.commit().map_err(storage_err)?;
        Ok(Storage { db, durable })
    }

    /// The entry at `key`, if any.
    pub fn get(&self, bucket: &str, key: &str) -> Result<Option<Entry>, StorageError> {
        let txn = self.db.begin_read().map_err(storage_err)?;
        let table = txn.open_table(ENTRIES).map_err(storage_err)?;
        lookup(&table, bucket, key)
    }

    /// The entries at `keys`, in order, read in one transaction.
    pub fn get_many(
        &self,
        bucket: &str,
        keys: &[&str],
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let txn = self.db.begin_read().map_err(storage_err)?;
        let table = txn.open_table(ENTRIES).map_err(storage_err)?;
        keys.iter()
            .map(|key| {
                let entry = table.get((bucket, *key)).map_err(storage_err)?;
                Ok(entry.map(|guard| guard.value().1.to_vec()))
            })
            .collect()
    }

    /// Writes `value` at `key` if `condition` holds; durable when this returns `Written`.
    pub fn put(
        &self,
        bucket: &str,
        key: &str,
        value: &[u8],
        condition: Condition,
    ) -> Result<WriteOutcome, StorageError> {
        self.write(|txn| {
            let current = read_entry(txn, bucket, key)?;
            let holds = match (condition, &current) {
                (Condition::Always, _) => true,
                (Condition::Absent, current) => current.is_none(),
                (Condition::Version(want), Some(entry)) => entry.version == want,
                (Condition::Version(_), None) => false,
            };
            if !holds {
                return Ok(WriteOutcome::Conflict(current));
            }
            store_entry(txn, bucket, key, value).map(WriteOutcome::Written)
        })
    }

    /// Writes every pair in one transaction.
    pub fn set_many(&self, bucket: &str, pairs: &[(&str, &[u8])]) -> Result<(), StorageError> {
        self.write(|txn| {
            for (key, value) in pairs {
                store_entry(txn, bucket, key, value)?;
            }
            Ok(())
        })
    }

    /// Removes `key`; removing an absent key is not an error.
    pub fn delete(&self, bucket: &str, key: &str) -> Result<(), StorageError> {
        self.delete_many(bucket, &[key])
    }

    /// Removes every key in one transaction.
    pub fn delete_many(&self, bucket: &str, keys: &[&str]) -> Result<(), StorageError> {
        self.write(|txn| {
            let mut table = txn.open_table(ENTRIES).map_err(storage_err)?;
            for key in keys {
                table.remove((bucket, *key)).map_err(storage_err)?;
            }
            Ok(())
        })
    }

    /// Adds `delta` to the ASCII decimal at `key` (absent counts as 0), atomically.
    pub fn increment(
        &self,
        bucket: &str,
        key: &str,
        delta: i64,
    ) -> Result<Result<(i64, u64), IncrementError>, StorageError> {
        self.write(|txn| {
            let current = read_entry(txn, bucket, key)?;
            let sum = match counter::add(current.as_ref().map(|e| e.value.as_slice()), delta) {
                Ok(sum) => sum,
                Err(CounterError::NotANumber) => return Ok(Err(IncrementError::NotANumber)),
                Err(CounterError::Overflow) => return Ok(Err(IncrementError::Overflow)),
            };
            let version = store_entry(txn, bucket, key, sum.to_string().as_bytes())?;
            Ok(Ok((sum, version)))
        })
    }

    /// Up to `limit` keys of `bucket` after `after` (or from the start), in key order.
    pub fn list(
        &self,
        bucket: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StorageError> {
        let txn = self.db.begin_read().map_err(storage_err)?;
        let table = txn.open_table(ENTRIES).map_err(storage_err)?;
        let start = match after {
            Some(after) => Bound::Excluded((bucket, after)),
            None => Bound::Included((bucket, "")),
        };
        let mut keys = Vec::new();
        let mut more = false;
        for item in table
            .range::<(&str, &str)>((start, Bound::Unbounded))
            .map_err(storage_err)?
        {
            let (stored, _) = item.map_err(storage_err)?;
            let (stored_bucket, key) = stored.value();
            if stored_bucket != bucket {
                break;
            }
            if keys.len() == limit {
                more = true;
                break;
            }
            keys.push(key.to_owned());
        }
        Ok(Page { keys, more })
    }

    fn write<T>(
        &self,
        body: impl FnOnce(&WriteTransaction) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut txn = self.db.begin_write().map_err(storage_err)?;
        if !self.durable {
            txn.set_durability(redb::Durability::None)
                .map_err(storage_err)?;
        }
        let result = body(&txn)?;
        txn.commit().map_err(storage_err)?;
        Ok(result)
    }
}

fn read_entry(
    txn: &WriteTransaction,
    bucket: &str,
    key: &str,
) -> Result<Option<Entry>, StorageError> {
    let table = txn.open_table(ENTRIES).map_err(storage_err)?;
    lookup(&table, bucket, key)
}

fn lookup(
    table: &impl ReadableTable<(&'static str, &'static str), (u64, &'static [u8])>,
    bucket: &str,
    key: &str,
) -> Result<Option<Entry>, StorageError> {
    let entry = table.get((bucket, key)).map_err(storage_err)?;
    Ok(entry.map(|guard| {
        let (version, value) = guard.value();
        Entry {
            version,
            value: value.to_vec(),
        }
    }))
}

fn store_entry(
    txn: &WriteTransaction,
    bucket: &str,
    key: &str,
    value: &[u8],
) -> Result<u64, StorageError> {
    let version = {
        let mut meta = txn.open_table(META).map_err(storage_err)?;
        let last = meta
            .get(LAST_VERSION)
            .map_err(storage_err)?
            .map_or(0, |guard| guard.value());
        let next = last + 1;
        meta.insert(LAST_VERSION, next).map_err(storage_err)?;
        next
    };
    let mut table = txn.open_table(ENTRIES).map_err(storage_err)?;
    table
        .insert((bucket, key), (version, value))
        .map_err(storage_err)?;
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage() -> (tempfile::TempDir, Storage) {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&dir.path().join("kv.redb"), true).unwrap();
        (dir, storage)
    }

    #[test]
    fn buckets_do_not_see_each_other() {
        let (_dir, s) = storage();
        s.put("a", "k", b"1", Condition::Always).unwrap();
        s.put("ab", "k", b"2", Condition::Always).unwrap();
        s.put("", "k", b"3", Condition::Always).unwrap();
        assert_eq!(s.get("a", "k").unwrap().unwrap().value, b"1");
        assert_eq!(s.list("a", None, 10).unwrap().keys, ["k"]);
        assert_eq!(s.list("", None, 10).unwrap().keys, ["k"]);
        assert!(s.get("b", "k").unwrap().is_none());
    }

    #[test]
    fn versions_never_repeat_across_delete_and_recreate() {
        let (_dir, s) = storage();
        let WriteOutcome::Written(v1) = s.put("b", "k", b"x", Condition::Absent).unwrap() else {
            panic!("absent key must be writable with If-None-Match");
        };
        s.delete("b", "k").unwrap();
        let WriteOutcome::Written(v2) = s.put("b", "k", b"x", Condition::Absent).unwrap() else {
            panic!("deleted key must be writable with If-None-Match");
        };
        assert!(v2 > v1);
        assert_eq!(
            s.put("b", "k", b"y", Condition::Version(v1)).unwrap(),
            WriteOutcome::Conflict(Some(Entry {
                version: v2,
                value: b"x".to_vec()
            }))
        );
    }

    #[test]
    fn paging_visits_every_key_once() {
        let (_dir, s) = storage();
        let pairs: Vec<(String, Vec<u8>)> = (0..25).map(|i| (format!("k{i:02}"), vec![])).collect();
        let refs: Vec<(&str, &[u8])> = pairs.iter().map(|(k, v)| (k.as_str(), &v[..])).collect();
        s.set_many("b", &refs).unwrap();
        s.put("c", "other", b"", Condition::Always).unwrap();
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = s.list("b", after.as_deref(), 7).unwrap();
            seen.extend(page.keys.iter().cloned());
            if !page.more {
                break;
            }
            after = page.keys.last().cloned();
        }
        assert_eq!(
            seen,
            pairs.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn increment_checks_numbers_and_range() {
        let (_dir, s) = storage();
        assert_eq!(s.increment("b", "n", 5).unwrap().unwrap().0, 5);
        assert_eq!(s.increment("b", "n", -7).unwrap().unwrap().0, -2);
        assert_eq!(s.get("b", "n").unwrap().unwrap().value, b"-2");
        s.put("b", "t", b"abc", Condition::Always).unwrap();
        assert_eq!(
            s.increment("b", "t", 1).unwrap(),
            Err(IncrementError::NotANumber)
        );
        s.put("b", "m", i64::MAX.to_string().as_bytes(), Condition::Always)
            .unwrap();
        assert_eq!(
            s.increment("b", "m", 1).unwrap(),
            Err(IncrementError::Overflow)
        );
    }
}
