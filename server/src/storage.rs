//! Durable storage on redb.
//!
//! Why redb: it is pure Rust (no C toolchain, builds in seconds), ACID with a durable commit
//! (`fsync` before `commit` returns), and its tuple keys sort `(bucket, key)` so a bucket's keys
//! are one contiguous, ordered range, which makes cursor paging a range scan.
//!
//! Every write stamps the entry with a fresh version from one database-wide counter, so a key
//! deleted and re-created never gets an old version back (no ABA for compare-and-swap).
//!
//! Expiry is judged in every read, inside its transaction, against the injected [`Clock`]: an
//! expired entry is absent whether or not the sweeper ([`Storage::sweep`]) has deleted it yet.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use kvplug_protocol::counter::{self, CounterError};
use kvplug_protocol::entries::{self, InsertOptions, Limits, Live, Refusal};
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table, TableDefinition,
    WriteTransaction,
};

type Name = (&'static str, &'static str);
/// (version, value)
type EntryValue = (u64, &'static [u8]);
/// (version of the entry it describes, expiry deadline in ms, metadata)
type ExtraValue = (u64, Option<u64>, &'static [u8]);
/// (bucket, position)
type ChangeAt = (&'static str, u64);
/// (key, the value written or none for a delete)
type ChangeValue = (&'static str, Option<&'static [u8]>);

const ENTRIES: TableDefinition<Name, EntryValue> = TableDefinition::new("entries");
/// Metadata and expiry of entries written through the entries endpoints. A row counts only
/// while its version is the entry's: any other write gives the entry a new version, which
/// drops both without having to touch this table on the hot paths.
const EXTRA: TableDefinition<Name, ExtraValue> = TableDefinition::new("extra");
/// (deadline ms, bucket, key) for every `EXTRA` row with a deadline: the sweeper's worklist,
/// in deadline order.
const EXPIRY: TableDefinition<(u64, &str, &str), ()> = TableDefinition::new("expiry");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const LAST_VERSION: &str = "last-version";
/// The change feed: (bucket, position) → (key, the value written, or none for a delete).
/// A position is the version the write took, so positions follow the order of commits.
const CHANGES: TableDefinition<ChangeAt, ChangeValue> = TableDefinition::new("changes");
/// position → bucket, for every change held: the feed in global order, so that retention
/// drops the oldest first whatever its bucket.
const FEED: TableDefinition<u64, &str> = TableDefinition::new("feed");
/// The newest position retention has dropped (0: none yet).
const FEED_DROPPED: &str = "feed-dropped";
/// Bytes of keys and values the feed holds.
const FEED_BYTES: &str = "feed-bytes";

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

/// Milliseconds since the Unix epoch, by which expiry is judged. Tests inject their own to
/// step past a deadline exactly instead of sleeping.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Self {
        Clock(Arc::new(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| {
                    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
                })
        }))
    }

    /// A clock that reads `now`.
    pub fn new(now: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Clock(Arc::new(now))
    }

    /// The time now, in ms since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({} ms)", self.now_ms())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

/// A stored value and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Changes on every write of the key.
    pub version: u64,
    /// The value's bytes.
    pub value: Vec<u8>,
}

/// An entry with its metadata and expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Changes on every write of the key: the entry's generation.
    pub version: u64,
    /// The value's bytes.
    pub value: Vec<u8>,
    /// Empty when the entry has none.
    pub metadata: Vec<u8>,
    /// Deadline in ms since the Unix epoch.
    pub expires_ms: Option<u64>,
}

impl Stored {
    fn live(&self) -> Live<'_> {
        Live {
            value: &self.value,
            metadata: &self.metadata,
            generation: self.version,
            expires_ms: self.expires_ms,
        }
    }

    fn has_extra(&self) -> bool {
        !self.metadata.is_empty() || self.expires_ms.is_some()
    }
}

impl From<Stored> for Entry {
    fn from(stored: Stored) -> Self {
        Entry {
            version: stored.version,
            value: stored.value,
        }
    }
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

/// A conditional entry delete found no live entry at the given generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerationMismatch;

/// One page of a bucket's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Keys in order.
    pub keys: Vec<String>,
    /// Whether keys follow the last one.
    pub more: bool,
}

/// Most expired entries one sweep transaction deletes, so a backlog never holds the write
/// lock for long.
pub const SWEEP_BATCH: usize = 1000;

