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

use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingResponse, Method, OutgoingBody, OutgoingRequest, RequestOptions,
    Scheme,
};
use crate::bindings::wasi::io::streams::{OutputStream, StreamError};
use crate::error::Error;
use crate::settings::Settings;
use kvplug_settings::url::{self, Endpoint};

/// Largest response body the adapter buffers; beyond it the call fails instead of exhausting
/// the user's memory.
pub const MAX_RESPONSE_BYTES: u64 = 256 << 20;

/// The HTTP methods the backends use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    not(any(feature = "http", feature = "azure-table")),
    expect(dead_code, reason = "each backend but `http` uses a subset")
)]
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
    #[cfg_attr(
        not(any(feature = "http", feature = "azure-table", feature = "dynamodb")),
        expect(dead_code, reason = "kept for backends that read response headers")
    )]
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
    /// Strings that must never be quoted back from a response: the token and the header.
    secrets: Vec<String>,
    timeout_ns: u64,
}

impl Client {
    /// A client for the service in `settings` that sends `authorization` with every request.
    pub fn new(settings: &Settings, authorization: Option<String>) -> Client {
        // The password of a `user:password` token is a secret on its own too.
        let password = settings
            .token
            .as_deref()
            .and_then(|token| token.split_once(':'))
            .map(|(_, password)| String::from(password))
            .filter(|password| password.len() >= 4);
        let secrets = settings
            .secrets()
            .map(String::from)
            .chain(authorization.iter().cloned())
            .chain(password)
            .filter(|s| !s.is_empty())
            .collect();
        Client {
            endpoint: settings.endpoint.clone(),
            authorization,
            secrets,
            timeout_ns: settings.timeout_ms.saturating_mul(1_000_000),
        }
    }

    /// The `url` setting's `host[:port]`, as sent in `host` (which signatures cover).
    #[cfg_attr(
        not(feature = "dynamodb"),
        expect(dead_code, reason = "only SigV4 signs the host")
    )]
    pub fn authority(&self) -> &str {
        &self.endpoint.authority
    }

    /// The request target for a protocol path: the `url` setting's base path, then `path`.
    pub fn target(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint.base_path)
    }

    /// Sends one request and reads the whole response. `path` includes any query.
    pub fn send(
        &self,
        verb: Verb,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, Error> {
        let target = self.target(path);
        let transport = |detail: String| Error::Transport {
            method: verb.name(),
            path: target.clone(),
            detail,
        };
        let request = self.request(verb, &target, headers, body)?;
        let outgoing_body = request
            .body()
            .map_err(|()| transport("the host refused a request body".into()))?;
        let options = self.options();
        let pending = outgoing_handler::handle(request, Some(options))
            .map_err(|code| transport(describe(&code)))?;

        // A failed write is not the end: the server may already have answered (413, 401), and
        // that answer says more than "broken pipe".
        let write_failure = write_body(&outgoing_body, body).err();
        if write_failure.is_none() {
            if let Err(code) = OutgoingBody::finish(outgoing_body, None) {
                return Err(transport(describe(&code)));
            }
        } else {
            drop(outgoing_body);
        }

        let response = loop {
            match pending.get() {
                Some(Ok(Ok(response))) => break response,
                Some(Ok(Err(code))) => {
                    return Err(transport(match write_failure {
                        Some(write) => format!("{write}; then {}", describe(&code)),
                        None => describe(&code),
                    }));
                }
                Some(Err(())) => return Err(transport("response already taken".into())),
                None => pending.subscribe().block(),
            }
        };
        self.read_response(verb, &target, &response)
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

    fn options(&self) -> RequestOptions {
        let options = RequestOptions::new();
        // A host that cannot honour a timeout says so with an error; the request still works,
        // it just waits as long as the host lets it.
        let _ = options.set_connect_timeout(Some(self.timeout_ns));
        let _ = options.set_first_byte_timeout(Some(self.timeout_ns));
        let _ = options.set_between_bytes_timeout(Some(self.timeout_ns));
        options
    }

    fn read_response(
        &self,
        verb: Verb,
        target: &str,
        response: &IncomingResponse,
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
        if declared.is_some_and(|n| n > MAX_RESPONSE_BYTES) {
            return Err(transport(format!(
                "response body larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        let incoming = response
            .consume()
            .map_err(|()| transport("response body already taken".into()))?;
        let mut body = Vec::new();
        if verb != Verb::Head {
            if let Some(n) = declared {
                body.reserve_exact(usize::try_from(n).unwrap_or(0));
            }
            let stream = incoming
                .stream()
                .map_err(|()| transport("response body stream already taken".into()))?;
            loop {
                match stream.blocking_read(1 << 20) {
                    Ok(chunk) => {
                        body.extend_from_slice(&chunk);
                        if body.len() as u64 > MAX_RESPONSE_BYTES {
                            return Err(transport(format!(
                                "response body larger than {MAX_RESPONSE_BYTES} bytes"
                            )));
                        }
                    }
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

    /// `text` as one short line with every secret replaced; redaction comes first so that
    /// the cut can never leave half a secret behind.
    pub fn scrub(&self, text: &str) -> String {
        const MAX: usize = 160;
        // A window long enough that a secret starting inside the kept part is whole in it.
        let window = MAX + self.secrets.iter().map(String::len).max().unwrap_or(0);
        let mut text: String = text.chars().take(window).collect();
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "<redacted>");
        }
        let line: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX)
            .collect();
        String::from(line.trim())
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

/// Writes `body` in pieces as large as the host accepts, then flushes.
fn write_body(outgoing: &OutgoingBody, body: &[u8]) -> Result<(), String> {
    let stream: OutputStream = outgoing
        .write()
        .map_err(|()| String::from("request body stream already taken"))?;
    let mut rest = body;
    while !rest.is_empty() {
        let permit = stream.check_write().map_err(|e| stream_error("write", e))?;
        if permit == 0 {
            stream.subscribe().block();
            continue;
        }
        let n = usize::try_from(permit)
            .unwrap_or(usize::MAX)
            .min(rest.len());
        let (piece, tail) = rest.split_at(n);
        stream.write(piece).map_err(|e| stream_error("write", e))?;
        rest = tail;
    }
    match stream.blocking_flush() {
        Ok(()) | Err(StreamError::Closed) => Ok(()),
        Err(e) => Err(stream_error("flush", e)),
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
        ErrorCode::HttpProtocolError => "the answer is not valid HTTP",
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
