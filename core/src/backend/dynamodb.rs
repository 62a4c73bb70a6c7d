//! The `dynamodb` backend: Amazon DynamoDB's JSON 1.0 protocol (`POST /` with
//! `x-amz-target: DynamoDB_20120810.<Operation>`), signed with AWS Signature Version 4.
//!
//! All buckets share one table (`table` setting) whose partition key `b` is the bucket and
//! whose sort key `k` is the key (README, "DynamoDB"). An item holds its value as binary `v`,
//! or, once `increment` has touched it, as the number `n`, so that `UpdateItem ADD` can add
//! in one request; `get` returns a number as its ASCII decimal, which keeps the two forms
//! indistinguishable to the application. Every write also stores a fresh version token
//! `ver`, and compare-and-swap is a `ConditionExpression` on it.
//!
//! Key attributes may not be empty, so the partition key is `<prefix>!<encoded bucket>`
//! (`kvplug_settings::layout`; `kvplug_protocol::names`, `~` for the empty name) and the
//! sort key is `/` + the key.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use kvplug_codec::base64;
use kvplug_codec::json::{self, Value};
use kvplug_protocol::names;
use kvplug_settings::layout;

use super::retry::{Attempt, Policy, Repeat};
use super::{
    Backend, Page, Swap, Version, Versioned, check_batch, check_pairs, distinct, last_wins,
};
use crate::client::{Client, Response, Verb};
use crate::clock::{self, Utc};
use crate::error::Error;
use crate::settings::Settings;
use crate::signing::sigv4;

/// DynamoDB's limit on an item: the lengths of its attribute names and values.
const MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB's limit on a sort key's value.
const MAX_SORT_KEY_BYTES: usize = 1024;
/// DynamoDB's limit on a partition key's value.
const MAX_PARTITION_KEY_BYTES: usize = 2048;
/// The header every DynamoDB answer carries, errors included: how its answers are told
/// from those of whatever else a wrong `url` reaches.
const REQUEST_ID: &str = "x-amzn-requestid";
/// Keys per `BatchGetItem`.
const MAX_BATCH_GET: usize = 100;
/// Requests per `BatchWriteItem`.
const MAX_BATCH_WRITE: usize = 25;
/// Rounds of `Unprocessed*` in a row without progress before a batch gives up.
const MAX_IDLE_ROUNDS: u32 = 8;

/// The table, the credentials and the connection, shared by every bucket of one `open`.
#[derive(Debug)]
struct Account {
    client: Client,
    /// The table name as a JSON string.
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
    /// The partition key value, as a JSON string.
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

fn required(value: &Option<String>, name: &str) -> Result<String, Error> {
    value
        .clone()
        .ok_or_else(|| Error::Settings(format!("the dynamodb backend needs `{name}`")))
}

/// `dynamodb.<region>.amazonaws.com[.cn]` names its region.
fn region_of_host(authority: &str) -> Option<String> {
    let host = authority.split(':').next()?;
    let rest = host.strip_prefix("dynamodb.")?;
    let (region, domain) = rest.split_once('.')?;
    domain
        .starts_with("amazonaws.com")
        .then(|| String::from(region))
}

impl DynamoBackend {
    fn json_string(text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 2);
        json::write_str(&mut out, text);
        out
    }

    /// The sort key of `key`, refusing one DynamoDB cannot store.
    fn sort_key(key: &str) -> Result<String, Error> {
        let mut sort = String::with_capacity(key.len() + 1);
        sort.push('/');
        sort.push_str(key);
        if sort.len() > MAX_SORT_KEY_BYTES {
            return Err(Error::Invalid(format!(
                "DynamoDB sort keys hold at most {MAX_SORT_KEY_BYTES} bytes: this key is {} bytes, and the adapter adds 1",
                key.len()
            )));
        }
        Ok(sort)
    }

