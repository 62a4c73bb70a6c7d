//! `kvplug:keyvalue/entries` on Azure Table (docs/extension-design.md §2.5), and the expiry
//! every read path of this backend honours.
//!
//! An entry is the entity the backend always wrote, plus the metadata in property `m`
//! (`Edm.Binary`) and the deadline in `x` (`Edm.Int64`, milliseconds since the Unix epoch by
//! the adapter's wall clock, the one Shared Key signing already reads). Its generation is 63
//! bits of SHA-256 of the entity's ETag: the version compare-and-swap uses too, so the two
//! never disagree, and entities written before the extension (no `m`, no `x`) have one.
//!
//! The service never deletes an expired entity, and conditions writes only on the ETag,
//! never on a property: `If-Match` on the ETag of an entity whose deadline has passed would
//! write over it as if it were live. So every read filters on `x` in the adapter, and every
//! write that depends on the entry's state reads it first (liveness, ETag), then writes on
//! condition of that ETag, so that a racing writer is never overwritten.
//!
//! Requests per call (§2.6): lookup 1; overwrite 1 (with a generation: a read, then the
//! conditional write, 2); add 1 (an insert; on `409` a read: live, `key-exists`, 2; expired,
//! a write over it, 3); append and prepend 2 (a read, then a conditional write or an insert);
//! delete 2 (a read, then `DELETE If-Match`, so its answer is true only for a live entity);
//! a page of list 1. A write lost to a concurrent one is tried again from a fresh read, at
//! most [`MAX_INCREMENT_ATTEMPTS`] times.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use kvplug_protocol::entries::{Live, Plan, is_expired, plan};

use super::keys::{MAX_KEY_UNITS, MAX_VALUE, encode_key, escape_field};
use super::odata::{Entity, EntityBody, entity_json};
use super::paths::percent_encode_into;
use super::{JSON, MAX_PAGE, TableBackend};
use crate::backend::entries::{Entries, Entry, InsertOptions, Limited, Limits, Mode, Refusal};
use crate::backend::retry::Repeat;
use crate::backend::{MAX_INCREMENT_ATTEMPTS, Page};
use crate::bindings::wasi::clocks::wall_clock;
use crate::client::{SMALL_ANSWER_BYTES, Verb};
use crate::error::Error;

/// The longest key in bytes that can fit: a key field takes at most [`MAX_KEY_UNITS`]
/// UTF-16 units, and no character takes more than 3 bytes of UTF-8 per unit (an escaped one
/// takes 1 byte for 3 units, an astral one 4 bytes for 2). A shorter key may still be
/// refused, as `too-large(key)` without a byte limit, when its escaped field takes more.
pub const MAX_KEY_BYTES: u64 = MAX_KEY_UNITS as u64 * 3;

/// Now by the adapter's wall clock, in milliseconds since the Unix epoch: what deadlines
/// are written in and judged by.
pub fn now_ms() -> u64 {
    let now = wall_clock::now();
    now.seconds
        .saturating_mul(1000)
        .saturating_add(u64::from(now.nanoseconds / 1_000_000))
}

/// The generation of the entity at `etag`: the first 63 bits of SHA-256 of the ETag as the
/// service spells it (any format), so that it fits every JSON number and language.
pub fn generation(etag: &str) -> u64 {
    let digest = crate::signing::sha256(etag.as_bytes());
    let first = digest.first_chunk::<8>().copied().unwrap_or_default();
    u64::from_be_bytes(first) >> 1
}

/// An entity as read: its value, metadata and deadline, and the ETag it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stored {
    pub body: EntityBody,
    pub etag: String,
}

impl Stored {
    pub fn live_at(&self, now_ms: u64) -> bool {
        !is_expired(self.body.expires_ms, now_ms)
    }

    /// The entry as the shared decision reads it (which judges the deadline itself).
    fn as_live(&self) -> Live<'_> {
        Live {
            value: &self.body.value,
            metadata: &self.body.metadata,
            generation: generation(&self.etag),
            expires_ms: self.body.expires_ms,
        }
    }
}

