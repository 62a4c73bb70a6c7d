//! Redis's change feed: the stream `<prefix>!<encoded bucket>!changes` that every kvplug write
//! of the bucket appends to inside its own script (docs/watch-design.md §4.3), read through
//! webdis with the backend's READ_CHANGES script.
//!
//! The position is a stream ID, `<ms>-<seq>`. Only kvplug's own writes are in the stream:
//! another Redis client's writes and expiry are never delivered.
//!
//! The feed polls: one script call per try, and when nothing came, another after about
//! [`POLL_MS`], until the read's wait is over: 5 requests per idle second per bucket. Not a
//! blocking `XREAD`: it cannot run inside a script, webdis cannot pass its nested reply on,
//! and a blocked request holds one of webdis's pooled Redis connections, stalling the other
//! requests queued on it (design §6: a `PING` waited 47.5 s behind one).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use kvplug_protocol::frames::{FrameError, Reader};

use super::{Batch, Change, Feed, Lapse, decimal};
use crate::backend::Backend;
use crate::backend::redis::RedisBackend;
use crate::bindings::wasi::clocks::monotonic_clock;
use crate::error::Error;
use crate::settings::Settings;

/// The pause between two reads that found nothing.
const POLL_MS: u64 = 200;
const MS: u64 = 1_000_000;
/// Bytes of changes one read asks for at most (at least one change comes, whatever its size).
const READ_BUDGET: usize = 16 << 20;

/// A stream ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Id {
    ms: u64,
    seq: u64,
}

impl Id {
    /// The ID before every entry.
    pub const ZERO: Id = Id { ms: 0, seq: 0 };

    /// `<ms>-<seq>`, both decimal.
    pub fn parse(text: &str) -> Option<Id> {
        let (ms, seq) = text.split_once('-')?;
        Some(Id {
            ms: decimal(ms)?,
            seq: decimal(seq)?,
        })
    }

