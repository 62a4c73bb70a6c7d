//! The HTTP face of the store: routing, authentication and the mapping from requests to
//! storage calls. Every answer follows `docs/protocol.md`.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use kvplug_protocol::changes;
use kvplug_protocol::counter::CounterError;
use kvplug_protocol::entries::{self, InsertOptions, Limited, Limits, Mode};
use kvplug_protocol::frames::{self, FrameError};
use kvplug_protocol::{BatchOp, codes, names};

use crate::storage::{Condition, GenerationMismatch, IncrementError, Page, Storage, WriteOutcome};

const FRAMES_TYPE: &str = "application/vnd.kvplug.frames";

/// Everything a request handler needs.
pub(crate) struct State {
    pub storage: Storage,
    pub token: Option<String>,
    pub buckets: Option<HashSet<String>>,
    pub max_body: usize,
    pub requests: AtomicU64,
}

type Reply = Response<Full<Bytes>>;

/// An error answer. Boxed: a response is large, and handlers pass refusals up through `?`.
type Refusal = Box<Reply>;

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
    let mut response = reply(status, message.into());
    let headers = response.headers_mut();
    headers.insert(
        kvplug_protocol::HEADER_ERROR,
        HeaderValue::from_static(code),
    );
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Box::new(response)
}

fn frames_reply(body: Vec<u8>) -> Reply {
    let mut response = reply(StatusCode::OK, body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(FRAMES_TYPE));
    response
}

fn with_etag(mut response: Reply, version: u64) -> Reply {
    if let Ok(value) = HeaderValue::from_str(&kvplug_protocol::format_etag(version)) {
        response.headers_mut().insert(ETAG, value);
    }
    response
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        codes::INTERNAL,
        e.to_string(),
    )
}

/// A request path, decoded.
enum Route {
    Health,
    Stats,
    Bucket(String),
    Key(String, String),
    Batch(String, BatchOp),
    Entries(String),
    Entry(String, String),
    Changes(String),
}

fn route(path: &str) -> Result<Route, Refusal> {
    match path {
        "/healthz" => return Ok(Route::Health),
        "/_kvplug/stats" => return Ok(Route::Stats),
        _ => {}
    }
    let not_found = || error(StatusCode::NOT_FOUND, codes::NOT_FOUND, "no such endpoint");
    let rest = path
        .strip_prefix(kvplug_protocol::BUCKETS_PREFIX)
        .ok_or_else(not_found)?;
    let name = |segment: &str, check: fn(&str) -> Result<(), String>| {
        let name = names::decode(segment).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                codes::BAD_NAME,
                format!("bad path segment: {e}"),
            )
        })?;
        check(&name).map_err(too_long)?;
        Ok::<_, Refusal>(name)
    };
    let bucket = |segment| name(segment, kvplug_protocol::check_bucket);
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        [b] => Ok(Route::Bucket(bucket(b)?)),
        [b, "keys", key] => Ok(Route::Key(
            bucket(b)?,
            name(key, kvplug_protocol::check_key)?,
        )),
        [b, entries::ENTRIES_SEGMENT] => Ok(Route::Entries(bucket(b)?)),
        [b, changes::CHANGES_SEGMENT] => Ok(Route::Changes(bucket(b)?)),
        [b, entries::ENTRIES_SEGMENT, key] => Ok(Route::Entry(
            bucket(b)?,
            name(key, kvplug_protocol::check_key)?,
        )),
        [b, op] => match BatchOp::from_segment(op) {
            Some(op) => Ok(Route::Batch(bucket(b)?, op)),
            None => Err(not_found()),
        },
        _ => Err(not_found()),
    }
}

/// A name over the protocol's length limits: refused wherever it appears, path or batch,
/// so that no key can be written that a single-key request could not reach.
fn too_long(message: String) -> Refusal {
    error(StatusCode::BAD_REQUEST, codes::BAD_NAME, message)
}

fn query_param<'a>(query: Option<&'a str>, wanted: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (name == wanted).then_some(value)
    })
}

fn bad_request(message: impl Into<String>) -> Refusal {
    error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, message)
}

fn method_not_allowed() -> Refusal {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::METHOD_NOT_ALLOWED,
        "method not allowed on this path",
    )
}