/// What a compare-and-swap handle saw, kept in its opaque `Version::Tag`: the entity's ETag,
/// and whether the entity was live then (with its deadline) or had expired. A handle on a
/// live entity fails without a request once the deadline has passed; one on an expired
/// entity writes over it on condition of its ETag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen<'a> {
    Live {
        expires_ms: Option<u64>,
        etag: &'a str,
    },
    Expired {
        etag: &'a str,
    },
}

/// The marks a tag starts with, before one space and the ETag.
const NEVER: &str = "never";
const EXPIRED: &str = "expired";

impl<'a> Seen<'a> {
    /// The tag: `never <etag>`, `<deadline> <etag>` or `expired <etag>`.
    pub fn tag(self) -> String {
        match self {
            Seen::Live {
                expires_ms: None,
                etag,
            } => format!("{NEVER} {etag}"),
            Seen::Live {
                expires_ms: Some(deadline),
                etag,
            } => format!("{deadline} {etag}"),
            Seen::Expired { etag } => format!("{EXPIRED} {etag}"),
        }
    }

    /// What a tag of [`Seen::tag`] says. Tags come only from this backend; anything else is
    /// taken as a bare ETag of a live entity.
    pub fn read(tag: &'a str) -> Seen<'a> {
        let bare = Seen::Live {
            expires_ms: None,
            etag: tag,
        };
        let Some((mark, etag)) = tag.split_once(' ') else {
            return bare;
        };
        match mark {
            NEVER => Seen::Live {
                expires_ms: None,
                etag,
            },
            EXPIRED => Seen::Expired { etag },
            deadline => match deadline.parse() {
                Ok(deadline) => Seen::Live {
                    expires_ms: Some(deadline),
                    etag,
                },
                Err(_) => bare,
            },
        }
    }
}

/// What a write is conditional on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Condition<'a> {
    /// Nothing: insert or replace.
    Any,
    /// No entity at the row, expired or not: an insert.
    Absent,
    /// The entity at this ETag.
    Match(&'a str),
}

/// How a write went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Written {
    /// With the new entity's ETag, when the service sent it.
    Done(Option<String>),
    /// The condition no longer held: nothing was written.
    Lost,
}

/// The key field of `key` for the extension: one the service would refuse is
/// `too-large(key)`. Its limit is in UTF-16 units of the escaped field, not bytes, so the
/// refusal states none.
fn entry_row(key: &str) -> Result<String, Error> {
    let field = encode_key(key);
    if field.encode_utf16().count() > MAX_KEY_UNITS {
        return Err(Error::Entry(Refusal::TooLarge {
            what: Limited::Key,
            limit: None,
            size: u64::try_from(key.len()).unwrap_or(u64::MAX),
        }));
    }
    Ok(field)
}

