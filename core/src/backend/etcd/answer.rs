//! The etcd gateway's answers, errors included, read with serde into one [`Answer`].
//!
//! Fuzzed: [`read_answer`] and [`error_message`] take any bytes (fuzz/fuzz_targets/etcd.rs).

use alloc::borrow::Cow;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use kvplug_codec::base64;
use serde::Deserialize;

pub use crate::backend::json::Unreadable;
use crate::backend::json::{Found, Loose, describe};

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
    header: Option<Loose<'a>>,
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
}

#[derive(Debug, Deserialize)]
struct KeyValue<'a> {
    key: Option<String>,
    /// The gateway omits an empty value.
    #[serde(borrow, default)]
    value: Cow<'a, str>,
    #[serde(borrow)]
    mod_revision: Option<Loose<'a>>,
}

#[derive(Debug, Deserialize)]
struct ResponseOp<'a> {
    #[serde(borrow)]
    response_range: Option<Answer<'a>>,
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
        Ok(answer) if headed(&answer.header) => return Ok(answer),
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

impl KeyValue<'_> {
    fn value(&self) -> Result<Vec<u8>, &'static str> {
        base64::decode(&self.value).map_err(|_| NOT_BASE64)
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
