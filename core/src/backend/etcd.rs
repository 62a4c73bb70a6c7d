//! The `etcd` backend: etcd v3's JSON gateway (`POST /v3/kv/{range,put,deleterange,txn}`).
//!
//! A bucket is the key range `<prefix>!<encoded bucket>/` (`kvplug_settings::layout`): the
//! bucket name is encoded (`kvplug_protocol::names`) so it never contains `/` or `!`, which
//! makes one bucket's range disjoint from every other's, under any prefix. Keys and values travel base64-encoded, as the gateway wants.
//! Compare-and-swap is a transaction on `mod_revision` (or `create_revision == 0` for an
//! absent key) whose failure branch reads the key, so a lost race costs no extra request.
//! etcd has no arithmetic, so `increment` is that same transaction in a bounded loop.
//!
//! Fuzzed: the answer readers [`read_answer`] and [`error_message`] take any bytes.

use alloc::borrow::Cow;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use kvplug_codec::base64;
use kvplug_protocol::names;
use kvplug_settings::layout;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::{
    Backend, Page, Swap, Version, Versioned, check_batch, check_pairs, chunks, distinct,
    large_first, last_wins,
};
use crate::client::{Client, MAX_RESPONSE_BYTES, SMALL_ANSWER_BYTES, Verb};
use crate::error::Error;
use crate::settings::Settings;

/// etcd's default `--max-txn-ops`: operations one transaction may hold.
const MAX_TXN_OPS: usize = 128;
/// Raw key and value bytes per transaction, below etcd's default `--max-request-bytes`
/// (1.5 MiB) once base64 (4/3) and JSON are added.
const MAX_TXN_BYTES: usize = 1 << 20;
/// Longest key. etcd limits whole requests, not keys; a compare-and-swap transaction
/// names its key three times, base64-encoded, so at this length a key takes at most 256 KiB
/// of the default 1.5 MiB request and never decides on its own whether a call fits.
const MAX_KEY_BYTES: usize = 64 * 1024;

const RANGE: &str = "/v3/kv/range";
const PUT: &str = "/v3/kv/put";
const DELETE_RANGE: &str = "/v3/kv/deleterange";
const TXN: &str = "/v3/kv/txn";

/// A bucket on an etcd cluster.
#[derive(Debug, Clone)]
pub struct EtcdBackend {
    client: Rc<Client>,
    /// `<prefix>!<encoded bucket>/`, the start of every key of the bucket.
    space: Rc<str>,
    page_size: u32,
}

// The gateway's request bodies (`deleterange` takes a `RangeRequest` too). Keys are the
// base64 of the full etcd key.

#[derive(Default, Serialize)]
struct RangeRequest<'a> {
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    range_end: Option<&'a str>,
    /// An int64, which the gateway spells as a JSON string.
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<Decimal>,
    #[serde(skip_serializing_if = "is_false")]
    count_only: bool,
    #[serde(skip_serializing_if = "is_false")]
    keys_only: bool,
}

#[derive(Serialize)]
struct PutRequest<'a> {
    key: &'a str,
    value: Base64<'a>,
}

#[derive(Serialize)]
struct TxnRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    compare: Option<[Compare<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<[RequestOp<'a>; 1]>,
    success: &'a [RequestOp<'a>],
}

#[derive(Serialize)]
struct Compare<'a> {
    key: &'a str,
    target: &'static str,
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    create_revision: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mod_revision: Option<&'a str>,
}

/// One operation inside a transaction; `key` is already the gateway's base64.
#[derive(Serialize)]
enum RequestOp<'a> {
    #[serde(rename = "request_range")]
    Range { key: String },
    #[serde(rename = "request_put")]
    Put { key: String, value: Base64<'a> },
    #[serde(rename = "request_delete_range")]
    Delete { key: String },
}

fn is_false(flag: &bool) -> bool {
    !*flag
}

/// A number written as a JSON string, as the gateway reads int64 fields.
struct Decimal(u64);

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// Bytes written as a base64 JSON string, encoded straight into the body (values reach
/// megabytes: no intermediate string).
struct Base64<'a>(&'a [u8]);

impl Serialize for Base64<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Display for Base64<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Whole groups of 3 bytes encode to the same text apart as together.
        let mut text = String::new();
        for chunk in self.0.chunks(3 * 1024) {
            text.clear();
            base64::encode_into(&mut text, chunk);
            f.write_str(&text)?;
        }
        Ok(())
    }
}