/// The database.
pub struct Storage {
    db: Database,
    durable: bool,
    clock: Clock,
    /// Most the feed keeps.
    retention: Retention,
    /// Bumped after every commit, so that a long poll on the feed wakes up.
    committed: tokio::sync::watch::Sender<u64>,
}

/// How many changes the feed keeps by default.
pub const DEFAULT_FEED_RETENTION: u64 = 100_000;
/// How many bytes of keys and values the feed keeps by default: the values written are in
/// the feed, so without this bound a few large writes would hold gigabytes.
pub const DEFAULT_FEED_RETENTION_BYTES: u64 = 256 << 20;

/// How much of the change feed is kept: the newest changes within both bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Most changes.
    pub changes: u64,
    /// Most bytes of keys and values (the newest change is kept whatever its size).
    pub bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            changes: DEFAULT_FEED_RETENTION,
            bytes: DEFAULT_FEED_RETENTION_BYTES,
        }
    }
}

/// One change of a bucket's feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Where it sits in the feed: greater than every earlier change's.
    pub position: u64,
    pub key: String,
    /// The value written; `None` for a delete (including an expired entry swept away).
    pub value: Option<Vec<u8>>,
}

/// A page of a bucket's feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    pub changes: Vec<Change>,
    /// Where the next read continues after: every change of the bucket up to it has been
    /// returned (the last change's position, or the feed's head when the page is not full).
    pub position: u64,
}

/// A read of the feed from a position that retention has dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// The oldest position a reader may resume after.
    pub resume_after: u64,
}

struct Tables<'t> {
    entries: Table<'t, Name, EntryValue>,
    extra: Table<'t, Name, ExtraValue>,
    expiry: Table<'t, (u64, &'static str, &'static str), ()>,
    meta: Table<'t, &'static str, u64>,
    changes: Table<'t, ChangeAt, ChangeValue>,
    feed: Table<'t, u64, &'static str>,
    /// How much the feed holds at most.
    retention: Retention,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction, retention: Retention) -> Result<Self, StorageError> {
        Ok(Tables {
            entries: txn.open_table(ENTRIES).map_err(storage_err)?,
            extra: txn.open_table(EXTRA).map_err(storage_err)?,
            expiry: txn.open_table(EXPIRY).map_err(storage_err)?,
            meta: txn.open_table(META).map_err(storage_err)?,
            changes: txn.open_table(CHANGES).map_err(storage_err)?,
            feed: txn.open_table(FEED).map_err(storage_err)?,
            retention,
        })
    }
}

impl Storage {
    /// Opens (or creates) the database file at `path`. With `durable`, every commit is
    /// on disk before it returns. `clock` judges expiry.
    pub fn open(path: &Path, durable: bool, clock: Clock) -> Result<Self, StorageError> {
        Self::open_with_retention(path, durable, clock, Retention::default())
    }

    /// [`Storage::open`], keeping at most `retention` of the change feed (at least the
    /// newest change).
    pub fn open_with_retention(
        path: &Path,
        durable: bool,
        clock: Clock,
        retention: Retention,
    ) -> Result<Self, StorageError> {
        let retention = Retention {
            changes: retention.changes.max(1),
            bytes: retention.bytes,
        };
        let db = Database::create(path).map_err(storage_err)?;
        let txn = db.begin_write().map_err(storage_err)?;
        Tables::open(&txn, retention)?;
        txn.commit().map_err(storage_err)?;
        let (committed, _) = tokio::sync::watch::channel(0);
        Ok(Storage {
            db,
            durable,
            clock,
            retention,
            committed,
        })
    }

