//! Items: the key and item bodies of requests, the limits DynamoDB puts on them, versions
//! and expiry, and the readers of the answers that carry items.
//!
//! Fuzzed: [`read_item`], [`read_exists`], [`read_query`], [`read_sum`], [`read_deleted`]
//! and [`read_ack`] take any bytes.
//!
//! **Versions.** Every write stores `ver`, the decimal of a fresh 63-bit number (SHA-256 of
//! `clock::unique_token`): compare-and-swap conditions on it, and it is the generation of
//! `kvplug:keyvalue/entries` as it stands. An item written before (a hex token in `ver`) or by
//! another client (no `ver`) has generation 2^63 | 63 bits of SHA-256 of the token, or of the
//! value (docs/extension-design.md §2.4, §3.4).
//!
//! **Expiry.** `e` (a number, epoch seconds: DynamoDB's TTL attribute) is the first second the
//! item is gone in: it is live while `e` is absent or `e > now`. DynamoDB deletes expired
//! items days late and the emulators never do, so every read checks.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use super::json::{Attr, Base64, Number, Slashed, Text, Unreadable, read_answer};
use crate::backend::entries::{Limited, Refusal};
use crate::backend::{Page, Version, Versioned};
use crate::clock;
use crate::error::Error;

/// DynamoDB's limit on an item: the lengths of its attribute names and values.
const MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB's limit on a sort key's value.
const MAX_SORT_KEY_BYTES: usize = 1024;
/// The longest key: the sort key is `/` and the key.
pub const MAX_KEY_BYTES: usize = MAX_SORT_KEY_BYTES - 1;
/// The most a number attribute counts toward an item's size (38 significant digits, as
/// DynamoDB counts them: a byte per two digits and one more), so `e` is never undercounted.
const NUMBER_BYTES: usize = 21;
/// The longest `ver` kvplug writes: the decimal of a 63-bit number.
const VERSION_BYTES: usize = 19;
/// The bit that marks a generation derived from an item written without a decimal `ver`.
pub const LEGACY: u64 = 1 << 63;

/// Refuses a key whose sort key (`/` + the key) DynamoDB cannot store.
pub fn check_sort_key(key: &str) -> Result<(), Error> {
    if key.len() + 1 > MAX_SORT_KEY_BYTES {
        return Err(Error::Invalid(format!(
            "DynamoDB sort keys hold at most {MAX_SORT_KEY_BYTES} bytes: this key is {} bytes, and the adapter adds 1",
            key.len()
        )));
    }
    Ok(())
}

/// A key: `{"b":{"S":…},"k":{"S":"/…"}}`.
#[derive(Debug, Serialize)]
pub struct Key<'a> {
    b: Attr<'a>,
    k: Attr<'a>,
}

impl<'a> Key<'a> {
    /// The key of `key` in `partition`, refusing one DynamoDB cannot store.
    pub fn new(partition: &'a str, key: &'a str) -> Result<Self, Error> {
        check_sort_key(key)?;
        Ok(Key {
            b: Attr::S(partition),
            k: Attr::Sort(Slashed(key)),
        })
    }
}

/// A whole item holding a value at a fresh version, with the entry's metadata `m` and
/// expiry `e` if it has them.
#[derive(Debug, Serialize)]
pub struct Item<'a> {
    b: Attr<'a>,
    k: Attr<'a>,
    v: Attr<'a>,
    ver: Attr<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    m: Option<Attr<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<Attr<'a>>,
}

/// The bytes an item takes besides its value, as DynamoDB counts them (each attribute's name
/// and value): its key, `v`'s name, a `ver`, and `m` and `e` if it has them.
fn overhead(partition: &str, key: &str, metadata: &[u8], expires: bool) -> usize {
    let metadata = if metadata.is_empty() {
        0
    } else {
        1 + metadata.len()
    };
    let expiry = if expires { 1 + NUMBER_BYTES } else { 0 };
    1 + partition.len() + 1 + 1 + key.len() + 1 + 3 + VERSION_BYTES + metadata + expiry
}

/// The largest value an item of `partition` holds with an empty key, no metadata and an
/// expiry: what `get-limits` states. A longer key or metadata leaves less, which the write
/// of such an entry names (`too-large(value)` with the room left).
pub fn max_entry_value(partition: &str) -> usize {
    MAX_ITEM_BYTES.saturating_sub(overhead(partition, "", &[], true))
}

impl<'a> Item<'a> {
    /// The item of `key` holding `value` at a fresh version, without metadata or expiry;
    /// refuses one over DynamoDB's limits.
    pub fn new(partition: &'a str, key: &'a str, value: &'a [u8]) -> Result<Self, Error> {
        Self::at(partition, key, value, fresh_version().1)
    }

