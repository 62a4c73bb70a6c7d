//! The etcd gateway's answers, errors included, read with serde into one [`Answer`].
//!
//! Fuzzed: [`read_answer`] and [`error_message`] take any bytes (fuzz/fuzz_targets/etcd.rs).

use alloc::borrow::Cow;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use kvplug_codec::base64;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::backend::entry_swap::Stored;
pub use crate::backend::json::Unreadable;
use crate::backend::json::{Found, Loose, Text, describe};

pub const NOT_BASE64: &str = "`value` is not base64";
use crate::backend::{Version, Versioned};

// The gateway's answers, errors included, are all read into one `Answer`: each operation
// reads the fields it needs. Every answer but an error holds the cluster's `header`;
// fields read leniently before serde (`count`, `more`, `succeeded`, revisions, `message`)
// are `Loose`, so a wrong type still counts as absent.

/// An answer of `range`, `put`, `deleterange` or `txn` (or a transaction's read), or an
/// error answer (`{"error": …, "message": …, "code": <gRPC code>}`).
#[derive(Debug, Deserialize)]
pub struct Answer<'a> {
    #[serde(borrow)]
    header: Option<Head<'a>>,
    #[serde(borrow, default)]
    kvs: Vec<KeyValue<'a>>,
    #[serde(borrow)]
    more: Option<Loose<'a>>,
    #[serde(borrow)]
    count: Option<Loose<'a>>,
    #[serde(borrow)]
    succeeded: Option<Loose<'a>>,
    /// A transaction's; absent when there were none.
    #[serde(borrow, default)]
    responses: Vec<ResponseOp<'a>>,
    #[serde(borrow)]
    message: Option<Loose<'a>>,
    /// `deleterange`'s count (omitted when 0).
    #[serde(borrow)]
    deleted: Option<Loose<'a>>,
    /// `lease/grant`'s lease.
    #[serde(borrow, rename = "ID")]
    id: Option<Loose<'a>>,
}

/// The cluster's `header`: only an object, of which only `revision` is read (after a write,
/// the revision it made).
#[derive(Debug, Default)]
struct Head<'a> {
    revision: Option<Loose<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Head<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = Head<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("etcd's header object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut head = Head::default();
                while let Some(Text(name)) = map.next_key::<Text<'de>>()? {
                    if name != "revision" {
                        map.next_value::<IgnoredAny>()?;
                    } else if head.revision.is_some() {
                        return Err(serde::de::Error::duplicate_field("revision"));
                    } else {
                        head.revision = Some(map.next_value()?);
                    }
                }
                Ok(head)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

#[derive(Debug, Deserialize)]
struct KeyValue<'a> {
    key: Option<String>,
    /// The gateway omits an empty value.
    #[serde(borrow, default)]
    value: Cow<'a, str>,
    #[serde(borrow)]
    mod_revision: Option<Loose<'a>>,
    /// The key's lease (an int64 as a string), omitted when it has none.
    #[serde(borrow)]
    lease: Option<Loose<'a>>,
}

#[derive(Debug, Deserialize)]
struct ResponseOp<'a> {
    #[serde(borrow)]
    response_range: Option<Answer<'a>>,
    #[serde(borrow)]
    response_delete_range: Option<Answer<'a>>,
}

/// What is left to read of an answer that does not parse: whether it is etcd's at all.
#[derive(Debug, Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    header: Option<Loose<'a>>,
}

/// Reads an answer of `range`, `put`, `deleterange` or `txn`. A document that does not
/// parse is still etcd's (and so `Malformed`, not `Foreign`) if it is an object with the
/// `header` object.
pub fn read_answer(body: &[u8]) -> Result<Answer<'_>, Unreadable> {
    let text = object_text(body).ok_or(Unreadable::Foreign)?;
    let error = match serde_json::from_str::<Answer<'_>>(text) {
        Ok(answer) if answer.header.is_some() => return Ok(answer),
        Err(e) if e.is_data() => e,
        _ => return Err(Unreadable::Foreign),
    };
    match serde_json::from_str::<Header<'_>>(text) {
        Ok(ack) if headed(&ack.header) => Err(Unreadable::Malformed(describe(&error))),
        // Only `header` is read: the one field that can be there twice.
        Err(e) if e.is_data() => Err(Unreadable::Malformed(describe(&e))),
        _ => Err(Unreadable::Foreign),
    }
}

