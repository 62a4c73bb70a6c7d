//! `kvplug:keyvalue/entries@0.1.0`: thin glue from the WIT functions to the active backend's
//! [`Entries`]. Its `bucket` is draft2's, so an app needs no second handle.

use alloc::string::String;
use alloc::vec::Vec;

use super::Adapter;
use super::draft2::Bucket;
use crate::bindings::exports::kvplug::keyvalue::entries as wit;
use kvplug_core::backend::entries::{Entries, InsertOptions, Mode};

impl wit::Guest for Adapter {
    fn get_limits(bucket: wit::BucketBorrow<'_>) -> wit::Limits {
        let limits = bucket.get::<Bucket>().backend.limits();
        wit::Limits {
            max_value_bytes: limits.max_value_bytes,
            max_metadata_bytes: limits.max_metadata_bytes,
            time_to_live: wit::TtlRange {
                min_sec: limits.ttl.min_sec,
                max_sec: limits.ttl.max_sec,
            },
        }
    }

    fn insert(
        bucket: wit::BucketBorrow<'_>,
        key: String,
        value: Vec<u8>,
        options: wit::InsertOptions,
    ) -> Result<wit::Generation, wit::Error> {
        kvplug_core::deadline::begin();
        let mode = match options.mode {
            wit::InsertMode::Overwrite => Mode::Overwrite,
            wit::InsertMode::Add => Mode::Add,
            wit::InsertMode::Append => Mode::Append,
            wit::InsertMode::Prepend => Mode::Prepend,
        };
        let options = InsertOptions {
            mode,
            ttl_sec: options.time_to_live_sec,
            metadata: options.metadata.as_deref(),
            if_generation_match: options.if_generation_match,
        };
        Ok(bucket
            .get::<Bucket>()
            .backend
            .insert(&key, &value, &options)?)
    }

    fn lookup(
        bucket: wit::BucketBorrow<'_>,
        key: String,
    ) -> Result<Option<wit::Entry>, wit::Error> {
        kvplug_core::deadline::begin();
        let entry = bucket.get::<Bucket>().backend.lookup(&key)?;
        Ok(entry.map(|entry| wit::Entry {
            value: entry.value,
            metadata: entry.metadata,
            generation: entry.generation,
        }))
    }

    fn delete(
        bucket: wit::BucketBorrow<'_>,
        key: String,
        options: wit::DeleteOptions,
    ) -> Result<bool, wit::Error> {
        kvplug_core::deadline::begin();
        Ok(bucket
            .get::<Bucket>()
            .backend
            .delete_entry(&key, options.if_generation_match)?)
    }

    fn list(
        bucket: wit::BucketBorrow<'_>,
        options: wit::ListOptions,
    ) -> Result<wit::ListPage, wit::Error> {
        kvplug_core::deadline::begin();
        let bucket = bucket.get::<Bucket>();
        let prefix = options.prefix.unwrap_or_default();
        // A cursor belongs to its bucket and its prefix: one from another listing is refused,
        // whatever the backend would make of it.
        let tag = super::cursor_tag(&alloc::format!("{}{prefix}", bucket.cursor_tag));
        let inner = options
            .cursor
            .as_deref()
            .map(|cursor| super::unwrap_cursor("list", &tag, cursor))
            .transpose()?;
        let page = bucket.backend.list_entries(&prefix, inner, options.limit)?;
        Ok(wit::ListPage {
            keys: page.keys,
            cursor: page.cursor.map(|inner| alloc::format!("{tag}{inner}")),
        })
    }
}