    /// The item at `version` (tests cannot read the clock the token comes from).
    fn at(
        partition: &'a str,
        key: &'a str,
        value: &'a [u8],
        version: String,
    ) -> Result<Self, Error> {
        // The key first: a key too long is the key's fault, not the value's.
        check_sort_key(key)?;
        let room = MAX_ITEM_BYTES.saturating_sub(overhead(partition, key, &[], false));
        if value.len() > room {
            return Err(Error::Invalid(format!(
                "DynamoDB items hold at most 400 KB: the value for `{key}` is {} bytes, and this key and bucket leave room for {room}",
                value.len()
            )));
        }
        Ok(Item {
            b: Attr::S(partition),
            k: Attr::Sort(Slashed(key)),
            v: Attr::B(Base64(value)),
            ver: Attr::Token(version),
            m: None,
            e: None,
        })
    }

    /// The item of an entry: `value` with `metadata` (none if empty), expiring at
    /// `expires_s` if given, at `version`. A value the item has no room for is
    /// `too-large(value)`, naming the room this key and metadata leave.
    pub fn entry(
        partition: &'a str,
        key: &'a str,
        value: &'a [u8],
        metadata: &'a [u8],
        expires_s: Option<i64>,
        version: String,
    ) -> Result<Self, Error> {
        check_sort_key(key)?;
        let taken = overhead(partition, key, metadata, expires_s.is_some());
        let room = MAX_ITEM_BYTES.saturating_sub(taken);
        if value.len() > room {
            return Err(Error::Entry(Refusal::TooLarge {
                what: Limited::Value,
                limit: Some(room as u64),
                size: value.len() as u64,
            }));
        }
        Ok(Item {
            b: Attr::S(partition),
            k: Attr::Sort(Slashed(key)),
            v: Attr::B(Base64(value)),
            ver: Attr::Token(version),
            m: (!metadata.is_empty()).then_some(Attr::B(Base64(metadata))),
            e: expires_s.map(|at| Attr::N(Number(at))),
        })
    }
}

/// 63 bits of SHA-256 of `bytes`.
fn hash63(bytes: &[u8]) -> u64 {
    let [a, b, c, d, e, f, g, h, ..] = crate::signing::sha256(bytes);
    u64::from_be_bytes([a, b, c, d, e, f, g, h]) & !LEGACY
}

/// A fresh version: the generation, and the decimal that `ver` stores.
pub fn fresh_version() -> (u64, String) {
    let generation = hash63(clock::unique_token().as_bytes());
    (generation, generation.to_string())
}

/// The generation of an item whose `ver` is `version` (empty: none) and whose value is
/// `value`: the number a decimal `ver` spells, else 2^63 | the hash of the token, or of the
/// value when there is no token.
pub fn generation_of(version: &str, value: &[u8]) -> u64 {
    match decimal_version(version) {
        Some(generation) => generation,
        None if version.is_empty() => LEGACY | hash63(value),
        None => LEGACY | hash63(version.as_bytes()),
    }
}

/// The generation a `ver` spells, if it is the canonical decimal of a 63-bit number (what
/// this adapter writes; the hex tokens of older ones always hold a `.`).
fn decimal_version(version: &str) -> Option<u64> {
    let generation: u64 = version.parse().ok()?;
    (generation & LEGACY == 0 && generation.to_string() == version).then_some(generation)
}

/// Whether an item expiring at `expires_s` (none: never) is live at `now_s`, the epoch
/// seconds now, rounded down: the same test as the condition `e > :now`.
pub fn live_at(expires_s: Option<i64>, now_s: i64) -> bool {
    expires_s.is_none_or(|at| at > now_s)
}

/// `ExpressionAttributeValues`: the placeholders requests use.
#[derive(Debug, Default, Serialize)]
pub struct Values<'a> {
    #[serde(rename = ":b", skip_serializing_if = "Option::is_none")]
    pub b: Option<Attr<'a>>,
    #[serde(rename = ":d", skip_serializing_if = "Option::is_none")]
    pub d: Option<Attr<'a>>,
    #[serde(rename = ":bound", skip_serializing_if = "Option::is_none")]
    pub bound: Option<Attr<'a>>,
    #[serde(rename = ":sum", skip_serializing_if = "Option::is_none")]
    pub sum: Option<Attr<'a>>,
    #[serde(rename = ":ver", skip_serializing_if = "Option::is_none")]
    pub ver: Option<Attr<'a>>,
    #[serde(rename = ":old", skip_serializing_if = "Option::is_none")]
    pub old: Option<Attr<'a>>,
    #[serde(rename = ":p", skip_serializing_if = "Option::is_none")]
    pub p: Option<Attr<'a>>,
    #[serde(rename = ":now", skip_serializing_if = "Option::is_none")]
    pub now: Option<Attr<'a>>,
}