fn to_json(body: &impl Serialize) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(body)
        .map_err(|e| Error::Invalid(format!("etcd: cannot write the request: {e}")))
}

// The gateway's answers, errors included, are all read into one `Answer`: each operation
// reads the fields it needs. Every answer but an error holds the cluster's `header`;
// fields read leniently before serde (`count`, `more`, `succeeded`, revisions, `message`)
// are `Loose`, so a wrong type still counts as absent.

/// Why an answer of the gateway could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    /// Not JSON with etcd's `header` object: not the gateway's answer at all.
    Foreign,
    /// The gateway's answer, but not of the shape the operation needs (a field twice, of
    /// the wrong type, a value that is not base64, …).
    Malformed(String),
}

impl From<&str> for Unreadable {
    fn from(detail: &str) -> Self {
        Unreadable::Malformed(String::from(detail))
    }
}

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
        base64::decode(&self.value).map_err(|_| "`value` is not base64")
    }
}

/// serde_json's message without the text it quotes from the answer (`invalid type: string
/// "…"`), which may be large or echo a secret; the position stays.
fn describe(error: &serde_json::Error) -> String {
    let message = error.to_string();
    match (message.find('"'), message.rfind('"')) {
        (Some(first), Some(last)) if first < last => {
            let head = message.get(..first).unwrap_or_default().trim_end();
            let tail = message.get(last + 1..).unwrap_or_default();
            format!("{head}{tail}")
        }
        _ => message,
    }
}

/// Any JSON value, kept only as far as a lenient read needs it.
#[derive(Debug)]
enum Loose<'a> {
    Object,
    Bool(bool),
    Unsigned(u64),
    Text(Cow<'a, str>),
    Other,
}

impl Loose<'_> {
    fn is_object(&self) -> bool {
        matches!(self, Loose::Object)
    }

    fn is_true(&self) -> bool {
        matches!(self, Loose::Bool(true))
    }

    /// A number, or a string holding a decimal (the gateway sends int64 fields as strings):
    /// what `u64`'s `FromStr` takes.
    fn as_u64(&self) -> Option<u64> {
        match self {
            Loose::Unsigned(n) => Some(*n),
            Loose::Text(text) => text.parse().ok(),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Loose::Text(text) => Some(text),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Anything;
        impl<'de> Visitor<'de> for Anything {
            type Value = Loose<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Loose::Object)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Loose::Other)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
                Ok(Loose::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
                Ok(u64::try_from(n).map_or(Loose::Other, Loose::Unsigned))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
                Ok(Loose::Unsigned(n))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Loose::Other)
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Loose::Text(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Loose::Text(Cow::Owned(String::from(s))))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Loose::Other)
            }
        }
        deserializer.deserialize_any(Anything)
    }
}

/// Refuses a key longer than [`MAX_KEY_BYTES`] before anything is sent.
fn check_key(key: &str) -> Result<(), Error> {
    super::check_length(
        "key",
        key,
        MAX_KEY_BYTES,
        "etcd",
        "so that every call naming the key, compare-and-swap included, fits etcd's request limit",
    )
}

