//! The `etcd` backend: etcd v3's JSON gateway (`POST /v3/kv/{range,put,deleterange,txn}`).
//!
//! A bucket is the key range `<prefix>!<encoded bucket>/` (`kvplug_settings::layout`): the
//! bucket name is encoded (`kvplug_protocol::names`) so it never contains `/` or `!`, which
//! makes one bucket's range disjoint from every other's, under any prefix. Keys and values travel base64-encoded, as the gateway wants.
//! Compare-and-swap is a transaction on `mod_revision` (or `create_revision == 0` for an
//! absent key) whose failure branch reads the key, so a lost race costs no extra request.
//! etcd has no arithmetic, so `increment` is that same transaction in a bounded loop.

use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use kvplug_codec::base64;
use kvplug_codec::json::{self, Value};
use kvplug_protocol::names;
use kvplug_settings::layout;

use super::{
    Backend, Page, Swap, Version, Versioned, check_batch, check_pairs, chunks, distinct,
    large_first, last_wins,
};
use crate::client::{Client, Verb};
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

/// One operation inside a transaction, written as the gateway's JSON.
enum Op<'a> {
    Range(&'a str),
    Put(&'a str, &'a [u8]),
    Delete(&'a str),
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
    fn call(&self, path: &str, body: &str) -> Result<Vec<u8>, Error> {
        let response = self.client.send(
            Verb::Post,
            path,
            &[("content-type", "application/json")],
            body.as_bytes(),
        )?;
        if response.status == 200 {
            return Ok(response.body);
        }
        if (200..300).contains(&response.status) {
            return Err(self.foreign(path, response.status, "etcd answers 200"));
        }
        // The gateway answers `{"error": …, "message": …, "code": <gRPC code>}`.
        let message = json::parse_bytes(&response.body)
            .ok()
            .and_then(|doc| doc.get("message").and_then(Value::as_str).map(String::from));
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

    fn foreign(&self, path: &str, status: u16, why: &str) -> Error {
        super::foreign(
            Verb::Post,
            self.client.target(path),
            status,
            "etcd's JSON gateway",
            why,
        )
    }

    /// `call`, then parse; `read` picks what it needs from the document.
    fn exchange<T>(
        &self,
        path: &str,
        body: &str,
        read: impl FnOnce(&Value<'_>) -> Result<T, &'static str>,
    ) -> Result<T, Error> {
        let bytes = self.call(path, body)?;
        // Every answer of the gateway, a missing key's included, holds the cluster's
        // `header`: anything else is not etcd's, and must not pass for a write done.
        let doc = json::parse_bytes(&bytes)
            .ok()
            .filter(|doc| doc.get("header").and_then(Value::as_object).is_some())
            .ok_or_else(|| self.foreign(path, 200, "not JSON with etcd's `header`"))?;
        read(&doc).map_err(|detail| self.client.malformed(Verb::Post, path, detail))
    }

    fn op_json(&self, out: &mut String, op: &Op<'_>) {
        match op {
            Op::Range(key) => {
                out.push_str("{\"request_range\":{\"key\":\"");
                out.push_str(&self.key(key));
                out.push_str("\"}}");
            }
            Op::Put(key, value) => {
                out.push_str("{\"request_put\":{\"key\":\"");
                out.push_str(&self.key(key));
                out.push_str("\",\"value\":\"");
                base64::encode_into(out, value);
                out.push_str("\"}}");
            }
            Op::Delete(key) => {
                out.push_str("{\"request_delete_range\":{\"key\":\"");
                out.push_str(&self.key(key));
                out.push_str("\"}}");
            }
        }
    }

    /// A transaction body: `success` ops unconditionally, or guarded by `compare` with a
    /// read of `key` as the failure branch.
    fn txn_json(&self, guard: Option<(&str, &Version)>, success: &[Op<'_>]) -> String {
        let mut out = String::from("{");
        if let Some((key, expected)) = guard {
            out.push_str("\"compare\":[{\"key\":\"");
            out.push_str(&self.key(key));
            match expected {
                Version::Absent => out.push_str(
                    "\",\"target\":\"CREATE\",\"result\":\"EQUAL\",\"create_revision\":\"0\"}],",
                ),
                Version::Tag(revision) => {
                    out.push_str("\",\"target\":\"MOD\",\"result\":\"EQUAL\",\"mod_revision\":");
                    json::write_str(&mut out, revision);
                    out.push_str("}],");
                }
            }
            out.push_str("\"failure\":[");
            self.op_json(&mut out, &Op::Range(key));
            out.push_str("],");
        }
        out.push_str("\"success\":[");
        for (i, op) in success.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            self.op_json(&mut out, op);
        }
        out.push_str("]}");
        out
    }

    /// A conditional put; on a lost race, what the key holds now.
    fn put_if(&self, key: &str, expected: &Version, value: &[u8]) -> Result<Swap, Error> {
        let body = self.txn_json(Some((key, expected)), &[Op::Put(key, value)]);
        self.exchange(TXN, &body, |doc| {
            if doc.get("succeeded").and_then(Value::as_bool) == Some(true) {
                return Ok(Swap::Done);
            }
            let range = responses(doc)?
                .first()
                .and_then(|r| r.get("response_range"))
                .ok_or("a failed transaction without its read")?;
            Ok(Swap::Conflict(versioned(range)?))
        })
    }

    /// Runs `ops` as transactions within etcd's limits; `read` sees each chunk's responses.
    fn txn_chunks<T>(
        &self,
        items: &[T],
        size: impl Fn(&T) -> usize,
        op: impl Fn(&T) -> Op<'_>,
        mut read: impl FnMut(&[Value<'_>]) -> Result<(), &'static str>,
    ) -> Result<(), Error> {
        for chunk in chunks(items, MAX_TXN_OPS, MAX_TXN_BYTES, size) {
            let ops: Vec<Op<'_>> = chunk.iter().map(&op).collect();
            let body = self.txn_json(None, &ops);
            self.exchange(TXN, &body, |doc| {
                let responses = responses(doc)?;
                if responses.len() == chunk.len() {
                    read(responses)
                } else {
                    Err("a transaction answered a different number of operations")
                }
            })?;
        }
        Ok(())
    }
}

/// A transaction's `responses`; absent when there were none.
fn responses<'d, 'a>(doc: &'d Value<'a>) -> Result<&'d [Value<'a>], &'static str> {
    match doc.get("responses") {
        None => Ok(&[]),
        Some(list) => list.as_array().ok_or("`responses` is not a list"),
    }
}

/// The first key-value of a range answer, if any.
fn first_kv<'d, 'a>(range: &'d Value<'a>) -> Result<Option<&'d Value<'a>>, &'static str> {
    match range.get("kvs") {
        None => Ok(None),
        Some(kvs) => Ok(kvs.as_array().ok_or("`kvs` is not a list")?.first()),
    }
}

/// A key-value's value; the gateway omits an empty one.
fn value_of(kv: &Value<'_>) -> Result<Vec<u8>, &'static str> {
    match kv.get("value") {
        None => Ok(Vec::new()),
        Some(v) => base64::decode(v.as_str().ok_or("`value` is not a string")?)
            .map_err(|_| "`value` is not base64"),
    }
}

fn versioned(range: &Value<'_>) -> Result<Versioned, &'static str> {
    match first_kv(range)? {
        None => Ok(Versioned::absent()),
        Some(kv) => {
            let revision = kv
                .get("mod_revision")
                .and_then(Value::as_u64)
                .ok_or("a key without `mod_revision`")?;
            Ok(Versioned {
                value: Some(value_of(kv)?),
                version: Version::Tag(revision.to_string()),
            })
        }
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
        let body = format!("{{\"key\":\"{}\"}}", self.key(key));
        self.exchange(RANGE, &body, |doc| first_kv(doc)?.map(value_of).transpose())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        check_key(key)?;
        let mut body = format!("{{\"key\":\"{}\",\"value\":\"", self.key(key));
        base64::encode_into(&mut body, value);
        body.push_str("\"}");
        self.exchange(PUT, &body, |_| Ok(()))
    }

    fn delete(&self, key: &str) -> Result<(), Error> {
        check_key(key)?;
        let body = format!("{{\"key\":\"{}\"}}", self.key(key));
        self.exchange(DELETE_RANGE, &body, |_| Ok(()))
    }

    fn exists(&self, key: &str) -> Result<bool, Error> {
        check_key(key)?;
        let body = format!("{{\"key\":\"{}\",\"count_only\":true}}", self.key(key));
        self.exchange(RANGE, &body, |doc| {
            Ok(doc.get("count").and_then(Value::as_u64).unwrap_or(0) > 0)
        })
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
        let body = format!(
            "{{\"key\":\"{start}\",\"range_end\":\"{}\",\"limit\":\"{}\",\"keys_only\":true}}",
            base64::encode(end.as_bytes()),
            self.page_size
        );
        self.exchange(RANGE, &body, |doc| {
            let mut keys = Vec::new();
            if let Some(kvs) = doc.get("kvs") {
                for kv in kvs.as_array().ok_or("`kvs` is not a list")? {
                    let full = kv
                        .get("key")
                        .and_then(Value::as_str)
                        .and_then(|k| base64::decode(k).ok())
                        .ok_or("a listed key is not base64")?;
                    let key = full
                        .strip_prefix(self.space.as_bytes())
                        .ok_or("a listed key outside the bucket")?;
                    let key = core::str::from_utf8(key).map_err(
                        |_| "a key in the bucket is not UTF-8 (written by another client)",
                    )?;
                    keys.push(String::from(key));
                }
            }
            let more = doc.get("more").and_then(Value::as_bool) == Some(true);
            let cursor = if more { keys.last().cloned() } else { None };
            Ok(Page { keys, cursor })
        })
    }

    // A refused transaction hands back the key's value and revision, so assuming the key
    // absent costs nothing when it is not and saves the read when it is.
    const INCREMENT_ASSUMES_ABSENT: bool = true;

    fn read_versioned(&self, key: &str) -> Result<Versioned, Error> {
        check_key(key)?;
        let body = format!("{{\"key\":\"{}\"}}", self.key(key));
        self.exchange(RANGE, &body, versioned)
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
            |key| Op::Range(key),
            |responses| {
                for response in responses {
                    let range = response
                        .get("response_range")
                        .ok_or("a read without `response_range`")?;
                    values.push(first_kv(range)?.map(value_of).transpose()?);
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
            |(key, value)| Op::Put(key, value),
            |_| Ok(()),
        )
    }

    fn delete_many(&self, keys: &[String]) -> Result<(), Error> {
        check_batch("delete-many", keys, check_key)?;
        self.txn_chunks(
            &distinct(keys),
            |key| key.len(),
            |key| Op::Delete(key),
            |_| Ok(()),
        )
    }
}
