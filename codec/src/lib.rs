//! Small codecs the adapter's backends speak: base64 (etcd, DynamoDB, Azure Table) and RESP2
//! (Redis replies through webdis). `no_std` + `alloc`, no dependencies, and no code path that
//! panics: malformed input is always an error value, because a trap would kill the component.

#![no_std]
// Linked into the adapter artifacts, where a panic is a trap in the user's component: every
// failure is an error value instead (the same lints as the adapter's).
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

pub mod base64;
pub mod resp;
