//! `wasi:keyvalue@0.2.0-draft2`: store, atomics (increment and compare-and-swap) and batch.

use alloc::string::String;
use alloc::vec::Vec;

use crate::backend::{Active, Backend, Swap, Versioned};
use crate::bindings::exports::wasi::keyvalue::{atomics, batch, store};
use crate::error::Error;
use crate::settings::Settings;

pub(super) struct Adapter;

/// The `bucket` resource: an open connection to one bucket.
pub struct Bucket {
    backend: Active,
}

/// The `cas` resource: a key, and the value and version seen when the handle was made.
pub struct Cas {
    backend: Active,
    key: String,
    seen: Versioned,
}

type Result<T, E = store::Error> = core::result::Result<T, E>;

impl store::Guest for Adapter {
    type Bucket = Bucket;

    fn open(identifier: String) -> Result<store::Bucket> {
        let settings = Settings::load()?;
        settings.check_bucket(&identifier)?;
        let backend = Active::open(&settings, &identifier)?;
        Ok(store::Bucket::new(Bucket { backend }))
    }
}

impl store::GuestBucket for Bucket {
    fn get(&self, key: String) -> Result<Option<Vec<u8>>> {
        Ok(self.backend.get(&key)?)
    }

    fn set(&self, key: String, value: Vec<u8>) -> Result<()> {
        Ok(self.backend.set(&key, &value)?)
    }

    fn delete(&self, key: String) -> Result<()> {
        Ok(self.backend.delete(&key)?)
    }

    fn exists(&self, key: String) -> Result<bool> {
        Ok(self.backend.exists(&key)?)
    }

    fn list_keys(&self, cursor: Option<String>) -> Result<store::KeyResponse> {
        let page = self.backend.list(cursor.as_deref())?;
        Ok(store::KeyResponse {
            keys: page.keys,
            cursor: page.cursor,
        })
    }
}

impl atomics::Guest for Adapter {
    type Cas = Cas;

    fn increment(bucket: store::BucketBorrow<'_>, key: String, delta: i64) -> Result<i64> {
        Ok(bucket.get::<Bucket>().backend.increment(&key, delta)?)
    }

    fn swap(cas: atomics::Cas, value: Vec<u8>) -> Result<(), atomics::CasError> {
        let cas: Cas = cas.into_inner();
        let outcome = cas
            .backend
            .write_if(&cas.key, &cas.seen.version, &value)
            .map_err(|e| atomics::CasError::StoreError(e.into_wit()))?;
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
    fn new(bucket: store::BucketBorrow<'_>, key: String) -> Result<atomics::Cas> {
        let backend = bucket.get::<Bucket>().backend.clone();
        let seen = backend.read_versioned(&key)?;
        Ok(atomics::Cas::new(Cas { backend, key, seen }))
    }

    /// The value as of the handle's version: what `swap` is conditional on, so that a
    /// read-modify-write built on it never mixes two versions.
    fn current(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.seen.value.clone())
    }
}

impl batch::Guest for Adapter {
    fn get_many(
        bucket: store::BucketBorrow<'_>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>> {
        let values = bucket.get::<Bucket>().backend.get_many(&keys)?;
        if values.len() != keys.len() {
            return Err(
                Error::Invalid(String::from("kvplug: get-many lost track of its keys")).into(),
            );
        }
        Ok(keys
            .into_iter()
            .zip(values)
            .map(|(key, value)| value.map(|value| (key, value)))
            .collect())
    }

    fn set_many(bucket: store::BucketBorrow<'_>, key_values: Vec<(String, Vec<u8>)>) -> Result<()> {
        Ok(bucket.get::<Bucket>().backend.set_many(&key_values)?)
    }

    fn delete_many(bucket: store::BucketBorrow<'_>, keys: Vec<String>) -> Result<()> {
        Ok(bucket.get::<Bucket>().backend.delete_many(&keys)?)
    }
}

#[expect(unsafe_code, reason = "wit-bindgen's export glue is unsafe FFI")]
mod glue {
    use super::Adapter;
    crate::bindings::export!(Adapter with_types_in crate::bindings);
}
