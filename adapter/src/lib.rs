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

kvplug_core::artifact_backend!("http", "etcd", "redis", "dynamodb", "azure-table");
