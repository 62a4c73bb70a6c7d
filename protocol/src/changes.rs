//! The change feed (`GET /v1/buckets/{b}/changes`): every write of a bucket, in commit order,
//! readable from a position, with a long poll. The names and the wire form shared by the
//! server and its clients (a `watch-service` driver, issue #15).
//!
//! A page's body is, per change, three frames: its position (ASCII decimal), its key, and an
//! optional frame with the value written (absent for a delete).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::frames::{self, FrameError, Reader};
use crate::{BUCKETS_PREFIX, names};

/// The path segment under a bucket that serves its feed.
pub const CHANGES_SEGMENT: &str = "changes";
/// On a page: where the next read continues after (every change up to it is delivered).
pub const HEADER_POSITION: &str = "kvplug-position";
/// On a `410 position-dropped`: the oldest position a reader may resume after.
pub const HEADER_RESUME_AFTER: &str = "kvplug-resume-after";
/// The longest a read waits for a change (`wait`, in ms).
pub const MAX_WAIT_MS: u64 = 30_000;
/// Changes per page when `limit` is absent, and the most a page holds.
pub const DEFAULT_LIMIT: usize = 1000;

/// `/v1/buckets/{bucket}/changes`.
pub fn changes_path(bucket: &str) -> String {
    format!(
        "{BUCKETS_PREFIX}{}/{CHANGES_SEGMENT}",
        names::encode(bucket)
    )
}

/// One change as it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<'a> {
    pub position: u64,
    pub key: &'a str,
    /// `None` for a delete.
    pub value: Option<&'a [u8]>,
}

/// Appends `change` to a page body.
pub fn put(body: &mut Vec<u8>, change: &Change<'_>) -> Result<(), FrameError> {
    frames::put(body, format!("{}", change.position).as_bytes())?;
    frames::put(body, change.key.as_bytes())?;
    frames::put_optional(body, change.value)
}

/// Reads the next change of a page body.
pub fn read<'a>(reader: &mut Reader<'a>) -> Result<Change<'a>, FrameError> {
    let position = reader.frame()?;
    let position = core::str::from_utf8(position)
        .ok()
        .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|text| text.parse().ok())
        .ok_or(FrameError::NotANumber)?;
    let key = reader.key()?;
    let value = reader.optional()?;
    Ok(Change {
        position,
        key,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_and_garbage_is_refused() {
        let changes = [
            Change {
                position: 7,
                key: "a/b",
                value: Some(b"v"),
            },
            Change {
                position: 9,
                key: "é",
                value: None,
            },
            Change {
                position: u64::MAX,
                key: "",
                value: Some(b""),
            },
        ];
        let mut body = Vec::new();
        for change in &changes {
            put(&mut body, change).unwrap();
        }
        let mut reader = Reader::new(&body);
        for change in &changes {
            assert_eq!(&read(&mut reader).unwrap(), change);
        }
        assert!(reader.is_empty());

        let mut bad = Vec::new();
        frames::put(&mut bad, b"-1").unwrap();
        frames::put(&mut bad, b"k").unwrap();
        frames::put_optional(&mut bad, None).unwrap();
        assert!(read(&mut Reader::new(&bad)).is_err());
        // Cut short after the key.
        let mut short = Vec::new();
        frames::put(&mut short, b"1").unwrap();
        frames::put(&mut short, b"k").unwrap();
        assert!(read(&mut Reader::new(&short)).is_err());
    }
}
