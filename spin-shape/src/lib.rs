//! Spin's `batch` over an adapter's upstream one. Only `get-many` differs: upstream answers
//! `option<tuple<key, value>>` per key asked, Spin `tuple<key, option<value>>`, both in the
//! order asked. The other two are passed through. Every call is exactly one call of the
//! adapter, so the shape adds no request.

#![cfg_attr(all(target_arch = "wasm32", not(test)), no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

#[cfg(all(target_arch = "wasm32", not(test)))]
use kvplug_guest_rt as _;

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "kvplug:adapter/spin-shape",
        generate_all,
    });
}

use bindings::exports::kvplug::adapter::spin_batch::Guest;
use bindings::wasi::keyvalue0_2_0_draft2::batch;
use bindings::wasi::keyvalue0_2_0_draft2::store::{Bucket, Error};

struct SpinShape;

impl Guest for SpinShape {
    fn get_many(
        bucket: &Bucket,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, Error> {
        let found = batch::get_many(bucket, &keys)?;
        if found.len() != keys.len() {
            return Err(Error::Other(alloc::format!(
                "kvplug spin shape: get-many answered {} entries for {} keys",
                found.len(),
                keys.len()
            )));
        }
        // Upstream's `none` drops the key; Spin's keeps it: take it from the question.
        Ok(keys
            .into_iter()
            .zip(found)
            .map(|(key, entry)| (key, entry.map(|(_, value)| value)))
            .collect())
    }

    fn set_many(bucket: &Bucket, key_values: Vec<(String, Vec<u8>)>) -> Result<(), Error> {
        batch::set_many(bucket, &key_values)
    }

    fn delete_many(bucket: &Bucket, keys: Vec<String>) -> Result<(), Error> {
        batch::delete_many(bucket, &keys)
    }
}

#[expect(unsafe_code, reason = "wit-bindgen's export glue is unsafe FFI")]
mod glue {
    use super::SpinShape;
    crate::bindings::export!(SpinShape with_types_in crate::bindings);
}
