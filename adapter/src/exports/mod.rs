//! The `wasi:keyvalue` exports: thin glue from the WIT functions to the active [`Backend`].
//!
//! [`Backend`]: crate::backend::Backend

mod draft2;
