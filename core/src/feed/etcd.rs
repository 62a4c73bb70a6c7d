//! etcd's change feed: `POST /v3/watch` through the JSON gateway, a response that streams one
//! JSON message per line for as long as it stays open (docs/watch-design.md §4.2, §6).
//!
//! The position is a revision. A watch starts at the saved revision + 1, so reopening one
//! loses nothing; the stream is kept open between polls while it is healthy and reopened when
//! it ends, breaks, or stays silent longer than `idle-timeout-ms` (etcd says nothing on an
//! idle watch for 10 minutes by default, and a silent connection may be a dead one). A
//! watch whose start was compacted away is cancelled by etcd with the compaction revision:
//! that is a [`Lapse::Gap`].

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use kvplug_codec::base64;
use kvplug_protocol::names;
use kvplug_settings::layout;
use serde::Deserialize;

use super::{Batch, Change, Feed, Lapse, decimal};
use crate::backend::etcd::error_reason;
use crate::bindings::wasi::clocks::monotonic_clock;
use crate::client::{Client, MAX_ERROR_BODY_BYTES, MAX_RESPONSE_BYTES, Piece, Streamed, Verb};
use crate::error::Error;
use crate::settings::Settings;

const WATCH: &str = "/v3/watch";
const RANGE: &str = "/v3/kv/range";
/// Changes handed over per batch at most (whole messages: a transaction's writes, which
/// share a revision, are never split).
const BATCH_CHANGES: usize = 1000;

/// The feed of one bucket (or of one key prefix in it) on an etcd cluster.
pub struct EtcdFeed {
    client: Client,
    /// `<prefix>!<encoded bucket>/`: what every key of the bucket starts with.
    space: String,
    /// The watched range: `space` + the key prefix, and its exclusive end.
    start: Vec<u8>,
    end: Vec<u8>,
    /// Silence after which the stream is closed and reopened.
    idle_ns: u64,
    open: Option<Open>,
}

/// A watch stream being read.
struct Open {
    stream: Streamed,
    /// Bytes of a message not yet complete.
    pending: Vec<u8>,
    /// How many bytes at the start of `pending` hold no newline: each piece is searched once,
    /// not the whole message again for every piece of a long one.
    scanned: usize,
    /// The revision through which this stream has been read.
    through: u64,
    /// When the last byte came.
    heard_at: u64,
}

#[derive(Deserialize)]
struct Line {
    result: Option<WatchResult>,
    error: Option<GatewayError>,
}

#[derive(Deserialize)]
struct WatchResult {
    header: Option<Header>,
    #[serde(default)]
    created: bool,
    #[serde(default)]
    canceled: bool,
    compact_revision: Option<String>,
    cancel_reason: Option<String>,
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(Deserialize)]
struct Header {
    revision: Option<String>,
}

#[derive(Deserialize)]
struct Event {
    /// Absent for a put: protobuf's JSON leaves defaults out.
    #[serde(rename = "type")]
    kind: Option<String>,
    kv: Option<EventKv>,
}

#[derive(Deserialize)]
struct EventKv {
    key: Option<String>,
    value: Option<String>,
    mod_revision: Option<String>,
}

#[derive(Deserialize)]
struct GatewayError {
    message: Option<String>,
}

#[derive(Deserialize)]
struct RangeHead {
    header: Option<Header>,
}

/// The smallest key greater than every key starting with `prefix` (etcd's `range_end`).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff: the range has no end; etcd reads `\0` as "to the last key".
    alloc::vec![0]
}

impl EtcdFeed {
    fn malformed(&self, path: &str, detail: &str) -> Error {
        self.client.malformed(Verb::Post, path, detail)
    }

    fn watch(&self, after: u64) -> Result<Open, Error> {
        let body = format!(
            "{{\"create_request\":{{\"key\":\"{}\",\"range_end\":\"{}\",\"start_revision\":\"{}\",\"progress_notify\":true}}}}",
            base64::encode(&self.start),
            base64::encode(&self.end),
            after.saturating_add(1)
        );
        let mut stream = self.client.stream(
            Verb::Post,
            WATCH,
            &[("content-type", "application/json")],
            body.as_bytes(),
            self.idle_ns,
        )?;
        let now = monotonic_clock::now();
        if stream.status != 200 {
            let text = stream
                .rest(MAX_ERROR_BODY_BYTES, now.saturating_add(self.idle_ns))
                .unwrap_or_default();
            let reason = error_reason(&text);
            return Err(self
                .client
                .status_with(Verb::Post, WATCH, stream.status, &reason));
        }
        Ok(Open {
            stream,
            pending: Vec::new(),
            scanned: 0,
            through: after,
            heard_at: now,
        })
    }

