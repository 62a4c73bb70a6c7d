//! The `azure-table` backend: the Table service REST API of Azure Table storage (and of the
//! Cosmos DB Table API, and Azurite), signed with Shared Key.
//!
//! Every bucket lives in one table (`table` setting, `kvplug` by default): a bucket is a
//! partition, `PartitionKey` = the escaped `prefix`, `!`, the escaped bucket name
//! (`kvplug_settings::layout`; the bucket's `!` is escaped too, so no prefix and bucket pair
//! spells another's), and a key is a row, `RowKey` = the escaped key. Key fields may not
//! hold `/ \ # ?` or control characters, and `%` and `'` break some of the service's (and
//! Azurite's) URL handling, so those characters and the escape character `~` itself are
//! written `~XX` (their code point in hex), and the empty name is a lone `~`: every key has
//! exactly one spelling, which decodes back. The value is binary, split over properties
//! `v0`, `v1`, … of up to 64 KiB each (one empty `v0` for an empty value); a write replaces
//! the whole entity, so no stale part survives.
//!
//! Compare-and-swap is native (`If-Match` on the entity's ETag, or an insert that fails when
//! the row exists). The service cannot add, so `increment` reads and then writes
//! conditionally, in a bounded loop. Batch writes are entity group transactions (`$batch`,
//! one changeset per request, all rows in one partition), atomic per request.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use kvplug_codec::base64;
use kvplug_codec::json::{self, Value};
use kvplug_settings::layout;
use kvplug_settings::url::Scheme;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::retry::{Attempt, Policy, Repeat};
use super::{
    Backend, Page, Swap, Version, Versioned, check_batch, check_pairs, chunks, distinct, last_wins,
};
use crate::client::{Client, Response, Verb};
use crate::clock::Utc;
use crate::error::Error;
use crate::settings::Settings;
use crate::signing::shared_key::{self, SharedKey};

/// The table when the `table` setting is absent.
const DEFAULT_TABLE: &str = "kvplug";
/// The REST version requests ask for; its JSON format is the one parsed here.
const API_VERSION: &str = "2019-02-02";
const ACCEPT: &str = "application/json;odata=nometadata";
/// The header every answer of the Table service carries, errors included: how its answers
/// are told from those of whatever else a wrong `url` reaches.
const REQUEST_ID: &str = "x-ms-request-id";
const JSON: &str = "application/json";

/// The service's limit for one binary property.
const PART_BYTES: usize = 64 * 1024;
/// The largest value stored. An entity may hold 1 MiB; the service counts the stored bytes,
/// but Azurite counts the request's JSON, where the value is base64 (4/3). 750 KiB is
/// 1,024,000 base64 characters, which leaves room for the longest keys and the property
/// names, so every value this backend accepts is stored by both.
const MAX_VALUE: usize = 750 * 1024;
/// `PartitionKey` and `RowKey` may be 1 KiB each, counted in UTF-16 (the service stores
/// strings as UTF-16; Azurite counts 512 JavaScript string units).
const MAX_KEY_UNITS: usize = 512;
/// The service allows 15 comparisons per `$filter`: one for the partition, 14 for rows.
const MAX_FILTER_ROWS: usize = 14;
/// A query returns at most 1000 entities per page.
const MAX_PAGE: u32 = 1000;
/// Operations per entity group transaction.
const MAX_BATCH_OPS: usize = 100;
/// A batch request's payload may be 4 MiB; what is left after the framing goes to parts.
const MAX_BATCH_BYTES: usize = (4 << 20) - 1024;
/// A request the service answered as busy or timed out, where repeating it is safe, is
/// retried 5 times, waiting from 100 ms.
const RETRY: Policy = Policy {
    retries: 5,
    base_ms: 100,
    cap_ms: 5_000,
};
/// Continuation pages followed within one `get_many` chunk; the service pages a 14-row
/// result only at its own timeouts or partition-server boundaries, so this is never reached.
const MAX_CONTINUATIONS: usize = 64;

/// The escape of key fields: unreserved in URLs, plain in OData literals and JSON.
const ESCAPE: char = '~';
/// Multipart boundaries. No part can contain them at a line start: escaped keys hold no
/// control characters, so the URLs and JSON of an operation hold no line break at all.
const BATCH_BOUNDARY: &str = "batch_kvplug";
const CHANGESET_BOUNDARY: &str = "changeset_kvplug";

/// A bucket: one partition of the table.
#[derive(Debug, Clone)]
pub struct TableBackend {
    inner: Rc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    signer: SharedKey,
    table: String,
    /// The escaped `PartitionKey` of the bucket.
    partition: String,
    /// `scheme://authority/base`: operations inside a batch name their entity by full URL.
    base_url: String,
    page_size: u32,
}

/// The error code and message of a failed request's JSON body.
#[derive(Debug, Default, PartialEq, Eq)]
struct ServiceError {
    code: Option<String>,
    message: Option<String>,
}

/// One operation's answer inside a batch response.
#[derive(Debug, PartialEq, Eq)]
struct OpAnswer {
    status: u16,
    error: ServiceError,
}

/// How a batch request went.
#[derive(Debug, PartialEq, Eq)]
enum BatchOutcome {
    Done,
    /// The changeset was rolled back; `index` is the failing operation when the service
    /// named it.
    Failed {
        index: Option<usize>,
        answer: OpAnswer,
    },
}

/// One operation of a batch: which entry it came from, and its text.
struct Part<'a> {
    key: &'a str,
    row: String,
    text: String,
}

