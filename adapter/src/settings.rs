//! The adapter's settings, read through `wasi:config/store` at every `open`.
//!
//! Settings the adapter does not know are ignored: a runtime's config may be shared with the
//! application. Reading per `open` (not once per instance) keeps the adapter free of global state and
//! costs only a few host calls, no network.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::error::Error;
use crate::url::{self, Endpoint};

const DEFAULT_TIMEOUT_MS: u64 = 30_000;
const DEFAULT_PAGE_SIZE: u32 = 1000;

/// Parsed settings.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// `url`: the service.
    pub endpoint: Endpoint,
    /// `token`: sent as `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// `buckets`: comma-separated allow-list; `open` of anything else is `access-denied`.
    pub buckets: Option<Vec<String>>,
    /// `timeout-ms`: connect, first-byte and between-bytes timeout of every request.
    pub timeout_ms: u64,
    /// `page-size`: keys asked for per `list-keys` page.
    pub page_size: u32,
}

// Hand-written so that the token can never reach a log line through `{:?}`.
impl core::fmt::Debug for Settings {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Settings")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("buckets", &self.buckets)
            .field("timeout_ms", &self.timeout_ms)
            .field("page_size", &self.page_size)
            .finish()
    }
}

impl Settings {
    /// Reads the settings from the `wasi:config/store` import.
    pub fn load() -> Result<Settings, Error> {
        Settings::from_lookup(|name| {
            crate::bindings::wasi::config::store::get(name).map_err(|e| {
                use crate::bindings::wasi::config::store::Error as ConfigError;
                let detail = match e {
                    ConfigError::Upstream(m) | ConfigError::Io(m) => m,
                };
                Error::Settings(alloc::format!("failed to read `{name}`: {detail}"))
            })
        })
    }

    /// Parses settings from any source of `name → value`.
    pub fn from_lookup(
        mut lookup: impl FnMut(&str) -> Result<Option<String>, Error>,
    ) -> Result<Settings, Error> {
        let url = lookup("url")?.ok_or_else(|| {
            Error::Settings(
                "`url` is not set; give the service's address, e.g. url=http://127.0.0.1:8787"
                    .into(),
            )
        })?;
        let endpoint = url::parse(&url).map_err(Error::Settings)?;
        let token = lookup("token")?.filter(|t| !t.is_empty());
        let buckets = lookup("buckets")?.map(|list| {
            list.split(',')
                .map(|name| name.trim().to_string())
                .filter(|name| !name.is_empty())
                .collect::<Vec<_>>()
        });
        let timeout_ms = number(&mut lookup, "timeout-ms", 1..=3_600_000, DEFAULT_TIMEOUT_MS)?;
        let page_size = number(&mut lookup, "page-size", 1..=10_000, DEFAULT_PAGE_SIZE)?;
        Ok(Settings {
            endpoint,
            token,
            buckets,
            timeout_ms,
            page_size,
        })
    }

    /// Refuses buckets outside the allow-list, before any request is made.
    pub fn check_bucket(&self, bucket: &str) -> Result<(), Error> {
        match &self.buckets {
            Some(allowed) if !allowed.iter().any(|name| name == bucket) => Err(Error::AccessDenied),
            _ => Ok(()),
        }
    }
}

/// A whole-number setting within `range`, or `default` when unset.
fn number<T: core::str::FromStr + PartialOrd + core::fmt::Display>(
    lookup: &mut impl FnMut(&str) -> Result<Option<String>, Error>,
    name: &str,
    range: core::ops::RangeInclusive<T>,
    default: T,
) -> Result<T, Error> {
    match lookup(name)? {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse::<T>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                Error::Settings(alloc::format!(
                    "`{name}` must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, Error> {
        let map: BTreeMap<&str, &str> = pairs.iter().copied().collect();
        Settings::from_lookup(|name| Ok(map.get(name).map(|v| v.to_string())))
    }

    #[test]
    fn missing_url_is_a_clear_error() {
        let Err(Error::Settings(message)) = settings(&[]) else {
            panic!("a missing url must be a settings error");
        };
        assert!(message.contains("`url` is not set"), "{message}");
    }

    #[test]
    fn parses_every_setting() {
        let s = settings(&[
            ("url", "http://127.0.0.1:1"),
            ("token", "sekrit"),
            ("buckets", "a, b,,c"),
            ("timeout-ms", "250"),
            ("page-size", "7"),
        ])
        .unwrap();
        assert_eq!(
            s.buckets.as_deref(),
            Some(&["a".into(), "b".into(), "c".into()][..])
        );
        assert_eq!((s.timeout_ms, s.page_size), (250, 7));
        assert!(!alloc::format!("{s:?}").contains("sekrit"));
        assert_eq!(s.check_bucket("b"), Ok(()));
        assert_eq!(s.check_bucket("z"), Err(Error::AccessDenied));
    }

    #[test]
    fn rejects_bad_numbers() {
        for (name, value) in [
            ("timeout-ms", "0"),
            ("timeout-ms", "x"),
            ("page-size", "99999"),
        ] {
            assert!(
                matches!(
                    settings(&[("url", "http://h"), (name, value)]),
                    Err(Error::Settings(_))
                ),
                "{name}={value}"
            );
        }
    }
}
