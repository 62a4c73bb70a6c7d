//! The one trait every backend implements; the export glue (`exports`) sees nothing else.
//!
//! Each backend is a sibling module behind a cargo feature, and each build carries exactly one
//! of them, so every artifact (`kvplug-<backend>.wasm`) contains only the code it needs.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::Error;
use crate::settings::Settings;

#[cfg(feature = "http")]
pub mod http;

#[cfg(feature = "http")]
/// The backend of this build.
pub type Active = http::RestBackend;

#[cfg(not(any(feature = "http")))]
compile_error!("enable exactly one backend feature, e.g. `--features http`");

/// One page of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub keys: Vec<String>,
    /// `None` on the last page.
    pub cursor: Option<String>,
}

/// What a compare-and-swap is conditional on, as the backend spells it (an ETag, a
/// `mod_revision`, …), or that the key was absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    Absent,
    Tag(String),
}

/// A value together with the version it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: Option<Vec<u8>>,
    pub version: Version,
}

/// The result of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    Done,
    /// The key moved on; this is what it holds now.
    Conflict(Versioned),
}

/// A connection to one bucket of one service. Cloning is cheap and shares nothing mutable.
pub trait Backend: Clone + Sized {
    /// Connects to `bucket`, failing with `NoSuchStore` if the service does not have it.
    fn open(settings: &Settings, bucket: &str) -> Result<Self, Error>;
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), Error>;
    /// Deleting an absent key succeeds.
    fn delete(&self, key: &str) -> Result<(), Error>;
    fn exists(&self, key: &str) -> Result<bool, Error>;
    fn list(&self, cursor: Option<&str>) -> Result<Page, Error>;
    /// Adds `delta` to the ASCII decimal at `key` (absent is 0), atomically.
    fn increment(&self, key: &str, delta: i64) -> Result<i64, Error>;
    /// Reads the value and the version a later [`Backend::write_if`] is conditional on.
    fn read_versioned(&self, key: &str) -> Result<Versioned, Error>;
    /// Writes only if `key` is still at `expected`; never a blind write.
    fn write_if(&self, key: &str, expected: &Version, value: &[u8]) -> Result<Swap, Error>;
    /// One slot per key, in order.
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error>;
    fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), Error>;
    fn delete_many(&self, keys: &[String]) -> Result<(), Error>;
}
