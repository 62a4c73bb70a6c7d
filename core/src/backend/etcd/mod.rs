//! The `etcd` backend: etcd v3's JSON gateway (`POST /v3/kv/{range,put,txn}`, and
//! `/v3/lease/{grant,revoke}` for the entries extension's time-to-live).
//!
//! A bucket is the key range `<prefix>!<encoded bucket>/` (`kvplug_settings::layout`): the
//! bucket name is encoded (`kvplug_protocol::names`) so it never contains `/` or `!`, which
//! makes one bucket's range disjoint from every other's, under any prefix. Keys and values travel base64-encoded, as the gateway wants.
//! Compare-and-swap is a transaction on `mod_revision` (or `create_revision == 0` for an
//! absent key) whose failure branch reads the key, so a lost race costs no extra request.
//! etcd has no arithmetic, so `increment` is that same transaction in a bounded loop.
//!
//! `kvplug:keyvalue/entries` is in [`entries`]: metadata in a companion key beside the
//! bucket's range, which `delete` and `delete-many` remove with the key and `increment`
//! keeps, with the key's lease.
//!
//! The answers are read in [`answer`] (fuzzed).

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

use kvplug_codec::base64;
use kvplug_protocol::names;
use kvplug_settings::layout;
use serde::{Serialize, Serializer};

use super::json::Base64;
use super::{
    Backend, Page, Swap, Version, Versioned, check_batch, check_pairs, chunks, distinct,
    large_first, last_wins,
};
use crate::client::{Client, MAX_RESPONSE_BYTES, SMALL_ANSWER_BYTES, Verb};
use crate::error::Error;
use crate::settings::Settings;

mod answer;
mod entries;
pub use answer::{Answer, Unreadable, error_message, error_reason, read_answer};

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
const TXN: &str = "/v3/kv/txn";
const LEASE_GRANT: &str = "/v3/lease/grant";
const LEASE_REVOKE: &str = "/v3/lease/revoke";

/// A bucket on an etcd cluster.
#[derive(Debug, Clone)]
pub struct EtcdBackend {
    client: Rc<Client>,
    /// `<prefix>!<encoded bucket>/`, the start of every key of the bucket.
    space: Rc<str>,
    page_size: u32,
}

// The gateway's request bodies. Keys are the base64 of the full etcd key.

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
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    compare: &'a [Compare],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    failure: &'a [RequestOp<'a>],
    success: &'a [RequestOp<'a>],
}

/// A transaction's condition on one key (its base64 already).
#[derive(Serialize)]
struct Compare {
    key: String,
    target: &'static str,
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    create_revision: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mod_revision: Option<String>,
}

impl Compare {
    /// True while `key` (base64) is at `expected`: absent, or last written at a revision.
    fn at(key: String, expected: &Version) -> Self {
        let (target, create_revision, mod_revision) = match expected {
            Version::Absent => ("CREATE", Some("0"), None),
            Version::Tag(revision) => ("MOD", None, Some(revision.clone())),
        };
        Compare {
            key,
            target,
            result: "EQUAL",
            create_revision,
            mod_revision,
        }
    }
}

/// One operation inside a transaction; `key` is already the gateway's base64.
#[derive(Serialize)]
enum RequestOp<'a> {
    #[serde(rename = "request_range")]
    Range {
        key: String,
        #[serde(skip_serializing_if = "is_false")]
        keys_only: bool,
    },
    #[serde(rename = "request_put")]
    Put {
        key: String,
        value: Base64<'a>,
        /// The lease the key is attached to; none (detached) when absent.
        #[serde(skip_serializing_if = "Option::is_none")]
        lease: Option<Decimal>,
    },
    #[serde(rename = "request_delete_range")]
    Delete { key: String },
}

impl<'a> RequestOp<'a> {
    /// A read of one key, value included.
    fn range(key: String) -> Self {
        RequestOp::Range {
            key,
            keys_only: false,
        }
    }

