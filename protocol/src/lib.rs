//! The wire format of the kvplug REST protocol (`docs/protocol.md`), shared by the client in
//! the adapter and by the reference server so that the two cannot drift apart.
//!
//! `no_std` + `alloc`: the adapter links it into a wasm component whose imports must stay
//! clean, and nothing here needs more than `String` and `Vec`.

#![no_std]

extern crate alloc;

pub mod changes;
pub mod counter;
pub mod entries;
pub mod frames;
pub mod names;

use alloc::format;
use alloc::string::String;

/// Every request path starts here; the version is part of the path so a v2 can coexist.
pub const BUCKETS_PREFIX: &str = "/v1/buckets/";

/// Error responses name their cause in this header (one of [`codes`]).
pub const HEADER_ERROR: &str = "kvplug-error";
/// A list response that has more keys carries the next page's cursor here.
pub const HEADER_CURSOR: &str = "kvplug-cursor";
/// Every response of a protocol server carries this header, errors included: it is how a
/// client tells the protocol's answers from those of any other web server a wrong `url`
/// reaches, which may well answer 200 to everything.
pub const HEADER_PROTOCOL: &str = "kvplug-protocol";
/// The value of [`HEADER_PROTOCOL`]: the protocol's version.
pub const PROTOCOL_VERSION: &str = "1";

/// Longest key, in bytes of UTF-8. A key travels in the request path, percent-encoded (up
/// to 3 bytes per byte), and as a list cursor it is encoded twice (up to 5 per byte); at
/// this length every request line, with the longest bucket name, stays well inside the
/// 64 KiB that HTTP stacks accept for a URI (hyper and the `http` crate refuse longer).
pub const MAX_KEY_BYTES: usize = 8 * 1024;
/// Longest bucket name, in bytes of UTF-8; see [`MAX_KEY_BYTES`].
pub const MAX_BUCKET_BYTES: usize = 1024;

/// Most entries one batch request may carry; clients split larger batches.
pub const MAX_BATCH_ENTRIES: usize = 1000;
/// Most keys one list page may return, whatever `limit` asks for.
pub const MAX_LIST_LIMIT: usize = 10_000;
/// Page size when the request gives no `limit`.
pub const DEFAULT_LIST_LIMIT: usize = 1000;

/// Values of the `kvplug-error` header.
pub mod codes {
    /// 400: a path segment is not a valid encoded name.
    pub const BAD_NAME: &str = "bad-name";
    /// 400: the `cursor` query parameter is not one this server issued.
    pub const BAD_CURSOR: &str = "bad-cursor";
    /// 400: a batch body is not well-formed frames, or has too many entries.
    pub const BAD_FRAMES: &str = "bad-frames";
    /// 400: anything else malformed (query, header, method for the path).
    pub const BAD_REQUEST: &str = "bad-request";
    /// 401: no bearer token, though the server requires one.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// 403: a bearer token that is not the server's.
    pub const FORBIDDEN: &str = "forbidden";
    /// 404: the bucket does not exist on this server.
    pub const NO_SUCH_BUCKET: &str = "no-such-bucket";
    /// 404: the key does not exist (GET/HEAD of a key).
    pub const NO_SUCH_KEY: &str = "no-such-key";
    /// 404: the path names no endpoint.
    pub const NOT_FOUND: &str = "not-found";
    /// 405: the path exists but not with this method.
    pub const METHOD_NOT_ALLOWED: &str = "method-not-allowed";
    /// 409: increment on a value that is not an ASCII decimal integer.
    pub const NOT_A_NUMBER: &str = "not-a-number";
    /// 409: increment would leave the signed 64-bit range.
    pub const OVERFLOW: &str = "overflow";
    /// 412: a conditional write's `If-Match` / `If-None-Match` did not hold.
    pub const VERSION_MISMATCH: &str = "version-mismatch";
    /// 412: an entry insert in `add` mode found a live entry.
    pub const KEY_EXISTS: &str = "key-exists";
    /// 400: an entry's time-to-live is not a number or outside `kvplug-ttl-range`.
    pub const BAD_TTL: &str = "bad-ttl";
    /// 413: the body is larger than the server accepts.
    pub const TOO_LARGE: &str = "too-large";
    /// 410: a change feed read from a position the feed no longer holds.
    pub const POSITION_DROPPED: &str = "position-dropped";
    /// 500: the server failed (storage error).
    pub const INTERNAL: &str = "internal";
}

/// The three batch endpoints, `POST {bucket}/{op}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchOp {
    /// Body: key frames. Response: one optional-value frame per key, in order.
    GetMany,
    /// Body: key frame, value frame, repeated.
    SetMany,
    /// Body: key frames.
    DeleteMany,
}

