//! The `http` backend: the kvplug REST protocol (`docs/protocol.md`), one request per
//! operation, served by `kvplug-server` or anything that implements the protocol.

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

use kvplug_protocol::entries::{
    self as wire, HEADER_DELETED, HEADER_ENTRIES, HEADER_LIMIT, HEADER_MAX_VALUE, HEADER_METADATA,
    HEADER_SIZE, HEADER_TTL_RANGE,
};
use kvplug_protocol::frames::{self, FrameError};
use kvplug_protocol::{BatchOp, codes, names};

use super::entries::{Entries, Entry, InsertOptions, Limits, Refusal};
use super::{
    Backend, Page, Swap, Version, Versioned, check_batch, check_pairs, framed_batches, large_first,
};
use crate::client::{Client, MAX_RESPONSE_BYTES, Response, SMALL_ANSWER_BYTES, Verb};
use crate::error::Error;
use crate::settings::Settings;

/// Bytes of keys and values per batch request; together with the protocol's entry limit it
/// decides how a large batch is split.
const MAX_BATCH_BYTES: usize = 16 << 20;

/// A bucket on a kvplug REST service.
#[derive(Debug, Clone)]
pub struct RestBackend {
    client: Rc<Client>,
    bucket: Rc<str>,
    page_size: u32,
    /// What `HEAD` of the bucket said about the entries endpoints: the largest value the
    /// server stores, or `None` for a server without them.
    entries: Option<u64>,
}

/// Where the name limits come from, for messages.
const LIMIT: &str =
    "the kvplug protocol's limit, so that every request line fits (docs/protocol.md)";

/// Refuses a key the protocol does not carry, before anything is sent.
fn check_key(key: &str) -> Result<(), Error> {
    super::check_length(
        "key",
        key,
        kvplug_protocol::MAX_KEY_BYTES,
        "kvplug-http",
        LIMIT,
    )
}

impl RestBackend {
    /// Sends one request; only a kvplug protocol server's answer, recognised by its
    /// `kvplug-protocol` header, is returned, whatever its status.
    fn send(
        &self,
        verb: Verb,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        cap: u64,
    ) -> Result<Response, Error> {
        let response = self.client.send_capped(verb, path, headers, body, cap)?;
        if response.header(kvplug_protocol::HEADER_PROTOCOL).is_none() {
            return Err(super::foreign(
                verb,
                self.client.target(path),
                response.status,
                "a kvplug protocol server",
                "no `kvplug-protocol` header",
            ));
        }
        Ok(response)
    }

    fn key_path(&self, key: &str) -> Result<String, Error> {
        check_key(key)?;
        Ok(kvplug_protocol::key_path(&self.bucket, key))
    }

    /// The error for an unexpected answer: a 404 that names the bucket is `no-such-store`,
    /// and the protocol's error code leads the reason.
    fn status_error(&self, verb: Verb, path: &str, response: &Response) -> Error {
        let code = response.header(kvplug_protocol::HEADER_ERROR);
        if response.status == 404 && code == Some(codes::NO_SUCH_BUCKET) {
            return Error::NoSuchStore;
        }
        let body = String::from_utf8_lossy(&response.body);
        let reason = match code {
            Some(code) if body.trim().is_empty() => String::from(code),
            Some(code) => format!("{code}: {body}"),
            None => body.into_owned(),
        };
        self.client
            .status_with(verb, path, response.status, &reason)
    }

    fn etag(&self, verb: Verb, path: &str, response: &Response) -> Result<String, Error> {
        response.header("etag").map(String::from).ok_or_else(|| {
            self.client
                .malformed(verb, path, "no ETag on a stored value")
        })
    }

    /// Sends a request whose only acceptable answers are 2xx.
    fn expect_success(
        &self,
        verb: Verb,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        cap: u64,
    ) -> Result<Response, Error> {
        let response = self.send(verb, path, headers, body, cap)?;
        if (200..300).contains(&response.status) {
            Ok(response)
        } else {
            Err(self.status_error(verb, path, &response))
        }
    }

    /// GET or HEAD of a key: `None` for a 404 that says the key is absent.
    fn fetch(&self, verb: Verb, key: &str) -> Result<Option<Response>, Error> {
        let path = self.key_path(key)?;
        let response = self.send(verb, &path, &[], &[], MAX_RESPONSE_BYTES)?;
        match (
            response.status,
            response.header(kvplug_protocol::HEADER_ERROR),
        ) {
            (200, _) => Ok(Some(response)),
            (404, Some(codes::NO_SUCH_KEY)) => Ok(None),
            _ => Err(self.status_error(verb, &path, &response)),
        }
    }

