//! The adapter's settings, read through `wasi:config/store` at every `open`.
//!
//! Parsing lives in `kvplug-settings`, shared with the sealing tool. Reading per `open` (not
//! once per instance) keeps the adapter free of global state and costs only a few host
//! calls, no network.

pub use kvplug_settings::Settings;

use crate::error::Error;

/// Reads the settings from the `wasi:config/store` import.
pub fn load() -> Result<Settings, Error> {
    Settings::from_lookup(|name| {
        crate::bindings::wasi::config::store::get(name).map_err(|e| {
            use crate::bindings::wasi::config::store::Error as ConfigError;
            let detail = match e {
                ConfigError::Upstream(m) | ConfigError::Io(m) => m,
            };
            alloc::format!("failed to read `{name}`: {detail}")
        })
    })
    .map_err(Error::Settings)
}

/// Refuses buckets outside the allow-list, before any request is made.
pub fn check_bucket(settings: &Settings, bucket: &str) -> Result<(), Error> {
    if settings.allows(bucket) {
        Ok(())
    } else {
        Err(Error::AccessDenied)
    }
}
