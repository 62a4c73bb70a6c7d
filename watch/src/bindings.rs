//! Bindings for the driver's world: the imports shared with `kvplug-core` are its own, so
//! there is one set of `wasi:http` types; the store and watcher are the draft this build is for.

macro_rules! driver_bindings {
    ($world:literal) => {
        wit_bindgen::generate!({
            path: "../wit",
            world: $world,
            with: {
                "wasi:http/types@0.2.0": kvplug_core::bindings::wasi::http::types,
                "wasi:http/outgoing-handler@0.2.0": kvplug_core::bindings::wasi::http::outgoing_handler,
                "wasi:config/store@0.2.0-rc.1": kvplug_core::bindings::wasi::config::store,
                "wasi:clocks/wall-clock@0.2.0": kvplug_core::bindings::wasi::clocks::wall_clock,
                "wasi:clocks/monotonic-clock@0.2.0": kvplug_core::bindings::wasi::clocks::monotonic_clock,
                "wasi:io/poll@0.2.0": kvplug_core::bindings::wasi::io::poll,
                "wasi:io/error@0.2.0": kvplug_core::bindings::wasi::io::error,
                "wasi:io/streams@0.2.0": kvplug_core::bindings::wasi::io::streams,
            },
            generate_all,
            pub_export_macro: true,
        });
    };
}

use alloc::string::String;

#[cfg(not(feature = "draft"))]
driver_bindings!("kvplug:adapter/watch-driver");
#[cfg(feature = "draft")]
driver_bindings!("kvplug:adapter/watch-driver-draft");

#[cfg(feature = "draft")]
pub use wasi::keyvalue0_2_0_draft::{store, watcher};
#[cfg(not(feature = "draft"))]
pub use wasi::keyvalue0_2_0_draft2::{store, watcher};

/// A store error as text.
pub fn describe(error: &store::Error) -> String {
    match error {
        store::Error::NoSuchStore => "no such store".into(),
        store::Error::AccessDenied => "access denied".into(),
        store::Error::Other(message) => message.clone(),
    }
}