    /// Changes whenever a write commits: a long poll waits on it.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// Up to `limit` changes of `bucket` after `after`, in order, or where a reader must
    /// resume if retention has dropped changes after `after`. `after: None` reads nothing
    /// and returns the head: "from now on".
    pub fn changes(
        &self,
        bucket: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Result<Changes, Dropped>, StorageError> {
        let txn = self.db.begin_read().map_err(storage_err)?;
        let meta = txn.open_table(META).map_err(storage_err)?;
        let read = |name| -> Result<u64, StorageError> {
            Ok(meta
                .get(name)
                .map_err(storage_err)?
                .map_or(0, |v| v.value()))
        };
        let head = read(LAST_VERSION)?;
        let dropped = read(FEED_DROPPED)?;
        let Some(after) = after else {
            return Ok(Ok(Changes {
                changes: Vec::new(),
                position: head,
            }));
        };
        if after < dropped {
            return Ok(Err(Dropped {
                resume_after: dropped,
            }));
        }
        let table = txn.open_table(CHANGES).map_err(storage_err)?;
        let mut changes = Vec::new();
        let start = (bucket, after.saturating_add(1));
        for item in table
            .range::<(&str, u64)>(start..=(bucket, u64::MAX))
            .map_err(storage_err)?
        {
            if changes.len() == limit {
                break;
            }
            let (at, row) = item.map_err(storage_err)?;
            let (key, value) = row.value();
            changes.push(Change {
                position: at.value().1,
                key: key.to_owned(),
                value: value.map(<[u8]>::to_vec),
            });
        }
        let position = match changes.last() {
            Some(last) if changes.len() == limit => last.position,
            _ => head.max(after),
        };
        Ok(Ok(Changes { changes, position }))
    }

    /// The live entry at `key`, if any.
    pub fn get(&self, bucket: &str, key: &str) -> Result<Option<Entry>, StorageError> {
        Ok(self.lookup_entry(bucket, key)?.map(Entry::from))
    }

    /// The live entry at `key` with its metadata and expiry, if any.
    pub fn lookup_entry(&self, bucket: &str, key: &str) -> Result<Option<Stored>, StorageError> {
        let txn = self.db.begin_read().map_err(storage_err)?;
        let entries = txn.open_table(ENTRIES).map_err(storage_err)?;
        let extra = txn.open_table(EXTRA).map_err(storage_err)?;
        find_live(&entries, &extra, bucket, key, self.clock.now_ms())
    }

    /// The live entries at `keys`, in order, read in one transaction.
    pub fn get_many(
        &self,
        bucket: &str,
        keys: &[&str],
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let txn = self.db.begin_read().map_err(storage_err)?;
        let entries = txn.open_table(ENTRIES).map_err(storage_err)?;
        let extra = txn.open_table(EXTRA).map_err(storage_err)?;
        let now = self.clock.now_ms();
        keys.iter()
            .map(|key| Ok(find_live(&entries, &extra, bucket, key, now)?.map(|e| e.value)))
            .collect()
    }

    /// Writes `value` at `key` if `condition` holds; durable when this returns `Written`.
    /// The entry has no metadata and no expiry afterwards.
    pub fn put(
        &self,
        bucket: &str,
        key: &str,
        value: &[u8],
        condition: Condition,
    ) -> Result<WriteOutcome, StorageError> {
        self.write(|t, now| {
            let current = find_live(&t.entries, &t.extra, bucket, key, now)?;
            let holds = match (condition, &current) {
                (Condition::Always, _) => true,
                (Condition::Absent, current) => current.is_none(),
                (Condition::Version(want), Some(entry)) => entry.version == want,
                (Condition::Version(_), None) => false,
            };
            if !holds {
                return Ok(WriteOutcome::Conflict(current.map(Entry::from)));
            }
            store_entry(t, bucket, key, value).map(WriteOutcome::Written)
        })
    }

    /// Writes every pair in one transaction.
    pub fn set_many(&self, bucket: &str, pairs: &[(&str, &[u8])]) -> Result<(), StorageError> {
        self.write(|t, _| {
            for (key, value) in pairs {
                store_entry(t, bucket, key, value)?;
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
        self.write(|t, _| {
            for key in keys {
                remove_all(t, bucket, key)?;
            }
            Ok(())
        })
    }

    /// Adds `delta` to the ASCII decimal at `key` (absent or expired counts as 0), atomically.
    /// A live entry keeps its metadata and expiry.
    pub fn increment(
        &self,
        bucket: &str,
        key: &str,
        delta: i64,
    ) -> Result<Result<(i64, u64), IncrementError>, StorageError> {
        self.write(|t, now| {
            let current = find_live(&t.entries, &t.extra, bucket, key, now)?;
            let sum = match counter::add(current.as_ref().map(|e| e.value.as_slice()), delta) {
                Ok(sum) => sum,
                Err(CounterError::NotANumber) => return Ok(Err(IncrementError::NotANumber)),
                Err(CounterError::Overflow) => return Ok(Err(IncrementError::Overflow)),
            };
            let version = store_entry(t, bucket, key, sum.to_string().as_bytes())?;
            if let Some(current) = current.filter(Stored::has_extra) {
                // Same key, same deadline: the EXPIRY row stays valid as it is.
                t.extra
                    .insert(
                        (bucket, key),
                        (version, current.expires_ms, current.metadata.as_slice()),
                    )
                    .map_err(storage_err)?;
            }
            Ok(Ok((sum, version)))
        })
    }

    /// Inserts an entry as `options` say, deciding with [`entries::plan`] inside the write
    /// transaction; the new generation, or why nothing was written.
    pub fn insert(
        &self,
        bucket: &str,
        key: &str,
        value: &[u8],
        options: &InsertOptions<'_>,
        limits: &Limits,
    ) -> Result<Result<u64, Refusal>, StorageError> {
        self.write(|t, now| {
            let current = find_raw(&t.entries, &t.extra, bucket, key)?;
            let plan = match entries::plan(
                current.as_ref().map(Stored::live),
                value,
                options,
                limits,
                now,
            ) {
                Ok(plan) => plan,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let version = store_entry(t, bucket, key, &plan.value)?;
            set_extra(t, bucket, key, version, plan.expires_ms, plan.metadata)?;
            Ok(Ok(version))
        })
    }

    /// Removes `key` if `if_generation` is absent or names its live entry; whether a live
    /// entry was removed.
    pub fn remove_entry(
        &self,
        bucket: &str,
        key: &str,
        if_generation: Option<u64>,
    ) -> Result<Result<bool, GenerationMismatch>, StorageError> {
        self.write(|t, now| {
            let live = find_live(&t.entries, &t.extra, bucket, key, now)?;
            if let Some(wanted) = if_generation
                && live.as_ref().is_none_or(|entry| entry.version != wanted)
            {
                return Ok(Err(GenerationMismatch));
            }
            remove_all(t, bucket, key)?;
            Ok(Ok(live.is_some()))
        })
    }

    /// Up to `limit` live keys of `bucket` after `after` (or from the start), in key order.
    pub fn list(
        &self,
        bucket: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StorageError> {
        self.list_prefix(bucket, "", after, limit)
    }

    /// Up to `limit` live keys of `bucket` that start with `prefix`, after `after` (or from
    /// the first such key), in key order. Keys sharing a prefix are one contiguous range of
    /// the table, so this reads only that range.
    pub fn list_prefix(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StorageError> {
        let txn = self.db.begin_read().map_err(storage_err)?;
        let entries = txn.open_table(ENTRIES).map_err(storage_err)?;
        let extra = txn.open_table(EXTRA).map_err(storage_err)?;
        let now = self.clock.now_ms();
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded((bucket, after)),
            _ => Bound::Included((bucket, prefix)),
        };
        let mut keys = Vec::new();
        let mut more = false;
        for item in entries
            .range::<(&str, &str)>((start, Bound::Unbounded))
            .map_err(storage_err)?
        {
            let (stored, row) = item.map_err(storage_err)?;
            let (stored_bucket, key) = stored.value();
            if stored_bucket != bucket || !key.starts_with(prefix) {
                break;
            }
            if expired(&extra, bucket, key, row.value().0, now)? {
                continue;
            }
            if keys.len() == limit {
                more = true;
                break;
            }
            keys.push(key.to_owned());
        }
        Ok(Page { keys, more })
    }

    /// Deletes up to `limit` entries whose deadline has passed, with their rows, in one
    /// transaction; how many deadlines it handled (a full batch means more may be due).
    pub fn sweep(&self, limit: usize) -> Result<usize, StorageError> {
        let now = self.clock.now_ms();
        // Idle servers should not commit (and fsync) every second: look before writing.
        {
            let txn = self.db.begin_read().map_err(storage_err)?;
            let expiry = txn.open_table(EXPIRY).map_err(storage_err)?;
            let first = expiry.first().map_err(storage_err)?;
            if first.is_none_or(|(due, _)| due.value().0 > now) {
                return Ok(0);
            }
        }
        self.write(|t, now| {
            let mut due = Vec::new();
            for item in t.expiry.iter().map_err(storage_err)? {
                let (row, _) = item.map_err(storage_err)?;
                let (deadline, bucket, key) = row.value();
                if deadline > now || due.len() == limit {
                    break;
                }
                due.push((deadline, bucket.to_owned(), key.to_owned()));
            }
            for (deadline, bucket, key) in &due {
                let (bucket, key) = (bucket.as_str(), key.as_str());
                t.expiry
                    .remove((*deadline, bucket, key))
                    .map_err(storage_err)?;
                let extra = t
                    .extra
                    .get((bucket, key))
                    .map_err(storage_err)?
                    .map(|row| (row.value().0, row.value().1));
                // An index row whose EXTRA row moved on to another deadline is just stale.
                let Some((version, Some(row_deadline))) = extra else {
                    continue;
                };
                if row_deadline != *deadline {
                    continue;
                }
                t.extra.remove((bucket, key)).map_err(storage_err)?;
                let current = t
                    .entries
                    .get((bucket, key))
                    .map_err(storage_err)?
                    .map(|row| row.value().0);
                if current == Some(version) {
                    t.entries.remove((bucket, key)).map_err(storage_err)?;
                    // Watchers learn of an expiry when the space is returned (within about a
                    // second of the deadline), as a delete.
                    let position = next_version(t)?;
                    record(t, bucket, key, None, position)?;
                }
            }
            Ok(due.len())
        })
    }

    /// How many rows each table holds: (entries, extra, expiry). For tests and diagnostics.
    pub fn row_counts(&self) -> Result<(u64, u64, u64), StorageError> {
        let txn = self.db.begin_read().map_err(storage_err)?;
        let entries = txn.open_table(ENTRIES).map_err(storage_err)?;
        let extra = txn.open_table(EXTRA).map_err(storage_err)?;
        let expiry = txn.open_table(EXPIRY).map_err(storage_err)?;
        Ok((
            entries.len().map_err(storage_err)?,
            extra.len().map_err(storage_err)?,
            expiry.len().map_err(storage_err)?,
        ))
    }

    fn write<T>(
        &self,
        body: impl FnOnce(&mut Tables<'_>, u64) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut txn = self.db.begin_write().map_err(storage_err)?;
        if !self.durable {
            txn.set_durability(redb::Durability::None)
                .map_err(storage_err)?;
        }
        let result = {
            let mut tables = Tables::open(&txn, self.retention)?;
            // Read once the write lock is held, so no writer judges expiry by an older "now".
            let now = self.clock.now_ms();
            body(&mut tables, now)?
        };
        txn.commit().map_err(storage_err)?;
        self.committed.send_modify(|n| *n = n.wrapping_add(1));
        Ok(result)
    }
}

/// The entry at `key` with its metadata and expiry, expired or not.
fn find_raw(
    entries: &impl ReadableTable<Name, EntryValue>,
    extra: &impl ReadableTable<Name, ExtraValue>,
    bucket: &str,
    key: &str,
) -> Result<Option<Stored>, StorageError> {
    let Some(row) = entries.get((bucket, key)).map_err(storage_err)? else {
        return Ok(None);
    };
    let (version, value) = row.value();
    let mut stored = Stored {
        version,
        value: value.to_vec(),
        metadata: Vec::new(),
        expires_ms: None,
    };
    if let Some(row) = extra.get((bucket, key)).map_err(storage_err)? {
        let (described, expires_ms, metadata) = row.value();
        if described == version {
            stored.metadata = metadata.to_vec();
            stored.expires_ms = expires_ms;
        }
    }
    Ok(Some(stored))
}

/// The entry at `key` unless it is absent or expired at `now`.
fn find_live(
    entries: &impl ReadableTable<Name, EntryValue>,
    extra: &impl ReadableTable<Name, ExtraValue>,
    bucket: &str,
    key: &str,
    now: u64,
) -> Result<Option<Stored>, StorageError> {
    Ok(find_raw(entries, extra, bucket, key)?
        .filter(|stored| !entries::is_expired(stored.expires_ms, now)))
}

/// Whether the entry at `key`, at `version`, has expired by `now`.
fn expired(
    extra: &impl ReadableTable<Name, ExtraValue>,
    bucket: &str,
    key: &str,
    version: u64,
    now: u64,
) -> Result<bool, StorageError> {
    let Some(row) = extra.get((bucket, key)).map_err(storage_err)? else {
        return Ok(false);
    };
    let (described, expires_ms, _) = row.value();
    Ok(described == version && entries::is_expired(expires_ms, now))
}

/// The next version from the database-wide counter: an entry's version, a feed position.
fn next_version(t: &mut Tables<'_>) -> Result<u64, StorageError> {
    let last = t
        .meta
        .get(LAST_VERSION)
        .map_err(storage_err)?
        .map_or(0, |guard| guard.value());
    let version = last
        .checked_add(1)
        .ok_or_else(|| StorageError("versions exhausted".to_owned()))?;
    t.meta.insert(LAST_VERSION, version).map_err(storage_err)?;
    Ok(version)
}

fn store_entry(
    t: &mut Tables<'_>,
    bucket: &str,
    key: &str,
    value: &[u8],
) -> Result<u64, StorageError> {
    let version = next_version(t)?;
    t.entries
        .insert((bucket, key), (version, value))
        .map_err(storage_err)?;
    record(t, bucket, key, Some(value), version)?;
    Ok(version)
}

/// Appends a change at `position` to the feed, dropping the oldest beyond retention.
fn record(
    t: &mut Tables<'_>,
    bucket: &str,
    key: &str,
    value: Option<&[u8]>,
    position: u64,
) -> Result<(), StorageError> {
    t.changes
        .insert((bucket, position), (key, value))
        .map_err(storage_err)?;
    t.feed.insert(position, bucket).map_err(storage_err)?;
    let size = |key: &str, value: Option<&[u8]>| (key.len() + value.map_or(0, <[u8]>::len)) as u64;
    let mut bytes = t
        .meta
        .get(FEED_BYTES)
        .map_err(storage_err)?
        .map_or(0, |v| v.value())
        .saturating_add(size(key, value));
    loop {
        let count = t.feed.len().map_err(storage_err)?;
        let over = count > t.retention.changes || (bytes > t.retention.bytes && count > 1);
        if !over {
            break;
        }
        let Some((oldest, owner)) = t.feed.pop_first().map_err(storage_err)? else {
            break;
        };
        let (oldest, owner) = (oldest.value(), owner.value().to_owned());
        if let Some(row) = t
            .changes
            .remove((owner.as_str(), oldest))
            .map_err(storage_err)?
        {
            let (key, value) = row.value();
            bytes = bytes.saturating_sub(size(key, value));
        }
        t.meta.insert(FEED_DROPPED, oldest).map_err(storage_err)?;
    }
    t.meta.insert(FEED_BYTES, bytes).map_err(storage_err)?;
    Ok(())
}

/// Makes `key`'s EXTRA row describe `version` with this expiry and metadata (none of either:
/// no row), keeping EXPIRY in step.
fn set_extra(
    t: &mut Tables<'_>,
    bucket: &str,
    key: &str,
    version: u64,
    expires_ms: Option<u64>,
    metadata: &[u8],
) -> Result<(), StorageError> {
    let old_deadline = t
        .extra
        .get((bucket, key))
        .map_err(storage_err)?
        .and_then(|row| row.value().1);
    if let Some(old) = old_deadline
        && Some(old) != expires_ms
    {
        t.expiry.remove((old, bucket, key)).map_err(storage_err)?;
    }
    if expires_ms.is_none() && metadata.is_empty() {
        t.extra.remove((bucket, key)).map_err(storage_err)?;
        return Ok(());
    }
    t.extra
        .insert((bucket, key), (version, expires_ms, metadata))
        .map_err(storage_err)?;
    if let Some(deadline) = expires_ms {
        t.expiry
            .insert((deadline, bucket, key), ())
            .map_err(storage_err)?;
    }
    Ok(())
}

/// Removes the entry at `key` and every row about it; the feed records the delete if there
/// was an entry.
fn remove_all(t: &mut Tables<'_>, bucket: &str, key: &str) -> Result<(), StorageError> {
    let removed = t
        .entries
        .remove((bucket, key))
        .map_err(storage_err)?
        .is_some();
    if removed {
        let position = next_version(t)?;
        record(t, bucket, key, None, position)?;
    }
    let old = t.extra.remove((bucket, key)).map_err(storage_err)?;
    if let Some(deadline) = old.and_then(|row| row.value().1) {
        t.expiry
            .remove((deadline, bucket, key))
            .map_err(storage_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage() -> (tempfile::TempDir, Storage) {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&dir.path().join("kv.redb"), true, Clock::system()).unwrap();
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