    /// The greatest ID below this one (itself for `0-0`).
    fn before(self) -> Id {
        match (self.ms, self.seq) {
            (ms, seq) if seq > 0 => Id { ms, seq: seq - 1 },
            (ms, _) if ms > 0 => Id {
                ms: ms - 1,
                seq: u64::MAX,
            },
            _ => Id::ZERO,
        }
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// What one READ_CHANGES call says of the stream.
pub struct Read {
    /// `None`: the stream does not exist.
    state: Option<State>,
    changes: Vec<(Id, Change)>,
}

impl Read {
    /// The changes read, in stream order.
    pub fn changes(&self) -> impl Iterator<Item = (Id, &Change)> {
        self.changes.iter().map(|(id, change)| (*id, change))
    }

    /// Whether changes after `after` are lost, and if so where reading goes on (see [`gap`]).
    pub fn gap_after(&self, after: Id) -> Option<(Id, String)> {
        gap(self.state.as_ref(), after)
    }
}

/// What READ_CHANGES says of a stream that exists.
pub struct State {
    last: Id,
    max_deleted: Id,
    first: Option<Id>,
    lost_any: bool,
}

fn id_frame(reader: &mut Reader<'_>) -> Result<Id, &'static str> {
    let text = reader.key().map_err(frame_error)?;
    Id::parse(text).ok_or("a stream ID that is not `<ms>-<seq>`")
}

fn frame_error(_: FrameError) -> &'static str {
    "a READ_CHANGES answer cut short or mis-framed"
}

/// Reads a READ_CHANGES answer to a read after `after`: its changes come in stream order,
/// after `after` and through the stream's last ID, or the answer is refused (a silent
/// reorder would deliver a change twice or skip one). Takes any bytes: fuzzed
/// (fuzz/fuzz_targets/feeds.rs).
pub fn read_answer(answer: &[u8], after: Id) -> Result<Read, &'static str> {
    match answer.split_first() {
        Some((b'N', [])) => Ok(Read {
            state: None,
            changes: Vec::new(),
        }),
        Some((b'S', rest)) => {
            let mut reader = Reader::new(rest);
            let last = id_frame(&mut reader)?;
            let max_deleted = id_frame(&mut reader)?;
            let first = match reader.key().map_err(frame_error)? {
                "" => None,
                text => Some(Id::parse(text).ok_or("a first ID that is not `<ms>-<seq>`")?),
            };
            let lost_any = reader.frame().map_err(frame_error)? == b"1";
            let mut changes = Vec::new();
            let mut previous = after;
            while !reader.is_empty() {
                let id = id_frame(&mut reader)?;
                if id <= previous || id > last {
                    return Err("changes out of stream order, or outside the range read");
                }
                previous = id;
                let key = String::from(reader.key().map_err(frame_error)?);
                let value = reader.optional().map_err(frame_error)?.map(<[u8]>::to_vec);
                changes.push((id, Change { key, value }));
            }
            Ok(Read {
                state: Some(State {
                    last,
                    max_deleted,
                    first,
                    lost_any,
                }),
                changes,
            })
        }
        _ => Err("a READ_CHANGES answer that is neither `N` nor `S`"),
    }
}

/// Whether changes after `after` are gone from the stream, and if so, where reading can go
/// on: everything the stream still holds is after the position answered.
fn gap(state: Option<&State>, after: Id) -> Option<(Id, String)> {
    let Some(state) = state else {
        // No stream: none was written yet (only `0-0` came from here), or it was deleted.
        return (after != Id::ZERO).then(|| {
            (
                Id::ZERO,
                format!(
                    "the change stream is gone (deleted, or Redis lost its data) since position \
                     {after}"
                ),
            )
        });
    };
    if state.max_deleted > after {
        return Some((
            state.max_deleted,
            format!(
                "the change stream's entries through {} were deleted (`XDEL`), after position \
                 {after}",
                state.max_deleted
            ),
        ));
    }
    if !state.lost_any {
        return None;
    }
    // Trimming (`MAXLEN`, `XTRIM`) leaves `max-deleted-entry-id` as it was (measured on Redis
    // 7.0.15: still `0-0` after trimming to nothing), so trimming shows only as
    // `entries-added` over `length`. It removes the oldest entries, so everything removed is
    // older than what the stream still holds. A position just before the first entry held lost nothing; one
    // further back may have (trimming does not say which IDs it removed, so a reader exactly
    // at the last trimmed entry is told of a gap it did not have).
    let resume = match state.first {
        Some(first) => first.before(),
        None => state.last,
    };
    (after < resume).then(|| {
        (
            resume,
            format!(
                "the change stream was trimmed past position {after} (it keeps about the last \
                 100,000 changes; `XTRIM` by hand); it goes on after {resume}"
            ),
        )
    })
}

/// The change feed of one bucket on Redis behind webdis.
pub struct RedisFeed {
    backend: RedisBackend,
}

impl RedisFeed {
    fn read(&self, after: Id, budget: usize) -> Result<Read, Error> {
        let answer = self.backend.read_changes(&format!("{after}"), budget)?;
        // Every change is copied out of the answer: as much again as the answer.
        self.backend.room_for(answer.len(), answer.len())?;
        read_answer(&answer, after).map_err(|detail| self.backend.malformed(detail))
    }
}

impl Feed for RedisFeed {
    fn open(settings: &Settings, bucket: &str, _prefix: &str) -> Result<Self, Error> {
        Ok(RedisFeed {
            backend: RedisBackend::open(settings, bucket)?,
        })
    }

    fn head(&mut self) -> Result<String, Error> {
        let read = self.read(Id::ZERO, 0)?;
        Ok(format!(
            "{}",
            read.state.map_or(Id::ZERO, |state| state.last)
        ))
    }

    fn poll(&mut self, after: &str, wait_ms: u64) -> Result<Batch, Lapse> {
        let after_id = Id::parse(after)
            .ok_or_else(|| Error::Invalid(format!("`{after}` is not a Redis stream ID")))?;
        let until = monotonic_clock::now().saturating_add(wait_ms.saturating_mul(MS));
        loop {
            let read = self.read(after_id, READ_BUDGET)?;
            if let Some((resume, detail)) = gap(read.state.as_ref(), after_id) {
                return Err(Lapse::Gap {
                    resume_after: Some(format!("{resume}")),
                    detail,
                });
            }
            if let Some((last, _)) = read.changes.last() {
                let position = format!("{last}");
                return Ok(Batch {
                    changes: read.changes.into_iter().map(|(_, change)| change).collect(),
                    position,
                });
            }
            let now = monotonic_clock::now();
            if now >= until {
                return Ok(Batch {
                    changes: Vec::new(),
                    position: String::from(after),
                });
            }
            monotonic_clock::subscribe_duration(POLL_MS.saturating_mul(MS).min(until - now))
                .block();
        }
    }

