//! Reading a response as it arrives, for a change feed whose body never ends on its own (etcd's
//! watch stream): the head is awaited within a limit, then the body is handed over piece by
//! piece, each wait bounded by the caller, so a service that goes quiet or trickles never
//! holds the reader longer than it allows.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::bindings::wasi::clocks::monotonic_clock;
use crate::bindings::wasi::http::types::{IncomingBody, IncomingResponse};
use crate::bindings::wasi::io::streams::{InputStream, StreamError};
use crate::deadline;
use crate::error::Error;

use super::{Client, READ_PIECE_BYTES, Verb, headroom, host_timeouts};

/// What [`Streamed::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// Bytes of the body, never empty.
    Data(Vec<u8>),
    /// Nothing arrived before the caller's limit; the stream is still open.
    Quiet,
    /// The body ended.
    End,
}

/// A response whose body is read as it arrives.
///
/// Fields drop in order: the body's stream before the body, the body before the response,
/// as `wasi:http` requires of child resources.
pub struct Streamed {
    stream: InputStream,
    _body: IncomingBody,
    _response: IncomingResponse,
    pub status: u16,
    headers: Vec<(String, Vec<u8>)>,
    verb: Verb,
    target: String,
    received: u64,
}

impl Client {
    /// Sends one request and returns once the response head has arrived, at most `idle_ns`
    /// later. The host is asked to end the connection when no byte comes for `idle_ns` plus a
    /// margin: the caller, which reads with its own limits, normally closes it first.
    pub fn stream(
        &self,
        verb: Verb,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        idle_ns: u64,
    ) -> Result<Streamed, Error> {
        let target = self.target(path);
        let head_by = monotonic_clock::now().saturating_add(idle_ns);
        let margin = 5_000_000_000;
        let options = host_timeouts(idle_ns.max(1), idle_ns.saturating_add(margin));
        let response = self.exchange(verb, &target, headers, body, head_by, options)?;
        let transport = |detail: &str| Error::Transport {
            method: verb.name(),
            path: target.clone(),
            detail: String::from(detail),
        };
        let status = response.status();
        let headers = response.headers().entries();
        let incoming = response
            .consume()
            .map_err(|()| transport("response body already taken"))?;
        let stream = incoming
            .stream()
            .map_err(|()| transport("response body stream already taken"))?;
        Ok(Streamed {
            stream,
            _body: incoming,
            _response: response,
            status,
            headers,
            verb,
            target,
            received: 0,
        })
    }
}

impl Streamed {
    /// The first value of header `name`, if it is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| core::str::from_utf8(v).ok())
    }

    /// The request target, for messages.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The error for a stream that broke or carried something unreadable.
    pub fn failed(&self, detail: impl Into<String>) -> Error {
        Error::Transport {
            method: self.verb.name(),
            path: self.target.clone(),
            detail: detail.into(),
        }
    }

    /// The next piece of the body, waiting until the monotonic instant `until` at most.
    pub fn next(&mut self, until: u64) -> Result<Piece, Error> {
        loop {
            // The host allocates the piece in this component's memory and traps if it
            // cannot: make sure it can before asking.
            if !headroom(READ_PIECE_BYTES as usize) {
                return Err(self.failed(format!(
                    "no memory left for the next piece of the stream ({} bytes read)",
                    self.received
                )));
            }
            match self.stream.read(READ_PIECE_BYTES) {
                Ok(chunk) if chunk.is_empty() => {
                    if !deadline::wait(&self.stream.subscribe(), until) {
                        return Ok(Piece::Quiet);
                    }
                }
                Ok(chunk) => {
                    self.received = self.received.saturating_add(chunk.len() as u64);
                    return Ok(Piece::Data(chunk));
                }
                Err(StreamError::Closed) => return Ok(Piece::End),
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(self.failed(format!(
                        "the stream broke after {} bytes: {}",
                        self.received,
                        e.to_debug_string()
                    )));
                }
            }
        }
    }

    /// The rest of the body, up to `cap` bytes, read before `until`: for a short answer (an
    /// error document) that arrives on a streamed request. What lies beyond `cap` is not read.
    pub fn rest(&mut self, cap: usize, until: u64) -> Result<Vec<u8>, Error> {
        let mut body = Vec::new();
        while body.len() < cap {
            match self.next(until)? {
                Piece::Data(chunk) => body.extend_from_slice(&chunk),
                Piece::End => break,
                Piece::Quiet => {
                    return Err(self.failed(format!(
                        "timed out reading the answer ({} bytes so far)",
                        body.len()
                    )));
                }
            }
        }
        body.truncate(cap);
        Ok(body)
    }
}
