//! A small, blocking HTTP/1.1 client over `wasi:http/outgoing-handler`.
//!
//! Lessons from notes/performance.md are baked in: request bodies are written in pieces as
//! large as `check-write` allows (small `blocking-write-and-flush` pieces cause 40 ms Nagle
//! stalls on wasmtime), `closed` from the final flush counts as success (hyper drops its end
//! once it has all `content-length` bytes), and every request with a method that may carry a
//! body says `content-length`, even 0 (some servers misread a bare chunked terminator).

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::bindings::wasi::clocks::monotonic_clock;
use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingResponse, Method, OutgoingBody, OutgoingRequest, RequestOptions,
    Scheme,
};
use crate::bindings::wasi::io::streams::{OutputStream, StreamError};
use crate::deadline;
use crate::error::Error;
use crate::redact::Redactor;
use crate::settings::Settings;
use kvplug_settings::url::{self, Endpoint};

mod stream;
pub use stream::{Piece, Streamed};

/// Largest response body the adapter buffers for any operation; beyond it the call fails
/// instead of exhausting the user's memory. An operation that cannot legitimately receive
/// that much caps its answer lower ([`Client::send_capped`]).
pub const MAX_RESPONSE_BYTES: u64 = 256 << 20;

/// The cap of an answer that carries no value and no list: an acknowledgement, a counter, a
/// version. Generous for every service's envelope, and small enough that a misdirected `url`
/// answering with a 200 MB document costs the app nothing.
pub const SMALL_ANSWER_BYTES: u64 = 1 << 20;

/// How much of an error answer (a status outside 2xx) is read: enough for any service's
/// error document, of which a message keeps a short line. The rest is never downloaded: a
/// 100 MB error page must cost neither time nor memory.
pub const MAX_ERROR_BODY_BYTES: usize = 16 << 10;

/// The most asked of the host per read: small enough that the host's allocation of each
/// piece inside the adapter's memory never decides whether a large value fits.
const READ_PIECE_BYTES: u64 = 64 << 10;

/// The HTTP methods the backends use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Head,
    Put,
    Post,
    Delete,
}

impl Verb {
    /// The method's name, for error messages.
    pub fn name(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Head => "HEAD",
            Verb::Put => "PUT",
            Verb::Post => "POST",
            Verb::Delete => "DELETE",
        }
    }

    fn method(self) -> Method {
        match self {
            Verb::Get => Method::Get,
            Verb::Head => Method::Head,
            Verb::Put => Method::Put,
            Verb::Post => Method::Post,
            Verb::Delete => Method::Delete,
        }
    }
}

/// A received response, body read in full.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (lower case), if it is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| core::str::from_utf8(v).ok())
    }
}

/// Sends requests to one service.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
    /// The whole `authorization` header value, in the backend's scheme.
    authorization: Option<String>,
    /// Keeps every form of the credentials out of quoted service text.
    redactor: Redactor,
    /// `timeout-ms`: the budget of a whole call, retries included.
    call_timeout_ns: u64,
    /// `idle-timeout-ms`: the longest wait for a connection, a first byte or the next byte.
    idle_timeout_ns: u64,
}

impl Client {
    /// A client for the service in `settings` that sends `authorization` with every request.
    pub fn new(settings: &Settings, authorization: Option<String>) -> Client {
        // The password of a `user:password` token is a secret on its own too.
        let password = settings
            .token
            .as_deref()
            .and_then(|token| token.split_once(':'))
            .map(|(_, password)| password);
        let redactor = Redactor::new(
            settings
                .secrets()
                .chain(authorization.as_deref())
                .chain(password),
        );
        Client {
            endpoint: settings.endpoint.clone(),
            authorization,
            redactor,
            call_timeout_ns: settings.timeout_ms.saturating_mul(1_000_000),
            idle_timeout_ns: settings.idle_timeout_ms.saturating_mul(1_000_000),
        }
    }

    /// The `url` setting's `host[:port]`, as sent in `host` (which signatures cover).
    pub fn authority(&self) -> &str {
        &self.endpoint.authority
    }

