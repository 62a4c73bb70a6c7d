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

kvplug_core::artifact_backend!("http", "etcd", "dynamodb", "redis");

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

// The export glue is unsafe FFI, generated through `kvplug_core::bindings_over_core!`: lints
// do not reach into another crate's macro, so no `expect(unsafe_code)` is needed here.
mod glue {
    use super::Driver;
    crate::bindings::export!(Driver with_types_in crate::bindings);
}
