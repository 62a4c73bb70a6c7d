//! Inserts by compare-and-swap, for backends that cannot concatenate on the service (etcd;
//! DynamoDB and Azure Table later): read the entry, let [`plan`] decide what to write, write
//! on condition that the entry has not moved, and on a lost race start again from what it
//! holds now, at most [`MAX_INCREMENT_ATTEMPTS`] times (docs/extension-design.md §3).
//!
//! The backend supplies the read and the conditional write ([`SwapStore`]); the decision is
//! `kvplug_protocol::entries::plan`, the same one the reference server makes, so every
//! backend appends, prepends and keeps or replaces metadata and expiry alike.

use alloc::vec::Vec;

use kvplug_protocol::entries::{InsertOptions, Limits, Live, Mode, is_expired, plan};

use super::MAX_INCREMENT_ATTEMPTS;
use crate::error::Error;

/// An entry as the store holds it (expired or not, where the store keeps expired entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored<H> {
    pub value: Vec<u8>,
    /// Empty when the entry has none.
    pub metadata: Vec<u8>,
    /// The generation, which a conditional write compares.
    pub generation: u64,
    /// The deadline, milliseconds since the Unix epoch, where the adapter judges expiry;
    /// `None` where the store expires entries itself (etcd: they are gone when read).
    pub expires_ms: Option<u64>,
    /// What the store needs to keep the expiry as it is (etcd: the key's lease, 0 for none).
    pub held: H,
}

impl<H> Stored<H> {
    fn live(&self) -> Live<'_> {
        Live {
            value: &self.value,
            metadata: &self.metadata,
            generation: self.generation,
            expires_ms: self.expires_ms,
        }
    }
}

/// The expiry a write gives the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// None: the entry stays until deleted.
    Never,
    /// This many seconds from the write.
    After(u32),
    /// The expiry of the entry the write replaces (its `held`, or its `expires_ms`).
    Keep,
}

/// The whole entry a conditional write puts in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewEntry<'a> {
    pub value: &'a [u8],
    /// Empty for none.
    pub metadata: &'a [u8],
    pub expiry: Expiry,
    /// The deadline [`plan`] computed at the caller's "now", for stores that keep one.
    pub expires_ms: Option<u64>,
}

/// The outcome of one conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt<H> {
    /// Written; the new generation.
    Written(u64),
    /// The key moved on (or was not absent): what it holds now, if anything.
    Moved(Option<Stored<H>>),
}

/// A store an insert can be made on by compare-and-swap.
pub trait SwapStore {
    /// What keeps an entry's expiry ([`Stored::held`]).
    type Held;
    /// Whether the first write assumes the key absent instead of reading it: worth it where
    /// a refused write hands back what the key holds (etcd's transactions).
    const ASSUMES_ABSENT: bool;

    /// The entry at `key`, if the store holds one.
    fn read_stored(&mut self, key: &str) -> Result<Option<Stored<Self::Held>>, Error>;
    /// Writes `new` only if `key` still holds `expected` (its generation), or nothing when
    /// `expected` is `None`; otherwise reports what it holds now.
    fn write_stored(
        &mut self,
        key: &str,
        expected: Option<&Stored<Self::Held>>,
        new: &NewEntry<'_>,
    ) -> Result<Attempt<Self::Held>, Error>;
}

/// The expiry a write made of `options` gives, over `live` (the entry it replaces, if it is
/// live at `now_ms`).
pub fn expiry_of(options: &InsertOptions<'_>, live: Option<Live<'_>>, now_ms: u64) -> Expiry {
    let keeps = matches!(options.mode, Mode::Append | Mode::Prepend)
        && live.is_some_and(|entry| !is_expired(entry.expires_ms, now_ms));
    match options.ttl_sec {
        Some(ttl) => Expiry::After(ttl),
        None if keeps => Expiry::Keep,
        None => Expiry::Never,
    }
}