    /// The request target for a protocol path: the `url` setting's base path, then `path`.
    pub fn target(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint.base_path)
    }

    /// The error for an answer from the service that the operation cannot read; `detail`
    /// says what was wrong with it (never the answer itself, which may be large).
    pub fn malformed(&self, verb: Verb, path: &str, detail: impl ToString) -> Error {
        Error::Malformed {
            method: verb.name(),
            path: self.target(path),
            detail: detail.to_string(),
        }
    }

    /// Fails unless `needed` bytes can be allocated now: what reading `what` (an answer of
    /// `size` bytes already received) will take. On a host that caps the heap, running out
    /// halfway through would trap; checked first, it is an error naming the request.
    pub fn room_for(
        &self,
        verb: Verb,
        path: &str,
        what: &str,
        size: usize,
        needed: usize,
    ) -> Result<(), Error> {
        if headroom(needed) {
            return Ok(());
        }
        Err(Error::Transport {
            method: verb.name(),
            path: self.target(path),
            detail: format!(
                "{what} of {size} bytes needs {needed} bytes more of memory to be read, more than \
                 is left"
            ),
        })
    }

    /// When the current call must be over.
    fn deadline(&self) -> u64 {
        deadline::at(self.call_timeout_ns)
    }

    /// The error for a call whose deadline passed while `what`.
    fn late(&self, verb: Verb, target: &str, what: &str) -> Error {
        Error::Transport {
            method: verb.name(),
            path: String::from(target),
            detail: format!(
                "timed out: the call's deadline (`timeout-ms` = {} ms) passed {what}, {} ms into the call",
                self.call_timeout_ns / 1_000_000,
                deadline::elapsed() / 1_000_000
            ),
        }
    }

    /// Waits `millis` before a retry, if the call's deadline leaves that much time; `false`
    /// (without waiting) when it does not, so the caller gives up while it can still say why.
    pub fn pause(&self, millis: u64) -> bool {
        let wait_ns = millis.saturating_mul(1_000_000);
        if deadline::remaining(self.deadline()) <= wait_ns {
            return false;
        }
        monotonic_clock::subscribe_duration(wait_ns).block();
        true
    }

    /// Sends one request and reads the whole response, up to [`MAX_RESPONSE_BYTES`]. `path`
    /// includes any query.
    pub fn send(
        &self,
        verb: Verb,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, Error> {
        self.send_capped(verb, path, headers, body, MAX_RESPONSE_BYTES)
    }

    /// [`Client::send`] for an operation whose successful answer cannot legitimately exceed
    /// `cap` bytes: a larger one is refused as soon as it is declared or has arrived, so what
    /// the adapter holds is bounded by what the operation needs, not by what a service sends.
    pub fn send_capped(
        &self,
        verb: Verb,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        cap: u64,
    ) -> Result<Response, Error> {
        let cap = cap.min(MAX_RESPONSE_BYTES);
        let target = self.target(path);
        let deadline = self.deadline();
        if deadline::remaining(deadline) == 0 {
            return Err(self.late(verb, &target, "before the request was sent"));
        }
        let response = self.exchange(
            verb,
            &target,
            headers,
            body,
            deadline,
            self.options(deadline),
        )?;
        self.read_response(verb, &target, &response, deadline, cap)
    }

    /// Sends one request and waits for the response head, within `deadline`.
    fn exchange(
        &self,
        verb: Verb,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        deadline: u64,
        options: RequestOptions,
    ) -> Result<IncomingResponse, Error> {
        let transport = |detail: String| Error::Transport {
            method: verb.name(),
            path: String::from(target),
            detail,
        };
        let request = self.request(verb, target, headers, body)?;
        let outgoing_body = request
            .body()
            .map_err(|()| transport("the host refused a request body".into()))?;
        let pending = outgoing_handler::handle(request, Some(options))
            .map_err(|code| transport(describe(&code)))?;

        // A failed write is not the end: the server may already have answered (413, 401), and
        // that answer says more than "broken pipe".
        let write_failure = match write_body(&outgoing_body, body, deadline) {
            Ok(()) => None,
            Err(Write::Late) => {
                return Err(self.late(verb, target, "while the request body was being sent"));
            }
            Err(Write::Failed(message)) => Some(message),
        };
        if write_failure.is_none() {
            if let Err(code) = OutgoingBody::finish(outgoing_body, None) {
                return Err(transport(describe(&code)));
            }
        } else {
            drop(outgoing_body);
        }

        loop {
            match pending.get() {
                Some(Ok(Ok(response))) => break Ok(response),
                Some(Ok(Err(code))) => {
                    return Err(transport(match write_failure {
                        Some(write) => format!("{write}; then {}", describe(&code)),
                        None => describe(&code),
                    }));
                }
                Some(Err(())) => return Err(transport("response already taken".into())),
                None => {
                    if !deadline::wait(&pending.subscribe(), deadline) {
                        return Err(self.late(verb, target, "waiting for the response"));
                    }
                }
            }
        }
    }

    fn request(
        &self,
        verb: Verb,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<OutgoingRequest, Error> {
        let invalid = |what: &str| Error::Invalid(format!("{} {target}: {what}", verb.name()));
        let mut fields: Vec<(String, Vec<u8>)> = Vec::with_capacity(headers.len() + 2);
        if let Some(authorization) = &self.authorization {
            fields.push(("authorization".into(), authorization.as_bytes().to_vec()));
        }
        if !matches!(verb, Verb::Get | Verb::Head) || !body.is_empty() {
            fields.push(("content-length".into(), body.len().to_string().into_bytes()));
        }
        for (name, value) in headers {
            fields.push(((*name).to_owned(), value.as_bytes().to_vec()));
        }
        // The error would echo nothing useful and could echo the token: keep it generic.
        let fields =
            Fields::from_list(&fields).map_err(|_| invalid("a header the host refuses"))?;
        let request = OutgoingRequest::new(fields);
        request
            .set_method(&verb.method())
            .map_err(|()| invalid("method refused by the host"))?;
        let scheme = match self.endpoint.scheme {
            url::Scheme::Http => Scheme::Http,
            url::Scheme::Https => Scheme::Https,
        };
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| invalid("scheme refused by the host"))?;
        request
            .set_authority(Some(&self.endpoint.authority))
            .map_err(|()| invalid("`url` host refused by the host"))?;
        request
            .set_path_with_query(Some(target))
            .map_err(|()| invalid("path refused by the host"))?;
        Ok(request)
    }

    /// The host's own timeouts: the idle timeout, never beyond the call's deadline. They are
    /// a second line: the adapter watches the deadline itself, since a host may not honour
    /// them.
    fn options(&self, deadline: u64) -> RequestOptions {
        let timeout = self
            .idle_timeout_ns
            .min(deadline::remaining(deadline))
            .max(1);
        host_timeouts(timeout, timeout)
    }

    fn read_response(
        &self,
        verb: Verb,
        target: &str,
        response: &IncomingResponse,
        deadline: u64,
        cap: u64,
    ) -> Result<Response, Error> {
        let transport = |detail: String| Error::Transport {
            method: verb.name(),
            path: target.to_owned(),
            detail,
        };
        let status = response.status();
        let headers = response.headers().entries();
        let declared = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| core::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        // An error answer is read only as far as a message needs.
        let success = (200..300).contains(&status);
        let limit = if success {
            cap
        } else {
            MAX_ERROR_BODY_BYTES as u64
        };
        if success && declared.is_some_and(|n| n > cap) {
            return Err(transport(too_large_for_operation(cap)));
        }
        let incoming = response
            .consume()
            .map_err(|()| transport("response body already taken".into()))?;
        let mut body = Vec::new();
        if verb != Verb::Head {
            if let Some(n) = declared {
                let n = usize::try_from(n.min(limit)).unwrap_or(0);
                body.try_reserve_exact(n)
                    .map_err(|_| transport(too_large_for_memory(n)))?;
            }
            let stream = incoming
                .stream()
                .map_err(|()| transport("response body stream already taken".into()))?;
            let late_body = |received: usize| {
                self.late(
                    verb,
                    target,
                    &format!("while the response body arrived ({received} bytes so far)"),
                )
            };
            loop {
                // Checked on every piece, not only before waiting: a host whose `read`
                // blocks until a byte arrives (jco) never lets the adapter wait itself.
                if deadline::remaining(deadline) == 0 {
                    return Err(late_body(body.len()));
                }
                let want = READ_PIECE_BYTES.min(limit - body.len() as u64);
                if want == 0 {
                    if success {
                        return Err(transport(too_large_for_operation(cap)));
                    }
                    // The start of an error answer is all a message needs.
                    break;
                }
                // Room for the piece is made before the host writes it, so that the piece
                // lands after the body and, freed, rejoins the allocator's free top: the
                // body then grows in place, and a chunked answer costs its own size, not
                // the two to four times of a buffer that doubles and moves.
                let mut piece = usize::try_from(want).unwrap_or(usize::MAX);
                if let Some(n) = declared.filter(|_| success) {
                    // A declared body is already reserved: only what a lying server sends
                    // beyond it is not (and the host refuses that anyway).
                    let rest = usize::try_from(n).unwrap_or(usize::MAX);
                    piece = piece.min(rest.saturating_sub(body.len()));
                }
                if body.capacity() - body.len() < piece {
                    body.try_reserve_exact(piece)
                        .map_err(|_| transport(too_large_for_memory(body.len() + piece)))?;
                }
                // The host allocates the piece in the adapter's memory and traps if it
                // cannot: make sure it can before asking.
                if !headroom(piece) {
                    return Err(transport(too_large_for_memory(body.len() + piece)));
                }
                match stream.read(want) {
                    Ok(chunk) if chunk.is_empty() => {
                        if !deadline::wait(&stream.subscribe(), deadline) {
                            return Err(late_body(body.len()));
                        }
                    }
                    Ok(chunk) => body.extend_from_slice(&chunk),
                    Err(StreamError::Closed) => break,
                    Err(StreamError::LastOperationFailed(e)) => {
                        return Err(transport(format!(
                            "response body cut short after {} bytes: {}",
                            body.len(),
                            e.to_debug_string()
                        )));
                    }
                }
            }
            drop(stream);
            if let Some(n) = declared
                && success
                && n != body.len() as u64
            {
                return Err(transport(format!(
                    "response body cut short: {} of {n} bytes",
                    body.len()
                )));
            }
        }
        drop(crate::bindings::wasi::http::types::IncomingBody::finish(
            incoming,
        ));
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// `text` as one short line with every form of every secret replaced (see [`Redactor`]).
    pub fn scrub(&self, text: &str) -> String {
        self.redactor.scrub(text)
    }

    /// The error for a status the operation does not expect, with a reason the backend
    /// worded (scrubbed here; the status's name when it is empty). 401 and 403 are
    /// `access-denied`.
    pub fn status_with(&self, verb: Verb, path: &str, status: u16, reason: &str) -> Error {
        match status {
            401 | 403 => Error::AccessDenied,
            _ => {
                let reason = self.scrub(reason);
                Error::Status {
                    method: verb.name(),
                    path: self.target(path),
                    status,
                    reason: if reason.is_empty() {
                        String::from(canonical_reason(status))
                    } else {
                        reason
                    },
                }
            }
        }
    }
}

impl Client {
    /// [`Client::status_with`] with a reason in two parts: kvplug's own words `ours`, kept
    /// whole, then the service's text `theirs`, scrubbed (and so cut to one short line), if
    /// it sent any.
    pub fn status_quoting(
        &self,
        verb: Verb,
        path: &str,
        status: u16,
        ours: &str,
        theirs: &str,
    ) -> Error {
        let said = !theirs.trim().is_empty();
        match self.status_with(verb, path, status, theirs) {
            Error::Status {
                method,
                path,
                status,
                reason,
            } => Error::Status {
                method,
                path,
                status,
                // Without text of the service's, kvplug's words alone: not the status's name
                // posing as what the service said.
                reason: if said {
                    format!("{ours}; the service said: {reason}")
                } else {
                    String::from(ours)
                },
            },
            other => other,
        }
    }
}

fn too_large_for_operation(cap: u64) -> String {
    format!(
        "response body larger than {cap} bytes, more than this operation can receive: is `url` \
         right?"
    )
}

/// Whether `bytes` can be allocated now; the block is freed at once, for the host to take.
fn headroom(bytes: usize) -> bool {
    let mut probe = Vec::<u8>::new();
    probe.try_reserve_exact(bytes).is_ok()
}

/// Request options with the host's own timeouts: `first_byte_ns` for the connection and the
/// response head, `between_bytes_ns` between pieces of the body. A host that cannot honour
/// one says so with an error; the request still works, bounded by the client's own watch.
fn host_timeouts(first_byte_ns: u64, between_bytes_ns: u64) -> RequestOptions {
    let options = RequestOptions::new();
    let _ = options.set_connect_timeout(Some(first_byte_ns));
    let _ = options.set_first_byte_timeout(Some(first_byte_ns));
    let _ = options.set_between_bytes_timeout(Some(between_bytes_ns));
    options
}

fn too_large_for_memory(bytes: usize) -> String {
    format!("a response of {bytes} bytes does not fit in the adapter's memory")
}

/// Why a request body was not sent whole.
enum Write {
    /// The call's deadline passed.
    Late,
    Failed(String),
}

/// Writes `body` in pieces as large as the host accepts, then flushes, within `deadline`.
fn write_body(outgoing: &OutgoingBody, body: &[u8], deadline: u64) -> Result<(), Write> {
    let stream: OutputStream = outgoing
        .write()
        .map_err(|()| Write::Failed(String::from("request body stream already taken")))?;
    let mut rest = body;
    let mut flushing = false;
    loop {
        let permit = match stream.check_write() {
            Ok(permit) => permit,
            // hyper drops its end once it has all `content-length` bytes.
            Err(StreamError::Closed) if rest.is_empty() => return Ok(()),
            Err(e) => return Err(Write::Failed(stream_error("write", e))),
        };
        if permit == 0 {
            if !deadline::wait(&stream.subscribe(), deadline) {
                return Err(Write::Late);
            }
            continue;
        }
        if rest.is_empty() {
            if flushing {
                // Writable again after the flush: everything went out.
                return Ok(());
            }
            stream
                .flush()
                .map_err(|e| Write::Failed(stream_error("flush", e)))?;
            flushing = true;
            continue;
        }
        let n = usize::try_from(permit)
            .unwrap_or(usize::MAX)
            .min(rest.len());
        let (piece, tail) = rest.split_at_checked(n).unwrap_or((rest, &[]));
        stream
            .write(piece)
            .map_err(|e| Write::Failed(stream_error("write", e)))?;
        rest = tail;
    }
}

fn stream_error(what: &str, error: StreamError) -> String {
    match error {
        StreamError::Closed => format!("request body {what}: connection closed"),
        StreamError::LastOperationFailed(e) => {
            format!("request body {what}: {}", e.to_debug_string())
        }
    }
}

/// Names a transport failure the way a person would say it. Written out rather than
/// `{:?}`: the generated `Debug` of this enum costs about 19 KB of the artifact.
fn describe(code: &ErrorCode) -> String {
    let text = match code {
        ErrorCode::ConnectionRefused => {
            "connection refused (is the service running at the `url` setting?)"
        }
        ErrorCode::ConnectionTimeout => "timed out connecting",
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            "timed out waiting for the response"
        }
        ErrorCode::ConnectionWriteTimeout => "timed out sending the request",
        ErrorCode::ConnectionTerminated => "the connection was closed before a complete response",
        ErrorCode::ConnectionLimitReached => "the host's connection limit was reached",
        ErrorCode::HttpResponseIncomplete => "the response was cut short",
        ErrorCode::DnsTimeout | ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => {
            "the `url` host could not be resolved"
        }
        ErrorCode::DestinationUnavailable => "the `url` host is unavailable",
        ErrorCode::DestinationIpProhibited | ErrorCode::DestinationIpUnroutable => {
            "the `url` host's address cannot be reached from here"
        }
        ErrorCode::TlsProtocolError | ErrorCode::TlsAlertReceived(_) => "TLS failed",
        ErrorCode::TlsCertificateError => "the service's TLS certificate was rejected",
        ErrorCode::HttpRequestDenied => "the host denied the request",
        // wasmtime reports every failure its HTTP parser meets this way (a connection closed
        // before or during the response head, a head over its size or header-count limits,
        // bytes that are not HTTP), so the adapter cannot tell them apart either.
        ErrorCode::HttpProtocolError => {
            "no valid HTTP answer: the connection was closed or reset before a complete \
             response head, or the head broke the host's limits (size, header count) or was not \
             HTTP; the host does not say which"
        }
        ErrorCode::HttpRequestBodySize(_)
        | ErrorCode::HttpRequestHeaderSectionSize(_)
        | ErrorCode::HttpRequestHeaderSize(_)
        | ErrorCode::HttpRequestTrailerSectionSize(_)
        | ErrorCode::HttpRequestTrailerSize(_)
        | ErrorCode::HttpRequestLengthRequired => "the host refused the request's size",
        ErrorCode::HttpRequestMethodInvalid | ErrorCode::HttpRequestUriInvalid => {
            "the host refused the request line"
        }
        ErrorCode::HttpRequestUriTooLong => "the request path is too long for the host",
        ErrorCode::HttpResponseHeaderSectionSize(_)
        | ErrorCode::HttpResponseHeaderSize(_)
        | ErrorCode::HttpResponseBodySize(_)
        | ErrorCode::HttpResponseTrailerSectionSize(_)
        | ErrorCode::HttpResponseTrailerSize(_) => "the response exceeds the host's limits",
        ErrorCode::HttpResponseTransferCoding(_) | ErrorCode::HttpResponseContentCoding(_) => {
            "the response uses a coding the host cannot decode"
        }
        ErrorCode::HttpUpgradeFailed => "HTTP upgrade failed",
        ErrorCode::LoopDetected => "the host detected a request loop",
        ErrorCode::ConfigurationError => "the host's HTTP configuration is wrong",
        ErrorCode::InternalError(Some(message)) => return format!("host error: {message}"),
        ErrorCode::InternalError(None) => "host error",
    };
    String::from(text)
}

fn canonical_reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "unexpected status",
    }
}
