//! The `dynamodb` backend: Amazon DynamoDB's JSON 1.0 protocol (`POST /` with
//! `x-amz-target: DynamoDB_20120810.<Operation>`), signed with AWS Signature Version 4.
//!
//! All buckets share one table (`table` setting) whose partition key `b` is the bucket and
//! whose sort key `k` is the key (README, "DynamoDB"). An item holds its value as binary `v`,
//! or, once `increment` has touched it, as the number `n`, so that `UpdateItem ADD` can add
//! in one request; `get` returns a number as its ASCII decimal, which keeps the two forms
//! indistinguishable to the application. Every write also stores a fresh version `ver`, and
//! compare-and-swap is a `ConditionExpression` on it. An entry of `kvplug:keyvalue/entries`
//! (`entries.rs`) adds its metadata `m` and its expiry `e`; every read treats an expired item
//! as absent, in the same request (`items.rs`, "Expiry").
//!
//! Key attributes may not be empty, so the partition key is `<prefix>!<encoded bucket>`
//! (`kvplug_settings::layout`; `kvplug_protocol::names`, `~` for the empty name) and the
//! sort key is `/` + the key.

pub mod batch;
pub mod entries;
pub mod errors;
pub mod items;
pub mod json;

use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use kvplug_protocol::names;
use kvplug_settings::layout;

use self::batch::WriteRequest;
use self::errors::error_of;
use self::items::{
    DeleteItem, GetItem, Item, Key, LIVE, PutItem, Query, Seen, Stored, UpdateItem, Values,
    check_sort_key, condition, fresh_version, live_at, read_ack, read_exists, read_item,
    read_query, read_sum,
};
use self::json::{Attr, Number, Unreadable, to_json};
use super::retry::{Attempt, Policy, Repeat};
use super::{
    Backend, Page, Swap, Version, Versioned, check_batch, check_pairs, distinct, last_wins,
};
use crate::bindings::wasi::clocks::wall_clock;
use crate::client::{Client, MAX_RESPONSE_BYTES, Response, SMALL_ANSWER_BYTES, Verb};
use crate::clock::Utc;
use crate::error::Error;
use crate::settings::Settings;
use crate::signing::sigv4;
use kvplug_settings::backend::DynamoDbSettings;

/// The header every DynamoDB answer carries, errors included: how its answers are told
/// from those of whatever else a wrong `url` reaches.
const REQUEST_ID: &str = "x-amzn-requestid";

/// The JSON 1.0 API of the tables, and that of their streams (the watch driver's feed): the
/// first part of `x-amz-target`.
pub(crate) const TABLES_API: &str = "DynamoDB_20120810";
#[cfg(feature = "feed")]
pub(crate) const STREAMS_API: &str = "DynamoDBStreams_20120810";

/// The table, the credentials and the connection, shared by every bucket of one `open`.
#[derive(Debug)]
struct Account {
    client: Client,
    table: String,
    region: String,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    page_size: u32,
}

/// A bucket: one partition of the table.
#[derive(Debug, Clone)]
pub struct DynamoBackend {
    account: Rc<Account>,
    /// The partition key value.
    partition: Rc<str>,
}

/// How DynamoDB answered a request it did not refuse outright.
enum Answer {
    Done(Vec<u8>),
    /// `ConditionalCheckFailedException`: the write's condition did not hold.
    ConditionFailed,
}

/// Throttling (and a 5xx, where repeating is safe) is retried 6 times, waiting from 25 ms.
const RETRY: Policy = Policy {
    retries: 6,
    base_ms: 25,
    cap_ms: 2_000,
};

/// The most a successful answer to `operation` can hold. DynamoDB's own limits bound them all:
/// an item is at most 400 KB (a value as base64 in JSON, 4/3 of that), a query page 1 MB of
/// keys, a `BatchGetItem` answer 16 MB of items, and `BatchWriteItem` hands back at most its 25
/// items; escaping and the envelope are the rest. The extension's `DeleteItem` returns the old
/// item (`ALL_OLD`): one item, under 1 MiB as JSON.
fn answer_cap(operation: &str) -> u64 {
    const MB: u64 = 1 << 20;
    match operation {
        "GetItem" => 2 * MB,
        "PutItem" | "DeleteItem" | "UpdateItem" => SMALL_ANSWER_BYTES,
        "Query" => 8 * MB,
        "BatchWriteItem" => 16 * MB,
        "BatchGetItem" => 24 * MB,
        // A page of stream records: 1 MB of records as DynamoDB counts them, each with its
        // keys and new image as JSON (binary as base64).
        "GetRecords" => 8 * MB,
        _ => MAX_RESPONSE_BYTES,
    }
}