impl BatchOp {
    /// The last path segment of this endpoint.
    pub fn segment(self) -> &'static str {
        match self {
            BatchOp::GetMany => "get-many",
            BatchOp::SetMany => "set-many",
            BatchOp::DeleteMany => "delete-many",
        }
    }

    /// The endpoint named by a path segment, if any.
    pub fn from_segment(segment: &str) -> Option<Self> {
        [BatchOp::GetMany, BatchOp::SetMany, BatchOp::DeleteMany]
            .into_iter()
            .find(|op| op.segment() == segment)
    }
}

/// Refuses a key longer than [`MAX_KEY_BYTES`]: the one check client and server share.
pub fn check_key(key: &str) -> Result<(), String> {
    check_length(key, "key", MAX_KEY_BYTES)
}

/// Refuses a bucket name longer than [`MAX_BUCKET_BYTES`].
pub fn check_bucket(bucket: &str) -> Result<(), String> {
    check_length(bucket, "bucket name", MAX_BUCKET_BYTES)
}

fn check_length(name: &str, what: &str, max: usize) -> Result<(), String> {
    if name.len() <= max {
        return Ok(());
    }
    Err(format!(
        "a {what} of {} bytes is longer than the kvplug protocol allows: at most {max} bytes ({} KiB) of UTF-8",
        name.len(),
        max / 1024
    ))
}

/// `/v1/buckets/{bucket}`: HEAD tells whether the bucket exists, GET lists its keys.
pub fn bucket_path(bucket: &str) -> String {
    format!("{BUCKETS_PREFIX}{}", names::encode(bucket))
}

/// `/v1/buckets/{bucket}/keys/{key}`: one key.
pub fn key_path(bucket: &str, key: &str) -> String {
    format!(
        "{BUCKETS_PREFIX}{}/keys/{}",
        names::encode(bucket),
        names::encode(key)
    )
}

/// `/v1/buckets/{bucket}/{op}`: a batch.
pub fn batch_path(bucket: &str, op: BatchOp) -> String {
    format!("{BUCKETS_PREFIX}{}/{}", names::encode(bucket), op.segment())
}

/// The `ETag` of a stored version: a quoted decimal, as RFC 9110 wants entity tags quoted.
pub fn format_etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// The version inside an `ETag` / `If-Match` value written by [`format_etag`].
pub fn parse_etag(value: &str) -> Option<u64> {
    value
        .trim()
        .strip_prefix('"')?
        .strip_suffix('"')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_keep_every_name_inside_one_segment() {
        assert_eq!(key_path("b", "a/../x"), "/v1/buckets/b/keys/a%2F%2E%2E%2Fx");
        assert_eq!(key_path("", ""), "/v1/buckets/~/keys/~");
        assert_eq!(bucket_path("x?y#z"), "/v1/buckets/x%3Fy%23z");
        assert_eq!(batch_path("b", BatchOp::SetMany), "/v1/buckets/b/set-many");
    }

    #[test]
    fn etags_round_trip_and_reject_garbage() {
        assert_eq!(parse_etag(&format_etag(42)), Some(42));
        assert_eq!(parse_etag("42"), None);
        assert_eq!(parse_etag("\"x\""), None);
        assert_eq!(parse_etag("W/\"1\""), None);
    }

    #[test]
    fn names_are_refused_one_byte_past_their_limit() {
        assert_eq!(check_key(&"k".repeat(MAX_KEY_BYTES)), Ok(()));
        let refused = check_key(&"k".repeat(MAX_KEY_BYTES + 1)).unwrap_err();
        assert!(
            refused.contains("8193 bytes") && refused.contains("at most 8192 bytes (8 KiB)"),
            "{refused}"
        );
        assert_eq!(check_bucket(&"é".repeat(MAX_BUCKET_BYTES / 2)), Ok(()));
        let refused = check_bucket(&"é".repeat(MAX_BUCKET_BYTES / 2 + 1)).unwrap_err();
        assert!(refused.contains("bucket name of 1026 bytes"), "{refused}");
    }

    #[test]
    fn the_longest_names_fit_a_request_line() {
        // Non-ASCII bytes encode to three: the worst case.
        let bucket = "é".repeat(MAX_BUCKET_BYTES / 2);
        let key = "é".repeat(MAX_KEY_BYTES / 2);
        let increment = format!("{}?increment={}", key_path(&bucket, &key), i64::MIN);
        let listed_after = format!(
            "{}?limit=10000&cursor={}",
            bucket_path(&bucket),
            names::encode(&names::encode(&key))
        );
        for path in [increment, listed_after] {
            assert!(path.len() < 48 * 1024, "{} bytes", path.len());
        }
    }

    #[test]
    fn batch_segments_round_trip() {
        for op in [BatchOp::GetMany, BatchOp::SetMany, BatchOp::DeleteMany] {
            assert_eq!(BatchOp::from_segment(op.segment()), Some(op));
        }
        assert_eq!(BatchOp::from_segment("keys"), None);
    }
}