    /// One page of a listing at `path` (which has its query started), continued after
    /// `cursor`.
    fn page(&self, mut path: String, cursor: Option<&str>, limit: u32) -> Result<Page, Error> {
        if let Some(cursor) = cursor {
            // The cursor is opaque and comes from the caller: encode it so that it stays one
            // query value whatever it contains.
            path.push_str("&cursor=");
            path.push_str(&names::encode(cursor));
        }
        // A page is at most `limit` frames of the longest key.
        let cap = u64::from(limit) * (kvplug_protocol::MAX_KEY_BYTES as u64 + 4) + 1024;
        let response = self.expect_success(Verb::Get, &path, &[], &[], cap)?;
        let mut reader = frames::Reader::new(&response.body);
        let mut keys = Vec::new();
        while !reader.is_empty() {
            let key = reader
                .key()
                .map_err(|e| self.client.malformed(Verb::Get, &path, e))?;
            keys.push(String::from(key));
        }
        if keys.len() > limit as usize {
            return Err(self.client.malformed(
                Verb::Get,
                &path,
                "more keys than the limit asked for",
            ));
        }
        let cursor = response
            .header(kvplug_protocol::HEADER_CURSOR)
            .map(String::from);
        Ok(Page { keys, cursor })
    }

    fn batch<'a, T>(
        &self,
        op: BatchOp,
        items: &'a [T],
        size: impl Fn(&T) -> usize,
        encode: impl Fn(&mut Vec<u8>, &'a T) -> Result<(), FrameError>,
        mut on_response: impl FnMut(&'a [T], Response) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let path = kvplug_protocol::batch_path(&self.bucket, op);
        let limit = kvplug_protocol::MAX_BATCH_ENTRIES;
        for batch in framed_batches(items, limit, MAX_BATCH_BYTES, size, encode) {
            let (chunk, body) = batch?;
            let cap = match op {
                BatchOp::GetMany => MAX_RESPONSE_BYTES,
                _ => SMALL_ANSWER_BYTES,
            };
            let response = self.expect_success(Verb::Post, &path, &[], &body, cap)?;
            on_response(chunk, response)?;
        }
        Ok(())
    }
}

impl Backend for RestBackend {
    fn open(settings: &Settings, bucket: &str) -> Result<Self, Error> {
        super::check_length(
            "bucket name",
            bucket,
            kvplug_protocol::MAX_BUCKET_BYTES,
            "kvplug-http",
            LIMIT,
        )?;
        let backend = RestBackend {
            client: Rc::new(Client::new(
                settings,
                settings.token.as_ref().map(|t| format!("Bearer {t}")),
            )),
            bucket: Rc::from(bucket),
            page_size: settings.page_size,
            entries: None,
        };
        // One HEAD so that a wrong URL, token or bucket fails here, not at the first get.
        let path = kvplug_protocol::bucket_path(bucket);
        let head = backend.expect_success(Verb::Head, &path, &[], &[], SMALL_ANSWER_BYTES)?;
        let entries = (head.header(HEADER_ENTRIES) == Some("1"))
            .then(|| head.header(HEADER_MAX_VALUE)?.trim().parse().ok())
            .flatten();
        Ok(RestBackend { entries, ..backend })
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.fetch(Verb::Get, key)?.map(|response| response.body))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        let path = self.key_path(key)?;
        self.expect_success(Verb::Put, &path, &[], value, SMALL_ANSWER_BYTES)
            .map(drop)
    }

    fn delete(&self, key: &str) -> Result<(), Error> {
        let path = self.key_path(key)?;
        self.expect_success(Verb::Delete, &path, &[], &[], SMALL_ANSWER_BYTES)
            .map(drop)
    }

    fn exists(&self, key: &str) -> Result<bool, Error> {
        Ok(self.fetch(Verb::Head, key)?.is_some())
    }

