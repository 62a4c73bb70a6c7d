//! The reference server's change feed (`GET /v1/buckets/{b}/changes`, docs/protocol.md): a
//! long poll, one request per batch; an idle reader makes one request per `wait`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use kvplug_protocol::changes::{self, HEADER_POSITION, HEADER_RESUME_AFTER, MAX_WAIT_MS};
use kvplug_protocol::frames::Reader;
use kvplug_protocol::{HEADER_ERROR, HEADER_PROTOCOL};

use super::{Batch, Change, Feed, Lapse, decimal};
use crate::client::{Client, MAX_RESPONSE_BYTES, Response, Verb};
use crate::error::Error;
use crate::settings::Settings;

/// The feed of one bucket on a kvplug protocol server.
pub struct RestFeed {
    client: Client,
    path: String,
}

impl RestFeed {
    fn get(&self, query: &str) -> Result<Response, Error> {
        let path = format!("{}{query}", self.path);
        crate::deadline::begin();
        let response = self
            .client
            .send_capped(Verb::Get, &path, &[], &[], MAX_RESPONSE_BYTES)?;
        if response.header(HEADER_PROTOCOL).is_none() {
            return Err(crate::backend::foreign(
                Verb::Get,
                self.client.target(&path),
                response.status,
                "a kvplug protocol server",
                "no `kvplug-protocol` header",
            ));
        }
        Ok(response)
    }

    /// The error for an answer to `get(query)` that is not the one asked for.
    fn status_error(&self, query: &str, response: &Response) -> Error {
        if response.status == 404 {
            return Error::NoSuchStore;
        }
        let code = response.header(HEADER_ERROR).unwrap_or_default();
        let body = String::from_utf8_lossy(&response.body);
        self.client.status_with(
            Verb::Get,
            &format!("{}{query}", self.path),
            response.status,
            &format!("{code} {body}"),
        )
    }

    fn position(&self, response: &Response) -> Result<String, Error> {
        response
            .header(HEADER_POSITION)
            .filter(|p| decimal(p).is_some())
            .map(String::from)
            .ok_or_else(|| {
                self.client
                    .malformed(Verb::Get, &self.path, "no decimal `kvplug-position` header")
            })
    }
}

impl Feed for RestFeed {
    fn open(settings: &Settings, bucket: &str, _prefix: &str) -> Result<Self, Error> {
        Ok(RestFeed {
            client: Client::new(
                settings,
                settings.token.as_ref().map(|t| format!("Bearer {t}")),
            ),
            path: changes::changes_path(bucket),
        })
    }

    fn head(&mut self) -> Result<String, Error> {
        let response = self.get("")?;
        if response.status != 200 {
            return Err(self.status_error("", &response));
        }
        self.position(&response)
    }

    fn poll(&mut self, after: &str, wait_ms: u64) -> Result<Batch, Lapse> {
        let wait = wait_ms.min(MAX_WAIT_MS);
        let query = format!("?after={after}&wait={wait}");
        let response = self.get(&query)?;
        match response.status {
            200 => {}
            410 => {
                return Err(Lapse::Gap {
                    resume_after: response
                        .header(HEADER_RESUME_AFTER)
                        .filter(|p| decimal(p).is_some())
                        .map(String::from),
                    detail: String::from(
                        "the server's feed no longer holds the changes after it (retention)",
                    ),
                });
            }
            _ => return Err(Lapse::Failed(self.status_error(&query, &response))),
        }
        let position = self.position(&response)?;
        let malformed = |detail: &str| self.client.malformed(Verb::Get, &self.path, detail);
        // Every change is copied out of the page: as much again as the page.
        let size = response.body.len();
        self.client
            .room_for(Verb::Get, &self.path, "a page", size, size)?;
        let (found, last) =
            read_page(&response.body, decimal(after).unwrap_or(0)).map_err(|e| malformed(&e))?;
        if decimal(&position).is_none_or(|p| p < last) {
            return Err(malformed("`kvplug-position` before the page's last change").into());
        }
        Ok(Batch {
            changes: found,
            position,
        })
    }

    fn valid(position: &str) -> bool {
        decimal(position).is_some()
    }
}

/// Reads a page of the feed read after position `after`: its changes, and the position of
/// the last (`after` when there is none). Takes any bytes: fuzzed
/// (fuzz/fuzz_targets/feeds.rs).
pub fn read_page(body: &[u8], after: u64) -> Result<(Vec<Change>, u64), String> {
    let mut reader = Reader::new(body);
    let mut found = Vec::new();
    let mut last = after;
    while !reader.is_empty() {
        let change =
            changes::read(&mut reader).map_err(|e| format!("a change that cannot be read: {e}"))?;
        // Out of order or at or before `after` would mean a lying server: a silent reorder is
        // worse than an error.
        if change.position <= last {
            return Err(String::from("changes out of order"));
        }
        last = change.position;
        found.push(Change {
            key: String::from(change.key),
            value: change.value.map(<[u8]>::to_vec),
        });
    }
    Ok((found, last))
}