/// The `message` of the gateway's error answer; `None` when the body is not a JSON object or
/// has no message as a string, and an error when the body names a field twice (or holds one
/// of the gateway's fields with the wrong type): what it says is ambiguous.
pub fn error_message(body: &[u8]) -> Result<Option<String>, String> {
    let Some(text) = object_text(body) else {
        return Ok(None);
    };
    match serde_json::from_str::<Answer<'_>>(text) {
        Ok(answer) => Ok(answer.message.and_then(|m| m.as_str().map(String::from))),
        Err(e) if e.is_data() => Err(describe(&e)),
        Err(_) => Ok(None),
    }
}

/// What an error answer says: etcd's `message`, or the body itself when it is not etcd's JSON
/// (a proxy's page), to be scrubbed and cut by the caller.
pub fn error_reason(body: &[u8]) -> String {
    match error_message(body) {
        Ok(Some(message)) => message,
        _ => String::from_utf8_lossy(body).into_owned(),
    }
}

/// `body` as text if it can only be a JSON object (or no JSON at all): it starts with `{`.
/// Serde's derived structs also take an array, field by field, and a foreign `[{}]` must
/// not pass for etcd's answer.
fn object_text(body: &[u8]) -> Option<&str> {
    let text = core::str::from_utf8(body).ok()?;
    text.trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
        .then_some(text)
}

fn headed(header: &Option<Loose<'_>>) -> bool {
    header.as_ref().is_some_and(Loose::is_object)
}

/// A lease ID or a revision: an int64 above 0 (etcd's are; 0 means none).
fn positive_int64(field: &Option<Loose<'_>>) -> Option<u64> {
    field
        .as_ref()
        .and_then(Loose::as_u64)
        .filter(|n| (1..=i64::MAX as u64).contains(n))
}

impl Answer<'_> {
    /// The value of the first key, if any.
    pub fn first_value(&self) -> Result<Option<Vec<u8>>, &'static str> {
        self.kvs.first().map(KeyValue::value).transpose()
    }

    /// Where the value of the first key is in `body`, the answer this was read from, if
    /// there is one (see [`Found`]).
    pub fn first_found(&self, body: &[u8]) -> Result<Option<Found>, &'static str> {
        self.kvs
            .first()
            .map(|kv| Found::of(body, &kv.value).map_err(|_| NOT_BASE64))
            .transpose()
    }

    /// The first key's value and `mod_revision`, or that it is absent.
    pub fn versioned(&self) -> Result<Versioned, &'static str> {
        let Some(kv) = self.kvs.first() else {
            return Ok(Versioned::absent());
        };
        let revision = kv
            .mod_revision
            .as_ref()
            .and_then(Loose::as_u64)
            .ok_or("a key without `mod_revision`")?;
        Ok(Versioned {
            value: Some(kv.value()?),
            version: Version::Tag(revision.to_string()),
        })
    }

    /// Whether `count` is above zero.
    pub fn counted(&self) -> bool {
        self.count.as_ref().and_then(Loose::as_u64).unwrap_or(0) > 0
    }

    /// Whether keys follow this page.
    pub fn more(&self) -> bool {
        self.more.as_ref().is_some_and(Loose::is_true)
    }

    /// Whether a transaction's condition held.
    pub fn succeeded(&self) -> bool {
        self.succeeded.as_ref().is_some_and(Loose::is_true)
    }

    /// A transaction's reads, one per response (`None` for a write's).
    pub fn reads(&self) -> impl ExactSizeIterator<Item = Option<&Answer<'_>>> {
        self.responses.iter().map(|r| r.response_range.as_ref())
    }

    /// The keys listed, without `space`, the bucket's start.
    pub fn keys(&self, space: &str) -> Result<Vec<String>, &'static str> {
        let mut keys = Vec::with_capacity(self.kvs.len());
        for kv in &self.kvs {
            let full = kv
                .key
                .as_ref()
                .and_then(|k| base64::decode(k).ok())
                .ok_or("a listed key is not base64")?;
            let key = full
                .strip_prefix(space.as_bytes())
                .ok_or("a listed key outside the bucket")?;
            let key = core::str::from_utf8(key)
                .map_err(|_| "a key in the bucket is not UTF-8 (written by another client)")?;
            keys.push(String::from(key));
        }
        Ok(keys)
    }
}