/// Checks the bearer token in constant time with respect to its content.
fn authorize(state: &State, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(expected) = &state.token else {
        return Ok(());
    };
    let Some(given) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            codes::UNAUTHORIZED,
            "a bearer token is required",
        );
        response
            .headers_mut()
            .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        return Err(response);
    };
    let same_length = given.len() == expected.len();
    let differences = given
        .bytes()
        .zip(expected.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if same_length && differences == 0 {
        Ok(())
    } else {
        Err(error(
            StatusCode::FORBIDDEN,
            codes::FORBIDDEN,
            "the bearer token is not valid here",
        ))
    }
}

fn check_bucket(state: &State, bucket: &str) -> Result<(), Refusal> {
    match &state.buckets {
        Some(allowed) if !allowed.contains(bucket) => Err(error(
            StatusCode::NOT_FOUND,
            codes::NO_SUCH_BUCKET,
            "no such bucket",
        )),
        _ => Ok(()),
    }
}

/// How much of an oversized body the server still reads (and discards) before answering 413.
///
/// Answering without reading would close the connection with unread data, and the kernel
/// then resets it: the client can lose the 413 and see only "connection reset". Reading the
/// rest lets the client receive a clear answer. Beyond this much, the server gives up and
/// closes anyway.
const DRAIN_LIMIT: usize = 256 << 20;

async fn read_body(
    state: &State,
    mut body: Incoming,
    headers: &HeaderMap,
) -> Result<Bytes, Refusal> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut collected = Vec::with_capacity(declared.map_or(0, |n| {
        usize::try_from(n).unwrap_or(usize::MAX).min(state.max_body)
    }));
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| bad_request(format!("failed to read body: {e}")))?;
        if let Some(data) = frame.data_ref() {
            total = total.saturating_add(data.len());
            if total <= state.max_body {
                collected.extend_from_slice(data);
            } else if total > DRAIN_LIMIT {
                break;
            }
        }
    }
    if total > state.max_body {
        let mut refusal = error(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::TOO_LARGE,
            format!("body larger than {} bytes", state.max_body),
        );
        if let Ok(limit) = HeaderValue::from_str(&entries::format_limit(
            Limited::Value,
            u64::try_from(state.max_body).unwrap_or(u64::MAX),
        )) {
            refusal.headers_mut().insert(entries::HEADER_LIMIT, limit);
        }
        return Err(refusal);
    }
    Ok(Bytes::from(collected))
}

/// Runs a storage call off the async workers: redb commits block on `fsync`.
async fn blocking<T: Send + 'static>(
    state: &Arc<State>,
    call: impl FnOnce(&Storage) -> T + Send + 'static,
) -> Result<T, Refusal> {
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || call(&state.storage))
        .await
        .map_err(internal)
}

/// Answers one request.
pub(crate) async fn handle(state: Arc<State>, request: Request<Incoming>) -> Reply {
    let mut response = match handle_inner(&state, request).await {
        Ok(response) => response,
        Err(refusal) => *refusal,
    };
    response.headers_mut().insert(
        kvplug_protocol::HEADER_PROTOCOL,
        HeaderValue::from_static(kvplug_protocol::PROTOCOL_VERSION),
    );
    response
}