/// A string above every string that starts with `prefix`, in code point order (UTF-8
/// bytes) and in UTF-16 order alike; `None` when there is none. The last character is
/// raised by one; U+D7FF goes to U+E000 past the surrogates, and U+FFFF and U+10FFFF, which
/// have no successor in one of the orders, are dropped for the one before.
pub fn upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{FFFF}' | char::MAX => continue,
            '\u{D7FF}' => Some('\u{E000}'),
            other => char::from_u32(u32::from(other) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// `text` as an OData string literal: quoted, a quote inside doubled.
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// The `$filter` of the rows of `partition` whose keys start with `prefix`: the range from
/// the escaped prefix to [`upper_bound`] of it. The `~XX` escape is per character and
/// prefix-free (`~` appears only to start an escape), so a key starts with `prefix` exactly
/// when its field starts with the escaped prefix, and such fields are the range's.
pub fn prefix_filter(partition: &str, prefix: &str) -> String {
    let mut filter = format!("PartitionKey eq {}", literal(partition));
    let escaped = escape_field(prefix, |_| false);
    if !escaped.is_empty() {
        filter.push_str(" and RowKey ge ");
        filter.push_str(&literal(&escaped));
        if let Some(upper) = upper_bound(&escaped) {
            filter.push_str(" and RowKey lt ");
            filter.push_str(&literal(&upper));
        }
    }
    filter
}

impl TableBackend {
    /// Reads one entity, expired or not: value, metadata, deadline and ETag, or `None` if
    /// the row is absent.
    pub(super) fn read(&self, row: &str) -> Result<Option<Stored>, Error> {
        let path = self.entity_path(row);
        let response = self.send_capped(
            Verb::Get,
            &path,
            &[],
            None,
            &[],
            Repeat::Always,
            super::ENTITY_ANSWER_BYTES,
        )?;
        if response.status == 200 {
            let body = super::odata::read_entry(&response.body)
                .map_err(|e| self.client().malformed(Verb::Get, &path, e))?;
            let etag = self.etag_of(Verb::Get, &path, &response)?;
            return Ok(Some(Stored { body, etag }));
        }
        if self.row_missing(Verb::Get, &path, &response)? {
            return Ok(None);
        }
        Err(self.failure(Verb::Get, &path, &response))
    }

    /// Reads only the deadline of one entity (`$select=x`), and its ETag; `None` if the row
    /// is absent.
    pub(super) fn read_deadline(&self, row: &str) -> Result<Option<(Option<u64>, String)>, Error> {
        let path = format!(
            "{}?$select={}",
            self.entity_path(row),
            super::odata::DEADLINE
        );
        let response = self.send_capped(
            Verb::Get,
            &path,
            &[],
            None,
            &[],
            Repeat::Always,
            SMALL_ANSWER_BYTES,
        )?;
        if response.status == 200 {
            let deadline = super::odata::read_deadline(&response.body)
                .map_err(|e| self.client().malformed(Verb::Get, &path, e))?;
            let etag = self.etag_of(Verb::Get, &path, &response)?;
            return Ok(Some((deadline, etag)));
        }
        if self.row_missing(Verb::Get, &path, &response)? {
            return Ok(None);
        }
        Err(self.failure(Verb::Get, &path, &response))
    }

    fn etag_of(
        &self,
        verb: Verb,
        path: &str,
        response: &crate::client::Response,
    ) -> Result<String, Error> {
        response.header("etag").map(String::from).ok_or_else(|| {
            self.client()
                .malformed(verb, path, "an entity without an ETag")
        })
    }

    /// Writes the whole entity at `row` if `condition` holds. Only an unconditional write is
    /// sent again after an unknown outcome: a conditional one could see itself as a
    /// conflict, or apply twice.
    pub(super) fn write_entity(
        &self,
        row: &str,
        condition: Condition<'_>,
        value: &[u8],
        metadata: &[u8],
        expires_ms: Option<u64>,
    ) -> Result<Written, Error> {
        let body = entity_json(&Entity {
            partition: &self.inner.partition,
            row,
            value,
            metadata,
            expires_ms,
        })?;
        let done = |response: &crate::client::Response| {
            Written::Done(response.header("etag").map(String::from))
        };
        match condition {
            Condition::Any | Condition::Match(_) => {
                let path = self.entity_path(row);
                let (headers, repeat): (&[(&str, &str)], _) = match condition {
                    Condition::Match(etag) => (&[("if-match", etag)], Repeat::IfRefused),
                    _ => (&[], Repeat::Always),
                };
                let response = self.send(
                    Verb::Put,
                    &path,
                    headers,
                    Some(JSON),
                    body.as_bytes(),
                    repeat,
                )?;
                let conditional = matches!(condition, Condition::Match(_));
                match response.status {
                    204 => Ok(done(&response)),
                    412 if conditional => Ok(Written::Lost),
                    // Deleted since it was read.
                    404 if conditional && self.row_missing(Verb::Put, &path, &response)? => {
                        Ok(Written::Lost)
                    }
                    _ => Err(self.failure(Verb::Put, &path, &response)),
                }
            }
            Condition::Absent => {
                let path = format!("/{}", self.inner.table);
                let response = self.send(
                    Verb::Post,
                    &path,
                    &[("prefer", "return-no-content")],
                    Some(JSON),
                    body.as_bytes(),
                    Repeat::IfRefused,
                )?;
                let exists = response.status == 409
                    && self
                        .service_error(Verb::Post, &path, &response.body)?
                        .code
                        .as_deref()
                        == Some("EntityAlreadyExists");
                match response.status {
                    204 => Ok(done(&response)),
                    _ if exists => Ok(Written::Lost),
                    _ => Err(self.failure(Verb::Post, &path, &response)),
                }
            }
        }
    }

    /// Writes `plan`; the generation written, or `None` when the condition was lost.
    fn write_plan(
        &self,
        row: &str,
        condition: Condition<'_>,
        plan: &Plan<'_>,
    ) -> Result<Option<u64>, Error> {
        match self.write_entity(row, condition, &plan.value, plan.metadata, plan.expires_ms)? {
            Written::Lost => Ok(None),
            Written::Done(Some(etag)) => Ok(Some(generation(&etag))),
            Written::Done(None) => Err(self.client().malformed(
                Verb::Put,
                &self.entity_path(row),
                "a write answered without the new ETag",
            )),
        }
    }

    /// An insert that depends on what the key holds: a read, the shared decision, then a
    /// write on condition of what was read (an insert when the row is absent, else
    /// `If-Match` its ETag, expired or not), again from a fresh read when it loses.
    fn insert_by_swap(
        &self,
        key: &str,
        row: &str,
        value: &[u8],
        options: &InsertOptions<'_>,
    ) -> Result<u64, Error> {
        let limits = self.limits();
        for _ in 0..MAX_INCREMENT_ATTEMPTS {
            let stored = self.read(row)?;
            let current = stored.as_ref().map(Stored::as_live);
            let plan = plan(current, value, options, &limits, now_ms()).map_err(Error::Entry)?;
            let condition = match &stored {
                None => Condition::Absent,
                Some(stored) => Condition::Match(&stored.etag),
            };
            if let Some(generation) = self.write_plan(row, condition, &plan)? {
                return Ok(generation);
            }
        }
        Err(Error::GaveUp(format!(
            "insert of `{key}`: gave up after {MAX_INCREMENT_ATTEMPTS} attempts, each lost to a concurrent write"
        )))
    }
}

impl Entries for TableBackend {
    fn limits(&self) -> Limits {
        Limits::new(Some(MAX_KEY_BYTES), Some(MAX_VALUE as u64))
    }

    fn page_size(&self) -> u32 {
        self.inner.page_size
    }

    fn read_entry(&self, key: &str) -> Result<Option<Entry>, Error> {
        let row = entry_row(key)?;
        let Some(stored) = self.read(&row)? else {
            return Ok(None);
        };
        if !stored.live_at(now_ms()) {
            return Ok(None);
        }
        Ok(Some(Entry {
            generation: generation(&stored.etag),
            value: stored.body.value,
            metadata: stored.body.metadata,
        }))
    }

    fn write_entry(
        &self,
        key: &str,
        value: &[u8],
        options: &InsertOptions<'_>,
    ) -> Result<u64, Error> {
        let row = entry_row(key)?;
        let blind = match options.mode {
            // What the key holds does not matter: one write, whatever it holds.
            Mode::Overwrite if options.if_generation_match.is_none() => Condition::Any,
            // An insert, read only when the row is there, to tell live from expired.
            Mode::Add => Condition::Absent,
            _ => return self.insert_by_swap(key, &row, value, options),
        };
        let limits = self.limits();
        let plan = plan(None, value, options, &limits, now_ms()).map_err(Error::Entry)?;
        match self.write_plan(&row, blind, &plan)? {
            Some(generation) => Ok(generation),
            None => self.insert_by_swap(key, &row, value, options),
        }
    }

    fn remove_entry(&self, key: &str, generation_wanted: Option<u64>) -> Result<bool, Error> {
        let row = entry_row(key)?;
        let not_live = || match generation_wanted {
            Some(_) => Err(Error::Entry(Refusal::GenerationMismatch)),
            None => Ok(false),
        };
        for _ in 0..MAX_INCREMENT_ATTEMPTS {
            let etag = match self.read_deadline(&row)? {
                Some((deadline, etag)) if !is_expired(deadline, now_ms()) => etag,
                _ => return not_live(),
            };
            if generation_wanted.is_some_and(|wanted| wanted != generation(&etag)) {
                return Err(Error::Entry(Refusal::GenerationMismatch));
            }
            let path = self.entity_path(&row);
            let response = self.send(
                Verb::Delete,
                &path,
                &[("if-match", &etag)],
                None,
                &[],
                Repeat::IfRefused,
            )?;
            match response.status {
                204 => return Ok(true),
                // Written or deleted since it was read: read again.
                412 => {}
                404 if self.row_missing(Verb::Delete, &path, &response)? => {}
                _ => return Err(self.failure(Verb::Delete, &path, &response)),
            }
        }
        Err(Error::GaveUp(format!(
            "delete of `{key}`: gave up after {MAX_INCREMENT_ATTEMPTS} attempts, each lost to a concurrent write"
        )))
    }

    fn list_prefix(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<Page, Error> {
        let mut path = format!("/{}()?$filter=", self.inner.table);
        percent_encode_into(&mut path, &prefix_filter(&self.inner.partition, prefix));
        path.push_str("&$select=RowKey,");
        path.push_str(super::odata::DEADLINE);
        let _ = write!(path, "&$top={}", limit.clamp(1, MAX_PAGE));
        self.live_keys(path, cursor, "list", prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::azure_table::keys::decode_key;

    #[test]
    fn generations_are_63_bits_of_the_etag_hash() {
        let etag = "W/\"datetime'2026-12-03T17%3A56%3A18.9062235Z'\"";
        let g = generation(etag);
        assert_eq!(g, generation(etag));
        assert!(g < 1 << 63);
        assert_ne!(
            g,
            generation("W/\"datetime'2026-12-03T17%3A56%3A18.9062236Z'\"")
        );
        // SHA-256("") = e3b0c442 98fc1c14 …: its first 8 bytes, shifted right once.
        assert_eq!(generation(""), 0xe3b0_c442_98fc_1c14 >> 1);
    }

    #[test]
    fn tags_keep_the_etag_and_what_was_seen() {
        let etag = "W/\"datetime'2026-12-03T17%3A56%3A18.9062235Z'\"";
        for seen in [
            Seen::Live {
                expires_ms: None,
                etag,
            },
            Seen::Live {
                expires_ms: Some(1_764_000_000_123),
                etag,
            },
            Seen::Expired { etag },
            Seen::Expired {
                etag: "with spaces in it",
            },
        ] {
            assert_eq!(Seen::read(&seen.tag()), seen);
        }
        assert_eq!(
            Seen::Live {
                expires_ms: Some(5),
                etag: "e"
            }
            .tag(),
            "5 e"
        );
        // Anything else is a bare ETag of a live entity.
        for bare in ["W/\"1\"", "soon W/\"1\"", ""] {
            assert_eq!(
                Seen::read(bare),
                Seen::Live {
                    expires_ms: None,
                    etag: bare
                }
            );
        }
    }

    #[test]
    fn keys_the_service_would_refuse_are_too_large() {
        assert_eq!(entry_row("a/b"), Ok(String::from("a~2Fb")));
        assert!(entry_row(&"é".repeat(512)).is_ok());
        assert_eq!(
            entry_row(&"/".repeat(171)),
            Err(Error::Entry(Refusal::TooLarge {
                what: Limited::Key,
                limit: None,
                size: 171
            }))
        );
        // The byte limit stated is one no accepted key exceeds: 512 three-byte characters.
        assert!(entry_row(&"語".repeat(512)).is_ok());
        assert_eq!("語".repeat(512).len() as u64, MAX_KEY_BYTES);
    }

    /// Characters around every edge the escape and the bound handle.
    const AWKWARD: [&str; 24] = [
        "",
        "p",
        "p%1",
        "p%2",
        "p*1",
        "p~",
        "p~7E",
        "p/a/b",
        "p:c",
        "p#d",
        "p?e",
        "p'f",
        "p&",
        "p\\g",
        "pé1",
        "p語1",
        "p\u{D7FF}x",
        "p\u{E000}",
        "p\u{FFFF}",
        "p\u{FFFF}z",
        "p🦀",
        "p\u{10FFFF}",
        "q",
        "~",
    ];

    fn utf16_less(a: &str, b: &str) -> bool {
        a.encode_utf16().lt(b.encode_utf16())
    }

    /// Whether `field` is in `[lower, upper)` in code point order and in UTF-16 order, the
    /// two orders the service may keep.
    fn in_range(field: &str, lower: &str, upper: Option<&str>) -> [bool; 2] {
        [
            field >= lower && upper.is_none_or(|upper| field < upper),
            !utf16_less(field, lower) && upper.is_none_or(|upper| utf16_less(field, upper)),
        ]
    }

    #[test]
    fn an_escaped_prefix_bounds_exactly_the_escaped_keys() {
        let mut prefixes: Vec<String> = AWKWARD.iter().map(|k| String::from(*k)).collect();
        prefixes.extend(
            [
                "p%",
                "p*",
                "p/",
                "p/a",
                "p'",
                "p\\",
                "pé",
                "p語",
                "p\u{D7FF}",
                "p\u{FFFF}",
            ]
            .map(String::from),
        );
        for prefix in prefixes.iter().filter(|prefix| !prefix.is_empty()) {
            let lower = escape_field(prefix, |_| false);
            let upper = upper_bound(&lower);
            // Past a character that cannot rise in both orders alike the bound is looser,
            // and the adapter drops the keys outside the prefix.
            let exact = !lower
                .chars()
                .any(|c| matches!(c, '\u{D7FF}' | '\u{FFFF}' | char::MAX));
            for key in AWKWARD {
                let field = encode_key(key);
                assert_eq!(decode_key(&field).as_deref(), Some(key));
                let wanted = key.starts_with(prefix.as_str());
                for listed in in_range(&field, &lower, upper.as_deref()) {
                    assert!(
                        listed == wanted || (!exact && listed),
                        "key {key:?} ({field:?}), prefix {prefix:?} ({lower:?} .. {upper:?})"
                    );
                }
            }
        }
        // The empty prefix sets no bounds: every key, the empty one too.
        assert_eq!(prefix_filter("!b", ""), "PartitionKey eq '!b'");
    }

    #[test]
    fn upper_bounds_raise_the_last_character_that_can_rise() {
        assert_eq!(upper_bound("p"), Some(String::from("q")));
        assert_eq!(upper_bound("p~25"), Some(String::from("p~26")));
        assert_eq!(upper_bound("a&"), Some(String::from("a'")));
        assert_eq!(upper_bound("a\u{D7FF}"), Some(String::from("a\u{E000}")));
        assert_eq!(upper_bound("a\u{FFFF}"), Some(String::from("b")));
        assert_eq!(upper_bound("a\u{10FFFF}\u{FFFF}"), Some(String::from("b")));
        assert_eq!(upper_bound("a🦀"), Some(String::from("a🦁")));
        assert_eq!(upper_bound("\u{FFFF}"), None);
        assert_eq!(upper_bound(""), None);
    }

    #[test]
    fn prefix_filters_quote_their_literals() {
        assert_eq!(
            prefix_filter("!b", "p/'"),
            "PartitionKey eq '!b' and RowKey ge 'p~2F~27' and RowKey lt 'p~2F~28'"
        );
        assert_eq!(
            prefix_filter("!b", "a&"),
            "PartitionKey eq '!b' and RowKey ge 'a&' and RowKey lt 'a'''"
        );
        assert_eq!(prefix_filter("!b", ""), "PartitionKey eq '!b'");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