    /// Reads one message into `changes` (see [`read_message`]), its refusals worded here.
    fn read_line(
        &self,
        line: &[u8],
        open: &mut Open,
        changes: &mut Vec<Change>,
    ) -> Result<(), Lapse> {
        let from = open.through.saturating_add(1);
        // serde copies each value's base64 out of the line, then it is decoded: up to twice
        // the line.
        self.client.room_for(
            Verb::Post,
            WATCH,
            "a watch message",
            line.len(),
            line.len().saturating_mul(2),
        )?;
        read_message(line, &self.space, &mut open.through, changes).map_err(|unread| match unread {
            Unread::Malformed(detail) => self.malformed(WATCH, detail).into(),
            Unread::Ended(message) => Lapse::Failed(open.stream.failed(format!(
                "etcd ended the watch: {}",
                self.client.scrub(&message)
            ))),
            Unread::Compacted(compacted) => Lapse::Gap {
                resume_after: Some(format!("{}", compacted.saturating_sub(1))),
                detail: format!(
                    "etcd compacted its history through revision {compacted}, past this \
                     watch's start ({from})"
                ),
            },
            Unread::Cancelled(reason) => Lapse::Failed(open.stream.failed(format!(
                "etcd cancelled the watch: {}",
                self.client.scrub(&reason)
            ))),
        })
    }
}

/// Why a watch message was not read as changes.
#[derive(Debug, PartialEq, Eq)]
pub enum Unread {
    /// Not etcd's message: what is wrong with it.
    Malformed(&'static str),
    /// The gateway's error message (service text: scrub it before showing it).
    Ended(String),
    /// The watch's start was compacted away, through this revision.
    Compacted(u64),
    /// etcd cancelled the watch for this reason (service text).
    Cancelled(String),
}

/// Reads one message of a watch stream over the keys under `space`: its events' changes are
/// added to `changes` and `through` becomes the revision read through (a progress message
/// moves it too). Revisions never go back; keys outside `space` or not UTF-8 (another
/// client's) are passed over. Takes any bytes: fuzzed (fuzz/fuzz_targets/feeds.rs).
pub fn read_message(
    line: &[u8],
    space: &str,
    through: &mut u64,
    changes: &mut Vec<Change>,
) -> Result<(), Unread> {
    let line: Line = serde_json::from_slice(line)
        .map_err(|_| Unread::Malformed("a watch message that is not etcd's JSON"))?;
    if let Some(error) = line.error {
        return Err(Unread::Ended(
            error.message.unwrap_or_else(|| String::from("no message")),
        ));
    }
    let result = line
        .result
        .ok_or(Unread::Malformed("a watch message without `result`"))?;
    if result.canceled {
        return Err(match result.compact_revision.as_deref().and_then(decimal) {
            Some(compacted) => Unread::Compacted(compacted),
            None => Unread::Cancelled(
                result
                    .cancel_reason
                    .unwrap_or_else(|| String::from("no reason given")),
            ),
        });
    }
    if result.events.is_empty() {
        // A progress message: nothing of the range happened through its revision.
        if !result.created
            && let Some(revision) = result
                .header
                .and_then(|h| h.revision)
                .as_deref()
                .and_then(decimal)
        {
            *through = (*through).max(revision);
        }
        return Ok(());
    }
    for event in result.events {
        let kv = event.kv.ok_or(Unread::Malformed("an event without `kv`"))?;
        let revision = kv
            .mod_revision
            .as_deref()
            .and_then(decimal)
            .ok_or(Unread::Malformed("an event without a `mod_revision`"))?;
        if revision < *through {
            return Err(Unread::Malformed("events out of revision order"));
        }
        *through = revision;
        let key = kv
            .key
            .as_deref()
            .and_then(|k| base64::decode(k).ok())
            .ok_or(Unread::Malformed("an event whose key is not base64"))?;
        // Outside the bucket cannot happen (the range says so); a key that is not UTF-8
        // was written by another client and no `string` can carry it to the app.
        let Some(key) = key
            .strip_prefix(space.as_bytes())
            .and_then(|k| core::str::from_utf8(k).ok())
        else {
            continue;
        };
        let value = match event.kind.as_deref() {
            Some("DELETE") => None,
            None | Some("PUT") => Some(match kv.value.as_deref() {
                None => Vec::new(),
                Some(text) => base64::decode(text)
                    .map_err(|_| Unread::Malformed("an event whose value is not base64"))?,
            }),
            Some(_) => return Err(Unread::Malformed("an event of an unknown type")),
        };
        changes.push(Change {
            key: String::from(key),
            value,
        });
    }
    Ok(())
}

impl Feed for EtcdFeed {
    fn open(settings: &Settings, bucket: &str, prefix: &str) -> Result<Self, Error> {
        let space = layout::namespace(&settings.prefix, bucket, names::encode, Some('/'))?;
        let mut start = Vec::from(space.as_bytes());
        start.extend_from_slice(prefix.as_bytes());
        let end = prefix_end(&start);
        Ok(EtcdFeed {
            client: Client::new(settings, None),
            space,
            start,
            end,
            idle_ns: settings.idle_timeout_ms.saturating_mul(1_000_000),
            open: None,
        })
    }