    fn valid(position: &str) -> bool {
        Id::parse(position).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvplug_protocol::frames;

    fn id(text: &str) -> Id {
        Id::parse(text).unwrap()
    }

    #[test]
    fn positions_are_stream_ids() {
        for good in [
            "0-0",
            "1796402548757-0",
            "18446744073709551615-18446744073709551615",
        ] {
            assert!(RedisFeed::valid(good), "{good}");
            assert_eq!(format!("{}", id(good)), good);
        }
        for bad in [
            "",
            "0",
            "-",
            "1-",
            "-1",
            "1-2-3",
            "a-1",
            "1-+1",
            " 1-1",
            "7",
            "1796402548757",
        ] {
            assert!(!RedisFeed::valid(bad), "{bad:?}");
        }
        assert_eq!(id("5-0").before(), id("4-18446744073709551615"));
        assert_eq!(id("5-3").before(), id("5-2"));
        assert_eq!(id("0-0").before(), id("0-0"));
        assert!(id("2-0") > id("1-99"));
    }

    fn answer(
        last: &str,
        deleted: &str,
        first: &str,
        lost: bool,
        changes: &[(&str, &str, Option<&[u8]>)],
    ) -> Vec<u8> {
        let mut out = b"S".to_vec();
        for text in [last, deleted, first, if lost { "1" } else { "0" }] {
            frames::put(&mut out, text.as_bytes()).unwrap();
        }
        for (id, key, value) in changes {
            frames::put(&mut out, id.as_bytes()).unwrap();
            frames::put(&mut out, key.as_bytes()).unwrap();
            frames::put_optional(&mut out, *value).unwrap();
        }
        out
    }

    #[test]
    fn answers_read_as_changes() {
        let read = read_answer(
            &answer(
                "9-1",
                "0-0",
                "3-0",
                false,
                &[("9-0", "a", Some(b"\0x")), ("9-1", "b", None)],
            ),
            id("8-5"),
        )
        .unwrap();
        let state = read.state.unwrap();
        assert_eq!(
            (state.last, state.first, state.lost_any),
            (id("9-1"), Some(id("3-0")), false)
        );
        assert_eq!(
            read.changes,
            [
                (
                    id("9-0"),
                    Change {
                        key: "a".into(),
                        value: Some(b"\0x".to_vec())
                    }
                ),
                (
                    id("9-1"),
                    Change {
                        key: "b".into(),
                        value: None
                    }
                ),
            ]
        );
        assert!(read_answer(b"N", Id::ZERO).unwrap().state.is_none());
        for bad in [&b""[..], b"N1", b"X", b"S\0\0\0\x03abc"] {
            assert!(read_answer(bad, Id::ZERO).is_err(), "{bad:?}");
        }
        // Out of order, at or before the position read after, past the stream's last ID: a
        // lying answer is refused, never delivered.
        for (changes, after) in [
            (&[("9-1", "a"), ("9-0", "b")][..], "0-0"),
            (&[("9-0", "a"), ("9-0", "b")][..], "0-0"),
            (&[("9-0", "a")][..], "9-0"),
            (&[("9-2", "a")][..], "0-0"),
        ] {
            let changes: Vec<_> = changes.iter().map(|(i, k)| (*i, *k, None)).collect();
            let bad = answer("9-1", "0-0", "3-0", false, &changes);
            assert!(
                read_answer(&bad, id(after)).is_err(),
                "{changes:?} after {after}"
            );
        }
    }

    #[test]
    fn gaps_are_entries_gone_after_the_position() {
        let state = |deleted: &str, first: Option<&str>, lost| State {
            last: id("9-0"),
            max_deleted: id(deleted),
            first: first.map(id),
            lost_any: lost,
        };
        // Never lost anything, or only entries before the position.
        assert!(gap(Some(&state("0-0", Some("3-0"), false)), id("0-0")).is_none());
        assert!(
            gap(
                Some(&state("0-0", Some("3-0"), true)),
                id("2-18446744073709551615")
            )
            .is_none()
        );
        assert!(gap(Some(&state("0-0", Some("3-0"), true)), id("5-0")).is_none());
        assert!(gap(Some(&state("0-0", None, true)), id("9-0")).is_none());
        assert!(gap(None, id("0-0")).is_none());
        // Trimmed past it: go on just before the first entry held, or after the last.
        assert_eq!(
            gap(Some(&state("0-0", Some("3-0"), true)), id("1-0"))
                .unwrap()
                .0,
            id("2-18446744073709551615")
        );
        assert_eq!(
            gap(Some(&state("0-0", None, true)), id("4-0")).unwrap().0,
            id("9-0")
        );
        // Deleted after it, or the stream gone.
        assert_eq!(
            gap(Some(&state("6-0", Some("3-0"), true)), id("5-0"))
                .unwrap()
                .0,
            id("6-0")
        );
        assert_eq!(gap(None, id("4-0")).unwrap().0, id("0-0"));
    }
}