async fn handle_inner(state: &Arc<State>, request: Request<Incoming>) -> Result<Reply, Refusal> {
    let route = route(request.uri().path())?;
    match route {
        Route::Health => return Ok(reply(StatusCode::OK, "ok")),
        Route::Stats => {
            let count = state.requests.load(Ordering::SeqCst);
            return Ok(reply(StatusCode::OK, format!("requests {count}\n")));
        }
        _ => {}
    }
    state.requests.fetch_add(1, Ordering::SeqCst);
    authorize(state, request.headers())?;
    let (parts, body) = request.into_parts();
    let query = parts.uri.query();
    match route {
        Route::Health | Route::Stats => Err(internal("unreachable route")),
        Route::Bucket(bucket) => {
            check_bucket(state, &bucket)?;
            match parts.method {
                Method::HEAD => {
                    let mut response = reply(StatusCode::NO_CONTENT, Bytes::new());
                    let headers = response.headers_mut();
                    headers.insert(entries::HEADER_ENTRIES, HeaderValue::from_static("1"));
                    headers.insert(entries::HEADER_MAX_VALUE, HeaderValue::from(state.max_body));
                    Ok(response)
                }
                Method::GET => list(state, bucket, query).await,
                _ => Err(method_not_allowed()),
            }
        }
        Route::Key(bucket, key) => {
            check_bucket(state, &bucket)?;
            match parts.method {
                Method::GET | Method::HEAD => {
                    let head = parts.method == Method::HEAD;
                    let entry = blocking(state, move |s| s.get(&bucket, &key))
                        .await?
                        .map_err(internal)?;
                    match entry {
                        None => Err(error(
                            StatusCode::NOT_FOUND,
                            codes::NO_SUCH_KEY,
                            "no such key",
                        )),
                        Some(entry) => {
                            let body = if head { Vec::new() } else { entry.value };
                            let mut response =
                                with_etag(reply(StatusCode::OK, body), entry.version);
                            response.headers_mut().insert(
                                CONTENT_TYPE,
                                HeaderValue::from_static("application/octet-stream"),
                            );
                            Ok(response)
                        }
                    }
                }
                Method::PUT => {
                    let condition = condition(&parts.headers)?;
                    let value = read_body(state, body, &parts.headers).await?;
                    put(state, bucket, key, value, condition).await
                }
                Method::DELETE => {
                    blocking(state, move |s| s.delete(&bucket, &key))
                        .await?
                        .map_err(internal)?;
                    Ok(reply(StatusCode::NO_CONTENT, Bytes::new()))
                }
                Method::POST => {
                    let delta = query_param(query, "increment")
                        .and_then(|v| v.parse::<i64>().ok())
                        .ok_or_else(|| {
                            bad_request("POST on a key needs `increment=<signed 64-bit integer>`")
                        })?;
                    increment(state, bucket, key, delta).await
                }
                _ => Err(method_not_allowed()),
            }
        }
        Route::Batch(bucket, op) => {
            check_bucket(state, &bucket)?;
            if parts.method != Method::POST {
                return Err(method_not_allowed());
            }
            let body = read_body(state, body, &parts.headers).await?;
            batch(state, bucket, op, body).await
        }
        Route::Changes(bucket) => {
            check_bucket(state, &bucket)?;
            if parts.method != Method::GET {
                return Err(method_not_allowed());
            }
            read_changes(state, bucket, query).await
        }
        Route::Entries(bucket) => {
            check_bucket(state, &bucket)?;
            if parts.method != Method::GET {
                return Err(method_not_allowed());
            }
            list_entries(state, bucket, query).await
        }
        Route::Entry(bucket, key) => {
            check_bucket(state, &bucket)?;
            match parts.method {
                Method::GET | Method::HEAD => {
                    lookup_entry(state, bucket, key, parts.method == Method::HEAD).await
                }
                Method::PUT => {
                    let request = InsertRequest::parse(query, &parts.headers)?;
                    let value = read_body(state, body, &parts.headers).await?;
                    insert_entry(state, bucket, key, value, request).await
                }
                Method::DELETE => {
                    if parts.headers.contains_key(IF_NONE_MATCH) {
                        return Err(bad_request("an entry DELETE takes If-Match only"));
                    }
                    let generation = if_match(&parts.headers)?;
                    remove_entry(state, bucket, key, generation).await
                }
                _ => Err(method_not_allowed()),
            }
        }
    }
}

fn condition(headers: &HeaderMap) -> Result<Condition, Refusal> {
    let text = |name| {
        headers
            .get(name)
            .map(|v: &HeaderValue| {
                v.to_str()
                    .map_err(|_| bad_request("conditional header is not ASCII"))
            })
            .transpose()
    };
    match (text(IF_MATCH)?, text(IF_NONE_MATCH)?) {
        (None, None) => Ok(Condition::Always),
        (None, Some(v)) if v.trim() == "*" => Ok(Condition::Absent),
        (None, Some(_)) => Err(bad_request("If-None-Match supports only `*`")),
        (Some(v), None) => kvplug_protocol::parse_etag(v)
            .map(Condition::Version)
            .ok_or_else(|| bad_request("If-Match must be one ETag this server issued")),
        (Some(_), Some(_)) => Err(bad_request("give If-Match or If-None-Match, not both")),
    }
}