impl Values<'_> {
    fn is_empty(&self) -> bool {
        [
            &self.b,
            &self.d,
            &self.bound,
            &self.sum,
            &self.ver,
            &self.old,
            &self.p,
            &self.now,
        ]
        .iter()
        .all(|value| value.is_none())
    }
}

/// The condition under which an item is live at `:now`.
pub const LIVE: &str = "attribute_not_exists(e) OR e > :now";
/// The condition under which a key holds no live item at `:now`: `add`'s.
pub const NOT_LIVE: &str = "attribute_not_exists(k) OR e <= :now";

/// What a compare-and-swap saw, as this backend's [`Version::Tag`] spells it: a live item
/// at its `ver` (empty: none), or an expired one, which reads as absent but is still there.
/// A write on an expired item is conditioned on its `ver` too, so a racing writer that
/// wrote the key meanwhile is never overwritten; a write on a live one also on its still
/// being live, so a handle taken before the expiry fails after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen<'a> {
    Absent,
    Live(&'a str),
    Expired(&'a str),
}

/// The tag of a live item (`ver` as is, unless it could be read as a marked one).
pub fn live_tag(version: &str) -> Version {
    if version.starts_with(['!', '=']) {
        Version::Tag(format!("={version}"))
    } else {
        Version::Tag(String::from(version))
    }
}

/// The tag of an expired item: `!` and its `ver`.
pub fn expired_tag(version: &str) -> Version {
    Version::Tag(format!("!{version}"))
}

impl<'a> Seen<'a> {
    /// What `version` (as [`live_tag`] and [`expired_tag`] write it) says was seen.
    pub fn of(version: &'a Version) -> Self {
        match version {
            Version::Absent => Seen::Absent,
            Version::Tag(tag) => match (tag.strip_prefix('!'), tag.strip_prefix('=')) {
                (Some(expired), _) => Seen::Expired(expired),
                (None, Some(live)) => Seen::Live(live),
                (None, None) => Seen::Live(tag),
            },
        }
    }

    /// Whether a live item was seen.
    pub fn is_live(self) -> bool {
        matches!(self, Seen::Live(_))
    }
}

/// A `ConditionExpression` and the placeholders it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Condition<'a> {
    pub expression: &'static str,
    /// The `ver` for `:old`.
    pub old: Option<&'a str>,
    /// Whether it uses `:now`.
    pub now: bool,
}

impl<'a> Condition<'a> {
    /// `:old` and `:now` as the expression needs them, `now_s` being the epoch seconds now.
    pub fn values(&self, now_s: i64) -> Values<'a> {
        Values {
            old: self.old.map(Attr::S),
            now: self.now.then_some(Attr::N(Number(now_s))),
            ..Values::default()
        }
    }
}

