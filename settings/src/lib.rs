//! The settings of a kvplug adapter: their names, how each is parsed, and what is valid.
//!
//! One crate for both sides: the adapter parses settings at `open`, and the sealing tool
//! validates them before baking them into an artifact, so a value `kvplug seal` accepts is
//! exactly a value the adapter accepts. `no_std` + `alloc`, because the adapter is.

#![no_std]

extern crate alloc;

pub mod sealed;
pub mod url;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::url::Endpoint;

/// Every setting an adapter reads. Others are ignored by the adapter (a runtime's config
/// may be shared with the application) and refused by the sealing tool (a typo there would
/// otherwise vanish silently).
pub const NAMES: [&str; 6] = [
    "url",
    "token",
    "buckets",
    "timeout-ms",
    "page-size",
    "prefix",
];

const DEFAULT_TIMEOUT_MS: u64 = 30_000;
const DEFAULT_PAGE_SIZE: u32 = 1000;

/// Parsed settings.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// `url`: the service.
    pub endpoint: Endpoint,
    /// `token`: the credential, in the form the backend takes it (a bearer token for `http`,
    /// `user:password` sent as HTTP Basic for `redis`).
    pub token: Option<String>,
    /// `buckets`: comma-separated allow-list; `open` of anything else is `access-denied`.
    pub buckets: Option<Vec<String>>,
    /// `timeout-ms`: connect, first-byte and between-bytes timeout of every request.
    pub timeout_ms: u64,
    /// `page-size`: keys asked for per `list-keys` page.
    pub page_size: u32,
    /// `prefix`: where kvplug's keys live in a shared keyspace (`etcd`, `redis`), so that one
    /// cluster can serve several applications; empty by default.
    pub prefix: String,
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
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn parse_buckets(list: &str) -> Vec<String> {
    list.split(',')
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect()
}

/// A whole number within `range`.
fn parse_number<T: core::str::FromStr + PartialOrd + core::fmt::Display>(
    name: &str,
    text: &str,
    range: core::ops::RangeInclusive<T>,
) -> Result<T, String> {
    text.trim()
        .parse::<T>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            format!(
                "`{name}` must be a whole number from {} to {}",
                range.start(),
                range.end()
            )
        })
}

const TIMEOUT_RANGE: core::ops::RangeInclusive<u64> = 1..=3_600_000;
const PAGE_SIZE_RANGE: core::ops::RangeInclusive<u32> = 1..=10_000;

/// Checks one setting on its own: the name is known and the value parses. The message
/// never repeats the value (it may be a secret).
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    match name {
        "url" => url::parse(value).map(drop),
        "token" | "buckets" | "prefix" => Ok(()),
        "timeout-ms" => parse_number(name, value, TIMEOUT_RANGE).map(drop),
        "page-size" => parse_number(name, value, PAGE_SIZE_RANGE).map(drop),
        other => Err(format!(
            "unknown setting `{other}`; known: {}",
            NAMES.join(", ")
        )),
    }
}

impl Settings {
    /// Parses settings from any source of `name → value`; a lookup failure is passed on
    /// as it is.
    pub fn from_lookup(
        mut lookup: impl FnMut(&str) -> Result<Option<String>, String>,
    ) -> Result<Settings, String> {
        let url = lookup("url")?.ok_or_else(|| {
            String::from(
                "`url` is not set; give the service's address, e.g. url=http://127.0.0.1:8787",
            )
        })?;
        let endpoint = url::parse(&url)?;
        let token = lookup("token")?.filter(|t| !t.is_empty());
        let buckets = lookup("buckets")?.map(|list| parse_buckets(&list));
        let timeout_ms = match lookup("timeout-ms")? {
            None => DEFAULT_TIMEOUT_MS,
            Some(text) => parse_number("timeout-ms", &text, TIMEOUT_RANGE)?,
        };
        let page_size = match lookup("page-size")? {
            None => DEFAULT_PAGE_SIZE,
            Some(text) => parse_number("page-size", &text, PAGE_SIZE_RANGE)?,
        };
        let prefix = lookup("prefix")?.unwrap_or_default();
        Ok(Settings {
            endpoint,
            token,
            buckets,
            timeout_ms,
            page_size,
            prefix,
        })
    }

    /// Whether the bucket allow-list (if any) admits `bucket`.
    pub fn allows(&self, bucket: &str) -> bool {
        self.buckets
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|name| name == bucket))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let map: BTreeMap<&str, &str> = pairs.iter().copied().collect();
        Settings::from_lookup(|name| Ok(map.get(name).map(|v| v.to_string())))
    }

    #[test]
    fn missing_url_is_a_clear_error() {
        let message = settings(&[]).unwrap_err();
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
            ("prefix", "apps/one/"),
        ])
        .unwrap();
        assert_eq!(s.prefix, "apps/one/");
        assert_eq!(
            s.buckets.as_deref(),
            Some(&["a".into(), "b".into(), "c".into()][..])
        );
        assert_eq!((s.timeout_ms, s.page_size), (250, 7));
        assert!(!format!("{s:?}").contains("sekrit"));
        assert!(s.allows("b"));
        assert!(!s.allows("z"));
        assert!(settings(&[("url", "http://h")]).unwrap().allows("anything"));
    }

    #[test]
    fn rejects_bad_numbers() {
        for (name, value) in [
            ("timeout-ms", "0"),
            ("timeout-ms", "x"),
            ("page-size", "99999"),
        ] {
            assert!(
                settings(&[("url", "http://h"), (name, value)]).is_err(),
                "{name}={value}"
            );
            assert!(validate(name, value).is_err(), "{name}={value}");
        }
    }

    #[test]
    fn validate_names_known_settings_and_hides_values() {
        assert_eq!(validate("url", "http://127.0.0.1:8787"), Ok(()));
        assert_eq!(validate("buckets", "a,b"), Ok(()));
        let message = validate("tokn", "secret-value").unwrap_err();
        assert!(
            message.contains("unknown setting `tokn`") && message.contains("token"),
            "{message}"
        );
        assert!(!message.contains("secret-value"));
        assert!(validate("url", "ftp://x").is_err());
    }
}