/// Now by the adapter's wall clock, in milliseconds since the Unix epoch: what expiry is
/// judged by (docs/extension-design.md §4, "Clock skew").
fn now_ms() -> u64 {
    let now = wall_clock::now();
    now.seconds
        .saturating_mul(1000)
        .saturating_add(u64::from(now.nanoseconds / 1_000_000))
}

/// Epoch seconds at `now_ms`, rounded down: an item is live while `e > :now`, which is
/// `e * 1000 > now_ms` exactly.
fn seconds(now_ms: u64) -> i64 {
    i64::try_from(now_ms / 1000).unwrap_or(i64::MAX)
}

impl DynamoBackend {
    pub(crate) fn table(&self) -> &str {
        &self.account.table
    }

    /// The partition key value of this bucket.
    #[cfg(feature = "feed")]
    pub(crate) fn partition(&self) -> &str {
        &self.partition
    }

    #[cfg(feature = "feed")]
    pub(crate) fn client(&self) -> &Client {
        &self.account.client
    }

    fn key<'a>(&'a self, key: &'a str) -> Result<Key<'a>, Error> {
        Key::new(&self.partition, key)
    }

    /// Sends one operation, signed, repeating it with backoff while the service throttles
    /// it (or, if `repeat` allows, answers 500/502/503/504).
    fn call(&self, operation: &'static str, body: &[u8], repeat: Repeat) -> Result<Answer, Error> {
        let client = &self.account.client;
        let request = format!("POST {} ({operation})", client.target("/"));
        RETRY.run(client, &request, || {
            let response = self.send_signed(operation, body)?;
            if response.status == 200 {
                return Ok(Attempt::Done(Answer::Done(response.body)));
            }
            let error = error_of(&response.body).map_err(|e| self.malformed(operation, e))?;
            let (kind, message) = (error.kind, error.message);
            match kind.as_str() {
                "ConditionalCheckFailedException" => {
                    return Ok(Attempt::Done(Answer::ConditionFailed));
                }
                "ResourceNotFoundException" => return Err(Error::NoSuchStore),
                "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "MissingAuthenticationTokenException"
                | "IncompleteSignatureException"
                | "AccessDeniedException"
                | "ExpiredTokenException" => return Err(Error::AccessDenied),
                _ => {}
            }
            let throttled = matches!(
                kind.as_str(),
                "ThrottlingException"
                    | "ProvisionedThroughputExceededException"
                    | "RequestLimitExceeded"
            );
            // Only the statuses of a service that is up but could not serve this once; an
            // unknown status is no reason to believe a retry would fare better.
            let unavailable = matches!(response.status, 500 | 502 | 503 | 504);
            if (throttled || unavailable) && repeat.allows(throttled) {
                let kind = if kind.is_empty() {
                    "no error type"
                } else {
                    &kind
                };
                let message = if message.is_empty() {
                    "no message"
                } else {
                    &message
                };
                return Ok(Attempt::Busy {
                    status: response.status,
                    reason: format!("{kind}: {message}"),
                });
            }
            let reason = if kind.is_empty() {
                message
            } else {
                format!("{operation}: {kind}: {message}")
            };
            Err(client.status_with(Verb::Post, "/", response.status, &reason))
        })
    }

    /// Sends one operation once, signed with SigV4; an answer without DynamoDB's request id
    /// is not DynamoDB's.
    fn send_signed(&self, operation: &'static str, body: &[u8]) -> Result<Response, Error> {
        let response = self.send_unchecked(TABLES_API, operation, body)?;
        if response.header(REQUEST_ID).is_none() {
            return Err(self.foreign(operation, response.status, "no `x-amzn-requestid` header"));
        }
        Ok(response)
    }

    /// Whether `response` carries DynamoDB's request id, as every answer of its own does.
    #[cfg(feature = "feed")]
    pub(crate) fn is_dynamodbs(response: &Response) -> bool {
        response.header(REQUEST_ID).is_some()
    }