/// The `ConditionExpression` that holds while a key is as `expected` saw it.
pub fn condition(expected: &Version) -> Condition<'_> {
    let (expression, old, now) = match Seen::of(expected) {
        Seen::Absent => ("attribute_not_exists(k)", None, false),
        // Written by another client, without a version: still there, still without one.
        Seen::Live("") => (
            "attribute_exists(k) AND attribute_not_exists(ver) AND (attribute_not_exists(e) OR e > :now)",
            None,
            true,
        ),
        Seen::Live(tag) => (
            "ver = :old AND (attribute_not_exists(e) OR e > :now)",
            Some(tag),
            true,
        ),
        Seen::Expired("") => (
            "attribute_exists(k) AND attribute_not_exists(ver) AND e <= :now",
            None,
            true,
        ),
        Seen::Expired(tag) => ("ver = :old AND e <= :now", Some(tag), true),
    };
    Condition {
        expression,
        old,
        now,
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetItem<'a> {
    pub table_name: &'a str,
    pub key: Key<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projection_expression: Option<&'a str>,
    pub consistent_read: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutItem<'a> {
    pub table_name: &'a str,
    pub item: Item<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition_expression: Option<&'a str>,
    #[serde(skip_serializing_if = "Values::is_empty")]
    pub expression_attribute_values: Values<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteItem<'a> {
    pub table_name: &'a str,
    pub key: Key<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition_expression: Option<&'a str>,
    #[serde(skip_serializing_if = "Values::is_empty")]
    pub expression_attribute_values: Values<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_values: Option<&'a str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Query<'a> {
    pub table_name: &'a str,
    pub key_condition_expression: &'a str,
    /// Applied after `Limit`: a page may come back short, even empty, before the last.
    pub filter_expression: &'a str,
    pub expression_attribute_values: Values<'a>,
    pub projection_expression: &'a str,
    pub consistent_read: bool,
    pub limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclusive_start_key: Option<Key<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateItem<'a> {
    pub table_name: &'a str,
    pub key: Key<'a>,
    pub update_expression: &'a str,
    pub condition_expression: &'a str,
    pub expression_attribute_values: Values<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_values: Option<&'a str>,
}

impl<'a> Values<'a> {
    /// `increment`'s ADD: `:d`, the bound the stored number must not pass, a fresh `:ver`,
    /// and `:now`, which the item must still be live at.
    pub fn add(delta: i64, bound: i64, now_s: i64) -> Self {
        Values {
            d: Some(Attr::N(Number(delta))),
            bound: Some(Attr::N(Number(bound))),
            ver: Some(Attr::Token(fresh_version().1)),
            now: Some(Attr::N(Number(now_s))),
            ..Values::default()
        }
    }
}

/// An item as answers carry it: only the attributes kvplug writes are read.
#[derive(Debug, Default, Deserialize)]
pub struct ItemAnswer<'a> {
    #[serde(borrow)]
    pub k: Option<AttrAnswer<'a>>,
    #[serde(borrow)]
    v: Option<AttrAnswer<'a>>,
    #[serde(borrow)]
    n: Option<AttrAnswer<'a>>,
    #[serde(borrow)]
    ver: Option<AttrAnswer<'a>>,
    #[serde(borrow)]
    m: Option<AttrAnswer<'a>>,
    #[serde(borrow)]
    e: Option<AttrAnswer<'a>>,
}

/// An attribute value as answers carry it.
#[derive(Debug, Default, Deserialize)]
pub struct AttrAnswer<'a> {
    #[serde(borrow, rename = "S")]
    pub s: Option<Text<'a>>,
    #[serde(borrow, rename = "N")]
    n: Option<Text<'a>>,
    #[serde(borrow, rename = "B")]
    b: Option<Text<'a>>,
}

impl ItemAnswer<'_> {
    /// The value: the binary `v`, or the number `n` as its ASCII decimal.
    pub fn value(&self) -> Result<Vec<u8>, &'static str> {
        if let Some(v) = &self.v {
            let text = v.b.as_ref().ok_or("`v` is not binary")?;
            return kvplug_codec::base64::decode(&text.0).map_err(|_| "`v` is not base64");
        }
        if let Some(n) = &self.n {
            let text = n.n.as_ref().ok_or("`n` is not a number")?;
            return Ok(text.0.as_bytes().to_vec());
        }
        Err("an item with neither `v` nor `n` (not written by kvplug)")
    }

    /// Whether the item holds a value kvplug reads (`v` or `n`), well formed or not.
    #[cfg(feature = "feed")]
    pub fn has_value(&self) -> bool {
        self.v.is_some() || self.n.is_some()
    }

    /// The version token; empty for an item written without one.
    pub fn version(&self) -> Result<String, &'static str> {
        match &self.ver {
            None => Ok(String::new()),
            Some(ver) => ver
                .s
                .as_ref()
                .map(|s| String::from(&*s.0))
                .ok_or("`ver` is not a string"),
        }
    }

    /// The key: the sort key without the adapter's `/`.
    pub fn key(&self) -> Result<String, &'static str> {
        key_of_sort(self.k.as_ref())
    }

    /// The entry's metadata: the binary `m`, empty when there is none.
    pub fn metadata(&self) -> Result<Vec<u8>, &'static str> {
        match &self.m {
            None => Ok(Vec::new()),
            Some(m) => {
                let text = m.b.as_ref().ok_or("`m` is not binary")?;
                kvplug_codec::base64::decode(&text.0).map_err(|_| "`m` is not base64")
            }
        }
    }

    /// The expiry `e`, in epoch seconds; `None` when the item never expires.
    pub fn expires(&self) -> Result<Option<i64>, &'static str> {
        let Some(e) = &self.e else {
            return Ok(None);
        };
        let text = e.n.as_ref().ok_or("`e` is not a number")?;
        text.0
            .parse::<i64>()
            .map(Some)
            .map_err(|_| "`e` is not a whole number of seconds")
    }

    fn stored(&self) -> Result<Stored, &'static str> {
        Ok(Stored {
            value: self.value()?,
            metadata: self.metadata()?,
            version: self.version()?,
            expires_s: self.expires()?,
        })
    }
}