/// Inserts `value` at `key` as `options` say, in any mode, by compare-and-swap on `store`;
/// returns the new generation. A refusal of [`plan`] is `Error::Entry`, with nothing written.
pub fn insert_by_swap<S: SwapStore>(
    store: &mut S,
    key: &str,
    value: &[u8],
    options: &InsertOptions<'_>,
    limits: &Limits,
    now_ms: u64,
) -> Result<u64, Error> {
    // A generation to match needs the entry: assuming it absent would only be refused.
    let mut current = if S::ASSUMES_ABSENT && options.if_generation_match.is_none() {
        None
    } else {
        store.read_stored(key)?
    };
    for _ in 0..MAX_INCREMENT_ATTEMPTS {
        let live = current.as_ref().map(Stored::live);
        let decided = plan(live, value, options, limits, now_ms).map_err(Error::Entry)?;
        let new = NewEntry {
            value: &decided.value,
            metadata: decided.metadata,
            expiry: expiry_of(options, live, now_ms),
            expires_ms: decided.expires_ms,
        };
        match store.write_stored(key, current.as_ref(), &new)? {
            Attempt::Written(generation) => return Ok(generation),
            Attempt::Moved(now) => current = now,
        }
    }
    Err(Error::GaveUp(alloc::format!(
        "insert of `{key}`: gave up after {MAX_INCREMENT_ATTEMPTS} attempts, each lost to a concurrent write"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use kvplug_protocol::entries::Refusal;

    /// One key in memory; `steal` writes before the next conditional writes, as a racing
    /// client would.
    struct Memory {
        entry: Option<Stored<u32>>,
        next: u64,
        steal: usize,
        reads: usize,
        writes: usize,
    }

    impl Memory {
        fn new(entry: Option<Stored<u32>>) -> Self {
            Memory {
                entry,
                next: 100,
                steal: 0,
                reads: 0,
                writes: 0,
            }
        }
    }

    fn stored(value: &[u8], metadata: &[u8], generation: u64, held: u32) -> Stored<u32> {
        Stored {
            value: value.to_vec(),
            metadata: metadata.to_vec(),
            generation,
            expires_ms: None,
            held,
        }
    }

    impl SwapStore for Memory {
        type Held = u32;
        const ASSUMES_ABSENT: bool = true;

        fn read_stored(&mut self, _key: &str) -> Result<Option<Stored<u32>>, Error> {
            self.reads += 1;
            Ok(self.entry.clone())
        }

        fn write_stored(
            &mut self,
            _key: &str,
            expected: Option<&Stored<u32>>,
            new: &NewEntry<'_>,
        ) -> Result<Attempt<u32>, Error> {
            self.writes += 1;
            if self.steal > 0 {
                self.steal -= 1;
                self.next += 1;
                self.entry = Some(stored(b"x", b"", self.next, 0));
            }
            let now = self.entry.as_ref().map(|e| e.generation);
            if now != expected.map(|e| e.generation) {
                return Ok(Attempt::Moved(self.entry.clone()));
            }
            self.next += 1;
            let held = match new.expiry {
                Expiry::Never => 0,
                Expiry::After(ttl) => ttl,
                Expiry::Keep => expected.map_or(0, |e| e.held),
            };
            self.entry = Some(stored(new.value, new.metadata, self.next, held));
            Ok(Attempt::Written(self.next))
        }
    }

    fn options(mode: Mode) -> InsertOptions<'static> {
        InsertOptions::new(mode)
    }

    const LIMITS: Limits = Limits {
        max_key_bytes: None,
        max_value_bytes: Some(10),
        max_metadata_bytes: 2000,
        ttl: kvplug_protocol::entries::TTL_RANGE,
    };

    #[test]
    fn append_to_an_absent_key_is_one_write() {
        let mut store = Memory::new(None);
        let written = insert_by_swap(&mut store, "k", b"ab", &options(Mode::Append), &LIMITS, 0);
        assert_eq!(written, Ok(101));
        assert_eq!((store.reads, store.writes), (0, 1));
        assert_eq!(store.entry, Some(stored(b"ab", b"", 101, 0)));
    }

    #[test]
    fn append_and_prepend_keep_metadata_and_expiry_unless_given() {
        let mut store = Memory::new(Some(stored(b"mid", b"m", 7, 30)));
        insert_by_swap(&mut store, "k", b">", &options(Mode::Append), &LIMITS, 0).unwrap();
        // Assumed absent, refused with the entry, then written: two writes, no read.
        assert_eq!((store.reads, store.writes), (0, 2));
        assert_eq!(store.entry, Some(stored(b"mid>", b"m", 101, 30)));
        let prepend = InsertOptions {
            metadata: Some(b"n"),
            ttl_sec: Some(5),
            ..options(Mode::Prepend)
        };
        insert_by_swap(&mut store, "k", b"<", &prepend, &LIMITS, 0).unwrap();
        assert_eq!(store.entry, Some(stored(b"<mid>", b"n", 102, 5)));
    }

    #[test]
    fn a_generation_is_read_first_and_checked() {
        let mut store = Memory::new(Some(stored(b"v", b"", 7, 0)));
        let stale = InsertOptions {
            if_generation_match: Some(6),
            ..options(Mode::Append)
        };
        assert_eq!(
            insert_by_swap(&mut store, "k", b"w", &stale, &LIMITS, 0),
            Err(Error::Entry(Refusal::GenerationMismatch))
        );
        assert_eq!((store.reads, store.writes), (1, 0));
        let fresh = InsertOptions {
            if_generation_match: Some(7),
            ..options(Mode::Append)
        };
        assert_eq!(
            insert_by_swap(&mut store, "k", b"w", &fresh, &LIMITS, 0),
            Ok(101)
        );
        assert_eq!(
            store.entry.as_ref().map(|e| e.value.clone()),
            Some(vec![b'v', b'w'])
        );
        // Absent: no generation matches, nothing is written.
        let mut store = Memory::new(None);
        assert_eq!(
            insert_by_swap(&mut store, "k", b"w", &fresh, &LIMITS, 0),
            Err(Error::Entry(Refusal::GenerationMismatch))
        );
        assert_eq!(store.writes, 0);
    }

    #[test]
    fn lost_races_retry_from_what_the_key_holds_then_give_up() {
        let mut store = Memory::new(None);
        store.steal = 3;
        insert_by_swap(&mut store, "k", b"y", &options(Mode::Append), &LIMITS, 0).unwrap();
        assert_eq!(store.writes, 4);
        assert_eq!(
            store.entry.as_ref().map(|e| e.value.clone()),
            Some(b"xy".to_vec())
        );
        store.steal = usize::MAX;
        let result = insert_by_swap(&mut store, "k", b"y", &options(Mode::Append), &LIMITS, 0);
        let Err(Error::GaveUp(message)) = result else {
            panic!("{result:?}");
        };
        assert!(message.contains("64 attempts"), "{message}");
    }

    #[test]
    fn refusals_of_plan_write_nothing() {
        let mut store = Memory::new(Some(stored(b"123456789", b"", 7, 0)));
        let result = insert_by_swap(&mut store, "k", b"ab", &options(Mode::Append), &LIMITS, 0);
        assert!(matches!(
            result,
            Err(Error::Entry(Refusal::TooLarge { size: 11, .. }))
        ));
        assert_eq!(store.entry.as_ref().map(|e| e.generation), Some(7));
        let add = insert_by_swap(&mut store, "k", b"a", &options(Mode::Add), &LIMITS, 0);
        assert_eq!(add, Err(Error::Entry(Refusal::KeyExists)));
    }

    #[test]
    fn expiry_is_kept_only_by_append_and_prepend_over_a_live_entry() {
        let live = Live {
            value: b"v",
            metadata: b"",
            generation: 1,
            expires_ms: Some(10),
        };
        let append = options(Mode::Append);
        assert_eq!(expiry_of(&append, Some(live), 9), Expiry::Keep);
        assert_eq!(expiry_of(&append, Some(live), 10), Expiry::Never);
        assert_eq!(expiry_of(&append, None, 0), Expiry::Never);
        assert_eq!(
            expiry_of(&options(Mode::Overwrite), Some(live), 0),
            Expiry::Never
        );
        let ttl = InsertOptions {
            ttl_sec: Some(3),
            ..append
        };
        assert_eq!(expiry_of(&ttl, Some(live), 0), Expiry::After(3));
    }
}
