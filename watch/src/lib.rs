//! A watch driver: follows one backend's change feed and calls the app's `wasi:keyvalue`
//! `watcher` for every change of the watched buckets (issue #15, docs/watch-design.md).
//!
//! It is linked between an app in the `watch-service` world and the adapter the app imports
//! its store from: it imports that same store, so the bucket handed to `on-set` is a bucket of
//! the app's own adapter instance, and exports `wasi:cli/run`, so a runtime runs the whole
//! composition as a long-lived worker.
//!
//! Delivery is at least once and in feed order (commit order on every backend with a driver):
//! a batch's position is saved, through the adapter, only after every change in it was
//! delivered, so a driver that dies (a signal, a trapping watcher) delivers the batch again on
//! its next start.

#![cfg_attr(all(target_arch = "wasm32", not(test)), no_std)]

extern crate alloc;

mod bindings;
mod driver;
mod log;
mod positions;
mod settings;

// The allocator, panic handler and ABI entry points of a no_std component.
#[cfg(all(target_arch = "wasm32", not(test)))]
use kvplug_guest_rt as _;

/// The change feed of this build's backend.
#[cfg(feature = "http")]
type ActiveFeed = kvplug_core::feed::http::RestFeed;
/// The change feed of this build's backend.
#[cfg(feature = "etcd")]
type ActiveFeed = kvplug_core::feed::etcd::EtcdFeed;
/// The change feed of this build's backend.
#[cfg(feature = "dynamodb")]
type ActiveFeed = kvplug_core::feed::dynamodb::DynamoFeed;
/// The change feed of this build's backend.
#[cfg(feature = "redis")]
type ActiveFeed = kvplug_core::feed::redis::RedisFeed;

/// The backend's name in a custom section, as the adapters carry it: `kvplug seal` reads it to
/// check the driver's settings as this backend's feed will.
#[cfg(feature = "http")]
const BACKEND_NAME: &str = "http";
#[cfg(feature = "etcd")]
const BACKEND_NAME: &str = "etcd";
#[cfg(feature = "dynamodb")]
const BACKEND_NAME: &str = "dynamodb";
#[cfg(feature = "redis")]
const BACKEND_NAME: &str = "redis";

#[expect(unsafe_code, reason = "a custom section is placed with `link_section`")]
#[unsafe(link_section = "kvplug-backend")]
#[used]
static BACKEND_SECTION: [u8; BACKEND_NAME.len()] = match BACKEND_NAME
    .as_bytes()
    .first_chunk::<{ BACKEND_NAME.len() }>()
{
    Some(bytes) => *bytes,
    None => [0; BACKEND_NAME.len()],
};

const BACKENDS_ENABLED: usize = cfg!(feature = "http") as usize
    + cfg!(feature = "etcd") as usize
    + cfg!(feature = "dynamodb") as usize
    + cfg!(feature = "redis") as usize;
const _: () = assert!(
    BACKENDS_ENABLED == 1,
    "enable exactly one backend feature, e.g. `--no-default-features --features etcd`"
);

struct Driver;

impl bindings::exports::wasi::cli::run::Guest for Driver {
    fn run() -> Result<(), ()> {
        match driver::run::<ActiveFeed>() {
            Ok(summary) => {
                log::line(&summary);
                Ok(())
            }
            Err(message) => {
                log::line(&alloc::format!("kvplug-watch: stopped: {message}"));
                Err(())
            }
        }
    }
}

#[expect(unsafe_code, reason = "wit-bindgen's export glue is unsafe FFI")]
mod glue {
    use super::Driver;
    crate::bindings::export!(Driver with_types_in crate::bindings);
}