/// An item as `GetItem` read it, live or expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub value: Vec<u8>,
    /// Empty when there is none.
    pub metadata: Vec<u8>,
    /// `ver`; empty for an item written without one.
    pub version: String,
    /// `e`, epoch seconds.
    pub expires_s: Option<i64>,
}

impl Stored {
    pub fn is_live(&self, now_s: i64) -> bool {
        live_at(self.expires_s, now_s)
    }

    pub fn generation(&self) -> u64 {
        generation_of(&self.version, &self.value)
    }

    /// The version a write on this item is conditioned on: the live tag, or once expired
    /// the expired one.
    pub fn version_at(&self, now_s: i64) -> Version {
        if self.is_live(now_s) {
            live_tag(&self.version)
        } else {
            expired_tag(&self.version)
        }
    }

    /// The deadline as `kvplug_protocol::entries` takes it, in milliseconds.
    pub fn expires_ms(&self) -> Option<u64> {
        self.expires_s
            .map(|at| u64::try_from(at).unwrap_or(0).saturating_mul(1000))
    }

    /// What compare-and-swap reads: the value and the live tag, or, once expired, no value
    /// and the expired tag.
    pub fn versioned(self, now_s: i64) -> Versioned {
        let version = self.version_at(now_s);
        let value = self.is_live(now_s).then_some(self.value);
        Versioned { value, version }
    }
}

