//! The adapter's errors. The component crate's `error` module is the one place where they
//! become `wasi:keyvalue` errors.
//!
//! Messages name the HTTP method, the request path and the status, so a user can find the
//! failing call in server logs. They never contain a credential: requests' headers are never
//! quoted, and text from a response is scrubbed of the token before it is kept
//! (`http::Client`).

use alloc::string::String;
use core::fmt;

/// Everything that can go wrong in the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The service does not know the bucket.
    NoSuchStore,
    /// The service refused our credentials, or the bucket allow-list excludes the bucket.
    AccessDenied,
    /// A setting is missing or malformed.
    Settings(String),
    /// The service answered with a status the operation cannot accept.
    Status {
        method: &'static str,
        path: String,
        status: u16,
        reason: String,
    },
    /// No usable answer: connection refused, timeout, reset, a body cut short.
    Transport {
        method: &'static str,
        path: String,
        detail: String,
    },
    /// The service understood the request and refused it in its own words (a Redis error
    /// reply travels in an HTTP 200).
    Refused {
        method: &'static str,
        path: String,
        reason: String,
    },
    /// An answer that breaks the protocol (bad framing, missing header, not a number).
    Malformed {
        method: &'static str,
        path: String,
        detail: String,
    },
    /// The operation was refused before anything was sent.
    Invalid(String),
    /// A bounded retry loop gave up: concurrent writers kept winning, or the service kept
    /// throttling.
    GaveUp(String),
    /// A `kvplug:keyvalue/entries` call refused, with nothing written: a failed
    /// precondition, a size or time-to-live out of range, contradictory options.
    Entry(kvplug_protocol::entries::Refusal),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoSuchStore => f.write_str("no such store"),
            Error::AccessDenied => f.write_str("access denied"),
            Error::Settings(message) => write!(f, "kvplug settings: {message}"),
            Error::Status {
                method,
                path,
                status,
                reason,
            } => write!(f, "{method} {}: HTTP {status}: {reason}", quoted(path)),
            Error::Transport {
                method,
                path,
                detail,
            }
            | Error::Refused {
                method,
                path,
                reason: detail,
            } => write!(f, "{method} {}: {detail}", quoted(path)),
            Error::Malformed {
                method,
                path,
                detail,
            } => write!(f, "{method} {}: malformed response: {detail}", quoted(path)),
            Error::Invalid(message) | Error::GaveUp(message) => f.write_str(message),
            Error::Entry(refusal) => write!(f, "{refusal}; nothing was written"),
        }
    }
}

impl From<kvplug_settings::layout::LayoutError> for Error {
    fn from(error: kvplug_settings::layout::LayoutError) -> Self {
        use kvplug_settings::layout::LayoutError;
        match error {
            LayoutError::MarkerInPrefix => Error::Settings(alloc::format!("{error}")),
            LayoutError::Reserved(_) => Error::Invalid(alloc::format!("{error}")),
        }
    }
}

/// Longest path a message quotes whole. Keys travel in paths, so a path can be as long as
/// the longest key, percent-encoded: quoting it whole would make a 64 KiB key a 200 KB
/// message, which the application then logs.
const MAX_QUOTED_PATH: usize = 200;

/// `path` as messages quote it: whole when short, else its start (enough to recognise the
/// endpoint and the bucket) and its length.
fn quoted(path: &str) -> Quoted<'_> {
    Quoted(path)
}

struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.0;
        if path.len() <= MAX_QUOTED_PATH {
            return f.write_str(path);
        }
        let mut end = MAX_QUOTED_PATH;
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        let start = path.get(..end).unwrap_or_default();
        write!(f, "{start}… ({} bytes)", Grouped(path.len()))
    }
}

/// A number with thousands separators, which a long length is easier to read with.
struct Grouped(usize);

impl fmt::Display for Grouped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 1000 {
            write!(f, "{}", self.0)
        } else {
            write!(f, "{},{:03}", Grouped(self.0 / 1000), self.0 % 1000)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_are_quoted_by_their_start_and_length() {
        let path = alloc::format!("/v1/buckets/b/keys/{}", "%C3%A9".repeat(10_000));
        let error = Error::Status {
            method: "GET",
            path: path.clone(),
            status: 500,
            reason: "internal".into(),
        };
        let message = alloc::format!("{error}");
        assert!(message.len() < 300, "{} bytes", message.len());
        let start = path.get(..200).unwrap();
        assert_eq!(
            message,
            alloc::format!("GET {start}… (60,019 bytes): HTTP 500: internal")
        );
        // A cut inside a character moves back to its start; a short path stays whole.
        let wide = alloc::format!("/{}", "é".repeat(300));
        let message = alloc::format!(
            "{}",
            Error::Malformed {
                method: "PUT",
                path: wide,
                detail: "x".into(),
            }
        );
        assert!(
            message.starts_with(&alloc::format!("PUT /{}… (601 bytes)", "é".repeat(99))),
            "{message}"
        );
        let message = alloc::format!(
            "{}",
            Error::Transport {
                method: "HEAD",
                path: "/v1/buckets/b".into(),
                detail: "timed out".into(),
            }
        );
        assert_eq!(message, "HEAD /v1/buckets/b: timed out");
        assert_eq!(alloc::format!("{}", Grouped(1_234_567)), "1,234,567");
        assert_eq!(alloc::format!("{}", Grouped(1_000)), "1,000");
        assert_eq!(alloc::format!("{}", Grouped(999)), "999");
    }
}