    fn list(&self, cursor: Option<&str>) -> Result<Page, Error> {
        let path = format!(
            "{}?limit={}",
            kvplug_protocol::bucket_path(&self.bucket),
            self.page_size
        );
        self.page(path, cursor, self.page_size)
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, Error> {
        use kvplug_protocol::counter;
        let path = format!("{}?increment={delta}", self.key_path(key)?);
        let response = self.send(Verb::Post, &path, &[], &[], SMALL_ANSWER_BYTES)?;
        // The server refuses by code under the shared grammar; word it as every backend
        // does, so an app sees one message whichever service it is linked with.
        let refusal = match (
            response.status,
            response.header(kvplug_protocol::HEADER_ERROR),
        ) {
            (200..=299, _) => None,
            (409, Some(codes::NOT_A_NUMBER)) => Some(counter::CounterError::NotANumber),
            (409, Some(codes::OVERFLOW)) => Some(counter::CounterError::Overflow),
            _ => return Err(self.status_error(Verb::Post, &path, &response)),
        };
        if let Some(refusal) = refusal {
            return Err(super::counter_error(key, refusal));
        }
        core::str::from_utf8(&response.body)
            .ok()
            .and_then(|text| text.trim().parse::<i64>().ok())
            .ok_or_else(|| {
                self.client
                    .malformed(Verb::Post, &path, "increment result is not a number")
            })
    }

    fn read_versioned(&self, key: &str) -> Result<Versioned, Error> {
        match self.fetch(Verb::Get, key)? {
            None => Ok(Versioned::absent()),
            Some(response) => {
                let path = self.key_path(key)?;
                let tag = self.etag(Verb::Get, &path, &response)?;
                Ok(Versioned {
                    value: Some(response.body),
                    version: Version::Tag(tag),
                })
            }
        }
    }

    fn write_if(&self, key: &str, expected: &Version, value: &[u8]) -> Result<Swap, Error> {
        let path = self.key_path(key)?;
        let condition = match expected {
            Version::Absent => ("if-none-match", "*"),
            Version::Tag(tag) => ("if-match", tag.as_str()),
        };
        let response = self.send(Verb::Put, &path, &[condition], value, SMALL_ANSWER_BYTES)?;
        match (
            response.status,
            response.header(kvplug_protocol::HEADER_ERROR),
        ) {
            (200..=299, _) => Ok(Swap::Done),
            // The server sends what is stored now, so a retry needs no extra read.
            (412, Some(codes::VERSION_MISMATCH)) => {
                let current = match response.header("etag") {
                    None => Versioned::absent(),
                    Some(tag) => Versioned {
                        version: Version::Tag(String::from(tag)),
                        value: Some(response.body),
                    },
                };
                Ok(Swap::Conflict(current))
            }
            _ => Err(self.status_error(Verb::Put, &path, &response)),
        }
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        check_batch("get-many", keys, check_key)?;
        let mut values = Vec::with_capacity(keys.len());
        let path = kvplug_protocol::batch_path(&self.bucket, BatchOp::GetMany);
        self.batch(
            BatchOp::GetMany,
            keys,
            String::len,
            |body, key| frames::put(body, key.as_bytes()),
            |chunk, response| {
                let mut reader = frames::Reader::new(&response.body);
                for _ in chunk {
                    let value = reader
                        .optional()
                        .map_err(|e| self.client.malformed(Verb::Post, &path, e))?;
                    values.push(value.map(<[u8]>::to_vec));
                }
                if reader.is_empty() {
                    Ok(())
                } else {
                    Err(self
                        .client
                        .malformed(Verb::Post, &path, "more values than keys"))
                }
            },
        )?;
        Ok(values)
    }

    fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), Error> {
        check_pairs(pairs, check_key)?;
        let pairs = large_first(pairs.iter().collect(), MAX_BATCH_BYTES);
        self.batch(
            BatchOp::SetMany,
            &pairs,
            |(key, value)| key.len() + value.len(),
            |body, (key, value)| {
                frames::put(body, key.as_bytes())?;
                frames::put(body, value)
            },
            |_, _| Ok(()),
        )
    }

    fn delete_many(&self, keys: &[String]) -> Result<(), Error> {
        check_batch("delete-many", keys, check_key)?;
        self.batch(
            BatchOp::DeleteMany,
            keys,
            String::len,
            |body, key| frames::put(body, key.as_bytes()),
            |_, _| Ok(()),
        )
    }
}

impl RestBackend {
    /// The entries endpoints' largest value, or the error of a server without them: no
    /// request is sent to a server that would ignore the options.
    fn entries_max_value(&self) -> Result<u64, Error> {
        self.entries.ok_or_else(|| {
            Error::Invalid(String::from(
                "kvplug-server too old for kvplug:keyvalue: `HEAD` of the bucket did not \
                 announce the entries endpoints (`kvplug-entries: 1`); nothing was sent",
            ))
        })
    }

    /// The generation an entry answer carries in its `ETag`.
    fn generation(&self, verb: Verb, path: &str, response: &Response) -> Result<u64, Error> {
        let tag = self.etag(verb, path, response)?;
        super::entries::generation_of(&tag).ok_or_else(|| {
            self.client
                .malformed(verb, path, "ETag is not a generation")
        })
    }