impl Answer<'_> {
    /// The revision a write made (a transaction's, a put's), from the `header`.
    pub fn revision(&self) -> Result<u64, &'static str> {
        self.header
            .as_ref()
            .and_then(|head| positive_int64(&head.revision))
            .ok_or("no `revision` in the header")
    }

    /// The lease a `lease/grant` gave.
    pub fn lease_id(&self) -> Result<u64, &'static str> {
        positive_int64(&self.id).ok_or("a granted lease without an `ID` above 0")
    }

    /// The lease of the first key read, 0 when it has none (or none was read).
    pub fn first_lease(&self) -> Result<u64, &'static str> {
        self.kvs.first().map_or(Ok(0), KeyValue::lease)
    }

    /// Whether the first operation of a transaction, a `deleterange`, deleted a key.
    pub fn first_deleted(&self) -> Result<bool, &'static str> {
        let delete = self
            .responses
            .first()
            .and_then(|r| r.response_delete_range.as_ref())
            .ok_or("a delete without `response_delete_range`")?;
        Ok(delete.deleted.as_ref().and_then(Loose::as_u64).unwrap_or(0) > 0)
    }

    /// The entry a transaction's first two reads found: the main key, and its companion,
    /// whose value is the metadata only when both were written by one transaction (the
    /// same `mod_revision`). `None` when the main key is absent. `held` is the main key's
    /// lease (0: none).
    pub fn entry(&self) -> Result<Option<Stored<u64>>, &'static str> {
        let mut reads = self.reads();
        let (Some(main), Some(companion)) = (reads.next(), reads.next()) else {
            return Err("an entry read without its two `response_range`s");
        };
        let (Some(main), Some(companion)) = (main, companion) else {
            return Err("an entry read without its two `response_range`s");
        };
        let Some(kv) = main.kvs.first() else {
            return Ok(None);
        };
        let generation = positive_int64(&kv.mod_revision).ok_or("a key without `mod_revision`")?;
        let metadata = match companion.kvs.first() {
            Some(meta) if positive_int64(&meta.mod_revision) == Some(generation) => meta.value()?,
            _ => Vec::new(),
        };
        Ok(Some(Stored {
            value: kv.value()?,
            metadata,
            generation,
            expires_ms: None,
            held: kv.lease()?,
        }))
    }
}

