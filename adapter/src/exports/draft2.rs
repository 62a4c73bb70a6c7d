//! `wasi:keyvalue@0.2.0-draft2`: string cursors, signed increment, compare-and-swap.

use alloc::string::String;
use alloc::vec::Vec;

use super::{Adapter, shared_glue};
use crate::Active;
use crate::bindings::exports::wasi::keyvalue0_2_0_draft2 as kv;
use kv::{atomics, store};
use kvplug_core::backend::{Backend, Swap, Versioned};
use kvplug_core::error::Error;

/// The `bucket` resource: an open connection to one bucket.
pub struct Bucket {
    pub(super) backend: Active,
    /// What this bucket's cursors start with; see [`super::cursor_tag`].
    pub(super) cursor_tag: String,
}

impl Bucket {
    fn list(&self, cursor: Option<String>) -> Result<store::KeyResponse, Error> {
        let inner = cursor
            .as_deref()
            .map(|cursor| super::unwrap_cursor("list-keys", &self.cursor_tag, cursor))
            .transpose()?;
        let page = self.backend.list(inner)?;
        Ok(store::KeyResponse {
            keys: page.keys,
            cursor: page
                .cursor
                .map(|inner| alloc::format!("{}{inner}", self.cursor_tag)),
        })
    }
}

shared_glue!(kv, Bucket);

/// The `cas` resource: a key, and the value and version seen when the handle was made.
pub struct Cas {
    backend: Active,
    key: String,
    seen: Versioned,
}

impl store::Guest for Adapter {
    type Bucket = Bucket;

    fn open(identifier: String) -> Result<store::Bucket, store::Error> {
        Ok(store::Bucket::new(Bucket {
            backend: super::open_backend(&identifier)?,
            cursor_tag: super::cursor_tag(&identifier),
        }))
    }
}

impl atomics::Guest for Adapter {
    type Cas = Cas;

    fn increment(
        bucket: store::BucketBorrow<'_>,
        key: String,
        delta: i64,
    ) -> Result<i64, store::Error> {
        kvplug_core::deadline::begin();
        Ok(bucket.get::<Bucket>().backend.increment(&key, delta)?)
    }

    fn swap(cas: atomics::Cas, value: Vec<u8>) -> Result<(), atomics::CasError> {
        kvplug_core::deadline::begin();
        let cas: Cas = cas.into_inner();
        let outcome = cas
            .backend
            .write_if(&cas.key, &cas.seen.version, &value)
            .map_err(|e| atomics::CasError::StoreError(e.into()))?;
        match outcome {
            Swap::Done => Ok(()),
            Swap::Conflict(now) => Err(atomics::CasError::CasFailed(atomics::Cas::new(Cas {
                backend: cas.backend,
                key: cas.key,
                seen: now,
            }))),
        }
    }
}

impl atomics::GuestCas for Cas {
    fn new(bucket: store::BucketBorrow<'_>, key: String) -> Result<atomics::Cas, store::Error> {
        kvplug_core::deadline::begin();
        let backend = bucket.get::<Bucket>().backend.clone();
        let seen = backend.read_versioned(&key)?;
        Ok(atomics::Cas::new(Cas { backend, key, seen }))
    }

    /// The value as of the handle's version: what `swap` is conditional on, so that a
    /// read-modify-write built on it never mixes two versions.
    fn current(&self) -> Result<Option<Vec<u8>>, store::Error> {
        Ok(self.seen.value.clone())
    }
}
