//! Small codecs the adapter's backends speak: base64 (etcd, DynamoDB, Azure Table) and RESP2
//! (Redis replies through webdis). `no_std` + `alloc`, no dependencies, and no code path that
//! panics: malformed input is always an error value, because a trap would kill the component.

#![no_std]

extern crate alloc;

pub mod base64;
pub mod resp;