impl EtcdBackend {
    /// The etcd key of `key`, base64-encoded for the gateway.
    fn key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.space.len() + key.len());
        full.push_str(&self.space);
        full.push_str(key);
        base64::encode(full.as_bytes())
    }

    /// Sends `body` to `path` and returns the JSON answer's bytes, or the error etcd gave.
    fn call(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, Error> {
        // A put or a delete answers a header and a count; a range or a transaction may carry
        // values, which etcd does not limit below its request size.
        let cap = match path {
            PUT | DELETE_RANGE => SMALL_ANSWER_BYTES,
            _ => MAX_RESPONSE_BYTES,
        };
        let response = self.client.send_capped(
            Verb::Post,
            path,
            &[("content-type", "application/json")],
            body,
            cap,
        )?;
        if response.status == 200 {
            return Ok(response.body);
        }
        if (200..300).contains(&response.status) {
            return Err(self.foreign(path, response.status));
        }
        let message = error_message(&response.body)
            .map_err(|detail| self.client.malformed(Verb::Post, path, detail))?;
        let reason = match message {
            // Between the limit and 512 KiB above it etcd says "request is too large"; beyond,
            // its gRPC layer says "received message larger than max" (HTTP 429).
            Some(m) if m.contains("request is too large") || m.contains("larger than max") => {
                format!("{m} (etcd's --max-request-bytes, 1.5 MiB unless the cluster sets more)")
            }
            Some(m) => m,
            None => String::from_utf8_lossy(&response.body).into_owned(),
        };
        Err(self
            .client
            .status_with(Verb::Post, path, response.status, &reason))
    }

    fn foreign(&self, path: &str, status: u16) -> Error {
        let why = if status == 200 {
            "not JSON with etcd's `header`"
        } else {
            "etcd answers 200"
        };
        super::foreign(
            Verb::Post,
            self.client.target(path),
            status,
            "etcd's JSON gateway",
            why,
        )
    }

    /// The error for an answer `read` could not use.
    fn unreadable(&self, path: &str, why: Unreadable) -> Error {
        match why {
            Unreadable::Foreign => self.foreign(path, 200),
            Unreadable::Malformed(detail) => self.client.malformed(Verb::Post, path, detail),
        }
    }

    /// Sends `request` to `path`, then lets `read` take what it needs from the answer.
    fn exchange<T>(
        &self,
        path: &str,
        request: &impl Serialize,
        read: impl FnOnce(&Answer<'_>) -> Result<T, &'static str>,
    ) -> Result<T, Error> {
        self.exchange_body(path, &to_json(request)?, read)
    }

    fn exchange_body<T>(
        &self,
        path: &str,
        body: &[u8],
        read: impl FnOnce(&Answer<'_>) -> Result<T, &'static str>,
    ) -> Result<T, Error> {
        let body = self.call(path, body)?;
        let answer = read_answer(&body).map_err(|why| self.unreadable(path, why))?;
        read(&answer).map_err(|detail| self.client.malformed(Verb::Post, path, detail))
    }

    /// A transaction, of which `read` sees the answer.
    fn txn<T>(
        &self,
        guard: Option<(&str, &Version)>,
        success: &[RequestOp<'_>],
        read: impl FnOnce(&Answer<'_>) -> Result<T, &'static str>,
    ) -> Result<T, Error> {
        self.exchange_body(TXN, &self.txn_json(guard, success)?, read)
    }

    /// A transaction body: `success` ops unconditionally, or guarded by `compare` with a
    /// read of `key` as the failure branch.
    fn txn_json(
        &self,
        guard: Option<(&str, &Version)>,
        success: &[RequestOp<'_>],
    ) -> Result<Vec<u8>, Error> {
        let guard_key = guard.map(|(key, _)| self.key(key));
        let compare = guard.zip(guard_key.as_deref()).map(|((_, expected), key)| {
            let (target, create_revision, mod_revision) = match expected {
                Version::Absent => ("CREATE", Some("0"), None),
                Version::Tag(revision) => ("MOD", None, Some(revision.as_str())),
            };
            [Compare {
                key,
                target,
                result: "EQUAL",
                create_revision,
                mod_revision,
            }]
        });
        let failure = guard.map(|(key, _)| [RequestOp::Range { key: self.key(key) }]);
        to_json(&TxnRequest {
            compare,
            failure,
            success,
        })
    }

    /// A conditional put; on a lost race, what the key holds now.
    fn put_if(&self, key: &str, expected: &Version, value: &[u8]) -> Result<Swap, Error> {
        let put = RequestOp::Put {
            key: self.key(key),
            value: Base64(value),
        };
        self.txn(Some((key, expected)), &[put], |answer| {
            if answer.succeeded() {
                return Ok(Swap::Done);
            }
            let range = answer
                .reads()
                .next()
                .flatten()
                .ok_or("a failed transaction without its read")?;
            Ok(Swap::Conflict(range.versioned()?))
        })
    }

    /// Runs `ops` as transactions within etcd's limits; `read` sees each chunk's answer.
    fn txn_chunks<T>(
        &self,
        items: &[T],
        size: impl Fn(&T) -> usize,
        op: impl Fn(&T) -> RequestOp<'_>,
        mut read: impl FnMut(&Answer<'_>) -> Result<(), &'static str>,
    ) -> Result<(), Error> {
        for chunk in chunks(items, MAX_TXN_OPS, MAX_TXN_BYTES, size) {
            let ops: Vec<RequestOp<'_>> = chunk.iter().map(&op).collect();
            self.txn(None, &ops, |answer| {
                if answer.reads().len() == chunk.len() {
                    read(answer)
                } else {
                    Err("a transaction answered a different number of operations")
                }
            })?;
        }
        Ok(())
    }
}

impl Backend for EtcdBackend {
    fn open(settings: &Settings, bucket: &str) -> Result<Self, Error> {
        // Buckets are key ranges and always exist, so opening one needs no request.
        let space = layout::namespace(&settings.prefix, bucket, names::encode, Some('/'))?;
        Ok(EtcdBackend {
            client: Rc::new(Client::new(settings, None)),
            space: Rc::from(space),
            page_size: settings.page_size,
        })
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        check_key(key)?;
        let key = self.key(key);
        self.exchange(RANGE, &RangeRequest::of(&key), |a| a.first_value())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        check_key(key)?;
        let key = self.key(key);
        let request = PutRequest {
            key: &key,
            value: Base64(value),
        };
        self.exchange(PUT, &request, |_| Ok(()))
    }

    fn delete(&self, key: &str) -> Result<(), Error> {
        check_key(key)?;
        let key = self.key(key);
        self.exchange(DELETE_RANGE, &RangeRequest::of(&key), |_| Ok(()))
    }

    fn exists(&self, key: &str) -> Result<bool, Error> {
        check_key(key)?;
        let key = self.key(key);
        let request = RangeRequest {
            count_only: true,
            ..RangeRequest::of(&key)
        };
        self.exchange(RANGE, &request, |answer| Ok(answer.counted()))
    }

    fn list(&self, cursor: Option<&str>) -> Result<Page, Error> {
        // The cursor is the last key of the previous page; the next page starts just after
        // it (`key + "\0"` is the smallest key greater than `key`).
        let start = match cursor {
            None => base64::encode(self.space.as_bytes()),
            Some(last) => {
                let mut after = String::from(last);
                after.push('\0');
                self.key(&after)
            }
        };
        // `/` + 1 = `0`: the end of the bucket's range, exclusive.
        let mut end = String::from(self.space.trim_end_matches('/'));
        end.push('0');
        let end = base64::encode(end.as_bytes());
        let request = RangeRequest {
            range_end: Some(&end),
            limit: Some(Decimal(u64::from(self.page_size))),
            keys_only: true,
            ..RangeRequest::of(&start)
        };
        self.exchange(RANGE, &request, |answer| {
            let keys = answer.keys(&self.space)?;
            let cursor = if answer.more() {
                keys.last().cloned()
            } else {
                None
            };
            Ok(Page { keys, cursor })
        })
    }

    // A refused transaction hands back the key's value and revision, so assuming the key
    // absent costs nothing when it is not and saves the read when it is.
    const INCREMENT_ASSUMES_ABSENT: bool = true;

    fn read_versioned(&self, key: &str) -> Result<Versioned, Error> {
        check_key(key)?;
        let key = self.key(key);
        self.exchange(RANGE, &RangeRequest::of(&key), |a| a.versioned())
    }

    fn write_if(&self, key: &str, expected: &Version, value: &[u8]) -> Result<Swap, Error> {
        check_key(key)?;
        self.put_if(key, expected, value)
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        check_batch("get-many", keys, check_key)?;
        let mut values = Vec::with_capacity(keys.len());
        self.txn_chunks(
            keys,
            String::len,
            |key| RequestOp::Range { key: self.key(key) },
            |answer| {
                for read in answer.reads() {
                    let range = read.ok_or("a read without `response_range`")?;
                    values.push(range.first_value()?);
                }
                Ok(())
            },
        )?;
        Ok(values)
    }

    fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), Error> {
        check_pairs(pairs, check_key)?;
        // etcd refuses a key twice in one transaction; the last value is what sequential
        // sets would have left.
        self.txn_chunks(
            &large_first(last_wins(pairs), MAX_TXN_BYTES),
            |(key, value)| key.len() + value.len(),
            |(key, value)| RequestOp::Put {
                key: self.key(key),
                value: Base64(value),
            },
            |_| Ok(()),
        )
    }

    fn delete_many(&self, keys: &[String]) -> Result<(), Error> {
        check_batch("delete-many", keys, check_key)?;
        self.txn_chunks(
            &distinct(keys),
            |key| key.len(),
            |key| RequestOp::Delete { key: self.key(key) },
            |_| Ok(()),
        )
    }
}

impl<'a> RangeRequest<'a> {
    /// A read of the one key `key`.
    fn of(key: &'a str) -> Self {
        RangeRequest {
            key,
            ..RangeRequest::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> EtcdBackend {
        let settings = Settings::from_lookup(|name| {
            Ok((name == "url").then(|| String::from("http://127.0.0.1:2379")))
        })
        .unwrap();
        EtcdBackend::open(&settings, "b").unwrap()
    }

    fn text(body: Result<Vec<u8>, Error>) -> String {
        String::from_utf8(body.unwrap()).unwrap()
    }

    #[test]
    fn requests_are_the_gateways_json() {
        let b = backend();
        let key = b.key("k");
        assert_eq!(
            text(to_json(&RangeRequest::of(&key))),
            r#"{"key":"IWIvaw=="}"#
        );
        let list = RangeRequest {
            range_end: Some("IWIw"),
            limit: Some(Decimal(1000)),
            keys_only: true,
            ..RangeRequest::of(&key)
        };
        assert_eq!(
            text(to_json(&list)),
            r#"{"key":"IWIvaw==","range_end":"IWIw","limit":"1000","keys_only":true}"#
        );
        let swap = b.txn_json(
            Some(("k", &Version::Tag(String::from("7")))),
            &[RequestOp::Put {
                key: b.key("k"),
                value: Base64(b"hi"),
            }],
        );
        assert_eq!(
            text(swap),
            r#"{"compare":[{"key":"IWIvaw==","target":"MOD","result":"EQUAL","mod_revision":"7"}],"failure":[{"request_range":{"key":"IWIvaw=="}}],"success":[{"request_put":{"key":"IWIvaw==","value":"aGk="}}]}"#
        );
        let create = text(b.txn_json(Some(("k", &Version::Absent)), &[]));
        assert!(create.contains(r#""target":"CREATE","result":"EQUAL","create_revision":"0"}"#));
        assert_eq!(
            text(b.txn_json(
                None,
                &[
                    RequestOp::Range { key: b.key("a") },
                    RequestOp::Delete { key: b.key("b") }
                ]
            )),
            r#"{"success":[{"request_range":{"key":"IWIvYQ=="}},{"request_delete_range":{"key":"IWIvYg=="}}]}"#
        );
        // A value longer than one encoding chunk is still one base64 string.
        let value: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let put = to_json(&PutRequest {
            key: "a2V5",
            value: Base64(&value),
        });
        assert_eq!(
            text(put),
            format!(r#"{{"key":"a2V5","value":"{}"}}"#, base64::encode(&value))
        );
    }

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
    fn answers_without_etcds_header_are_foreign_of_the_wrong_shape_malformed() {
        for body in [
            &b"<html>proxy error</html>"[..],
            b"",
            b"[{}]",
            br#"{"kvs":[]}"#,
            br#"{"header":"x"}"#,
            br#"{"header":null}"#,
            br#"{"kvs":5}"#,
            b"{\"header\":{},\"kvs\":[\xff]}",
        ] {
            let shown = String::from_utf8_lossy(body);
            assert_eq!(
                read_answer(body).map(drop),
                Err(Unreadable::Foreign),
                "{shown}"
            );
        }
        let Err(Unreadable::Malformed(detail)) =
            read_answer(br#"{"header":{},"kvs":"a secret, at length","value":null}"#)
        else {
            panic!("`kvs` must be a list");
        };
        // serde_json's message, without the text it quoted.
        assert!(
            detail.starts_with("invalid type: string, expected a sequence at line 1"),
            "{detail}"
        );
        assert!(matches!(
            read_answer(br#"{"header":{},"kvs":[{"value":null}]}"#),
            Err(Unreadable::Malformed(_))
        ));
    }

    #[test]
    fn a_field_twice_is_a_malformed_answer_naming_the_request() {
        for (body, field) in [
            (&br#"{"header":{},"kvs":[],"kvs":[]}"#[..], "kvs"),
            (br#"{"header":{},"header":{}}"#, "header"),
            (
                br#"{"header":{},"kvs":[{"value":"YQ==","value":"Yg=="}]}"#,
                "value",
            ),
            (
                br#"{"header":{},"succeeded":true,"succeeded":false}"#,
                "succeeded",
            ),
        ] {
            let error = backend().unreadable(RANGE, read_answer(body).unwrap_err());
            let Error::Malformed {
                method,
                path,
                detail,
            } = &error
            else {
                panic!("{error:?}");
            };
            assert_eq!((*method, path.as_str()), ("POST", RANGE));
            let expected = format!("duplicate field `{field}` at line 1 column ");
            assert!(detail.starts_with(&expected), "{detail}");
            let message = error.to_string();
            assert!(
                message.starts_with("POST /v3/kv/range: malformed response: duplicate field"),
                "{message}"
            );
        }
        assert!(error_message(br#"{"message":"a","message":"b"}"#).is_err());
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