async fn put(
    state: &Arc<State>,
    bucket: String,
    key: String,
    value: Bytes,
    condition: Condition,
) -> Result<Reply, Refusal> {
    let outcome = blocking(state, move |s| s.put(&bucket, &key, &value, condition))
        .await?
        .map_err(internal)?;
    match outcome {
        WriteOutcome::Written(version) => Ok(with_etag(
            reply(StatusCode::NO_CONTENT, Bytes::new()),
            version,
        )),
        // The current value rides along so a client can retry without another read.
        WriteOutcome::Conflict(current) => {
            let mut response = error(
                StatusCode::PRECONDITION_FAILED,
                codes::VERSION_MISMATCH,
                String::new(),
            );
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            Err(match current {
                None => response,
                Some(entry) => {
                    *response.body_mut() = Full::new(Bytes::from(entry.value));
                    Box::new(with_etag(*response, entry.version))
                }
            })
        }
    }
}

async fn increment(
    state: &Arc<State>,
    bucket: String,
    key: String,
    delta: i64,
) -> Result<Reply, Refusal> {
    let outcome = blocking(state, move |s| s.increment(&bucket, &key, delta))
        .await?
        .map_err(internal)?;
    match outcome {
        Ok((value, version)) => Ok(with_etag(reply(StatusCode::OK, value.to_string()), version)),
        Err(IncrementError::NotANumber) => Err(error(
            StatusCode::CONFLICT,
            codes::NOT_A_NUMBER,
            format!("{}; nothing was written", CounterError::NotANumber),
        )),
        Err(IncrementError::Overflow) => Err(error(
            StatusCode::CONFLICT,
            codes::OVERFLOW,
            format!("{}; nothing was written", CounterError::Overflow),
        )),
    }
}

async fn list(state: &Arc<State>, bucket: String, query: Option<&str>) -> Result<Reply, Refusal> {
    let limit = list_limit(query)?;
    // A cursor is the encoded last key of the previous page; it arrives encoded once more as a
    // query value, so it decodes twice.
    let after = match query_param(query, "cursor") {
        None => None,
        Some(v) => Some(
            names::decode(v)
                .and_then(|cursor| names::decode(&cursor))
                .map_err(|e| {
                    error(
                        StatusCode::BAD_REQUEST,
                        codes::BAD_CURSOR,
                        format!("cursor was not issued by this server: {e}"),
                    )
                })?,
        ),
    };
    let page = blocking(state, move |s| s.list(&bucket, after.as_deref(), limit))
        .await?
        .map_err(internal)?;
    page_reply(&page, names::encode)
}

/// A page of keys as frames, with the cursor `cursor_after` makes of its last key when more
/// follow.
fn page_reply(page: &Page, cursor_after: impl Fn(&str) -> String) -> Result<Reply, Refusal> {
    let mut body = Vec::new();
    for key in &page.keys {
        frames::put(&mut body, key.as_bytes()).map_err(internal)?;
    }
    let mut response = frames_reply(body);
    if let (true, Some(last)) = (page.more, page.keys.last()) {
        let cursor = HeaderValue::from_str(&cursor_after(last)).map_err(internal)?;
        response
            .headers_mut()
            .insert(kvplug_protocol::HEADER_CURSOR, cursor);
    }
    Ok(response)
}

fn bad_frames(e: FrameError) -> Refusal {
    error(StatusCode::BAD_REQUEST, codes::BAD_FRAMES, e.to_string())
}

/// Splits a batch body into keys (and values, for set-many), enforcing the entry limit.
fn parse_batch(body: &[u8], with_values: bool) -> Result<Vec<(&str, &[u8])>, Refusal> {
    let mut reader = frames::Reader::new(body);
    let mut entries = Vec::new();
    while !reader.is_empty() {
        if entries.len() == kvplug_protocol::MAX_BATCH_ENTRIES {
            return Err(error(
                StatusCode::BAD_REQUEST,
                codes::BAD_FRAMES,
                format!(
                    "more than {} entries in one batch",
                    kvplug_protocol::MAX_BATCH_ENTRIES
                ),
            ));
        }
        let key = reader.key().map_err(bad_frames)?;
        kvplug_protocol::check_key(key).map_err(too_long)?;
        let value = if with_values {
            reader.frame().map_err(bad_frames)?
        } else {
            &[]
        };
        entries.push((key, value));
    }
    Ok(entries)
}