    /// `"Key":{…}`-style object of `key`: `{"b":{"S":…},"k":{"S":…}}`.
    fn write_key(&self, out: &mut String, key: &str) -> Result<(), Error> {
        let sort = Self::sort_key(key)?;
        out.push_str("{\"b\":{\"S\":");
        out.push_str(&self.partition);
        out.push_str("},\"k\":{\"S\":");
        json::write_str(out, &sort);
        out.push_str("}}");
        Ok(())
    }

    /// A whole item holding `value` at a fresh version; refuses one over DynamoDB's limit.
    fn write_item(&self, out: &mut String, key: &str, value: &[u8]) -> Result<(), Error> {
        // The key first: a key too long is the key's fault, not the value's.
        let sort = Self::sort_key(key)?;
        let version = clock::unique_token();
        // The item's size as DynamoDB counts it: each attribute's name and value (the
        // partition key is counted as sent, less its JSON quotes).
        let size = 1
            + self.partition.len().saturating_sub(2)
            + 1
            + 1
            + key.len()
            + 1
            + value.len()
            + 3
            + version.len();
        if size > MAX_ITEM_BYTES {
            let room = value.len().saturating_sub(size - MAX_ITEM_BYTES);
            return Err(Error::Invalid(format!(
                "DynamoDB items hold at most 400 KB: the value for `{key}` is {} bytes, and this key and bucket leave room for {room}",
                value.len()
            )));
        }
        out.push_str("{\"b\":{\"S\":");
        out.push_str(&self.partition);
        out.push_str("},\"k\":{\"S\":");
        json::write_str(out, &sort);
        out.push_str("},\"v\":{\"B\":\"");
        base64::encode_into(out, value);
        out.push_str("\"},\"ver\":{\"S\":");
        json::write_str(out, &version);
        out.push_str("}}");
        Ok(())
    }

