//! A kvplug adapter: exports `wasi:keyvalue@0.2.0-draft2` (store, atomics, batch) and
//! implements it over `wasi:http` against one key-value service, chosen at build time by a
//! cargo feature (one artifact per backend).
//!
//! The adapter is linked into a user's component, so a trap here kills the user's program:
//! every failure is returned as a `wasi:keyvalue` error instead. Hence the lints below, and
//! `no_std` on wasm, which keeps std's `wasi:cli` imports out of the artifact.

#![cfg_attr(all(target_arch = "wasm32", not(test)), no_std)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo
    )
)]

extern crate alloc;

mod backend;
mod bindings;
mod client;
#[cfg(any(feature = "dynamodb", feature = "azure-table"))]
mod clock;
mod deadline;
mod error;
mod exports;
mod redact;
mod settings;
#[cfg(any(feature = "dynamodb", feature = "azure-table"))]
mod signing;

// The allocator, panic handler and ABI entry points of a no_std component.
#[cfg(all(target_arch = "wasm32", not(test)))]
use kvplug_guest_rt as _;