async fn batch(
    state: &Arc<State>,
    bucket: String,
    op: BatchOp,
    body: Bytes,
) -> Result<Reply, Refusal> {
    blocking(state, move |s| {
        // Parsed in full before storage is touched, so a malformed batch changes nothing.
        let entries = parse_batch(&body, op == BatchOp::SetMany)?;
        let keys = || entries.iter().map(|(k, _)| *k).collect::<Vec<&str>>();
        match op {
            BatchOp::GetMany => {
                let values = s.get_many(&bucket, &keys()).map_err(internal)?;
                let mut out = Vec::new();
                for value in &values {
                    frames::put_optional(&mut out, value.as_deref()).map_err(internal)?;
                }
                Ok(frames_reply(out))
            }
            BatchOp::SetMany => {
                s.set_many(&bucket, &entries).map_err(internal)?;
                Ok(reply(StatusCode::NO_CONTENT, Bytes::new()))
            }
            BatchOp::DeleteMany => {
                s.delete_many(&bucket, &keys()).map_err(internal)?;
                Ok(reply(StatusCode::NO_CONTENT, Bytes::new()))
            }
        }
    })
    .await?
}

/// The limits this server applies to entries.
fn limits(state: &State) -> Limits {
    Limits::new(
        u64::try_from(kvplug_protocol::MAX_KEY_BYTES).ok(),
        u64::try_from(state.max_body).ok(),
    )
}

/// The generation in an `If-Match`, if there is one.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, Refusal> {
    headers
        .get(IF_MATCH)
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(kvplug_protocol::parse_etag)
                .ok_or_else(|| bad_request("If-Match must be one ETag this server issued"))
        })
        .transpose()
}

fn bad_ttl() -> Refusal {
    let range = entries::TTL_RANGE;
    let mut refusal = error(
        StatusCode::BAD_REQUEST,
        codes::BAD_TTL,
        format!(
            "`ttl` must be a whole number of seconds from {} to {}; nothing was written",
            range.min_sec, range.max_sec
        ),
    );
    if let Ok(value) = HeaderValue::from_str(&entries::format_ttl_range(range)) {
        refusal
            .headers_mut()
            .insert(entries::HEADER_TTL_RANGE, value);
    }
    refusal
}

/// The answer to an insert or a check that refused.
fn refused(refusal: entries::Refusal) -> Refusal {
    let nothing = "; nothing was written";
    match refusal {
        entries::Refusal::KeyExists => error(
            StatusCode::PRECONDITION_FAILED,
            codes::KEY_EXISTS,
            format!("{refusal}{nothing}"),
        ),
        entries::Refusal::GenerationMismatch => error(
            StatusCode::PRECONDITION_FAILED,
            codes::VERSION_MISMATCH,
            format!("{refusal}{nothing}"),
        ),
        entries::Refusal::TooLarge { what, limit, size } => {
            let mut response = error(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::TOO_LARGE,
                format!("{refusal}{nothing}"),
            );
            response
                .headers_mut()
                .insert(entries::HEADER_SIZE, HeaderValue::from(size));
            if let Some(limit) = limit
                && let Ok(value) = HeaderValue::from_str(&entries::format_limit(what, limit))
            {
                response.headers_mut().insert(entries::HEADER_LIMIT, value);
            }
            response
        }
        entries::Refusal::TtlOutOfRange(_) => bad_ttl(),
        entries::Refusal::Invalid(reason) => bad_request(format!("{reason}{nothing}")),
    }
}

/// An entry `PUT`'s options, parsed and checked before the body is read.
struct InsertRequest {
    mode: Mode,
    ttl_sec: Option<u32>,
    metadata: Option<Vec<u8>>,
    if_generation_match: Option<u64>,
}

impl InsertRequest {
    fn parse(query: Option<&str>, headers: &HeaderMap) -> Result<Self, Refusal> {
        let mode = match query_param(query, "mode") {
            None => Mode::Overwrite,
            Some(value) => Mode::from_query(value)
                .ok_or_else(|| bad_request("`mode` must be overwrite, add, append or prepend"))?,
        };
        // Every spelling of a bad TTL gets the same answer naming the range: a client has
        // one thing to fix.
        let ttl_sec = query_param(query, "ttl")
            .map(|value| value.parse::<u32>().map_err(|_| bad_ttl()))
            .transpose()?;
        let metadata = headers
            .get(entries::HEADER_METADATA)
            .map(|value| {
                let text = value
                    .to_str()
                    .map_err(|_| bad_request("`kvplug-metadata` is not base64"))?;
                entries::decode_metadata(text).map_err(refused)
            })
            .transpose()?;
        if headers.contains_key(IF_NONE_MATCH) {
            return Err(bad_request(
                "an entry PUT takes If-Match only; `mode=add` writes only an absent key",
            ));
        }
        let request = InsertRequest {
            mode,
            ttl_sec,
            metadata,
            if_generation_match: if_match(headers)?,
        };
        Ok(request)
    }