    /// Sends one operation of `api` once, signed with SigV4, whatever answers: the stream
    /// feed must see moto's `500` pages, which carry no request id.
    pub(crate) fn send_unchecked(
        &self,
        api: &str,
        operation: &str,
        body: &[u8],
    ) -> Result<Response, Error> {
        let account = &*self.account;
        let path = account.client.target("/");
        let target = format!("{api}.{operation}");
        let time = Utc::now();
        let date = time.basic_date_time();
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(6);
        headers.push(("content-type", "application/x-amz-json-1.0"));
        headers.push(("host", account.client.authority()));
        headers.push(("x-amz-date", &date));
        if let Some(token) = &account.session_token {
            headers.push(("x-amz-security-token", token));
        }
        headers.push(("x-amz-target", &target));
        let authorization = sigv4::authorization(
            &sigv4::Credentials {
                access_key_id: &account.access_key_id,
                secret_access_key: &account.secret_access_key,
            },
            &account.region,
            "dynamodb",
            &time,
            &sigv4::Request {
                method: "POST",
                path: &path,
                query: "",
                headers: &headers,
                body,
            },
        );
        // The host sets `host` from the `url`; it is signed above, never sent twice.
        headers.retain(|(name, _)| *name != "host");
        headers.push(("authorization", &authorization));
        account
            .client
            .send_capped(Verb::Post, "/", &headers, body, answer_cap(operation))
    }

    pub(crate) fn foreign(&self, operation: &str, status: u16, why: &str) -> Error {
        super::foreign(
            Verb::Post,
            format!("{} ({operation})", self.account.client.target("/")),
            status,
            "DynamoDB",
            why,
        )
    }

    pub(crate) fn malformed(&self, operation: &str, detail: impl ToString) -> Error {
        let path = format!("/ ({operation})");
        self.account.client.malformed(Verb::Post, &path, detail)
    }

    /// The error for a successful answer `read` could not use.
    fn unreadable(&self, operation: &str, why: Unreadable) -> Error {
        match why {
            Unreadable::Foreign => self.foreign(operation, 200, "not a JSON object"),
            Unreadable::Malformed(detail) => self.malformed(operation, detail),
        }
    }

    /// Reads a successful answer of `operation`.
    pub(crate) fn answer<T>(
        &self,
        operation: &str,
        bytes: &[u8],
        read: impl FnOnce(&[u8]) -> Result<T, Unreadable>,
    ) -> Result<T, Error> {
        read(bytes).map_err(|why| self.unreadable(operation, why))
    }

    /// `call` for an operation that has no condition, then `read` the answer.
    pub(crate) fn exchange<T>(
        &self,
        operation: &'static str,
        body: &[u8],
        read: impl FnOnce(&[u8]) -> Result<T, Unreadable>,
    ) -> Result<T, Error> {
        match self.call(operation, body, Repeat::Always)? {
            Answer::Done(bytes) => self.answer(operation, &bytes, read),
            Answer::ConditionFailed => {
                Err(self.malformed(operation, "a condition failed on a request that has none"))
            }
        }
    }

    fn get_item(&self, key: &str, projection: Option<&str>) -> Result<Vec<u8>, Error> {
        to_json(&GetItem {
            table_name: self.table(),
            key: self.key(key)?,
            projection_expression: projection,
            consistent_read: true,
        })
    }

    /// The item at `key`, live or expired.
    fn read_stored(&self, key: &str) -> Result<Option<Stored>, Error> {
        let body = self.get_item(key, None)?;
        self.exchange("GetItem", &body, read_item)
    }

    /// The value and version at `key`: an expired item has no value, and a version that
    /// says so (`items::Seen`).
    fn read_item(&self, key: &str) -> Result<Versioned, Error> {
        let stored = self.read_stored(key)?;
        let now_s = seconds(now_ms());
        Ok(stored.map_or_else(Versioned::absent, |stored| stored.versioned(now_s)))
    }

