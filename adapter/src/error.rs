//! The adapter's errors, and the one place where they become `wasi:keyvalue` errors.
//!
//! Messages name the HTTP method, the request path and the status, so a user can find the
//! failing call in server logs. They never contain a credential: requests' headers are never
//! quoted, and text from a response is scrubbed of the token before it is kept
//! (`http::Client`).

use alloc::string::String;
use core::fmt;

use crate::bindings::exports::wasi::{keyvalue0_2_0_draft, keyvalue0_2_0_draft2};

/// Everything that can go wrong in the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The service does not know the bucket.
    #[cfg_attr(
        all(any(feature = "etcd", feature = "redis"), not(test)),
        expect(dead_code, reason = "key-prefix buckets always exist")
    )]
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
    #[cfg_attr(
        not(feature = "redis"),
        expect(dead_code, reason = "only some services refuse in their own words")
    )]
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
    #[cfg_attr(
        not(any(feature = "etcd", feature = "dynamodb", feature = "azure-table")),
        expect(dead_code, reason = "only backends with retry loops give up")
    )]
    GaveUp(String),
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
            }
            | Error::Refused {
                method,
                path,
                reason: detail,
            } => write!(f, "{method} {path}: {detail}"),
            Error::Malformed {
                method,
                path,
                detail,
            } => write!(f, "{method} {path}: malformed response: {detail}"),
            Error::Invalid(message) | Error::GaveUp(message) => f.write_str(message),
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

/// Both drafts declare the same `error` variant; this is the one mapping into either.
macro_rules! into_wit {
    ($($kv:ident),*) => {$(
        impl From<Error> for $kv::store::Error {
            fn from(error: Error) -> Self {
                match error {
                    Error::NoSuchStore => Self::NoSuchStore,
                    Error::AccessDenied => Self::AccessDenied,
                    other => Self::Other(alloc::format!("kvplug: {other}")),
                }
            }
        }
    )*};
}

into_wit!(keyvalue0_2_0_draft, keyvalue0_2_0_draft2);

#[cfg(test)]
mod tests {
    use super::*;
    use keyvalue0_2_0_draft2::store::Error as WitError;

    #[test]
    fn other_errors_name_method_path_and_status() {
        let error = Error::Status {
            method: "PUT",
            path: "/v1/buckets/b/keys/k".into(),
            status: 500,
            reason: "internal: disk full".into(),
        };
        let WitError::Other(message) = WitError::from(error) else {
            panic!("a status error must be `other`");
        };
        assert_eq!(
            message,
            "kvplug: PUT /v1/buckets/b/keys/k: HTTP 500: internal: disk full"
        );
        assert!(matches!(
            WitError::from(Error::NoSuchStore),
            WitError::NoSuchStore
        ));
        assert!(matches!(
            WitError::from(Error::AccessDenied),
            WitError::AccessDenied
        ));
    }
}