    fn options(&self) -> InsertOptions<'_> {
        InsertOptions {
            mode: self.mode,
            ttl_sec: self.ttl_sec,
            metadata: self.metadata.as_deref(),
            if_generation_match: self.if_generation_match,
        }
    }
}

async fn lookup_entry(
    state: &Arc<State>,
    bucket: String,
    key: String,
    head: bool,
) -> Result<Reply, Refusal> {
    let entry = blocking(state, move |s| s.lookup_entry(&bucket, &key))
        .await?
        .map_err(internal)?
        .ok_or_else(|| error(StatusCode::NOT_FOUND, codes::NO_SUCH_KEY, "no such key"))?;
    let body = if head { Vec::new() } else { entry.value };
    let mut response = with_etag(reply(StatusCode::OK, body), entry.version);
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if !entry.metadata.is_empty() {
        let value =
            HeaderValue::from_str(&entries::encode_metadata(&entry.metadata)).map_err(internal)?;
        headers.insert(entries::HEADER_METADATA, value);
    }
    Ok(response)
}

async fn insert_entry(
    state: &Arc<State>,
    bucket: String,
    key: String,
    value: Bytes,
    request: InsertRequest,
) -> Result<Reply, Refusal> {
    let limits = limits(state);
    entries::check(&request.options(), &limits, key.len()).map_err(refused)?;
    let outcome = blocking(state, move |s| {
        s.insert(&bucket, &key, &value, &request.options(), &limits)
    })
    .await?
    .map_err(internal)?;
    match outcome {
        Ok(generation) => Ok(with_etag(reply(StatusCode::OK, Bytes::new()), generation)),
        Err(refusal) => Err(refused(refusal)),
    }
}

async fn remove_entry(
    state: &Arc<State>,
    bucket: String,
    key: String,
    generation: Option<u64>,
) -> Result<Reply, Refusal> {
    let outcome = blocking(state, move |s| s.remove_entry(&bucket, &key, generation))
        .await?
        .map_err(internal)?;
    match outcome {
        Ok(deleted) => {
            let mut response = reply(StatusCode::NO_CONTENT, Bytes::new());
            response.headers_mut().insert(
                entries::HEADER_DELETED,
                HeaderValue::from_static(if deleted { "1" } else { "0" }),
            );
            Ok(response)
        }
        Err(GenerationMismatch) => Err(refused(entries::Refusal::GenerationMismatch)),
    }
}

