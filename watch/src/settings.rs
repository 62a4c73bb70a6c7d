//! The driver's settings through `wasi:config/store`: parsed by `kvplug-settings` (shared
//! with `kvplug seal`).

use alloc::format;
use alloc::string::String;

pub use kvplug_settings::watch::{OnGap, POSITIONS_BUCKET, WatchSettings};

/// Reads them from the `wasi:config/store` import.
pub fn load() -> Result<WatchSettings, String> {
    WatchSettings::from_lookup(|name| {
        kvplug_core::bindings::wasi::config::store::get(name).map_err(|e| {
            use kvplug_core::bindings::wasi::config::store::Error as ConfigError;
            let detail = match e {
                ConfigError::Upstream(m) | ConfigError::Io(m) => m,
            };
            format!("failed to read `{name}`: {detail}")
        })
    })
}
