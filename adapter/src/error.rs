//! The adapter's errors, and the one place where they become `wasi:keyvalue` errors.
//!
//! Messages name the HTTP method, the request path and the status, so a user can find the
//! failing call in server logs. They never contain a credential: requests' headers are never
//! quoted, and text from a response is scrubbed of the token before it is kept
//! (`http::Client`).

use alloc::string::String;
use core::fmt;

use crate::bindings::exports::wasi::keyvalue::store::Error as WitError;

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
    /// An answer that breaks the protocol (bad framing, missing header, not a number).
    Malformed {
        method: &'static str,
        path: String,
        detail: String,
    },
    /// The operation was refused before anything was sent.
    Invalid(String),
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
            } => write!(f, "{method} {path}: HTTP {status}: {reason}"),
            Error::Transport {
                method,
                path,
                detail,
            } => write!(f, "{method} {path}: {detail}"),
            Error::Malformed {
                method,
                path,
                detail,
            } => write!(f, "{method} {path}: malformed response: {detail}"),
            Error::Invalid(message) => f.write_str(message),
        }
    }
}

impl Error {
    /// The `wasi:keyvalue` error for this failure.
    pub fn into_wit(self) -> WitError {
        match self {
            Error::NoSuchStore => WitError::NoSuchStore,
            Error::AccessDenied => WitError::AccessDenied,
            other => WitError::Other(alloc::format!("kvplug: {other}")),
        }
    }
}

impl From<Error> for WitError {
    fn from(error: Error) -> Self {
        error.into_wit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_errors_name_method_path_and_status() {
        let error = Error::Status {
            method: "PUT",
            path: "/v1/buckets/b/keys/k".into(),
            status: 500,
            reason: "internal: disk full".into(),
        };
        let WitError::Other(message) = error.into_wit() else {
            panic!("a status error must be `other`");
        };
        assert_eq!(
            message,
            "kvplug: PUT /v1/buckets/b/keys/k: HTTP 500: internal: disk full"
        );
        assert!(matches!(
            Error::NoSuchStore.into_wit(),
            WitError::NoSuchStore
        ));
        assert!(matches!(
            Error::AccessDenied.into_wit(),
            WitError::AccessDenied
        ));
    }
}
