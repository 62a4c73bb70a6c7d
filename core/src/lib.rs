//! The library behind every kvplug adapter: the HTTP client over `wasi:http`, the errors, the
//! [`Backend`](backend::Backend) trait with the mechanisms every backend shares, each backend
//! (one cargo feature each) and the request signing the cloud backends need.
//!
//! The component crate (`kvplug-adapter`) holds only the `wasi:keyvalue` export glue and picks
//! one backend per artifact. Everything here is `pub`, so one build with every backend enabled
//! is checked and tested once, and a build with one backend has no dead code to excuse.
//!
//! The adapter is linked into a user's component, so a trap here kills the user's program:
//! every failure is returned as an [`Error`](error::Error) instead. Hence the lints below, and
//! `no_std` on wasm, which keeps std's `wasi:cli` imports out of the artifact.

#![cfg_attr(all(target_arch = "wasm32", not(test)), no_std)]

extern crate alloc;

pub mod backend;
pub mod bindings;
pub mod client;
#[cfg(any(feature = "dynamodb", feature = "azure-table"))]
pub mod clock;
pub mod deadline;
pub mod error;
#[cfg(feature = "feed")]
pub mod feed;
pub mod redact;
pub mod settings;
#[cfg(any(feature = "dynamodb", feature = "azure-table"))]
pub mod signing;