impl TableBackend {
    fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Sends one signed request.
    fn send_once(
        &self,
        verb: Verb,
        path: &str,
        extra: &[(&str, &str)],
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Response, Error> {
        let date = Utc::now().http_date();
        let target = self.client().target(path);
        let (signed_path, query) = target.split_once('?').unwrap_or((&target, ""));
        let authorization = self.inner.signer.authorization(&shared_key::Request {
            verb: verb.name(),
            content_type: content_type.unwrap_or(""),
            date: &date,
            path: signed_path,
            query,
        });
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(8 + extra.len());
        headers.extend_from_slice(&[
            ("x-ms-date", date.as_str()),
            ("x-ms-version", API_VERSION),
            ("accept", ACCEPT),
            ("dataserviceversion", "3.0"),
            ("maxdataserviceversion", "3.0;NetFx"),
            ("authorization", authorization.as_str()),
        ]);
        if let Some(content_type) = content_type {
            headers.push(("content-type", content_type));
        }
        headers.extend_from_slice(extra);
        let response = self.client().send(verb, path, &headers, body)?;
        if response.header(REQUEST_ID).is_none() {
            return Err(super::foreign(
                verb,
                self.client().target(path),
                response.status,
                "the Azure Table service",
                "no `x-ms-request-id` header",
            ));
        }
        Ok(response)
    }

    /// Sends a request, repeating it with backoff while the service is busy if `repeat`
    /// allows.
    fn send(
        &self,
        verb: Verb,
        path: &str,
        extra: &[(&str, &str)],
        content_type: Option<&str>,
        body: &[u8],
        repeat: Repeat,
    ) -> Result<Response, Error> {
        let request = format!("{} {}", verb.name(), self.client().target(path));
        RETRY.run(self.client(), &request, || {
            let response = self.send_once(verb, path, extra, content_type, body)?;
            // The Table service does not say whether a busy answer acted: never "refused".
            if busy(&response) && repeat.allows(false) {
                Ok(Attempt::Busy {
                    status: response.status,
                    reason: service_error(&response.body).reason(),
                })
            } else {
                Ok(Attempt::Done(response))
            }
        })
    }

    /// The error for an answer the operation cannot accept; a missing table is
    /// `no-such-store`.
    fn failure(&self, verb: Verb, path: &str, response: &Response) -> Error {
        let error = service_error(&response.body);
        if response.status == 404 && error.code.as_deref() == Some("TableNotFound") {
            return Error::NoSuchStore;
        }
        let reason = if error.code.is_none() && error.message.is_none() {
            String::from_utf8_lossy(&response.body).into_owned()
        } else {
            error.reason()
        };
        self.client()
            .status_with(verb, path, response.status, &reason)
    }

    /// Whether `response` is a 404 for the row (not for the table).
    fn row_missing(response: &Response) -> bool {
        response.status == 404
            && service_error(&response.body).code.as_deref() != Some("TableNotFound")
    }

    fn entity_path(&self, row: &str) -> String {
        let mut path = String::with_capacity(self.inner.table.len() + row.len() * 3 + 64);
        path.push('/');
        path.push_str(&self.inner.table);
        path.push_str("(PartitionKey='");
        percent_encode_into(&mut path, &self.inner.partition);
        path.push_str("',RowKey='");
        percent_encode_into(&mut path, row);
        path.push_str("')");
        path
    }

    /// A query of the bucket's partition; `rows` narrows it to those rows.
    fn query_path(&self, rows: &[&str], select: Option<&str>, top: Option<u32>) -> String {
        let mut filter = String::from("PartitionKey eq '");
        filter.push_str(&self.inner.partition);
        filter.push('\'');
        for (i, row) in rows.iter().enumerate() {
            filter.push_str(if i == 0 { " and (" } else { " or " });
            filter.push_str("RowKey eq '");
            filter.push_str(row);
            filter.push('\'');
        }
        if !rows.is_empty() {
            filter.push(')');
        }
        let mut path = format!("/{}()?$filter=", self.inner.table);
        percent_encode_into(&mut path, &filter);
        if let Some(select) = select {
            path.push_str("&$select=");
            path.push_str(select);
        }
        if let Some(top) = top {
            let _ = write!(path, "&$top={top}");
        }
        path
    }

    fn entity_json(&self, row: &str, value: &[u8]) -> String {
        let mut out = String::with_capacity(value.len().div_ceil(3) * 4 + row.len() + 512);
        out.push_str("{\"PartitionKey\":");
        json::write_str(&mut out, &self.inner.partition);
        out.push_str(",\"RowKey\":");
        json::write_str(&mut out, row);
        for (i, part) in parts(value).enumerate() {
            let _ = write!(out, ",\"v{i}@odata.type\":\"Edm.Binary\",\"v{i}\":\"");
            base64::encode_into(&mut out, part);
            out.push('"');
        }
        out.push('}');
        out
    }

    /// Reads one entity: its value and ETag, or `None` if the row is absent.
    fn read(&self, row: &str) -> Result<Option<(Vec<u8>, String)>, Error> {
        let path = self.entity_path(row);
        let response = self.send(Verb::Get, &path, &[], None, &[], Repeat::Always)?;
        if response.status == 200 {
            let doc = json::parse_bytes(&response.body)
                .map_err(|e| self.client().malformed(Verb::Get, &path, e))?;
            let value = value_of(&doc).map_err(|e| self.client().malformed(Verb::Get, &path, e))?;
            let etag = response.header("etag").map(String::from).ok_or_else(|| {
                self.client()
                    .malformed(Verb::Get, &path, "an entity without an ETag")
            })?;
            return Ok(Some((value, etag)));
        }
        if Self::row_missing(&response) {
            return Ok(None);
        }
        Err(self.failure(Verb::Get, &path, &response))
    }

    /// A conditional write: `false` if `expected` no longer holds.
    fn try_write(&self, row: &str, expected: &Version, value: &[u8]) -> Result<bool, Error> {
        let body = self.entity_json(row, value);
        match expected {
            Version::Tag(etag) => {
                let path = self.entity_path(row);
                let response = self.send(
                    Verb::Put,
                    &path,
                    &[("if-match", etag)],
                    Some(JSON),
                    body.as_bytes(),
                    Repeat::IfRefused,
                )?;
                match response.status {
                    204 => Ok(true),
                    412 => Ok(false),
                    // Deleted since it was read.
                    _ if Self::row_missing(&response) => Ok(false),
                    _ => Err(self.failure(Verb::Put, &path, &response)),
                }
            }
            Version::Absent => {
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
                    && service_error(&response.body).code.as_deref() == Some("EntityAlreadyExists");
                match response.status {
                    204 => Ok(true),
                    _ if exists => Ok(false),
                    _ => Err(self.failure(Verb::Post, &path, &response)),
                }
            }
        }
    }

    fn versioned(&self, row: &str) -> Result<Versioned, Error> {
        Ok(match self.read(row)? {
            None => Versioned::absent(),
            Some((value, etag)) => Versioned {
                value: Some(value),
                version: Version::Tag(etag),
            },
        })
    }

    /// Runs a query to its last page and hands each entity to `each`.
    fn query_all(
        &self,
        path: &str,
        mut each: impl FnMut(&Value<'_>) -> Result<(), &'static str>,
    ) -> Result<(), Error> {
        let mut continuation = String::new();
        for _ in 0..MAX_CONTINUATIONS {
            let page_path = format!("{path}{continuation}");
            let response = self.send(Verb::Get, &page_path, &[], None, &[], Repeat::Always)?;
            if response.status != 200 {
                return Err(self.failure(Verb::Get, &page_path, &response));
            }
            let doc = json::parse_bytes(&response.body)
                .map_err(|e| self.client().malformed(Verb::Get, &page_path, e))?;
            for entity in
                entities(&doc).map_err(|e| self.client().malformed(Verb::Get, &page_path, e))?
            {
                each(entity).map_err(|e| self.client().malformed(Verb::Get, &page_path, e))?;
            }
            match next_cursor(&response) {
                None => return Ok(()),
                Some(cursor) => {
                    continuation.clear();
                    continuation.push('&');
                    continuation.push_str(&cursor);
                }
            }
        }
        Err(self.client().malformed(
            Verb::Get,
            path,
            format!(
                "still continuing after {MAX_CONTINUATIONS} pages of at most {MAX_FILTER_ROWS} rows"
            ),
        ))
    }

    /// The rows among `rows` that exist now.
    fn existing<'r>(&self, rows: &[&'r str]) -> Result<Vec<&'r str>, Error> {
        let mut present = alloc::collections::BTreeSet::new();
        for chunk in rows.chunks(MAX_FILTER_ROWS) {
            let path = self.query_path(chunk, Some("RowKey"), None);
            self.query_all(&path, |entity| {
                let row = entity
                    .get("RowKey")
                    .and_then(Value::as_str)
                    .ok_or("an entity without `RowKey`")?;
                present.insert(String::from(row));
                Ok(())
            })?;
        }
        Ok(rows
            .iter()
            .copied()
            .filter(|row| present.contains(*row))
            .collect())
    }

    /// One operation of a changeset, as its part of the multipart body.
    fn batch_part(&self, verb: Verb, row: &str, entity: Option<&str>) -> String {
        let mut out = String::with_capacity(entity.map_or(0, str::len) + row.len() * 3 + 320);
        let _ = write!(
            out,
            "--{CHANGESET_BOUNDARY}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n{} {}",
            verb.name(),
            self.inner.base_url
        );
        out.push_str(&self.entity_path(row));
        out.push_str(" HTTP/1.1\r\nAccept: ");
        out.push_str(ACCEPT);
        out.push_str("\r\nDataServiceVersion: 3.0\r\n");
        match entity {
            Some(json) => {
                let _ = write!(
                    out,
                    "Content-Type: {JSON}\r\nContent-Length: {}\r\n\r\n{json}\r\n",
                    json.len()
                );
            }
            None => out.push_str("If-Match: *\r\n\r\n"),
        }
        out
    }

    /// Sends `parts` as one changeset and reads what became of it.
    fn send_batch(&self, parts: &[&Part<'_>]) -> Result<BatchOutcome, Error> {
        const PATH: &str = "/$batch";
        let mut body =
            String::with_capacity(parts.iter().map(|p| p.text.len()).sum::<usize>() + 256);
        let _ = write!(
            body,
            "--{BATCH_BOUNDARY}\r\nContent-Type: multipart/mixed; boundary={CHANGESET_BOUNDARY}\r\n\r\n"
        );
        for part in parts {
            body.push_str(&part.text);
        }
        let _ = write!(body, "--{CHANGESET_BOUNDARY}--\r\n--{BATCH_BOUNDARY}--\r\n");
        let content_type = format!("multipart/mixed; boundary={BATCH_BOUNDARY}");
        // Every operation is an unconditional replace or an `If-Match: *` delete: sending the
        // changeset again leaves the same rows behind.
        let response = self.send(
            Verb::Post,
            PATH,
            &[],
            Some(&content_type),
            body.as_bytes(),
            Repeat::Always,
        )?;
        if response.status != 202 {
            return Err(self.failure(Verb::Post, PATH, &response));
        }
        let text = core::str::from_utf8(&response.body).map_err(|_| {
            self.client()
                .malformed(Verb::Post, PATH, "a batch response that is not UTF-8")
        })?;
        batch_outcome(text, parts.len()).map_err(|e| self.client().malformed(Verb::Post, PATH, e))
    }

    /// The error for a changeset's failed operation.
    fn batch_failure(&self, what: &str, part: Option<&Part<'_>>, answer: &OpAnswer) -> Error {
        if answer.status == 404 && answer.error.code.as_deref() == Some("TableNotFound") {
            return Error::NoSuchStore;
        }
        let which = match part {
            Some(part) => format!("{what} of `{}`", part.key),
            None => format!("{what} (the service did not say which operation)"),
        };
        let reason = format!("{which}: {}", answer.error.reason());
        self.client()
            .status_with(Verb::Post, "/$batch", answer.status, &reason)
    }

    /// Sends `parts` in changesets within the service's limits.
    fn write_batches(&self, parts: &[Part<'_>], what: &str) -> Result<(), Error> {
        for chunk in chunks(parts, MAX_BATCH_OPS, MAX_BATCH_BYTES, |p| p.text.len()) {
            let pending: Vec<&Part<'_>> = chunk.iter().collect();
            if let BatchOutcome::Failed { index, answer } = self.send_batch(&pending)? {
                let part = index.and_then(|i| pending.get(i).copied());
                return Err(self.batch_failure(what, part, &answer));
            }
        }
        Ok(())
    }

    /// Deletes the rows of one changeset. A changeset fails as a whole when one row is
    /// absent, and the service names that row (operations run in order, so the rows before
    /// it were present): it is dropped and the rest sent again. After the second absent row
    /// the rows not known to be present are looked up first, one query per 14 rows, so that
    /// a chunk costs at most 3 requests plus one per 14 rows however many are absent.
    fn delete_chunk(&self, chunk: &[Part<'_>]) -> Result<(), Error> {
        let mut pending: Vec<&Part<'_>> = chunk.iter().collect();
        let mut absent_seen = 0;
        let mut looked_up = false;
        // Each round but the lookup removes at least one row, or ends.
        for _ in 0..=chunk.len() + 1 {
            if pending.is_empty() {
                return Ok(());
            }
            let (index, answer) = match self.send_batch(&pending)? {
                BatchOutcome::Done => return Ok(()),
                BatchOutcome::Failed { index, answer } => (index, answer),
            };
            let missing_row =
                answer.status == 404 && answer.error.code.as_deref() != Some("TableNotFound");
            if !missing_row {
                let failed = index.and_then(|i| pending.get(i).copied());
                return Err(self.batch_failure("delete-many", failed, &answer));
            }
            let known_present = match index.filter(|i| *i < pending.len()) {
                Some(i) => {
                    pending.remove(i);
                    absent_seen += 1;
                    i
                }
                None if looked_up => {
                    return Err(self.batch_failure("delete-many", None, &answer));
                }
                None => {
                    absent_seen = 2;
                    0
                }
            };
            if absent_seen >= 2 && !looked_up {
                let unknown = pending.split_off(known_present.min(pending.len()));
                let rows: Vec<&str> = unknown.iter().map(|p| p.row.as_str()).collect();
                let present = self.existing(&rows)?;
                pending.extend(
                    unknown
                        .into_iter()
                        .filter(|p| present.contains(&p.row.as_str())),
                );
                looked_up = true;
            }
        }
        Err(Error::GaveUp(String::from(
            "delete-many: rows kept disappearing between attempts of one changeset",
        )))
    }
}

impl ServiceError {
    /// `code: message`, or whichever the service gave.
    fn reason(&self) -> String {
        match (&self.code, &self.message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(text), None) | (None, Some(text)) => text.clone(),
            (None, None) => String::new(),
        }
    }
}

/// The code and the first line of the message of an error body (`odata.error`, or the
/// flat `code`/`message` some front ends send).
fn service_error(body: &[u8]) -> ServiceError {
    let Ok(doc) = json::parse_bytes(body) else {
        return ServiceError::default();
    };
    let error = doc.get("odata.error").unwrap_or(&doc);
    let code = error.get("code").and_then(Value::as_str).map(String::from);
    let message = error
        .get("message")
        .and_then(|m| m.get("value").or(Some(m)))
        .and_then(Value::as_str)
        .map(|m| String::from(m.lines().next().unwrap_or_default().trim()));
    ServiceError { code, message }
}

/// Throttling, or a timeout inside the service: worth another try later.
fn busy(response: &Response) -> bool {
    match response.status {
        503 => true,
        500 => service_error(&response.body).code.as_deref() == Some("OperationTimedOut"),
        _ => false,
    }
}

/// Whether key fields must not hold `c` as it is.
fn escaped(c: char) -> bool {
    matches!(c, '/' | '\\' | '#' | '?' | '%' | '\'' | ESCAPE) || c.is_control()
}

/// `text` with `~XX` for the characters the service refuses or mishandles and for those
/// `also` names; the empty string stays empty.
fn escape_field(text: &str, also: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escaped(c) || also(c) {
            // Every escaped character is below U+00A0: two hex digits hold it.
            let _ = write!(out, "{ESCAPE}{:02X}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// The key field for `key`: `~XX` for the characters the service refuses or mishandles,
/// a lone `~` for the empty string.
fn encode_key(key: &str) -> String {
    if key.is_empty() {
        return String::from(ESCAPE);
    }
    escape_field(key, |_| false)
}

/// A bucket name as it follows the marker in the `PartitionKey`: as a key, and the marker
/// escaped, so the field holds exactly one marker, the one that ends the prefix.
fn encode_bucket(bucket: &str) -> String {
    if bucket.is_empty() {
        return String::from(ESCAPE);
    }
    escape_field(bucket, |c| c == layout::MARKER)
}

/// The key a key field spells, if it is one `encode_key` writes.
fn decode_key(field: &str) -> Option<String> {
    if field == "~" {
        return Some(String::new());
    }
    if field.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c == ESCAPE {
            let high = chars.next().and_then(upper_hex)?;
            let low = chars.next().and_then(upper_hex)?;
            let decoded = char::from(high * 16 + low);
            // Only the spelling `encode_key` gives: one key, one field.
            if !escaped(decoded) {
                return None;
            }
            out.push(decoded);
        } else if escaped(c) {
            return None;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

fn upper_hex(c: char) -> Option<u8> {
    match c {
        '0'..='9' | 'A'..='F' => c.to_digit(16).and_then(|d| u8::try_from(d).ok()),
        _ => None,
    }
}

/// The key field of `key`, refused before anything is sent when the service would refuse it.
fn key_field(key: &str, what: &str) -> Result<String, Error> {
    check_field(encode_key(key), what)
}

/// `field`, refused when longer than the service takes.
fn check_field(field: String, what: &str) -> Result<String, Error> {
    let units = field.encode_utf16().count();
    if units > MAX_KEY_UNITS {
        return Err(Error::Invalid(format!(
            "azure-table: a {what} may take 1 KiB ({MAX_KEY_UNITS} UTF-16 units once `/ \\ # ? % ' ~` and control characters are escaped as ~XX); this one takes {units}"
        )));
    }
    Ok(field)
}

fn check_key(key: &str) -> Result<(), Error> {
    key_field(key, "key").map(drop)
}

fn check_value(value: &[u8]) -> Result<(), Error> {
    if value.len() > MAX_VALUE {
        return Err(Error::Invalid(format!(
            "azure-table stores values of at most {MAX_VALUE} bytes (750 KiB, which base64 makes the 1 MiB an entity's JSON may take); this one is {} bytes",
            value.len()
        )));
    }
    Ok(())
}

/// The properties a value is split into; an empty value is one empty property.
fn parts(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let empty: &[u8] = &[];
    let first = value.is_empty().then_some(empty);
    first.into_iter().chain(value.chunks(PART_BYTES))
}

/// The value of an entity: its parts `v0`, `v1`, … joined.
fn value_of(entity: &Value<'_>) -> Result<Vec<u8>, &'static str> {
    let mut value = Vec::new();
    // An entity holds at most 255 properties.
    for i in 0..255 {
        let Some(part) = entity.get(&format!("v{i}")) else {
            if i == 0 {
                return Err("an entity without `v0` (not written by kvplug)");
            }
            break;
        };
        let text = part.as_str().ok_or("a value part that is not a string")?;
        let bytes = base64::decode(text).map_err(|_| "a value part that is not base64")?;
        value.extend_from_slice(&bytes);
    }
    Ok(value)
}

/// The `value` list of a query answer.
fn entities<'d, 'a>(doc: &'d Value<'a>) -> Result<&'d [Value<'a>], &'static str> {
    doc.get("value")
        .and_then(Value::as_array)
        .ok_or("a query answer without a `value` list")
}

/// The cursor for the page after `response`: the continuation headers as the query
/// parameters that resume it, percent-encoded.
fn next_cursor(response: &Response) -> Option<String> {
    let partition = response.header("x-ms-continuation-nextpartitionkey")?;
    // A continuation without a row starts a new partition: this one is done.
    let row = response.header("x-ms-continuation-nextrowkey")?;
    let mut cursor = String::from("NextPartitionKey=");
    percent_encode_into(&mut cursor, partition);
    cursor.push_str("&NextRowKey=");
    percent_encode_into(&mut cursor, row);
    Some(cursor)
}

/// Whether `cursor` has the shape `next_cursor` gives, so it can go into a URL as it is.
fn valid_cursor(cursor: &str) -> bool {
    cursor
        .strip_prefix("NextPartitionKey=")
        .and_then(|rest| rest.split_once("&NextRowKey="))
        .is_some_and(|(partition, row)| percent_encoded(partition) && percent_encoded(row))
}

/// Whether `text` is non-empty and made only of unreserved bytes and `%XX` escapes.
fn percent_encoded(text: &str) -> bool {
    let mut bytes = text.bytes();
    let mut any = false;
    while let Some(b) = bytes.next() {
        any = true;
        let ok = if b == b'%' {
            bytes.next().is_some_and(|h| h.is_ascii_hexdigit())
                && bytes.next().is_some_and(|h| h.is_ascii_hexdigit())
        } else {
            unreserved(b)
        };
        if !ok {
            return false;
        }
    }
    any
}

/// The complement of [`URL_UNRESERVED`] (a test checks).
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// What the adapter escapes in the request target: every byte but URL-unreserved ones.
const URL_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn percent_encode_into(out: &mut String, text: &str) {
    out.extend(utf8_percent_encode(text, URL_UNRESERVED));
}

/// Reads a `$batch` answer: each operation's status line, and the error of a failed one.
/// A failed changeset answers with the one failing operation, its message led by its
/// index (`1:The specified resource does not exist.`).
fn batch_outcome(text: &str, operations: usize) -> Result<BatchOutcome, &'static str> {
    let mut answers: Vec<OpAnswer> = Vec::new();
    let mut lines = text.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        let Some(status_line) = line.strip_prefix("HTTP/1.1 ") else {
            continue;
        };
        let status = status_line
            .get(..3)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or("an operation status that is not a number")?;
        // Headers up to a blank line, then the body up to the next boundary.
        for header in lines.by_ref() {
            if header.is_empty() {
                break;
            }
        }
        let mut body = String::new();
        while let Some(next) = lines.peek() {
            if next.starts_with("--") {
                break;
            }
            body.push_str(next);
            lines.next();
        }
        answers.push(OpAnswer {
            status,
            error: service_error(body.as_bytes()),
        });
    }
    match answers.iter().position(|a| !(200..300).contains(&a.status)) {
        None if answers.len() == operations => Ok(BatchOutcome::Done),
        None => Err("a batch answer with a different number of operations"),
        Some(failed) => {
            let mut answer = answers.swap_remove(failed);
            let indexed = answer.error.message.as_deref().and_then(|message| {
                let (index, rest) = message.split_once(':')?;
                Some((
                    index.trim().parse::<usize>().ok()?,
                    String::from(rest.trim()),
                ))
            });
            let index = indexed.map(|(index, rest)| {
                answer.error.message = Some(rest);
                index
            });
            Ok(BatchOutcome::Failed { index, answer })
        }
    }
}

/// A table name the Table service accepts: 3 to 63 letters and digits, a letter first.
fn check_table(name: &str) -> Result<(), Error> {
    let ok = (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic());
    if ok {
        Ok(())
    } else {
        Err(Error::Settings(String::from(
            "`table` must be 3 to 63 letters and digits, starting with a letter, for azure-table",
        )))
    }
}

fn required<'s>(value: &'s Option<String>, name: &str, hint: &str) -> Result<&'s str, Error> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Error::Settings(format!("azure-table needs `{name}`: {hint}")))
}

impl Backend for TableBackend {
    fn open(settings: &Settings, bucket: &str) -> Result<Self, Error> {
        // Buckets are partitions and need no creating; a missing table shows on first use.
        let account = required(
            &settings.account_name,
            "account-name",
            "the storage account's name (devstoreaccount1 for Azurite)",
        )?;
        let key = required(
            &settings.account_key,
            "account-key",
            "the storage account's base64 key",
        )?;
        let signer = SharedKey::new(account, key)?;
        let table = settings
            .table
            .clone()
            .unwrap_or_else(|| String::from(DEFAULT_TABLE));
        check_table(&table)?;
        // The prefix is escaped as a key is (it holds no marker, settings refuse one); the
        // escaping never writes the marker, so the namespace argument holds for the field.
        let prefix = escape_field(&settings.prefix, |_| false);
        let partition = check_field(
            layout::namespace(&prefix, bucket, encode_bucket, None)?,
            "bucket name (with the `prefix` setting and `!`)",
        )?;
        let endpoint = &settings.endpoint;
        let scheme = match endpoint.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        let base_url = format!("{scheme}://{}{}", endpoint.authority, endpoint.base_path);
        Ok(TableBackend {
            inner: Rc::new(Inner {
                client: Client::new(settings, None),
                signer,
                table,
                partition,
                base_url,
                page_size: settings.page_size.clamp(1, MAX_PAGE),
            }),
        })
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let row = key_field(key, "key")?;
        Ok(self.read(&row)?.map(|(value, _)| value))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        let row = key_field(key, "key")?;
        check_value(value)?;
        let path = self.entity_path(&row);
        let body = self.entity_json(&row, value);
        // No `If-Match`: insert or replace, the whole entity.
        let response = self.send(
            Verb::Put,
            &path,
            &[],
            Some(JSON),
            body.as_bytes(),
            Repeat::Always,
        )?;
        if response.status == 204 {
            Ok(())
        } else {
            Err(self.failure(Verb::Put, &path, &response))
        }
    }

    fn delete(&self, key: &str) -> Result<(), Error> {
        let row = key_field(key, "key")?;
        let path = self.entity_path(&row);
        let response = self.send(
            Verb::Delete,
            &path,
            &[("if-match", "*")],
            None,
            &[],
            Repeat::Always,
        )?;
        if response.status == 204 || Self::row_missing(&response) {
            Ok(())
        } else {
            Err(self.failure(Verb::Delete, &path, &response))
        }
    }

    fn exists(&self, key: &str) -> Result<bool, Error> {
        let row = key_field(key, "key")?;
        let path = format!("{}?$select=PartitionKey", self.entity_path(&row));
        let response = self.send(Verb::Get, &path, &[], None, &[], Repeat::Always)?;
        if response.status == 200 {
            Ok(true)
        } else if Self::row_missing(&response) {
            Ok(false)
        } else {
            Err(self.failure(Verb::Get, &path, &response))
        }
    }

    fn list(&self, cursor: Option<&str>) -> Result<Page, Error> {
        let mut path = self.query_path(&[], Some("RowKey"), Some(self.inner.page_size));
        if let Some(cursor) = cursor {
            if !valid_cursor(cursor) {
                return Err(Error::Invalid(String::from(
                    "azure-table list-keys: not a cursor this backend returned (it holds the service's NextPartitionKey and NextRowKey)",
                )));
            }
            path.push('&');
            path.push_str(cursor);
        }
        let response = self.send(Verb::Get, &path, &[], None, &[], Repeat::Always)?;
        if response.status != 200 {
            return Err(self.failure(Verb::Get, &path, &response));
        }
        let doc = json::parse_bytes(&response.body)
            .map_err(|e| self.client().malformed(Verb::Get, &path, e))?;
        let rows = entities(&doc).map_err(|e| self.client().malformed(Verb::Get, &path, e))?;
        let mut keys = Vec::with_capacity(rows.len());
        for entity in rows {
            let row = entity
                .get("RowKey")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    self.client()
                        .malformed(Verb::Get, &path, "an entity without `RowKey`")
                })?;
            let key = decode_key(row).ok_or_else(|| {
                self.client().malformed(
                    Verb::Get,
                    &path,
                    format!("RowKey `{row}` in the bucket's partition was not written by kvplug"),
                )
            })?;
            keys.push(key);
        }
        Ok(Page {
            keys,
            cursor: next_cursor(&response),
        })
    }

    fn read_versioned(&self, key: &str) -> Result<Versioned, Error> {
        let row = key_field(key, "key")?;
        self.versioned(&row)
    }

    fn write_if(&self, key: &str, expected: &Version, value: &[u8]) -> Result<Swap, Error> {
        let row = key_field(key, "key")?;
        check_value(value)?;
        if self.try_write(&row, expected, value)? {
            Ok(Swap::Done)
        } else {
            Ok(Swap::Conflict(self.versioned(&row)?))
        }
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        check_batch("get-many", keys, check_key)?;
        let rows = keys
            .iter()
            .map(|key| key_field(key, "key"))
            .collect::<Result<Vec<String>, Error>>()?;
        let unique: Vec<&str> = distinct(&rows).into_iter().map(String::as_str).collect();
        let mut found: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for chunk in unique.chunks(MAX_FILTER_ROWS) {
            let path = self.query_path(chunk, None, None);
            self.query_all(&path, |entity| {
                let row = entity
                    .get("RowKey")
                    .and_then(Value::as_str)
                    .ok_or("an entity without `RowKey`")?;
                found.insert(String::from(row), value_of(entity)?);
                Ok(())
            })?;
        }
        Ok(rows.iter().map(|row| found.get(row).cloned()).collect())
    }

    fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), Error> {
        // An entity may appear once per changeset; the last value is what sequential sets
        // would have left.
        check_pairs(pairs, check_key)?;
        let pairs = last_wins(pairs);
        let mut parts = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            let row = key_field(key, "key")?;
            check_value(value)?;
            let entity = self.entity_json(&row, value);
            let text = self.batch_part(Verb::Put, &row, Some(&entity));
            parts.push(Part { key, row, text });
        }
        self.write_batches(&parts, "set-many")
    }

    fn delete_many(&self, keys: &[String]) -> Result<(), Error> {
        check_batch("delete-many", keys, check_key)?;
        let mut parts = Vec::with_capacity(keys.len());
        for key in distinct(keys) {
            let row = key_field(key, "key")?;
            let text = self.batch_part(Verb::Delete, &row, None);
            parts.push(Part { key, row, text });
        }
        for chunk in chunks(&parts, MAX_BATCH_OPS, MAX_BATCH_BYTES, |p| p.text.len()) {
            self.delete_chunk(chunk)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_check_takes_plain_exactly_what_the_encoder_leaves_plain() {
        for byte in 0..=0x7f_u8 {
            let text = String::from(char::from(byte));
            let mut encoded = String::new();
            percent_encode_into(&mut encoded, &text);
            assert_eq!(encoded == text, unreserved(byte), "{byte:#x}");
        }
    }

    const AWKWARD: [&str; 20] = [
        "",
        "~",
        "/",
        "a/b",
        "../b/keys/x",
        "?x=1&y=2",
        "#frag",
        "%2F",
        "~2F",
        "100%",
        "it's",
        "back\\slash",
        " spaced key ",
        "tab\tnewline\n",
        "\u{7f}\u{80}\u{9f}\u{a0}",
        "héllo wörld",
        "日本語のキー",
        "🦀",
        "\u{0}nul",
        "plain-key_1.2",
    ];

    #[test]
    fn keys_round_trip_through_fields_the_service_accepts() {
        let mut fields = alloc::collections::BTreeSet::new();
        for key in AWKWARD {
            let field = encode_key(key);
            assert!(!field.is_empty(), "{key:?}");
            assert!(
                !field
                    .chars()
                    .any(|c| matches!(c, '/' | '\\' | '#' | '?' | '%' | '\'') || c.is_control()),
                "{key:?} -> {field:?}"
            );
            assert_eq!(decode_key(&field).as_deref(), Some(key), "{field:?}");
            assert!(fields.insert(field), "two keys share a field: {key:?}");
        }
        assert_eq!(encode_key("plain-key_1.2"), "plain-key_1.2");
        assert_eq!(encode_key("a/b?"), "a~2Fb~3F");
        assert_eq!(encode_key(""), "~");
        assert_eq!(encode_key("~"), "~7E");
        assert_eq!(encode_key("\u{85}"), "~85");
    }

    #[test]
    fn only_the_canonical_spelling_decodes() {
        for field in [
            "", "~61", "~2f", "~2", "~", "a~", "a/b", "50%", "it's", "~G0",
        ] {
            if field == "~" {
                assert_eq!(decode_key(field).as_deref(), Some(""));
            } else {
                assert_eq!(decode_key(field), None, "{field:?}");
            }
        }
    }

    #[test]
    fn long_keys_are_refused_naming_the_limit() {
        assert!(key_field(&"k".repeat(512), "key").is_ok());
        let Err(Error::Invalid(message)) = key_field(&"k".repeat(513), "key") else {
            panic!("513 units must be refused");
        };
        assert!(
            message.contains("1 KiB") && message.contains("513"),
            "{message}"
        );
        // Escaping triples a character; astral characters take two UTF-16 units.
        assert!(key_field(&"/".repeat(171), "key").is_err());
        assert!(key_field(&"/".repeat(170), "key").is_ok());
        assert!(key_field(&"🦀".repeat(256), "key").is_ok());
        assert!(key_field(&"🦀".repeat(257), "key").is_err());
    }

    #[test]
    fn values_split_into_parts_of_64_kib() {
        assert_eq!(parts(b"").map(<[u8]>::len).collect::<Vec<_>>(), [0]);
        assert_eq!(parts(b"abc").map(<[u8]>::len).collect::<Vec<_>>(), [3]);
        let big = alloc::vec![7u8; 2 * PART_BYTES + 1];
        assert_eq!(
            parts(&big).map(<[u8]>::len).collect::<Vec<_>>(),
            [PART_BYTES, PART_BYTES, 1]
        );
        assert!(check_value(&alloc::vec![0; MAX_VALUE]).is_ok());
        let Err(Error::Invalid(message)) = check_value(&alloc::vec![0; MAX_VALUE + 1]) else {
            panic!("one byte over must be refused");
        };
        assert!(
            message.contains("768000") && message.contains("768001"),
            "{message}"
        );
    }

    fn backend(bucket: &str) -> TableBackend {
        backend_under("", bucket)
    }

    fn backend_under(prefix: &str, bucket: &str) -> TableBackend {
        let settings = Settings::from_lookup(|name| {
            Ok(match name {
                "url" => Some(String::from("http://127.0.0.1:10002/devstoreaccount1")),
                "account-name" => Some(String::from("devstoreaccount1")),
                "account-key" => Some(String::from("a2V5")),
                "prefix" => Some(String::from(prefix)),
                _ => None,
            })
        })
        .unwrap();
        TableBackend::open(&settings, bucket).unwrap()
    }

    #[test]
    fn partitions_end_the_prefix_with_the_one_marker() {
        let partition =
            |prefix: &str, bucket: &str| backend_under(prefix, bucket).inner.partition.clone();
        assert_eq!(
            partition("apps/guestbook/", "notes"),
            "apps~2Fguestbook~2F!notes"
        );
        assert_eq!(
            partition("", "apps/guestbook/notes"),
            "!apps~2Fguestbook~2Fnotes"
        );
        assert_eq!(partition("a", ""), "a!~");
        assert_eq!(partition("", "a"), "!a");
        assert_eq!(partition("", "a!~"), "!a~21~7E");
        assert_eq!(partition("", "~21"), "!~7E21");
    }

    #[test]
    fn the_largest_entity_fits_a_1_mib_request() {
        // The longest fields: 512 three-byte characters each (the partition's first is the
        // marker), a JSON escape adds nothing.
        let widest = "語".repeat(512);
        let b = backend(&widest[3..]);
        assert_eq!(b.inner.partition.encode_utf16().count(), MAX_KEY_UNITS);
        let row = key_field(&widest, "key").unwrap();
        let value: Vec<u8> = (0..MAX_VALUE).map(|i| i as u8).collect();
        let body = b.entity_json(&row, &value);
        assert!(body.len() <= 1 << 20, "{} bytes", body.len());
        let doc = json::parse(&body).unwrap();
        assert_eq!(value_of(&doc).unwrap(), value);
        assert_eq!(
            b.entity_json("~", b""),
            format!(
                "{{\"PartitionKey\":\"{}\",\"RowKey\":\"~\",\"v0@odata.type\":\"Edm.Binary\",\"v0\":\"\"}}",
                b.inner.partition
            )
        );
    }

    #[test]
    fn paths_quote_fields_for_the_url() {
        let b = backend("my bucket");
        assert_eq!(
            b.entity_path(&encode_key("a/b c")),
            "/kvplug(PartitionKey='%21my%20bucket',RowKey='a~2Fb%20c')"
        );
        assert_eq!(
            b.query_path(&["x", "~"], Some("RowKey"), Some(7)),
            "/kvplug()?$filter=PartitionKey%20eq%20%27%21my%20bucket%27%20and%20%28RowKey%20eq%20%27x%27%20or%20RowKey%20eq%20%27~%27%29&$select=RowKey&$top=7"
        );
        assert_eq!(backend("").inner.partition, "!~");
    }

    #[test]
    fn settings_are_checked_at_open() {
        let open = |pairs: &[(&str, &str)]| {
            let settings = Settings::from_lookup(|name| {
                Ok(pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| String::from(*v)))
            })
            .unwrap();
            TableBackend::open(&settings, "b").map(drop)
        };
        let url = ("url", "http://127.0.0.1:1/devstoreaccount1");
        let name = ("account-name", "devstoreaccount1");
        let key = ("account-key", "a2V5");
        assert!(open(&[url, name, key]).is_ok());
        for (pairs, setting) in [
            (&[url, key][..], "account-name"),
            (&[url, name][..], "account-key"),
            (&[url, name, key, ("table", "kv-plug")][..], "table"),
            (&[url, name, key, ("table", "1abc")][..], "table"),
        ] {
            let Err(Error::Settings(message)) = open(pairs) else {
                panic!("{setting} must be checked");
            };
            assert!(message.contains(setting), "{message}");
        }
    }

    #[test]
    fn cursors_are_the_continuation_query() {
        assert!(valid_cursor("NextPartitionKey=cA%3D%3D&NextRowKey=cjI%3D"));
        assert!(valid_cursor(
            "NextPartitionKey=1%218%21cA--&NextRowKey=1%2112%21cjI-"
        ));
        for foreign in [
            "not a cursor?&limit=1",
            "",
            "NextPartitionKey=&NextRowKey=x",
            "NextPartitionKey=a&NextRowKey=b&$top=1000",
            "NextPartitionKey=a%2&NextRowKey=b",
            "NextPartitionKey=a&NextRowKey=b c",
        ] {
            assert!(!valid_cursor(foreign), "{foreign:?}");
        }
    }

    #[test]
    fn service_errors_give_code_and_first_line() {
        let body = br#"{"odata.error":{"code":"TableNotFound","message":{"lang":"en-US","value":"The table specified does not exist.\nRequestId:9b46"}}}"#;
        let error = service_error(body);
        assert_eq!(error.code.as_deref(), Some("TableNotFound"));
        assert_eq!(
            error.reason(),
            "TableNotFound: The table specified does not exist."
        );
        let flat = service_error(br#"{"code":"Forbidden","message":"no"}"#);
        assert_eq!(flat.reason(), "Forbidden: no");
        assert_eq!(service_error(b"<html>").reason(), "");
    }

    #[test]
    fn batch_answers_are_read_per_operation() {
        let ok = "--batchresponse_x\r\nContent-Type: multipart/mixed; boundary=changesetresponse_x\r\n\r\n\
            --changesetresponse_x\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
            HTTP/1.1 204 No Content\r\nDataServiceVersion: 3.0;\r\nETag: W/\"datetime'1'\"\r\n\r\n\r\n\
            --changesetresponse_x\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
            HTTP/1.1 204 No Content\r\nDataServiceVersion: 3.0;\r\n\r\n\r\n\
            --changesetresponse_x--\r\n--batchresponse_x--\r\n";
        assert_eq!(batch_outcome(ok, 2), Ok(BatchOutcome::Done));
        assert!(batch_outcome(ok, 3).is_err());
        let failed = "--batchresponse_x\r\nContent-Type: multipart/mixed; boundary=changesetresponse_x\r\n\r\n\
            --changesetresponse_x\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
            HTTP/1.1 404 Not Found\r\nContent-ID: 2\r\nContent-Type: application/json;odata=minimalmetadata;charset=utf-8\r\n\r\n\
            {\"odata.error\":{\"code\":\"ResourceNotFound\",\"message\":{\"lang\":\"en-US\",\"value\":\"1:The specified resource does not exist.\\nRequestId:23\"}}}\r\n\
            --changesetresponse_x--\r\n--batchresponse_x--\r\n";
        assert_eq!(
            batch_outcome(failed, 3),
            Ok(BatchOutcome::Failed {
                index: Some(1),
                answer: OpAnswer {
                    status: 404,
                    error: ServiceError {
                        code: Some(String::from("ResourceNotFound")),
                        message: Some(String::from("The specified resource does not exist.")),
                    },
                },
            })
        );
    }
}
