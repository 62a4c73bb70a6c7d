//! Bindings for the driver's world: the imports shared with `kvplug-core` are its own, so
//! there is one set of `wasi:http` types; the store and watcher are the draft this build is for.

use alloc::string::String;
use alloc::vec::Vec;

#[cfg(not(feature = "draft"))]
kvplug_core::bindings_over_core!("../wit", "kvplug:adapter/watch-driver");
#[cfg(feature = "draft")]
kvplug_core::bindings_over_core!("../wit", "kvplug:adapter/watch-driver-draft");

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

/// Where a `list-keys` page starts: each draft has its own cursor.
#[cfg(feature = "draft")]
pub type Cursor = u64;
/// Where a `list-keys` page starts: each draft has its own cursor.
#[cfg(not(feature = "draft"))]
pub type Cursor = String;

/// One page of `bucket`'s keys from `cursor` (none: the first), and where the next starts.
pub fn list_page(
    bucket: &store::Bucket,
    cursor: Option<&Cursor>,
) -> Result<(Vec<String>, Option<Cursor>), store::Error> {
    #[cfg(feature = "draft")]
    let page = bucket.list_keys(cursor.copied())?;
    #[cfg(not(feature = "draft"))]
    let page = bucket.list_keys(cursor.map(String::as_str))?;
    Ok((page.keys, page.cursor))
}