    /// `increment`'s slow path: `sum` written as a number (replacing stored bytes) only if
    /// the key is still at `version`. A live entry keeps its metadata and expiry; over an
    /// absent or expired one the counter starts anew, with neither.
    fn write_number(&self, key: &str, version: &Version, sum: i64) -> Result<Swap, Error> {
        let condition = condition(version);
        let update_expression = if Seen::of(version).is_live() {
            "SET n = :sum, ver = :ver REMOVE v"
        } else {
            "SET n = :sum, ver = :ver REMOVE v, m, e"
        };
        let body = to_json(&UpdateItem {
            table_name: self.table(),
            key: self.key(key)?,
            update_expression,
            condition_expression: condition.expression,
            expression_attribute_values: Values {
                sum: Some(Attr::N(Number(sum))),
                ver: Some(Attr::Token(fresh_version().1)),
                ..condition.values(seconds(now_ms()))
            },
            return_values: None,
        })?;
        match self.call("UpdateItem", &body, Repeat::IfRefused)? {
            Answer::Done(bytes) => self
                .answer("UpdateItem", &bytes, read_ack)
                .map(|()| Swap::Done),
            Answer::ConditionFailed => Ok(Swap::Conflict(self.read_item(key)?)),
        }
    }
}

impl Backend for DynamoBackend {
    fn open(settings: &Settings, bucket: &str) -> Result<Self, Error> {
        // Buckets are partitions and always exist; a missing table shows as `no-such-store`
        // on the first request, so opening costs nothing.
        // The settings are checked where `kvplug seal` checks them too.
        let typed = DynamoDbSettings::from_settings(settings).map_err(Error::Settings)?;
        let client = Client::new(settings, None);
        let partition = layout::namespace(&settings.prefix, bucket, names::encode, None)?;
        kvplug_settings::backend::dynamodb_partition(partition.len()).map_err(Error::Invalid)?;
        let account = Account {
            table: typed.table,
            region: typed.region,
            access_key_id: typed.access_key_id,
            secret_access_key: typed.secret_access_key,
            session_token: typed.session_token,
            page_size: settings.page_size,
            client,
        };
        Ok(DynamoBackend {
            account: Rc::new(account),
            partition: Rc::from(partition),
        })
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.read_item(key)?.value)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        let body = to_json(&PutItem {
            table_name: self.table(),
            item: Item::new(&self.partition, key, value)?,
            condition_expression: None,
            expression_attribute_values: Values::default(),
        })?;
        self.exchange("PutItem", &body, read_ack)
    }

    fn delete(&self, key: &str) -> Result<(), Error> {
        let body = to_json(&DeleteItem {
            table_name: self.table(),
            key: self.key(key)?,
            condition_expression: None,
            expression_attribute_values: Values::default(),
            return_values: None,
        })?;
        self.exchange("DeleteItem", &body, read_ack)
    }

    fn exists(&self, key: &str) -> Result<bool, Error> {
        let body = self.get_item(key, Some("k, e"))?;
        let found = self.exchange("GetItem", &body, read_exists)?;
        let now_s = seconds(now_ms());
        Ok(found.is_some_and(|expires_s| live_at(expires_s, now_s)))
    }

    fn list(&self, cursor: Option<&str>) -> Result<Page, Error> {
        let body = to_json(&Query {
            table_name: self.table(),
            key_condition_expression: "b = :b",
            filter_expression: LIVE,
            expression_attribute_values: Values {
                b: Some(Attr::S(&self.partition)),
                now: Some(Attr::N(Number(seconds(now_ms())))),
                ..Values::default()
            },
            projection_expression: "k",
            consistent_read: true,
            limit: self.account.page_size,
            exclusive_start_key: cursor.map(|last| self.key(last)).transpose()?,
        })?;
        self.exchange("Query", &body, read_query)
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, Error> {
        // One request when the key is absent or a live number: ADD, on condition that no
        // byte value is stored, that the sum stays within i64 (DynamoDB's numbers are
        // wider; a sum beyond i64 must not be written), and that the item is live (ADD keeps
        // its metadata and expiry, which only a live entry may pass on).
        let (condition, bound) = if delta >= 0 {
            (
                "attribute_not_exists(v) AND (attribute_not_exists(n) OR n <= :bound) AND (attribute_not_exists(e) OR e > :now)",
                i64::MAX - delta,
            )
        } else {
            (
                "attribute_not_exists(v) AND (attribute_not_exists(n) OR n >= :bound) AND (attribute_not_exists(e) OR e > :now)",
                i64::MIN - delta,
            )
        };
        let body = to_json(&UpdateItem {
            table_name: self.table(),
            key: self.key(key)?,
            update_expression: "ADD n :d SET ver = :ver",
            condition_expression: condition,
            expression_attribute_values: Values::add(delta, bound, seconds(now_ms())),
            return_values: Some("UPDATED_NEW"),
        })?;
        match self.call("UpdateItem", &body, Repeat::IfRefused)? {
            Answer::Done(bytes) => self.answer("UpdateItem", &bytes, read_sum),
            // A byte value is stored, the item has expired (then the count starts from 0),
            // or the sum would overflow (which `counter::add` reports): write the sum on the
            // version read, or say why not.
            Answer::ConditionFailed => {
                let current = self.read_item(key)?;
                super::increment_by_swap(key, delta, current, |version, sum| {
                    self.write_number(key, version, sum)
                })
            }
        }
    }

    fn read_versioned(&self, key: &str) -> Result<Versioned, Error> {
        self.read_item(key)
    }

    fn write_if(&self, key: &str, expected: &Version, value: &[u8]) -> Result<Swap, Error> {
        // A whole item: a swap clears the entry's metadata and expiry.
        let condition = condition(expected);
        let body = to_json(&PutItem {
            table_name: self.table(),
            item: Item::new(&self.partition, key, value)?,
            condition_expression: Some(condition.expression),
            expression_attribute_values: condition.values(seconds(now_ms())),
        })?;
        match self.call("PutItem", &body, Repeat::IfRefused)? {
            Answer::Done(bytes) => self
                .answer("PutItem", &bytes, read_ack)
                .map(|()| Swap::Done),
            Answer::ConditionFailed => Ok(Swap::Conflict(self.read_item(key)?)),
        }
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        // BatchGetItem refuses a key twice and answers in any order: ask for each key once,
        // then answer in the order asked.
        check_batch("get-many", keys, check_sort_key)?;
        let found = self.batch_get(distinct(keys))?;
        // BatchGetItem has no condition: expired items come back, and are dropped here.
        let now_s = seconds(now_ms());
        Ok(keys
            .iter()
            .map(|key| {
                found
                    .get(key)
                    .filter(|(expires_s, _)| live_at(*expires_s, now_s))
                    .map(|(_, value)| value.clone())
            })
            .collect())
    }

    fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), Error> {
        // BatchWriteItem refuses a key twice in one request; the last value is what
        // sequential sets would leave.
        check_pairs(pairs, check_sort_key)?;
        let requests = last_wins(pairs)
            .into_iter()
            .map(|(key, value)| {
                let item = Item::new(&self.partition, key, value)?;
                Ok((key.as_str(), WriteRequest::PutRequest { item }))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        self.batch_write(&requests)
    }

    fn delete_many(&self, keys: &[String]) -> Result<(), Error> {
        check_batch("delete-many", keys, check_sort_key)?;
        let requests = distinct(keys)
            .into_iter()
            .map(|key| {
                let key_json = self.key(key)?;
                Ok((key.as_str(), WriteRequest::DeleteRequest { key: key_json }))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        self.batch_write(&requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> DynamoBackend {
        let settings = Settings::from_lookup(|name| {
            Ok(match name {
                "url" => Some(String::from("http://127.0.0.1:4567")),
                "region" => Some(String::from("us-east-1")),
                "access-key-id" => Some(String::from("AKIDEXAMPLE")),
                "secret-access-key" => {
                    Some(String::from("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"))
                }
                _ => None,
            })
        })
        .unwrap();
        DynamoBackend::open(&settings, "b").unwrap()
    }

    #[test]
    fn a_field_twice_is_a_malformed_answer_naming_the_operation() {
        let b = backend();
        let error = b
            .answer(
                "GetItem",
                br#"{"Item":{"k":{"S":"/a"}},"Item":{}}"#,
                read_item,
            )
            .unwrap_err();
        let Error::Malformed {
            method,
            path,
            detail,
        } = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!((*method, path.as_str()), ("POST", "/ (GetItem)"));
        assert!(
            detail.starts_with("duplicate field `Item` at line 1 column "),
            "{detail}"
        );
        assert!(
            error
                .to_string()
                .starts_with("POST / (GetItem): malformed response: duplicate field `Item`"),
            "{error}"
        );
        // Not an object: not DynamoDB's.
        let error = b.answer("PutItem", b"[]", read_ack).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("is not from DynamoDB (not a JSON object)"),
            "{error}"
        );
    }
}