/// The key an item's sort key `k` spells: the key after the adapter's `/`.
pub fn key_of_sort(k: Option<&AttrAnswer<'_>>) -> Result<String, &'static str> {
    k.and_then(|k| k.s.as_ref())
        .and_then(|sort| sort.0.strip_prefix('/'))
        .map(String::from)
        .ok_or("an item whose sort key is not `/` and a key (not written by kvplug)")
}

/// Reads `GetItem`'s answer: the item, live or expired, or that the key is absent.
pub fn read_item(body: &[u8]) -> Result<Option<Stored>, Unreadable> {
    match read_answer(body)?.item {
        None => Ok(None),
        Some(item) => Ok(Some(item.stored()?)),
    }
}

/// Reads the answer of `GetItem` projected on `k, e`: `None` if the key is absent, else
/// its expiry.
pub fn read_exists(body: &[u8]) -> Result<Option<Option<i64>>, Unreadable> {
    match read_answer(body)?.item {
        None => Ok(None),
        Some(item) => Ok(Some(item.expires()?)),
    }
}

/// Reads the answer of `DeleteItem` with `ReturnValues: ALL_OLD`: `None` if nothing was
/// deleted, else the expiry of what was.
pub fn read_deleted(body: &[u8]) -> Result<Option<Option<i64>>, Unreadable> {
    match read_answer(body)?.attributes {
        None => Ok(None),
        Some(item) => Ok(Some(item.expires()?)),
    }
}

/// Reads a `Query` answer: a page of keys, and where the next page starts.
pub fn read_query(body: &[u8]) -> Result<Page, Unreadable> {
    let answer = read_answer(body)?;
    let items = answer
        .items
        .ok_or("a Query answer without its `Items` list")?;
    let keys = items
        .iter()
        .map(ItemAnswer::key)
        .collect::<Result<Vec<String>, _>>()?;
    // DynamoDB names where to go on when it stopped early: at `Limit`, or at 1 MB.
    let cursor = answer
        .last_evaluated_key
        .as_ref()
        .map(ItemAnswer::key)
        .transpose()?;
    Ok(Page { keys, cursor })
}

/// Reads `increment`'s `UpdateItem` answer: the new number.
pub fn read_sum(body: &[u8]) -> Result<i64, Unreadable> {
    read_answer(body)?
        .attributes
        .and_then(|a| a.n)
        .and_then(|n| n.n)
        .and_then(|n| n.0.parse::<i64>().ok())
        .ok_or_else(|| "no new `n` in the answer".into())
}

/// Reads the answer of a write whose answer says nothing but that it is DynamoDB's.
pub fn read_ack(body: &[u8]) -> Result<(), Unreadable> {
    read_answer(body).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::dynamodb::json::to_json;

    fn item(json: &str) -> ItemAnswer<'_> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn items_read_as_bytes_or_decimal() {
        let stored = item(r#"{"v":{"B":"aGk="},"ver":{"S":"t"}}"#);
        assert_eq!(stored.value(), Ok(b"hi".to_vec()));
        assert_eq!(stored.version(), Ok(String::from("t")));
        let counter = item(r#"{"n":{"N":"-42"}}"#);
        assert_eq!(counter.value(), Ok(b"-42".to_vec()));
        assert_eq!(counter.version(), Ok(String::new()));
        assert!(item(r#"{"x":{"S":"?"}}"#).value().is_err());
        let keyed = item(r#"{"k":{"S":"/a/b"}}"#);
        assert_eq!(keyed.key(), Ok(String::from("a/b")));
        assert!(item(r#"{"k":{"S":"a"}}"#).key().is_err());
        // Escaped strings are decoded.
        assert_eq!(
            item(r#"{"k":{"S":"\/a\"\u00e9"}}"#).key(),
            Ok(String::from("a\"é"))
        );
    }

    #[test]
    fn requests_are_dynamodbs_json() {
        let text = |body: Vec<u8>| String::from_utf8(body).unwrap();
        let get = to_json(&GetItem {
            table_name: "kvplug",
            key: Key::new("!b", "k\"").unwrap(),
            projection_expression: Some("k"),
            consistent_read: true,
        })
        .unwrap();
        assert_eq!(
            text(get),
            r#"{"TableName":"kvplug","Key":{"b":{"S":"!b"},"k":{"S":"/k\""}},"ProjectionExpression":"k","ConsistentRead":true}"#
        );
        let tag = Version::Tag(String::from("t1"));
        let condition = condition(&tag);
        let update = to_json(&UpdateItem {
            table_name: "kvplug",
            key: Key::new("!b", "n").unwrap(),
            update_expression: "SET n = :sum, ver = :ver REMOVE v",
            condition_expression: condition.expression,
            expression_attribute_values: Values {
                sum: Some(Attr::N(Number(-5))),
                ..condition.values(1_700_000_000)
            },
            return_values: None,
        })
        .unwrap();
        assert_eq!(
            text(update),
            r#"{"TableName":"kvplug","Key":{"b":{"S":"!b"},"k":{"S":"/n"}},"UpdateExpression":"SET n = :sum, ver = :ver REMOVE v","ConditionExpression":"ver = :old AND (attribute_not_exists(e) OR e > :now)","ExpressionAttributeValues":{":sum":{"N":"-5"},":old":{"S":"t1"},":now":{"N":"1700000000"}}}"#
        );
        let put = text(
            to_json(&PutItem {
                table_name: "kvplug",
                item: Item::at("!b", "k", b"hi", String::from("t0")).unwrap(),
                condition_expression: None,
                expression_attribute_values: Values::default(),
            })
            .unwrap(),
        );
        assert_eq!(
            put,
            r#"{"TableName":"kvplug","Item":{"b":{"S":"!b"},"k":{"S":"/k"},"v":{"B":"aGk="},"ver":{"S":"t0"}}}"#
        );
    }

    #[test]
    fn keys_and_items_over_dynamodbs_limits_are_refused() {
        assert!(Key::new("!b", &"k".repeat(1023)).is_ok());
        let Err(Error::Invalid(message)) = Key::new("!b", &"k".repeat(1024)) else {
            panic!("1025 bytes of sort key");
        };
        assert!(message.contains("1024 bytes"), "{message}");
        let token = || String::from("18c2b1e3a.1f.2a.0");
        assert!(Item::at("!b", "k", &alloc::vec![0; 400 * 1024 - 100], token()).is_ok());
        let Err(Error::Invalid(message)) =
            Item::at("!b", "k", &alloc::vec![0; 400 * 1024], token())
        else {
            panic!("400 KiB of value");
        };
        assert!(message.contains("400 KB"), "{message}");
    }

    #[test]
    fn answers_are_read_as_before() {
        assert_eq!(read_item(br#"{}"#), Ok(None));
        assert_eq!(
            read_item(br#"{"Item":{"v":{"B":"aGk="},"ver":{"S":"t"}}}"#),
            Ok(Some(Stored {
                value: b"hi".to_vec(),
                metadata: Vec::new(),
                version: String::from("t"),
                expires_s: None,
            }))
        );
        assert_eq!(read_exists(br#"{"Item":{"k":{"S":"/a"}}}"#), Ok(Some(None)));
        assert_eq!(
            read_exists(br#"{"Item":{"k":{"S":"/a"},"e":{"N":"12"}}}"#),
            Ok(Some(Some(12)))
        );
        assert_eq!(read_exists(br#"{}"#), Ok(None));
        assert_eq!(
            read_query(br#"{"Items":[{"k":{"S":"/a"}}],"LastEvaluatedKey":{"b":{"S":"!b"},"k":{"S":"/a"}},"Count":1}"#),
            Ok(Page {
                keys: alloc::vec![String::from("a")],
                cursor: Some(String::from("a")),
            })
        );
        assert_eq!(
            read_query(br#"{"Count":0}"#),
            Err(Unreadable::from("a Query answer without its `Items` list"))
        );
        assert_eq!(read_sum(br#"{"Attributes":{"n":{"N":"+7"}}}"#), Ok(7));
        assert_eq!(
            read_sum(br#"{"Attributes":{"n":{"N":"7.0"}}}"#),
            Err(Unreadable::from("no new `n` in the answer"))
        );
        for foreign in [&b"<html>"[..], b"[]", b"\"ok\"", b"", b"{} {}"] {
            assert_eq!(read_ack(foreign), Err(Unreadable::Foreign));
        }
        assert_eq!(read_ack(br#"{"ConsumedCapacity":[1]}"#), Ok(()));
    }

    #[test]
    fn a_field_twice_is_malformed() {
        for body in [
            &br#"{"Item":{},"Item":{}}"#[..],
            br#"{"Item":{"v":{"B":"aGk="},"v":{"B":"aGk="}}}"#,
            br#"{"Item":{"ver":{"S":"a","S":"b"},"v":{"B":""}}}"#,
        ] {
            let Err(Unreadable::Malformed(detail)) = read_item(body) else {
                panic!("{}", String::from_utf8_lossy(body));
            };
            assert!(detail.starts_with("duplicate field"), "{detail}");
        }
    }

    #[test]
    fn entries_read_with_metadata_and_expiry() {
        let body = br#"{"Item":{"b":{"S":"!b"},"k":{"S":"/k"},"v":{"B":"aGk="},"ver":{"S":"42"},"m":{"B":"bWV0YQ=="},"e":{"N":"1700000001"}}}"#;
        let stored = read_item(body).unwrap().unwrap();
        assert_eq!(
            stored,
            Stored {
                value: b"hi".to_vec(),
                metadata: b"meta".to_vec(),
                version: String::from("42"),
                expires_s: Some(1_700_000_001),
            }
        );
        assert_eq!(stored.generation(), 42);
        assert_eq!(stored.expires_ms(), Some(1_700_000_001_000));
        // Live up to the second before `e`, gone from `e` on.
        assert!(stored.is_live(1_700_000_000));
        assert!(!stored.is_live(1_700_000_001));
        assert_eq!(
            stored.clone().versioned(1_700_000_000),
            Versioned {
                value: Some(b"hi".to_vec()),
                version: Version::Tag(String::from("42")),
            }
        );
        assert_eq!(
            stored.versioned(1_700_000_001),
            Versioned {
                value: None,
                version: Version::Tag(String::from("!42")),
            }
        );
        // A counter keeps its metadata; an `e` that is not a whole number is malformed.
        let counter = read_item(br#"{"Item":{"n":{"N":"7"},"ver":{"S":"1"},"m":{"B":""}}}"#);
        assert_eq!(counter.map(|s| s.map(|s| s.value)), Ok(Some(b"7".to_vec())));
        for bad in [
            &br#"{"Item":{"v":{"B":""},"e":{"N":"1.5"}}}"#[..],
            br#"{"Item":{"v":{"B":""},"e":{"S":"1"}}}"#,
            br#"{"Item":{"v":{"B":""},"m":{"S":"x"}}}"#,
            br#"{"Item":{"v":{"B":""},"m":{"B":"!"}}}"#,
        ] {
            assert!(
                matches!(read_item(bad), Err(Unreadable::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            read_item(br#"{"Item":{"v":{"B":""},"e":{"N":"-3"}}}"#)
                .unwrap()
                .unwrap()
                .expires_ms(),
            Some(0)
        );
    }

    #[test]
    fn deletes_say_what_they_deleted() {
        assert_eq!(read_deleted(br#"{}"#), Ok(None));
        assert_eq!(
            read_deleted(br#"{"Attributes":{"k":{"S":"/a"},"v":{"B":""}}}"#),
            Ok(Some(None))
        );
        assert_eq!(
            read_deleted(br#"{"Attributes":{"k":{"S":"/a"},"n":{"N":"1"},"e":{"N":"9"}}}"#),
            Ok(Some(Some(9)))
        );
        assert_eq!(read_deleted(b"[]"), Err(Unreadable::Foreign));
    }

    #[test]
    fn generations_are_the_decimal_ver_or_derived_from_older_items() {
        assert_eq!(generation_of("0", b"x"), 0);
        assert_eq!(generation_of("9223372036854775807", b"x"), (1 << 63) - 1);
        // Not this adapter's decimal: a hex token, a value without `ver`, a number too wide
        // or not canonical. Each is derived, with the top bit set, and stable.
        for (version, value) in [
            ("18c2b1e3a.1f.2a.0", &b"x"[..]),
            ("", b"x"),
            ("9223372036854775808", b"x"),
            ("007", b"x"),
            ("+7", b"x"),
        ] {
            let generation = generation_of(version, value);
            assert_eq!(generation & LEGACY, LEGACY, "{version}");
            assert_eq!(generation, generation_of(version, value));
        }
        assert_ne!(generation_of("", b"x"), generation_of("", b"y"));
        assert_ne!(generation_of("a.b", b"x"), generation_of("a.c", b"x"));
        // SHA-256("abc") starts ba7816bf8f01cfea.
        assert_eq!(hash63(b"abc"), 0xba78_16bf_8f01_cfea & !LEGACY);
    }

    #[test]
    fn conditions_follow_what_was_seen() {
        let cases = [
            (Version::Absent, "attribute_not_exists(k)", None),
            (
                Version::Tag(String::from("7")),
                "ver = :old AND (attribute_not_exists(e) OR e > :now)",
                Some("7"),
            ),
            (
                Version::Tag(String::new()),
                "attribute_exists(k) AND attribute_not_exists(ver) AND (attribute_not_exists(e) OR e > :now)",
                None,
            ),
            (expired_tag("7"), "ver = :old AND e <= :now", Some("7")),
            (
                expired_tag(""),
                "attribute_exists(k) AND attribute_not_exists(ver) AND e <= :now",
                None,
            ),
            // A foreign `ver` that looks like a mark stays a live one.
            (
                live_tag("!x"),
                "ver = :old AND (attribute_not_exists(e) OR e > :now)",
                Some("!x"),
            ),
        ];
        for (version, expression, old) in cases {
            let c = condition(&version);
            assert_eq!((c.expression, c.old), (expression, old), "{version:?}");
            assert_eq!(c.now, version != Version::Absent);
        }
        assert_eq!(live_tag("7"), Version::Tag(String::from("7")));
    }

    #[test]
    fn entry_items_carry_metadata_and_expiry_within_400_kb() {
        let text = |body: Vec<u8>| String::from_utf8(body).unwrap();
        let item = Item::entry(
            "!b",
            "k",
            b"hi",
            b"meta",
            Some(1_700_000_001),
            String::from("5"),
        )
        .unwrap();
        assert_eq!(
            text(to_json(&item).unwrap()),
            r#"{"b":{"S":"!b"},"k":{"S":"/k"},"v":{"B":"aGk="},"ver":{"S":"5"},"m":{"B":"bWV0YQ=="},"e":{"N":"1700000001"}}"#
        );
        // No metadata, no expiry: neither attribute.
        let plain = Item::entry("!b", "k", b"hi", b"", None, String::from("5")).unwrap();
        assert_eq!(
            text(to_json(&plain).unwrap()),
            r#"{"b":{"S":"!b"},"k":{"S":"/k"},"v":{"B":"aGk="},"ver":{"S":"5"}}"#
        );
        // The stated limit fits with an empty key and an expiry, one byte more does not.
        let max = max_entry_value("!b");
        // `b` and `!b`, `k` and `/`, `v`, `ver` and 19 digits, `e` and a number.
        assert_eq!(max, 400 * 1024 - (3 + 2 + 1 + 22 + 22));
        let value = alloc::vec![0; max];
        assert!(Item::entry("!b", "", &value, b"", Some(1), String::from("5")).is_ok());
        let over = alloc::vec![0; max + 1];
        assert!(matches!(
            Item::entry("!b", "", &over, b"", Some(1), String::from("5")),
            Err(Error::Entry(Refusal::TooLarge { what: Limited::Value, limit: Some(limit), size }))
                if limit == max as u64 && size == max as u64 + 1
        ));
        // Metadata and a longer key leave less room, and the refusal says how much.
        let metadata = alloc::vec![1; 2000];
        let Err(Error::Entry(Refusal::TooLarge { limit, .. })) =
            Item::entry("!b", "key", &value, &metadata, Some(1), String::from("5"))
        else {
            panic!("no room for 2,000 bytes of metadata");
        };
        assert_eq!(limit, Some(max as u64 - 2001 - 3));
        assert!(matches!(
            Item::entry("!b", &"k".repeat(1024), b"", b"", None, String::from("5")),
            Err(Error::Invalid(_))
        ));
    }
}