    /// A put without a lease (detaching the key from any it had).
    fn put(key: String, value: &'a [u8]) -> Self {
        RequestOp::Put {
            key,
            value: Base64(value),
            lease: None,
        }
    }
}

/// `lease/grant`'s request.
#[derive(Serialize)]
struct LeaseGrant {
    #[serde(rename = "TTL")]
    ttl: Decimal,
}

/// `lease/revoke`'s request.
#[derive(Serialize)]
struct LeaseRevoke {
    #[serde(rename = "ID")]
    id: Decimal,
}

/// The most a transaction of these operations may answer: values only if one of them reads
/// values; otherwise headers, counts and at most a key (keys-only reads), an acknowledgement.
fn answer_cap(branches: &[&[RequestOp<'_>]]) -> u64 {
    let reads_values = branches.iter().any(|ops| {
        ops.iter().any(|op| {
            matches!(
                op,
                RequestOp::Range {
                    keys_only: false,
                    ..
                }
            )
        })
    });
    if reads_values {
        MAX_RESPONSE_BYTES
    } else {
        SMALL_ANSWER_BYTES
    }
}

fn is_false(flag: &bool) -> bool {
    !*flag
}

/// A number written as a JSON string, as the gateway reads int64 fields.
#[derive(Clone)]
struct Decimal(u64);

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

fn to_json(body: &impl Serialize) -> Result<Vec<u8>, Error> {
    super::json::to_json("etcd", body)
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
        // A put or a lease answers a header and a number; a range may carry values, which
        // etcd does not limit below its request size.
        let cap = match path {
            PUT | LEASE_GRANT | LEASE_REVOKE => SMALL_ANSWER_BYTES,
            _ => MAX_RESPONSE_BYTES,
        };
        self.call_capped(path, body, cap)
    }

    /// [`EtcdBackend::call`], reading at most `cap` bytes of the answer.
    fn call_capped(&self, path: &str, body: &[u8], cap: u64) -> Result<Vec<u8>, Error> {
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
        self.read_body(path, &body, read)
    }

    fn read_body<T>(
        &self,
        path: &str,
        body: &[u8],
        read: impl FnOnce(&Answer<'_>) -> Result<T, &'static str>,
    ) -> Result<T, Error> {
        let answer = read_answer(body).map_err(|why| self.unreadable(path, why))?;
        read(&answer).map_err(|detail| self.client.malformed(Verb::Post, path, detail))
    }

    /// A transaction, of which `read` sees the answer.
    fn txn<T>(
        &self,
        guard: Option<(&str, &Version)>,
        success: &[RequestOp<'_>],
        read: impl FnOnce(&Answer<'_>) -> Result<T, &'static str>,
    ) -> Result<T, Error> {
        // A guarded transaction reads the key when refused.
        let cap = if guard.is_some() {
            MAX_RESPONSE_BYTES
        } else {
            answer_cap(&[success])
        };
        let body = self.call_capped(TXN, &self.txn_json(guard, success)?, cap)?;
        self.read_body(TXN, &body, read)
    }

    /// A transaction body: `success` ops unconditionally, or guarded by `compare` with a
    /// read of `key` as the failure branch.
    fn txn_json(
        &self,
        guard: Option<(&str, &Version)>,
        success: &[RequestOp<'_>],
    ) -> Result<Vec<u8>, Error> {
        let compare: Vec<Compare> = guard
            .map(|(key, expected)| Compare::at(self.key(key), expected))
            .into_iter()
            .collect();
        let failure: Vec<RequestOp<'_>> = guard
            .map(|(key, _)| RequestOp::range(self.key(key)))
            .into_iter()
            .collect();
        to_json(&TxnRequest {
            compare: &compare,
            failure: &failure,
            success,
        })
    }

    /// A transaction of `success` if every `compare` holds, else of `failure`; `read` sees
    /// the answer.
    fn txn_if<T>(
        &self,
        compare: &[Compare],
        success: &[RequestOp<'_>],
        failure: &[RequestOp<'_>],
        read: impl FnOnce(&Answer<'_>) -> Result<T, &'static str>,
    ) -> Result<T, Error> {
        let body = to_json(&TxnRequest {
            compare,
            failure,
            success,
        })?;
        let body = self.call_capped(TXN, &body, answer_cap(&[success, failure]))?;
        self.read_body(TXN, &body, read)
    }

    /// A conditional put; on a lost race, what the key holds now.
    fn put_if(&self, key: &str, expected: &Version, value: &[u8]) -> Result<Swap, Error> {
        let put = RequestOp::put(self.key(key), value);
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

    /// Runs the `PER` operations `ops` gives each item as transactions within etcd's
    /// limits; `read` sees each chunk's answer.
    fn txn_chunks<T, const PER: usize>(
        &self,
        items: &[T],
        size: impl Fn(&T) -> usize,
        ops: impl Fn(&T) -> [RequestOp<'_>; PER],
        mut read: impl FnMut(&Answer<'_>) -> Result<(), &'static str>,
    ) -> Result<(), Error> {
        for chunk in chunks(items, MAX_TXN_OPS / PER.max(1), MAX_TXN_BYTES, size) {
            let ops: Vec<RequestOp<'_>> = chunk.iter().flat_map(&ops).collect();
            self.txn(None, &ops, |answer| {
                if answer.reads().len() == ops.len() {
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
        let body = self.call(RANGE, &to_json(&RangeRequest::of(&key))?)?;
        let found = read_answer(&body)
            .map_err(|why| self.unreadable(RANGE, why))?
            .first_found(&body)
            .map_err(|detail| self.client.malformed(Verb::Post, RANGE, detail))?;
        found
            .map(|found| found.take(body))
            .transpose()
            .map_err(|_| self.client.malformed(Verb::Post, RANGE, answer::NOT_BASE64))
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
        // The companion (metadata) goes with the key, in the same transaction.
        self.txn(None, &self.entry_deletes(key), |_| Ok(()))
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

    /// The default loop's two transactions, but each also reads the companion and rewrites
    /// a valid one (metadata kept), and both keys keep the lease the key had (expiry kept):
    /// a counter with a time-to-live keeps counting inside its window.
    fn increment(&self, key: &str, delta: i64) -> Result<i64, Error> {
        check_key(key)?;
        self.increment_entry(key, delta)
    }

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
            |key| [RequestOp::range(self.key(key))],
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
            |(key, value)| [RequestOp::put(self.key(key), value)],
            |_| Ok(()),
        )
    }

    fn delete_many(&self, keys: &[String]) -> Result<(), Error> {
        check_batch("delete-many", keys, check_key)?;
        self.txn_chunks(
            &distinct(keys),
            |key| key.len(),
            |key| self.entry_deletes(key),
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
pub(crate) mod tests {
    use super::*;

    /// A backend for building requests; nothing is sent.
    pub(crate) fn backend() -> EtcdBackend {
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
            &[RequestOp::put(b.key("k"), b"hi")],
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
                    RequestOp::range(b.key("a")),
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
    fn only_transactions_that_read_values_may_answer_more_than_an_acknowledgement() {
        let b = backend();
        let deletes = b.entry_deletes("k");
        assert_eq!(answer_cap(&[&deletes]), SMALL_ANSWER_BYTES);
        let keys_only = [RequestOp::Range {
            key: b.key("k"),
            keys_only: true,
        }];
        let puts = [RequestOp::put(b.key("k"), b"v")];
        assert_eq!(answer_cap(&[&keys_only, &puts]), SMALL_ANSWER_BYTES);
        let read = [RequestOp::range(b.key("k"))];
        assert_eq!(answer_cap(&[&puts, &read]), MAX_RESPONSE_BYTES);
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
}