/// Ties a cursor to the bucket and prefix it was issued for (64-bit FNV-1a), so that one
/// used with another prefix is refused instead of silently skipping or repeating keys.
fn cursor_tag(bucket: &str, prefix: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    // The length first: ("ab", "c") and ("a", "bc") must differ.
    let bucket_len = u64::try_from(bucket.len())
        .unwrap_or(u64::MAX)
        .to_be_bytes();
    for byte in bucket_len
        .iter()
        .chain(bucket.as_bytes())
        .chain(prefix.as_bytes())
    {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// An entries cursor: 16 hex digits of [`cursor_tag`], `.`, the encoded last key.
fn entries_cursor(bucket: &str, prefix: &str, last: &str) -> String {
    format!(
        "{:016x}.{}",
        cursor_tag(bucket, prefix),
        names::encode(last)
    )
}

fn bad_cursor(message: impl Into<String>) -> Refusal {
    error(StatusCode::BAD_REQUEST, codes::BAD_CURSOR, message)
}

fn parse_entries_cursor(bucket: &str, prefix: &str, value: &str) -> Result<String, Refusal> {
    // The cursor arrives encoded once more as a query value.
    let cursor = names::decode(value)
        .map_err(|e| bad_cursor(format!("cursor was not issued by this server: {e}")))?;
    let (tag, last) = cursor
        .split_once('.')
        .ok_or_else(|| bad_cursor("cursor was not issued by this server"))?;
    if u64::from_str_radix(tag, 16).ok() != Some(cursor_tag(bucket, prefix)) {
        return Err(bad_cursor(
            "cursor belongs to another bucket or prefix: list again from the start",
        ));
    }
    names::decode(last)
        .map_err(|e| bad_cursor(format!("cursor was not issued by this server: {e}")))
}

fn list_limit(query: Option<&str>) -> Result<usize, Refusal> {
    match query_param(query, "limit") {
        None => Ok(kvplug_protocol::DEFAULT_LIST_LIMIT),
        Some(v) => Ok(v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad_request("`limit` must be a positive integer"))?
            .min(kvplug_protocol::MAX_LIST_LIMIT)),
    }
}

async fn list_entries(
    state: &Arc<State>,
    bucket: String,
    query: Option<&str>,
) -> Result<Reply, Refusal> {
    let limit = list_limit(query)?;
    // The prefix is an encoded name, like a key in a path; absent means every key.
    let prefix = match query_param(query, "prefix") {
        None => String::new(),
        Some(value) => {
            let prefix = names::decode(value).map_err(|e| {
                error(
                    StatusCode::BAD_REQUEST,
                    codes::BAD_NAME,
                    format!("`prefix` is not an encoded name: {e}"),
                )
            })?;
            kvplug_protocol::check_key(&prefix).map_err(too_long)?;
            prefix
        }
    };
    let after = query_param(query, "cursor")
        .map(|value| parse_entries_cursor(&bucket, &prefix, value))
        .transpose()?;
    let (listed_bucket, listed_prefix) = (bucket.clone(), prefix.clone());
    let page = blocking(state, move |s| {
        s.list_prefix(&listed_bucket, &listed_prefix, after.as_deref(), limit)
    })
    .await?
    .map_err(internal)?;
    page_reply(&page, |last| entries_cursor(&bucket, &prefix, last))
}

/// A whole-number query parameter, or a `400` naming it.
fn number_param(query: Option<&str>, name: &str) -> Result<Option<u64>, Refusal> {
    query_param(query, name)
        .map(|value| {
            value
                .parse::<u64>()
                .map_err(|_| bad_request(format!("`{name}` must be a whole number")))
        })
        .transpose()
}

/// `GET {bucket}/changes?after=P&limit=N&wait=MS`: the bucket's changes after position `P`
/// (none given: nothing, and the head to start from), waiting up to `MS` for one to come.
async fn read_changes(
    state: &Arc<State>,
    bucket: String,
    query: Option<&str>,
) -> Result<Reply, Refusal> {
    let after = number_param(query, "after")?;
    let limit = match number_param(query, "limit")? {
        None => changes::DEFAULT_LIMIT,
        Some(0) => return Err(bad_request("`limit` must be at least 1")),
        Some(n) => {
            usize::try_from(n).map_or(changes::DEFAULT_LIMIT, |n| n.min(changes::DEFAULT_LIMIT))
        }
    };
    let wait = std::time::Duration::from_millis(
        number_param(query, "wait")?
            .unwrap_or(0)
            .min(changes::MAX_WAIT_MS),
    );
    let deadline = tokio::time::Instant::now() + wait;
    // Subscribed before each read, so a commit between the read and the wait still wakes it.
    let mut committed = state.storage.subscribe();
    let page = loop {
        committed.borrow_and_update();
        let read_bucket = bucket.clone();
        let read = blocking(state, move |s| s.changes(&read_bucket, after, limit))
            .await?
            .map_err(internal)?;
        let page = match read {
            Ok(page) => page,
            Err(dropped) => {
                let mut refusal = error(
                    StatusCode::GONE,
                    codes::POSITION_DROPPED,
                    format!(
                        "the feed no longer holds the changes after position {}: resume after {} \
                         (changes in between are lost to this reader; read the bucket again)",
                        after.unwrap_or(0),
                        dropped.resume_after
                    ),
                );
                refusal.headers_mut().insert(
                    changes::HEADER_RESUME_AFTER,
                    HeaderValue::from(dropped.resume_after),
                );
                return Err(refusal);
            }
        };
        if !page.changes.is_empty() || after.is_none() {
            break page;
        }
        match tokio::time::timeout_at(deadline, committed.changed()).await {
            Ok(Ok(())) => continue,
            // The wait is over (or the storage is closing): answer with no changes.
            Ok(Err(_)) | Err(_) => break page,
        }
    };
    let mut body = Vec::new();
    for change in &page.changes {
        changes::put(
            &mut body,
            &changes::Change {
                position: change.position,
                key: &change.key,
                value: change.value.as_deref(),
            },
        )
        .map_err(internal)?;
    }
    let mut response = frames_reply(body);
    response
        .headers_mut()
        .insert(changes::HEADER_POSITION, HeaderValue::from(page.position));
    Ok(response)
}