    fn head(&mut self) -> Result<String, Error> {
        let body = format!(
            "{{\"key\":\"{}\",\"range_end\":\"{}\",\"count_only\":true}}",
            base64::encode(&self.start),
            base64::encode(&self.end)
        );
        crate::deadline::begin();
        let response = self.client.send_capped(
            Verb::Post,
            RANGE,
            &[("content-type", "application/json")],
            body.as_bytes(),
            crate::client::SMALL_ANSWER_BYTES,
        )?;
        if response.status != 200 {
            let reason = error_reason(&response.body);
            return Err(self
                .client
                .status_with(Verb::Post, RANGE, response.status, &reason));
        }
        let head: RangeHead = serde_json::from_slice(&response.body)
            .map_err(|_| self.malformed(RANGE, "an answer that is not etcd's JSON"))?;
        head.header
            .and_then(|h| h.revision)
            .filter(|r| decimal(r).is_some())
            .ok_or_else(|| self.malformed(RANGE, "no `header.revision`"))
    }

    fn poll(&mut self, after: &str, wait_ms: u64) -> Result<Batch, Lapse> {
        let after = decimal(after)
            .ok_or_else(|| Error::Invalid(format!("`{after}` is not an etcd revision")))?;
        // A stream read past another position than the one asked for is not this reader's.
        if self.open.as_ref().is_some_and(|open| open.through != after) {
            self.open = None;
        }
        let mut open = match self.open.take() {
            Some(open) => open,
            None => self.watch(after)?,
        };
        let until = monotonic_clock::now().saturating_add(wait_ms.saturating_mul(1_000_000));
        let mut changes = Vec::new();
        loop {
            while let Some(end) = open
                .pending
                .get(open.scanned..)
                .and_then(|unscanned| unscanned.iter().position(|&b| b == b'\n'))
                .map(|at| at.saturating_add(open.scanned))
            {
                // The line keeps the buffer; what follows it (little) is copied out.
                let rest = open.pending.split_off(end.saturating_add(1));
                let line = core::mem::replace(&mut open.pending, rest);
                open.scanned = 0;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                // An error drops the stream (`open` is not put back): the next poll reopens.
                self.read_line(&line, &mut open, &mut changes)?;
                if changes.len() >= BATCH_CHANGES {
                    break;
                }
            }
            let batch_done = changes.len() >= BATCH_CHANGES;
            if !batch_done {
                open.scanned = open.pending.len();
            }
            // Once something arrived, hand it over as soon as the stream has nothing more.
            let limit = if changes.is_empty() {
                until
            } else {
                monotonic_clock::now()
            };
            let piece = if batch_done {
                Piece::Quiet
            } else {
                open.stream.next(limit)?
            };
            match piece {
                Piece::Data(bytes) => {
                    open.heard_at = monotonic_clock::now();
                    if open.pending.len().saturating_add(bytes.len()) as u64 > MAX_RESPONSE_BYTES {
                        return Err(Lapse::Failed(open.stream.failed(format!(
                            "a watch message larger than {MAX_RESPONSE_BYTES} bytes"
                        ))));
                    }
                    // Growing the message may double its buffer: on a host that caps the
                    // heap, that fails here, as an error, not later as a trap.
                    if open.pending.try_reserve(bytes.len()).is_err() {
                        return Err(Lapse::Failed(open.stream.failed(format!(
                            "a watch message of over {} bytes does not fit in the driver's memory",
                            open.pending.len()
                        ))));
                    }
                    open.pending.extend_from_slice(&bytes);
                }
                Piece::Quiet => {
                    let position = format!("{}", open.through);
                    let silent_for = monotonic_clock::now().saturating_sub(open.heard_at);
                    if silent_for < self.idle_ns {
                        self.open = Some(open);
                    }
                    return Ok(Batch { changes, position });
                }
                Piece::End => {
                    if changes.is_empty() {
                        return Err(Lapse::Failed(open.stream.failed("the watch stream ended")));
                    }
                    // What was read is whole messages: deliver it; the next poll reopens.
                    return Ok(Batch {
                        changes,
                        position: format!("{}", open.through),
                    });
                }
            }
        }
    }

    fn valid(position: &str) -> bool {
        decimal(position).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_the_next_key_after_the_range() {
        assert_eq!(prefix_end(b"a!b/"), b"a!b0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
    }
}
