//! Items: the key and item bodies of requests, the limits DynamoDB puts on them, and the
//! readers of the answers that carry items.
//!
//! Fuzzed: [`read_item`], [`read_exists`], [`read_query`], [`read_sum`] and [`read_ack`]
//! take any bytes.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use super::json::{Attr, Base64, Number, Slashed, Text, Unreadable, read_answer};
use crate::backend::{Page, Version, Versioned};
use crate::clock;
use crate::error::Error;

/// DynamoDB's limit on an item: the lengths of its attribute names and values.
const MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB's limit on a sort key's value.
const MAX_SORT_KEY_BYTES: usize = 1024;

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

/// A whole item holding a value at a fresh version.
#[derive(Debug, Serialize)]
pub struct Item<'a> {
    b: Attr<'a>,
    k: Attr<'a>,
    v: Attr<'a>,
    ver: Attr<'a>,
}

impl<'a> Item<'a> {
    /// The item of `key` holding `value` at a fresh version; refuses one over DynamoDB's
    /// limits.
    pub fn new(partition: &'a str, key: &'a str, value: &'a [u8]) -> Result<Self, Error> {
        Self::at(partition, key, value, clock::unique_token())
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
        // The item's size as DynamoDB counts it: each attribute's name and value.
        let size = 1 + partition.len() + 1 + 1 + key.len() + 1 + value.len() + 3 + version.len();
        if size > MAX_ITEM_BYTES {
            let room = value.len().saturating_sub(size - MAX_ITEM_BYTES);
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
        })
    }
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
        ]
        .iter()
        .all(|value| value.is_none())
    }
}

/// The `ConditionExpression` that holds while a key is at `expected`, and the value of its
/// `:old` placeholder.
pub fn condition(expected: &Version) -> (&'static str, Option<&str>) {
    match expected {
        Version::Absent => ("attribute_not_exists(k)", None),
        // Written by another client, without a version: still there, still without one.
        Version::Tag(tag) if tag.is_empty() => {
            ("attribute_exists(k) AND attribute_not_exists(ver)", None)
        }
        Version::Tag(tag) => ("ver = :old", Some(tag)),
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
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Query<'a> {
    pub table_name: &'a str,
    pub key_condition_expression: &'a str,
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
    /// `increment`'s ADD: `:d`, the bound the stored number must not pass, a fresh `:ver`.
    pub fn add(delta: i64, bound: i64) -> Self {
        Values {
            d: Some(Attr::N(Number(delta))),
            bound: Some(Attr::N(Number(bound))),
            ver: Some(Attr::Token(clock::unique_token())),
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

    fn versioned(&self) -> Result<Versioned, &'static str> {
        Ok(Versioned {
            value: Some(self.value()?),
            version: Version::Tag(self.version()?),
        })
    }
}

/// The key an item's sort key `k` spells: the key after the adapter's `/`.
pub fn key_of_sort(k: Option<&AttrAnswer<'_>>) -> Result<String, &'static str> {
    k.and_then(|k| k.s.as_ref())
        .and_then(|sort| sort.0.strip_prefix('/'))
        .map(String::from)
        .ok_or("an item whose sort key is not `/` and a key (not written by kvplug)")
}

/// Reads `GetItem`'s answer: the value and version, or that the key is absent.
pub fn read_item(body: &[u8]) -> Result<Versioned, Unreadable> {
    match read_answer(body)?.item {
        None => Ok(Versioned::absent()),
        Some(item) => Ok(item.versioned()?),
    }
}

/// Reads the answer of `GetItem` with a projection: whether the key is there.
pub fn read_exists(body: &[u8]) -> Result<bool, Unreadable> {
    Ok(read_answer(body)?.item.is_some())
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
        let (condition, old) = condition(&tag);
        let update = to_json(&UpdateItem {
            table_name: "kvplug",
            key: Key::new("!b", "n").unwrap(),
            update_expression: "SET n = :sum, ver = :ver REMOVE v",
            condition_expression: condition,
            expression_attribute_values: Values {
                sum: Some(Attr::N(Number(-5))),
                old: old.map(Attr::S),
                ..Values::default()
            },
            return_values: None,
        })
        .unwrap();
        assert_eq!(
            text(update),
            r#"{"TableName":"kvplug","Key":{"b":{"S":"!b"},"k":{"S":"/n"}},"UpdateExpression":"SET n = :sum, ver = :ver REMOVE v","ConditionExpression":"ver = :old","ExpressionAttributeValues":{":sum":{"N":"-5"},":old":{"S":"t1"}}}"#
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
        assert_eq!(read_item(br#"{}"#), Ok(Versioned::absent()));
        assert_eq!(
            read_item(br#"{"Item":{"v":{"B":"aGk="},"ver":{"S":"t"}}}"#),
            Ok(Versioned {
                value: Some(b"hi".to_vec()),
                version: Version::Tag(String::from("t")),
            })
        );
        assert_eq!(read_exists(br#"{"Item":{"k":{"S":"/a"}}}"#), Ok(true));
        assert_eq!(read_exists(br#"{}"#), Ok(false));
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
}