    /// Sends one operation, signed, repeating it with backoff while the service throttles
    /// it (or, if `repeat` allows, answers 500/502/503/504).
    fn call(&self, operation: &'static str, body: &str, repeat: Repeat) -> Result<Answer, Error> {
        let client = &self.account.client;
        let request = format!("POST {} ({operation})", client.target("/"));
        RETRY.run(client, &request, || {
            let response = self.send_signed(operation, body)?;
            if response.status == 200 {
                return Ok(Attempt::Done(Answer::Done(response.body)));
            }
            let (kind, message) = error_of(&response.body);
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
    fn send_signed(&self, operation: &'static str, body: &str) -> Result<Response, Error> {
        let account = &*self.account;
        let path = account.client.target("/");
        let target = format!("DynamoDB_20120810.{operation}");
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
                body: body.as_bytes(),
            },
        );
        // The host sets `host` from the `url`; it is signed above, never sent twice.
        headers.retain(|(name, _)| *name != "host");
        headers.push(("authorization", &authorization));
        let response = account
            .client
            .send(Verb::Post, "/", &headers, body.as_bytes())?;
        if response.header(REQUEST_ID).is_none() {
            return Err(self.foreign(operation, response.status, "no `x-amzn-requestid` header"));
        }
        Ok(response)
    }

    fn foreign(&self, operation: &str, status: u16, why: &str) -> Error {
        super::foreign(
            Verb::Post,
            format!("{} ({operation})", self.account.client.target("/")),
            status,
            "DynamoDB",
            why,
        )
    }

    /// A successful answer's document, which is always a JSON object: a 200 with anything
    /// else is not DynamoDB's, and must not pass for a write done.
    fn document<'b>(&self, operation: &str, bytes: &'b [u8]) -> Result<Value<'b>, Error> {
        json::parse_bytes(bytes)
            .ok()
            .filter(|doc| doc.as_object().is_some())
            .ok_or_else(|| self.foreign(operation, 200, "not a JSON object"))
    }

    fn malformed(&self, operation: &str, detail: impl ToString) -> Error {
        let path = format!("/ ({operation})");
        self.account.client.malformed(Verb::Post, &path, detail)
    }

    /// `call` for an operation that has no condition; parses the answer and lets `read`
    /// pick what it needs.
    fn exchange<T>(
        &self,
        operation: &'static str,
        body: &str,
        read: impl FnOnce(&Value<'_>) -> Result<T, &'static str>,
    ) -> Result<T, Error> {
        match self.call(operation, body, Repeat::Always)? {
            Answer::Done(bytes) => {
                let doc = self.document(operation, &bytes)?;
                read(&doc).map_err(|detail| self.malformed(operation, detail))
            }
            Answer::ConditionFailed => {
                Err(self.malformed(operation, "a condition failed on a request that has none"))
            }
        }
    }

    fn get_item(&self, key: &str, projection: Option<&str>) -> Result<String, Error> {
        let mut body = format!("{{\"TableName\":{},\"Key\":", self.account.table);
        self.write_key(&mut body, key)?;
        if let Some(projection) = projection {
            body.push_str(",\"ProjectionExpression\":");
            json::write_str(&mut body, projection);
        }
        body.push_str(",\"ConsistentRead\":true}");
        Ok(body)
    }

    fn read_item(&self, key: &str) -> Result<Versioned, Error> {
        let body = self.get_item(key, None)?;
        self.exchange("GetItem", &body, |doc| match doc.get("Item") {
            None => Ok(Versioned::absent()),
            Some(item) => Ok(Versioned {
                value: Some(value_of(item)?),
                version: Version::Tag(version_of(item)?),
            }),
        })
    }

    /// The `ConditionExpression` (and its values) that holds while `key` is at `expected`.
    fn condition(body: &mut String, expected: &Version) {
        match expected {
            Version::Absent => {
                body.push_str(",\"ConditionExpression\":\"attribute_not_exists(k)\"")
            }
            // Written by another client, without a version: still there, still without one.
            Version::Tag(tag) if tag.is_empty() => body.push_str(
                ",\"ConditionExpression\":\"attribute_exists(k) AND attribute_not_exists(ver)\"",
            ),
            Version::Tag(tag) => {
                body.push_str(
                    ",\"ConditionExpression\":\"ver = :old\",\"ExpressionAttributeValues\":{\":old\":{\"S\":",
                );
                json::write_str(body, tag);
                body.push_str("}}");
            }
        }
    }

    /// `increment`'s slow path: `sum` written as a number (replacing stored bytes) only if
    /// the key is still at `version`.
    fn write_number(&self, key: &str, version: &Version, sum: i64) -> Result<Swap, Error> {
        let mut body = format!("{{\"TableName\":{},\"Key\":", self.account.table);
        self.write_key(&mut body, key)?;
        body.push_str(",\"UpdateExpression\":\"SET n = :sum, ver = :ver REMOVE v\"");
        let condition = match version {
            Version::Absent => "attribute_not_exists(k)",
            Version::Tag(tag) if tag.is_empty() => {
                "attribute_exists(k) AND attribute_not_exists(ver)"
            }
            Version::Tag(_) => "ver = :old",
        };
        body.push_str(",\"ConditionExpression\":");
        json::write_str(&mut body, condition);
        body.push_str(",\"ExpressionAttributeValues\":{\":sum\":{\"N\":\"");
        body.push_str(&sum.to_string());
        body.push_str("\"},\":ver\":{\"S\":");
        json::write_str(&mut body, &clock::unique_token());
        body.push('}');
        if let Version::Tag(tag) = version
            && !tag.is_empty()
        {
            body.push_str(",\":old\":{\"S\":");
            json::write_str(&mut body, tag);
            body.push('}');
        }
        body.push_str("}}");
        match self.call("UpdateItem", &body, Repeat::IfRefused)? {
            Answer::Done(bytes) => self.document("UpdateItem", &bytes).map(|_| Swap::Done),
            Answer::ConditionFailed => Ok(Swap::Conflict(self.read_item(key)?)),
        }
    }

    /// Sends `requests` (each a `PutRequest`/`DeleteRequest` object keyed by its key) in
    /// `BatchWriteItem`s of 25, resending what DynamoDB leaves unprocessed.
    fn batch_write(&self, mut pending: Vec<(&str, String)>) -> Result<(), Error> {
        let mut idle_rounds = 0;
        while !pending.is_empty() {
            let take = pending.len().min(MAX_BATCH_WRITE);
            let rest = pending.split_off(take);
            let chunk = core::mem::replace(&mut pending, rest);
            let mut body = format!("{{\"RequestItems\":{{{}:[", self.account.table);
            for (i, (_, request)) in chunk.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(request);
            }
            body.push_str("]}}");
            let unprocessed = self.exchange("BatchWriteItem", &body, |doc| {
                let field = doc
                    .get("UnprocessedItems")
                    .ok_or("a BatchWriteItem answer without its `UnprocessedItems`")?;
                unprocessed_keys(Some(field), |request| {
                    request
                        .get("PutRequest")
                        .and_then(|put| put.get("Item"))
                        .or_else(|| request.get("DeleteRequest").and_then(|d| d.get("Key")))
                })
            })?;
            if unprocessed.is_empty() {
                idle_rounds = 0;
                continue;
            }
            idle_rounds = self.wait_for_capacity(idle_rounds, unprocessed.len() == chunk.len())?;
            let mut retried: Vec<(&str, String)> = chunk
                .into_iter()
                .filter(|(key, _)| unprocessed.iter().any(|u| u == key))
                .collect();
            retried.append(&mut pending);
            pending = retried;
        }
        Ok(())
    }

    /// Backs off before resending unprocessed batch entries; gives up after
    /// `MAX_IDLE_ROUNDS` answers in a row that processed nothing.
    fn wait_for_capacity(&self, idle_rounds: u32, nothing_done: bool) -> Result<u32, Error> {
        let idle_rounds = if nothing_done { idle_rounds + 1 } else { 0 };
        if idle_rounds >= MAX_IDLE_ROUNDS {
            return Err(Error::GaveUp(format!(
                "POST {}: DynamoDB left a batch unprocessed {MAX_IDLE_ROUNDS} times in a row (throughput exceeded)",
                self.account.client.target("/")
            )));
        }
        if !RETRY.pause(&self.account.client, idle_rounds) {
            return Err(Error::GaveUp(format!(
                "POST {}: DynamoDB left part of a batch unprocessed, and the call's deadline (`timeout-ms`) leaves no time to resend it",
                self.account.client.target("/")
            )));
        }
        Ok(idle_rounds)
    }
}

