//! The one place where the library's errors become `wasi:keyvalue` errors.

use kvplug_core::error::Error;

use crate::bindings::exports::wasi::{keyvalue0_2_0_draft, keyvalue0_2_0_draft2};

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

/// The extension's errors name what `wasi:keyvalue`'s `other` cannot: the failed
/// precondition, the size and its limit, the time-to-live range, a bad argument.
#[cfg(feature = "entries")]
impl From<Error> for crate::bindings::exports::kvplug::keyvalue::entries::Error {
    fn from(error: Error) -> Self {
        use crate::bindings::exports::kvplug::keyvalue::entries as wit;
        use kvplug_core::backend::entries::{Limited, Refusal};
        match error {
            Error::NoSuchStore => Self::NoSuchStore,
            Error::AccessDenied => Self::AccessDenied,
            Error::Entry(Refusal::KeyExists) => {
                Self::PreconditionFailed(wit::Precondition::KeyExists)
            }
            Error::Entry(Refusal::GenerationMismatch) => {
                Self::PreconditionFailed(wit::Precondition::GenerationMismatch)
            }
            Error::Entry(Refusal::TooLarge { what, limit, size }) => {
                Self::TooLarge(wit::SizeLimit {
                    what: match what {
                        Limited::Key => wit::Limited::Key,
                        Limited::Value => wit::Limited::Value,
                        Limited::Metadata => wit::Limited::Metadata,
                    },
                    limit,
                    size,
                })
            }
            Error::Entry(Refusal::TtlOutOfRange(range)) => {
                Self::TimeToLiveOutOfRange(wit::TtlRange {
                    min_sec: range.min_sec,
                    max_sec: range.max_sec,
                })
            }
            Error::Entry(refusal @ Refusal::Invalid(_)) => {
                Self::InvalidArgument(alloc::format!("kvplug: {refusal}"))
            }
            Error::Invalid(message) => Self::InvalidArgument(alloc::format!("kvplug: {message}")),
            other => Self::Other(alloc::format!("kvplug: {other}")),
        }
    }
}

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
