//! `wasi:config/store` from settings sealed into this component by `kvplug seal`
//! (`kvplug_settings::sealed`). With feature `layered`, a setting that was not sealed is
//! looked up in the runtime's own `wasi:config/store`, so secrets can stay out of artifacts.

#![cfg_attr(all(target_arch = "wasm32", not(test)), no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use kvplug_settings::sealed::{CAPACITY, MAGIC};

#[cfg(all(target_arch = "wasm32", not(test)))]
use kvplug_guest_rt as _;

mod bindings {
    #[cfg(not(feature = "layered"))]
    wit_bindgen::generate!({
        path: "../../wit",
        world: "kvplug:adapter/config-static",
        generate_all,
    });
    #[cfg(feature = "layered")]
    wit_bindgen::generate!({
        path: "../../wit",
        world: "kvplug:adapter/config-layered",
        generate_all,
    });
}

use bindings::exports::wasi::config::store::{Error, Guest};

/// The slot `kvplug seal` fills in; see `kvplug_settings::sealed`.
#[repr(C)]
struct Slot {
    magic: [u8; 32],
    len: u32,
    data: [u8; CAPACITY],
}

static SLOT: Slot = Slot {
    magic: MAGIC,
    len: 0,
    data: [0; CAPACITY],
};

/// The sealed pairs. The slot is read through `black_box` because the compiler would
/// otherwise fold the unsealed (empty) contents into the code, and sealing could not change
/// them.
fn sealed() -> Vec<(String, String)> {
    let slot: &Slot = core::hint::black_box(&SLOT);
    let len = usize::try_from(slot.len).unwrap_or(0).min(CAPACITY);
    kvplug_settings::sealed::decode(slot.data.get(..len).unwrap_or_default())
}

#[cfg(feature = "layered")]
fn runtime_error(error: bindings::wasi::config::store::Error) -> Error {
    use bindings::wasi::config::store::Error as Runtime;
    match error {
        Runtime::Upstream(message) => Error::Upstream(message),
        Runtime::Io(message) => Error::Io(message),
    }
}

struct Config;

impl Guest for Config {
    fn get(key: String) -> Result<Option<String>, Error> {
        if let Some((_, value)) = sealed().into_iter().find(|(k, _)| *k == key) {
            return Ok(Some(value));
        }
        #[cfg(feature = "layered")]
        return bindings::wasi::config::store::get(&key).map_err(runtime_error);
        #[cfg(not(feature = "layered"))]
        Ok(None)
    }

    fn get_all() -> Result<Vec<(String, String)>, Error> {
        let sealed = sealed();
        #[cfg(feature = "layered")]
        {
            let mut all: Vec<(String, String)> = bindings::wasi::config::store::get_all()
                .map_err(runtime_error)?
                .into_iter()
                .filter(|(k, _)| !sealed.iter().any(|(s, _)| s == k))
                .collect();
            all.extend(sealed);
            Ok(all)
        }
        #[cfg(not(feature = "layered"))]
        Ok(sealed)
    }
}

#[expect(unsafe_code, reason = "wit-bindgen's export glue is unsafe FFI")]
mod glue {
    use super::Config;
    crate::bindings::export!(Config with_types_in crate::bindings);
}