/// The error type (after its namespace) and message of a DynamoDB error answer.
fn error_of(body: &[u8]) -> (String, String) {
    let Ok(doc) = json::parse_bytes(body) else {
        return (String::new(), String::from_utf8_lossy(body).into_owned());
    };
    let kind = doc
        .get("__type")
        .and_then(Value::as_str)
        .map(|t| t.rsplit('#').next().unwrap_or(t))
        .unwrap_or("");
    // dynalite and DynamoDB spell it `message`, some errors `Message`.
    let message = doc
        .get("message")
        .or_else(|| doc.get("Message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    (String::from(kind), String::from(message))
}

/// An item's value: the binary `v`, or the number `n` as its ASCII decimal.
fn value_of(item: &Value<'_>) -> Result<Vec<u8>, &'static str> {
    if let Some(v) = item.get("v") {
        let text = v
            .get("B")
            .and_then(Value::as_str)
            .ok_or("`v` is not binary")?;
        return base64::decode(text).map_err(|_| "`v` is not base64");
    }
    if let Some(n) = item.get("n") {
        let text = n
            .get("N")
            .and_then(Value::as_str)
            .ok_or("`n` is not a number")?;
        return Ok(text.as_bytes().to_vec());
    }
    Err("an item with neither `v` nor `n` (not written by kvplug)")
}

/// An item's version token; empty for an item written without one.
fn version_of(item: &Value<'_>) -> Result<String, &'static str> {
    match item.get("ver") {
        None => Ok(String::new()),
        Some(ver) => ver
            .get("S")
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or("`ver` is not a string"),
    }
}

/// An item's key (its sort key without the adapter's `/`).
fn key_of(item: &Value<'_>) -> Result<String, &'static str> {
    item.get("k")
        .and_then(|k| k.get("S"))
        .and_then(Value::as_str)
        .and_then(|sort| sort.strip_prefix('/'))
        .map(String::from)
        .ok_or("an item whose sort key is not `/` and a key (not written by kvplug)")
}

/// The keys of the entries a batch answer left unprocessed (`UnprocessedKeys` /
/// `UnprocessedItems`): whatever the table maps to, `entries` finds the items in it.
fn unprocessed_keys<'d, 'a: 'd>(
    field: Option<&'d Value<'a>>,
    item_of: impl Fn(&'d Value<'a>) -> Option<&'d Value<'a>>,
) -> Result<Vec<String>, &'static str> {
    let mut keys = Vec::new();
    let Some(tables) = field.and_then(Value::as_object) else {
        return Ok(keys);
    };
    for (_, entries) in tables {
        let entries = entries
            .as_array()
            .or_else(|| entries.get("Keys").and_then(Value::as_array))
            .ok_or("unprocessed entries are not a list")?;
        for entry in entries {
            keys.push(key_of(
                item_of(entry).ok_or("an unprocessed entry without its key")?,
            )?);
        }
    }
    Ok(keys)
}

impl Backend for DynamoBackend {
    fn open(settings: &Settings, bucket: &str) -> Result<Self, Error> {
        // Buckets are partitions and always exist; a missing table shows as `no-such-store`
        // on the first request, so opening costs nothing.
        let client = Client::new(settings, None);
        let region = match &settings.region {
            Some(region) => region.clone(),
            None => region_of_host(client.authority()).ok_or_else(|| {
                Error::Settings(String::from(
                    "the dynamodb backend needs `region` (it is read from the `url` only for dynamodb.<region>.amazonaws.com)",
                ))
            })?,
        };
        let partition = layout::namespace(&settings.prefix, bucket, names::encode, None)?;
        if partition.len() > MAX_PARTITION_KEY_BYTES {
            return Err(Error::Invalid(format!(
                "DynamoDB partition keys hold at most {MAX_PARTITION_KEY_BYTES} bytes: prefix, `!` and encoded bucket name are {}",
                partition.len()
            )));
        }
        let account = Account {
            table: Self::json_string(settings.table.as_deref().unwrap_or("kvplug")),
            region,
            access_key_id: required(&settings.access_key_id, "access-key-id")?,
            secret_access_key: required(&settings.secret_access_key, "secret-access-key")?,
            session_token: settings.session_token.clone(),
            page_size: settings.page_size,
            client,
        };
        Ok(DynamoBackend {
            account: Rc::new(account),
            partition: Rc::from(Self::json_string(&partition)),
        })
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.read_item(key)?.value)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        let mut body = format!("{{\"TableName\":{},\"Item\":", self.account.table);
        self.write_item(&mut body, key, value)?;
        body.push('}');
        self.exchange("PutItem", &body, |_| Ok(()))
    }

    fn delete(&self, key: &str) -> Result<(), Error> {
        let mut body = format!("{{\"TableName\":{},\"Key\":", self.account.table);
        self.write_key(&mut body, key)?;
        body.push('}');
        self.exchange("DeleteItem", &body, |_| Ok(()))
    }

    fn exists(&self, key: &str) -> Result<bool, Error> {
        let body = self.get_item(key, Some("k"))?;
        self.exchange("GetItem", &body, |doc| Ok(doc.get("Item").is_some()))
    }

    fn list(&self, cursor: Option<&str>) -> Result<Page, Error> {
        let mut body = format!(
            "{{\"TableName\":{},\"KeyConditionExpression\":\"b = :b\",\"ExpressionAttributeValues\":{{\":b\":{{\"S\":{}}}}},\"ProjectionExpression\":\"k\",\"ConsistentRead\":true,\"Limit\":{}",
            self.account.table, self.partition, self.account.page_size
        );
        if let Some(last) = cursor {
            body.push_str(",\"ExclusiveStartKey\":");
            self.write_key(&mut body, last)?;
        }
        body.push('}');
        self.exchange("Query", &body, |doc| {
            let mut keys = Vec::new();
            let items = doc
                .get("Items")
                .and_then(Value::as_array)
                .ok_or("a Query answer without its `Items` list")?;
            for item in items {
                keys.push(key_of(item)?);
            }
            // DynamoDB names where to go on when it stopped early: at `Limit`, or at 1 MB.
            let cursor = doc.get("LastEvaluatedKey").map(key_of).transpose()?;
            Ok(Page { keys, cursor })
        })
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, Error> {
        // One request when the key is absent or already a number: ADD, on condition that no
        // byte value is stored and that the sum stays within i64 (DynamoDB's numbers are
        // wider; a sum beyond i64 must not be written).
        let (comparison, bound) = if delta >= 0 {
            ("<=", i64::MAX - delta)
        } else {
            (">=", i64::MIN - delta)
        };
        let mut body = format!("{{\"TableName\":{},\"Key\":", self.account.table);
        self.write_key(&mut body, key)?;
        body.push_str(&format!(
            ",\"UpdateExpression\":\"ADD n :d SET ver = :ver\",\"ConditionExpression\":\"attribute_not_exists(v) AND (attribute_not_exists(n) OR n {comparison} :bound)\",\"ExpressionAttributeValues\":{{\":d\":{{\"N\":\"{delta}\"}},\":bound\":{{\"N\":\"{bound}\"}},\":ver\":{{\"S\":"
        ));
        json::write_str(&mut body, &clock::unique_token());
        body.push_str("}},\"ReturnValues\":\"UPDATED_NEW\"}");
        match self.call("UpdateItem", &body, Repeat::IfRefused)? {
            Answer::Done(bytes) => {
                let doc = self.document("UpdateItem", &bytes)?;
                doc.get("Attributes")
                    .and_then(|a| a.get("n"))
                    .and_then(|n| n.get("N"))
                    .and_then(Value::as_str)
                    .and_then(|n| n.parse::<i64>().ok())
                    .ok_or_else(|| self.malformed("UpdateItem", "no new `n` in the answer"))
            }
            // A byte value is stored (or the sum would overflow, which `counter::add`
            // reports): convert it, or say why not.
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
        let mut body = format!("{{\"TableName\":{},\"Item\":", self.account.table);
        self.write_item(&mut body, key, value)?;
        Self::condition(&mut body, expected);
        body.push('}');
        match self.call("PutItem", &body, Repeat::IfRefused)? {
            Answer::Done(bytes) => self.document("PutItem", &bytes).map(|_| Swap::Done),
            Answer::ConditionFailed => Ok(Swap::Conflict(self.read_item(key)?)),
        }
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        // BatchGetItem refuses a key twice and answers in any order: ask for each key once,
        // then answer in the order asked.
        check_batch("get-many", keys, |key| Self::sort_key(key).map(drop))?;
        let mut found: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut pending: Vec<&String> = distinct(keys);
        let mut idle_rounds = 0;
        while !pending.is_empty() {
            let take = pending.len().min(MAX_BATCH_GET);
            let rest = pending.split_off(take);
            let chunk = core::mem::replace(&mut pending, rest);
            let mut body = format!("{{\"RequestItems\":{{{}:{{\"Keys\":[", self.account.table);
            for (i, key) in chunk.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                self.write_key(&mut body, key)?;
            }
            body.push_str("],\"ConsistentRead\":true}}}");
            let unprocessed = self.exchange("BatchGetItem", &body, |doc| {
                let tables = doc
                    .get("Responses")
                    .and_then(Value::as_object)
                    .ok_or("a BatchGetItem answer without its `Responses`")?;
                for (_, items) in tables {
                    for item in items.as_array().ok_or("`Responses` is not a list")? {
                        found.insert(key_of(item)?, value_of(item)?);
                    }
                }
                unprocessed_keys(doc.get("UnprocessedKeys"), Some)
            })?;
            if unprocessed.is_empty() {
                idle_rounds = 0;
                continue;
            }
            idle_rounds = self.wait_for_capacity(idle_rounds, unprocessed.len() == chunk.len())?;
            let mut retried: Vec<&String> = chunk
                .into_iter()
                .filter(|key| unprocessed.iter().any(|u| u == *key))
                .collect();
            retried.append(&mut pending);
            pending = retried;
        }
        Ok(keys.iter().map(|key| found.get(key).cloned()).collect())
    }

    fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), Error> {
        // BatchWriteItem refuses a key twice in one request; the last value is what
        // sequential sets would leave.
        check_pairs(pairs, |key| Self::sort_key(key).map(drop))?;
        let mut requests = Vec::with_capacity(pairs.len());
        for (key, value) in last_wins(pairs) {
            let mut request = String::from("{\"PutRequest\":{\"Item\":");
            self.write_item(&mut request, key, value)?;
            request.push_str("}}");
            requests.push((key.as_str(), request));
        }
        self.batch_write(requests)
    }

    fn delete_many(&self, keys: &[String]) -> Result<(), Error> {
        check_batch("delete-many", keys, |key| Self::sort_key(key).map(drop))?;
        let mut requests = Vec::with_capacity(keys.len());
        for key in distinct(keys) {
            let mut request = String::from("{\"DeleteRequest\":{\"Key\":");
            self.write_key(&mut request, key)?;
            request.push_str("}}");
            requests.push((key.as_str(), request));
        }
        self.batch_write(requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_is_read_from_aws_endpoints_only() {
        assert_eq!(
            region_of_host("dynamodb.eu-west-1.amazonaws.com").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            region_of_host("dynamodb.cn-north-1.amazonaws.com.cn:443").as_deref(),
            Some("cn-north-1")
        );
        assert_eq!(region_of_host("127.0.0.1:4567"), None);
        assert_eq!(region_of_host("dynamodb.example.org"), None);
    }

    #[test]
    fn error_answers_name_their_type() {
        let (kind, message) = error_of(
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#,
        );
        assert_eq!(
            (kind.as_str(), message.as_str()),
            ("ResourceNotFoundException", "Requested resource not found")
        );
        let (kind, message) = error_of(b"<html>bad gateway</html>");
        assert_eq!(
            (kind.as_str(), message.as_str()),
            ("", "<html>bad gateway</html>")
        );
    }

    #[test]
    fn items_read_as_bytes_or_decimal() {
        let item = json::parse(r#"{"v":{"B":"aGk="},"ver":{"S":"t"}}"#).unwrap();
        assert_eq!(value_of(&item), Ok(b"hi".to_vec()));
        assert_eq!(version_of(&item), Ok(String::from("t")));
        let counter = json::parse(r#"{"n":{"N":"-42"}}"#).unwrap();
        assert_eq!(value_of(&counter), Ok(b"-42".to_vec()));
        assert_eq!(version_of(&counter), Ok(String::new()));
        assert!(value_of(&json::parse(r#"{"x":{"S":"?"}}"#).unwrap()).is_err());
        let keyed = json::parse(r#"{"k":{"S":"/a/b"}}"#).unwrap();
        assert_eq!(key_of(&keyed), Ok(String::from("a/b")));
        assert!(key_of(&json::parse(r#"{"k":{"S":"a"}}"#).unwrap()).is_err());
    }
}