impl KeyValue<'_> {
    fn value(&self) -> Result<Vec<u8>, &'static str> {
        base64::decode(&self.value).map_err(|_| NOT_BASE64)
    }

    /// The key's lease; 0 when it has none.
    fn lease(&self) -> Result<u64, &'static str> {
        match &self.lease {
            None => Ok(0),
            lease => match lease.as_ref().and_then(Loose::as_u64) {
                Some(0) => Ok(0),
                _ => positive_int64(lease).ok_or("a `lease` that is not an int64"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_values_revisions_and_keys_as_before() {
        let answer = read_answer(
            br#"{"header":{"revision":"9"},"kvs":[{"key":"IWIvYQ==","value":"aGk=","mod_revision":"8"},{"key":"IWIvYg=="}],"more":true,"count":"2"}"#,
        )
        .unwrap();
        assert_eq!(answer.first_value(), Ok(Some(b"hi".to_vec())));
        let tag = |r: &str| Version::Tag(String::from(r));
        assert_eq!(answer.versioned().map(|v| v.version), Ok(tag("8")));
        assert_eq!(
            answer.keys("!b/"),
            Ok(alloc::vec![String::from("a"), String::from("b")])
        );
        assert!(answer.more() && answer.counted());
        // Revisions: a number, or a string as `u64`'s `FromStr` reads it.
        for (revision, read) in [
            ("8", Some("8")),
            (r#""+8""#, Some("8")),
            ("8.0", None),
            (r#""-1""#, None),
            ("true", None),
        ] {
            let body = format!(r#"{{"header":{{}},"kvs":[{{"mod_revision":{revision}}}]}}"#);
            let version = read_answer(body.as_bytes())
                .unwrap()
                .versioned()
                .map(|v| v.version);
            assert_eq!(
                version,
                read.map(tag).ok_or("a key without `mod_revision`"),
                "{revision}"
            );
        }
        // Lenient fields of the wrong type count as absent; an omitted value is empty.
        let empty =
            read_answer(br#"{"header":{},"count":"x","more":"true","succeeded":1}"#).unwrap();
        assert!(!empty.counted() && !empty.more() && !empty.succeeded());
        assert_eq!(empty.versioned(), Ok(Versioned::absent()));
        let answer = read_answer(br#"{"header":{},"kvs":[{"key":"IWIvYQ=="}]}"#).unwrap();
        assert_eq!(answer.first_value(), Ok(Some(Vec::new())));
        let answer = read_answer(br#"{"header": {}, "kvs": [{"value": "***"}]}"#).unwrap();
        assert_eq!(answer.first_value(), Err("`value` is not base64"));
        let txn = read_answer(br#"{"header":{},"responses":[{"response_put":{}}]}"#).unwrap();
        assert!(!txn.succeeded() && matches!(txn.reads().next(), Some(None)));
    }

    #[test]
    fn entry_reads_pair_the_key_with_a_companion_of_its_revision() {
        // As etcd 3.4 answered the two-range transaction of a key written with metadata and
        // a lease.
        let both = br#"{"header":{"revision":"2"},"succeeded":true,"responses":[{"response_range":{"header":{"revision":"2"},"kvs":[{"key":"YS9r","create_revision":"2","mod_revision":"2","version":"1","value":"eA==","lease":"4111120417851595272"}],"count":"1"}},{"response_range":{"header":{"revision":"2"},"kvs":[{"key":"YSNr","create_revision":"2","mod_revision":"2","version":"1","value":"bQ==","lease":"4111120417851595272"}],"count":"1"}}]}"#;
        let answer = read_answer(both).unwrap();
        assert_eq!(
            answer.entry(),
            Ok(Some(Stored {
                value: b"x".to_vec(),
                metadata: b"m".to_vec(),
                generation: 2,
                expires_ms: None,
                held: 4111120417851595272,
            }))
        );
        assert_eq!(answer.revision(), Ok(2));
        // A companion of another revision is stale: no metadata. No lease: held 0.
        let stale = br#"{"header":{},"responses":[{"response_range":{"kvs":[{"mod_revision":"5"}]}},{"response_range":{"kvs":[{"value":"bQ==","mod_revision":"2"}]}}]}"#;
        let entry = read_answer(stale).unwrap().entry().unwrap().unwrap();
        assert_eq!(
            (
                entry.value.len(),
                entry.metadata.len(),
                entry.generation,
                entry.held
            ),
            (0, 0, 5, 0)
        );
        // No main key: no entry, whatever the companion.
        let absent = br#"{"header":{},"responses":[{"response_range":{}},{"response_range":{"kvs":[{"value":"bQ==","mod_revision":"2"}]}}]}"#;
        assert_eq!(read_answer(absent).unwrap().entry(), Ok(None));
        for (body, why) in [
            (
                &br#"{"header":{},"responses":[{"response_range":{}}]}"#[..],
                "an entry read without its two `response_range`s",
            ),
            (
                br#"{"header":{},"responses":[{"response_range":{}},{"response_put":{}}]}"#,
                "an entry read without its two `response_range`s",
            ),
            (
                br#"{"header":{},"responses":[{"response_range":{"kvs":[{}]}},{"response_range":{}}]}"#,
                "a key without `mod_revision`",
            ),
            (
                br#"{"header":{},"responses":[{"response_range":{"kvs":[{"mod_revision":"1","lease":"-3"}]}},{"response_range":{}}]}"#,
                "a `lease` that is not an int64",
            ),
            (
                br#"{"header":{},"responses":[{"response_range":{"kvs":[{"mod_revision":"1","lease":"9223372036854775808"}]}},{"response_range":{}}]}"#,
                "a `lease` that is not an int64",
            ),
            (
                br#"{"header":{},"responses":[{"response_range":{"kvs":[{"mod_revision":"1"}]}},{"response_range":{"kvs":[{"value":"*","mod_revision":"1"}]}}]}"#,
                NOT_BASE64,
            ),
        ] {
            let shown = String::from_utf8_lossy(body);
            assert_eq!(read_answer(body).unwrap().entry(), Err(why), "{shown}");
        }
    }

    #[test]
    fn writes_give_their_revision_leases_and_deletions() {
        let grant = br#"{"header":{"cluster_id":"1","revision":"1","raft_term":"2"},"ID":"4111120417851595270","TTL":"2"}"#;
        let answer = read_answer(grant).unwrap();
        assert_eq!(answer.lease_id(), Ok(4111120417851595270));
        assert_eq!(answer.revision(), Ok(1));
        for body in [
            &br#"{"header":{}}"#[..],
            br#"{"header":{},"ID":"0"}"#,
            br#"{"header":{},"ID":"-1"}"#,
            br#"{"header":{},"ID":true}"#,
        ] {
            let answer = read_answer(body).unwrap();
            assert!(answer.lease_id().is_err());
            assert_eq!(answer.revision(), Err("no `revision` in the header"));
        }
        let deleted = br#"{"header":{"revision":"3"},"succeeded":true,"responses":[{"response_delete_range":{"header":{"revision":"3"},"deleted":"1"}},{"response_delete_range":{"header":{"revision":"3"}}}]}"#;
        assert_eq!(read_answer(deleted).unwrap().first_deleted(), Ok(true));
        let none = br#"{"header":{},"succeeded":true,"responses":[{"response_delete_range":{"header":{}}}]}"#;
        assert_eq!(read_answer(none).unwrap().first_deleted(), Ok(false));
        let missing = br#"{"header":{},"responses":[{"response_range":{}}]}"#;
        assert!(read_answer(missing).unwrap().first_deleted().is_err());
        // The old key an overwrite read, keys only.
        let old = br#"{"header":{},"kvs":[{"key":"YS9r","mod_revision":"2","lease":"7"}]}"#;
        assert_eq!(read_answer(old).unwrap().first_lease(), Ok(7));
        assert_eq!(
            read_answer(br#"{"header":{}}"#).unwrap().first_lease(),
            Ok(0)
        );
        // The header is an object; its `revision` once.
        assert_eq!(
            read_answer(br#"{"header":[1]}"#).map(drop),
            Err(Unreadable::Foreign)
        );
        assert!(matches!(
            read_answer(br#"{"header":{"revision":"1","revision":"2"}}"#),
            Err(Unreadable::Malformed(_))
        ));
    }

    #[test]
    fn error_answers_give_their_message() {
        let body = br#"{"error":"etcdserver: request is too large","message":"etcdserver: request is too large","code":3}"#;
        assert_eq!(
            error_message(body),
            Ok(Some(String::from("etcdserver: request is too large")))
        );
        for body in [&b"<html>"[..], br#"{"message":3}"#, br#"["message"]"#] {
            assert_eq!(error_message(body), Ok(None));
        }
    }
}