    /// The refusal a `412`, `413` or `400 bad-ttl` answer states, if it is one. `sent` is
    /// the size of the bytes sent, the size named when the server names none.
    fn refusal(response: &Response, sent: usize) -> Option<Refusal> {
        let code = response.header(kvplug_protocol::HEADER_ERROR)?;
        match (response.status, code) {
            (412, codes::KEY_EXISTS) => Some(Refusal::KeyExists),
            (412, codes::VERSION_MISMATCH) => Some(Refusal::GenerationMismatch),
            (413, codes::TOO_LARGE) => {
                let (what, limit) = wire::parse_limit(response.header(HEADER_LIMIT)?)?;
                let size = response
                    .header(HEADER_SIZE)
                    .and_then(|size| size.trim().parse().ok())
                    .unwrap_or(sent as u64);
                Some(Refusal::TooLarge {
                    what,
                    limit: Some(limit),
                    size,
                })
            }
            (400, codes::BAD_TTL) => Some(Refusal::TtlOutOfRange(wire::parse_ttl_range(
                response.header(HEADER_TTL_RANGE)?,
            )?)),
            _ => None,
        }
    }
}

impl Entries for RestBackend {
    fn page_size(&self) -> u32 {
        self.page_size
    }

    fn limits(&self) -> Limits {
        Limits::new(Some(kvplug_protocol::MAX_KEY_BYTES as u64), self.entries)
    }

    fn read_entry(&self, key: &str) -> Result<Option<Entry>, Error> {
        self.entries_max_value()?;
        let path = wire::entry_path(&self.bucket, key);
        let response = self.send(Verb::Get, &path, &[], &[], MAX_RESPONSE_BYTES)?;
        match (
            response.status,
            response.header(kvplug_protocol::HEADER_ERROR),
        ) {
            (200, _) => {}
            (404, Some(codes::NO_SUCH_KEY)) => return Ok(None),
            _ => return Err(self.status_error(Verb::Get, &path, &response)),
        }
        let generation = self.generation(Verb::Get, &path, &response)?;
        let metadata = match response.header(HEADER_METADATA) {
            None => Vec::new(),
            Some(text) => wire::decode_metadata(text)
                .map_err(|e| self.client.malformed(Verb::Get, &path, e))?,
        };
        Ok(Some(Entry {
            value: response.body,
            metadata,
            generation,
        }))
    }

    fn write_entry(
        &self,
        key: &str,
        value: &[u8],
        options: &InsertOptions<'_>,
    ) -> Result<u64, Error> {
        self.entries_max_value()?;
        let path = format!(
            "{}?{}",
            wire::entry_path(&self.bucket, key),
            wire::insert_query(options.mode, options.ttl_sec)
        );
        let metadata = options.metadata.map(wire::encode_metadata);
        let if_match = options
            .if_generation_match
            .map(|generation| format!("\"{generation}\""));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(metadata) = &metadata {
            headers.push((HEADER_METADATA, metadata));
        }
        if let Some(if_match) = &if_match {
            headers.push(("if-match", if_match));
        }
        let response = self.send(Verb::Put, &path, &headers, value, SMALL_ANSWER_BYTES)?;
        if response.status == 200 {
            return self.generation(Verb::Put, &path, &response);
        }
        match Self::refusal(&response, value.len()) {
            Some(refusal) => Err(Error::Entry(refusal)),
            None => Err(self.status_error(Verb::Put, &path, &response)),
        }
    }

    fn remove_entry(&self, key: &str, generation: Option<u64>) -> Result<bool, Error> {
        self.entries_max_value()?;
        let path = wire::entry_path(&self.bucket, key);
        let if_match = generation.map(|generation| format!("\"{generation}\""));
        let headers: Vec<(&str, &str)> =
            if_match.iter().map(|g| ("if-match", g.as_str())).collect();
        let response = self.send(Verb::Delete, &path, &headers, &[], SMALL_ANSWER_BYTES)?;
        if response.status == 204 {
            return match response.header(HEADER_DELETED).map(str::trim) {
                Some("1") => Ok(true),
                Some("0") => Ok(false),
                _ => Err(self.client.malformed(
                    Verb::Delete,
                    &path,
                    "no `kvplug-deleted: 1|0` on an entry delete",
                )),
            };
        }
        match Self::refusal(&response, 0) {
            Some(refusal) => Err(Error::Entry(refusal)),
            None => Err(self.status_error(Verb::Delete, &path, &response)),
        }
    }

    fn list_prefix(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<Page, Error> {
        self.entries_max_value()?;
        let path = format!(
            "{}?prefix={}&limit={limit}",
            wire::entries_path(&self.bucket),
            names::encode(prefix)
        );
        self.page(path, cursor, limit)
    }
}
