//! The `wasi:keyvalue` exports: thin glue from the WIT functions to the active [`Backend`].
//!
//! The adapter exports two drafts from one artifact, over the same backend code. What the
//! drafts share (get/set/delete/exists and the batch interface) is written once, in
//! [`shared_glue`]; each draft's module holds only what differs: the `list-keys` cursor,
//! the sign of `increment`, and (draft2 only) compare-and-swap.
//!
//! [`Backend`]: kvplug_core::backend::Backend

mod draft;
mod draft2;
#[cfg(feature = "entries")]
mod entries;

use alloc::string::String;
use alloc::vec::Vec;

use kvplug_core::error::Error;

/// The type all exported interfaces are implemented on.
pub(crate) struct Adapter;

/// `open` in either draft: read the settings, apply the allow-list, connect.
pub(crate) fn open_backend(identifier: &str) -> Result<crate::Active, Error> {
    use kvplug_core::backend::Backend as _;
    kvplug_core::deadline::begin();
    let settings = kvplug_core::settings::load()?;
    kvplug_core::settings::check_bucket(&settings, identifier)?;
    crate::Active::open(&settings, identifier)
}

/// The start of every cursor the bucket `identifier` issues: `c` and a hash of the name.
///
/// One rule for every backend: a cursor is valid only for the bucket that issued it, and a
/// string the adapter did not issue is refused, whatever the service would make of it
/// (kvplug-server would resume after any key, Redis would read `-1` as a last page, Azure
/// would refuse). The hash (FNV-1a, 64 bits) is not a secret: it stops mistakes, such as a
/// cursor passed to the wrong bucket, not forgery, and a forged cursor can still only list
/// the bucket's own keys, which the backend's key layout guarantees.
pub(crate) fn cursor_tag(identifier: &str) -> String {
    let hash = identifier
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    alloc::format!("c{hash:016x}.")
}

/// The backend's cursor inside `cursor`, if this bucket (`tag`) issued it.
pub(crate) fn unwrap_cursor<'a>(
    operation: &str,
    tag: &str,
    cursor: &'a str,
) -> Result<&'a str, Error> {
    cursor.strip_prefix(tag).ok_or_else(|| {
        Error::Invalid(alloc::format!(
            "{operation}: bad cursor: not one this listing issued (a cursor is valid only \
             for the bucket, and the prefix, whose {operation} returned it)"
        ))
    })
}

/// Implements the draft-independent part of `bucket` and the whole `batch` interface for the
/// draft whose generated module is `$kv` and whose bucket resource type is `$bucket` (a
/// struct with a `backend` field).
macro_rules! shared_glue {
    ($kv:ident, $bucket:ty) => {
        impl $kv::store::GuestBucket for $bucket {
            fn get(
                &self,
                key: ::alloc::string::String,
            ) -> Result<Option<::alloc::vec::Vec<u8>>, $kv::store::Error> {
                ::kvplug_core::deadline::begin();
                Ok(self.backend.get(&key)?)
            }

            fn set(
                &self,
                key: ::alloc::string::String,
                value: ::alloc::vec::Vec<u8>,
            ) -> Result<(), $kv::store::Error> {
                ::kvplug_core::deadline::begin();
                Ok(self.backend.set(&key, &value)?)
            }

            fn delete(&self, key: ::alloc::string::String) -> Result<(), $kv::store::Error> {
                ::kvplug_core::deadline::begin();
                Ok(self.backend.delete(&key)?)
            }

            fn exists(&self, key: ::alloc::string::String) -> Result<bool, $kv::store::Error> {
                ::kvplug_core::deadline::begin();
                Ok(self.backend.exists(&key)?)
            }

            fn list_keys(
                &self,
                cursor: Option<$crate::exports::CursorOf<$kv::store::KeyResponse>>,
            ) -> Result<$kv::store::KeyResponse, $kv::store::Error> {
                ::kvplug_core::deadline::begin();
                Ok(self.list(cursor)?)
            }
        }

        impl $kv::batch::Guest for $crate::exports::Adapter {
            fn get_many(
                bucket: $kv::store::BucketBorrow<'_>,
                keys: ::alloc::vec::Vec<::alloc::string::String>,
            ) -> Result<
                ::alloc::vec::Vec<Option<(::alloc::string::String, ::alloc::vec::Vec<u8>)>>,
                $kv::store::Error,
            > {
                ::kvplug_core::deadline::begin();
                let values = bucket.get::<$bucket>().backend.get_many(&keys)?;
                Ok($crate::exports::pair_up(keys, values)?)
            }

            fn set_many(
                bucket: $kv::store::BucketBorrow<'_>,
                key_values: ::alloc::vec::Vec<(::alloc::string::String, ::alloc::vec::Vec<u8>)>,
            ) -> Result<(), $kv::store::Error> {
                ::kvplug_core::deadline::begin();
                Ok(bucket.get::<$bucket>().backend.set_many(&key_values)?)
            }

            fn delete_many(
                bucket: $kv::store::BucketBorrow<'_>,
                keys: ::alloc::vec::Vec<::alloc::string::String>,
            ) -> Result<(), $kv::store::Error> {
                ::kvplug_core::deadline::begin();
                Ok(bucket.get::<$bucket>().backend.delete_many(&keys)?)
            }
        }
    };
}
use shared_glue;

/// The cursor type of a draft's `key-response`.
pub(crate) trait HasCursor {
    type Cursor;
}

impl HasCursor for crate::bindings::exports::wasi::keyvalue0_2_0_draft::store::KeyResponse {
    type Cursor = u64;
}

impl HasCursor for crate::bindings::exports::wasi::keyvalue0_2_0_draft2::store::KeyResponse {
    type Cursor = String;
}

pub(crate) type CursorOf<T> = <T as HasCursor>::Cursor;

/// `get-many`'s answer, the same in both drafts: one slot per key, in order.
pub(crate) type ManyValues = Vec<Option<(String, Vec<u8>)>>;

/// `get-many`'s answer: each key with its value, `none` where absent.
pub(crate) fn pair_up(
    keys: Vec<String>,
    values: Vec<Option<Vec<u8>>>,
) -> Result<ManyValues, Error> {
    if values.len() != keys.len() {
        return Err(Error::Invalid(
            "get-many: the backend answered a different number of values".into(),
        ));
    }
    Ok(keys
        .into_iter()
        .zip(values)
        .map(|(key, value)| value.map(|value| (key, value)))
        .collect())
}

// The export glue is unsafe FFI, generated through `kvplug_core::bindings_over_core!`: lints
// do not reach into another crate's macro, so no `expect(unsafe_code)` is needed here.
mod glue {
    use super::Adapter;
    crate::bindings::export!(Adapter with_types_in crate::bindings);
}
