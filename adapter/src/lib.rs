//! A kvplug adapter: exports `wasi:keyvalue` (both drafts: store, atomics, batch) and
//! implements it with the one backend of `kvplug-core` that this build's cargo feature picks
//! (one artifact per backend).
//!
//! Only the export glue lives here. The adapter is linked into a user's component, so a trap
//! kills the user's program: every failure is returned as a `wasi:keyvalue` error instead.

#![cfg_attr(all(target_arch = "wasm32", not(test)), no_std)]

extern crate alloc;

mod bindings;
mod error;
mod exports;

// The allocator, panic handler and ABI entry points of a no_std component.
#[cfg(all(target_arch = "wasm32", not(test)))]
use kvplug_guest_rt as _;

/// The backend of this build.
#[cfg(feature = "http")]
type Active = kvplug_core::backend::http::RestBackend;
/// The backend of this build.
#[cfg(feature = "etcd")]
type Active = kvplug_core::backend::etcd::EtcdBackend;
/// The backend of this build.
#[cfg(feature = "redis")]
type Active = kvplug_core::backend::redis::RedisBackend;
/// The backend of this build.
#[cfg(feature = "dynamodb")]
type Active = kvplug_core::backend::dynamodb::DynamoBackend;
/// The backend of this build.
#[cfg(feature = "azure-table")]
type Active = kvplug_core::backend::azure_table::TableBackend;

/// The backend's name (`kvplug_settings::backend::Backend::name`), in a custom section of the
/// artifact: `kvplug seal` reads it to check settings as this backend's `open` will.
#[cfg(feature = "http")]
const BACKEND_NAME: &str = "http";
#[cfg(feature = "etcd")]
const BACKEND_NAME: &str = "etcd";
#[cfg(feature = "redis")]
const BACKEND_NAME: &str = "redis";
#[cfg(feature = "dynamodb")]
const BACKEND_NAME: &str = "dynamodb";
#[cfg(feature = "azure-table")]
const BACKEND_NAME: &str = "azure-table";

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

/// How many backend features this build enables: it must be exactly one, since each
/// artifact speaks to one service.
const BACKENDS_ENABLED: usize = cfg!(feature = "http") as usize
    + cfg!(feature = "etcd") as usize
    + cfg!(feature = "redis") as usize
    + cfg!(feature = "dynamodb") as usize
    + cfg!(feature = "azure-table") as usize;
const _: () = assert!(
    BACKENDS_ENABLED == 1,
    "enable exactly one backend feature, e.g. `--no-default-features --features etcd`"
);
