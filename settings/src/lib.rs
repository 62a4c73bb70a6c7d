//! The settings of a kvplug adapter: their names, how each is parsed, and what is valid.
//!
//! One crate for both sides: the adapter parses settings at `open`, and the sealing tool
//! validates them before baking them into an artifact, so a value `kvplug seal` accepts is
//! exactly a value the adapter accepts. `no_std` + `alloc`, because the adapter is.

#![no_std]

extern crate alloc;

pub mod backend;
pub mod layout;
pub mod sealed;
pub mod url;
pub mod watch;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::url::Endpoint;

/// Every setting an adapter reads. Others are ignored by the adapter (a runtime's config
/// may be shared with the application) and refused by the sealing tool (a typo there would
/// otherwise vanish silently).
pub const NAMES: [&str; 14] = [
    "url",
    "token",
    "buckets",
    "timeout-ms",
    "idle-timeout-ms",
    "page-size",
    "prefix",
    "table",
    "region",
    "access-key-id",
    "secret-access-key",
    "session-token",
    "account-name",
    "account-key",
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
    /// `buckets`: allow-list, separated by commas, or by spaces when it has none
    /// ([`parse_names`]); `open` of anything else is `access-denied`.
    pub buckets: Option<Vec<String>>,
    /// `timeout-ms`: the longest a `wasi:keyvalue` call may take, every request, retry and
    /// backoff of it included.
    pub timeout_ms: u64,
    /// `idle-timeout-ms`: the longest wait for a connection, the first byte of an answer or
    /// the next one (never beyond the call's deadline); `timeout-ms` when not set.
    pub idle_timeout_ms: u64,
    /// `page-size`: keys asked for per `list-keys` page.
    pub page_size: u32,
    /// `prefix`: where kvplug's keys live in a shared keyspace (`etcd`, `redis`) or table
    /// (`dynamodb`, `azure-table`), so that one service can serve several applications;
    /// empty by default, never holding [`layout::MARKER`].
    pub prefix: String,
    /// `table`: the table holding every bucket (`dynamodb`, `azure-table`).
    pub table: Option<String>,
    /// `region`: the AWS region requests are signed for (`dynamodb`).
    pub region: Option<String>,
    /// `access-key-id`, `secret-access-key` and the optional `session-token` of temporary
    /// credentials (`dynamodb`).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// `account-name` and its base64 `account-key` (`azure-table`, Shared Key signing).
    pub account_name: Option<String>,
    pub account_key: Option<String>,
}

// Hand-written so that the token can never reach a log line through `{:?}`.
impl core::fmt::Debug for Settings {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Settings")
            .field("endpoint", &self.endpoint)
            .field("token", &redacted(&self.token))
            .field("buckets", &self.buckets)
            .field("timeout_ms", &self.timeout_ms)
            .field("idle_timeout_ms", &self.idle_timeout_ms)
            .field("page_size", &self.page_size)
            .field("prefix", &self.prefix)
            .field("table", &self.table)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("account_name", &self.account_name)
            .field("account_key", &redacted(&self.account_key))
            .finish()
    }
}

fn redacted(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| "<redacted>")
}

/// A list of names: separated by commas when it holds one, each name trimmed (so a name may
/// hold a space), otherwise by spaces. wasmtime's `-S config-var=…` cannot carry a comma, so a
/// list given on its command line is spaced; a single name with a space is written with a
/// trailing comma (`my bucket,`). Empty names are dropped.
pub fn parse_names(list: &str) -> Vec<String> {
    let separator = if list.contains(',') { ',' } else { ' ' };
    list.split(separator)
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(String::from)
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
        "prefix" => layout::check_prefix(value),
        "token" | "buckets" | "region" | "access-key-id" | "secret-access-key"
        | "session-token" | "account-name" => Ok(()),
        "table" => parse_table(value).map(drop),
        "account-key" => parse_account_key(value).map(drop),
        "timeout-ms" | "idle-timeout-ms" => parse_number(name, value, TIMEOUT_RANGE).map(drop),
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
        let buckets = lookup("buckets")?.map(|list| parse_names(&list));
        let timeout_ms = match lookup("timeout-ms")? {
            None => DEFAULT_TIMEOUT_MS,
            Some(text) => parse_number("timeout-ms", &text, TIMEOUT_RANGE)?,
        };
        let idle_timeout_ms = match lookup("idle-timeout-ms")? {
            None => timeout_ms,
            Some(text) => parse_number("idle-timeout-ms", &text, TIMEOUT_RANGE)?,
        };
        let page_size = match lookup("page-size")? {
            None => DEFAULT_PAGE_SIZE,
            Some(text) => parse_number("page-size", &text, PAGE_SIZE_RANGE)?,
        };
        let prefix = lookup("prefix")?.unwrap_or_default();
        layout::check_prefix(&prefix)?;
        let mut text = |name: &str| -> Result<Option<String>, String> {
            Ok(lookup(name)?
                .map(|v| String::from(v.trim()))
                .filter(|v| !v.is_empty()))
        };
        let table = text("table")?.map(|t| parse_table(&t)).transpose()?;
        let account_key = text("account-key")?;
        if let Some(key) = &account_key {
            parse_account_key(key)?;
        }
        Ok(Settings {
            endpoint,
            token,
            buckets,
            timeout_ms,
            idle_timeout_ms,
            page_size,
            prefix,
            table,
            region: text("region")?,
            access_key_id: text("access-key-id")?,
            secret_access_key: text("secret-access-key")?,
            session_token: text("session-token")?,
            account_name: text("account-name")?,
            account_key,
        })
    }

    /// The credentials among the settings, to be scrubbed from anything quoted back.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        [
            &self.token,
            &self.secret_access_key,
            &self.session_token,
            &self.account_key,
        ]
        .into_iter()
        .filter_map(|s| s.as_deref())
        .filter(|s| !s.is_empty())
    }

    /// Whether the bucket allow-list (if any) admits `bucket`.
    pub fn allows(&self, bucket: &str) -> bool {
        self.buckets
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|name| name == bucket))
    }
}

/// A table name both DynamoDB (3–255 of `A-Za-z0-9_.-`) and Azure Table (3–63
/// alphanumerics, not starting with a digit) would accept is checked by the backend; here
/// only what neither accepts is refused.
fn parse_table(name: &str) -> Result<String, String> {
    let ok = (3..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(String::from(name))
    } else {
        Err(String::from(
            "`table` must be 3 to 255 of the characters A-Z a-z 0-9 _ . -",
        ))
    }
}

/// An Azure account key is base64 (usually 64 bytes); the message never repeats it.
fn parse_account_key(key: &str) -> Result<(), String> {
    let ok = !key.is_empty()
        && key.len().is_multiple_of(4)
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if ok {
        Ok(())
    } else {
        Err(String::from(
            "`account-key` must be the storage account's base64 key (as the Azure portal shows it)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let map: BTreeMap<&str, &str> = pairs.iter().copied().collect();
        Settings::from_lookup(|name| Ok(map.get(name).map(|v| String::from(*v))))
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
    fn name_lists_split_at_commas_else_at_spaces() {
        let names = |list: &str| parse_names(list);
        assert_eq!(names("a, b,,c"), ["a", "b", "c"]);
        assert_eq!(names("notes  orders"), ["notes", "orders"]);
        // With a comma, a space belongs to the name: nothing is granted that was not named.
        assert_eq!(names("my bucket,other"), ["my bucket", "other"]);
        assert_eq!(names("my bucket,"), ["my bucket"]);
        assert!(names(" , ").is_empty());
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
        assert!(validate("table", "kv").is_err());
        assert_eq!(validate("table", "kvplug-data.v1"), Ok(()));
        let message = validate("account-key", "not base64!").unwrap_err();
        assert!(!message.contains("not base64!"), "{message}");
    }

    #[test]
    fn a_prefix_may_not_hold_the_layout_marker() {
        let message = settings(&[("url", "http://h"), ("prefix", "apps!one/")]).unwrap_err();
        assert!(
            message.contains("`prefix`") && message.contains("`!`"),
            "{message}"
        );
        assert_eq!(validate("prefix", "apps!one/"), Err(message));
        assert_eq!(validate("prefix", "apps/one:*~%"), Ok(()));
        assert_eq!(validate("prefix", ""), Ok(()));
    }

    #[test]
    fn cloud_credentials_are_secrets() {
        let s = settings(&[
            ("url", "http://127.0.0.1:1"),
            ("table", "kvplug"),
            ("region", "eu-west-1"),
            ("access-key-id", "AKIDEXAMPLE"),
            ("secret-access-key", "wJalrXUtnFEMI/K7MDENG"),
            ("session-token", "FQoGZXIvYXdzEBY"),
            ("account-name", "devstoreaccount1"),
            ("account-key", "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="),
        ])
        .unwrap();
        let debug = format!("{s:?}");
        for (name, value) in [
            ("secret-access-key", "wJalrXUtnFEMI"),
            ("session-token", "FQoGZXIvYXdzEBY"),
            ("account-key", "Eby8vdM02xNOcqFl"),
        ] {
            assert!(!debug.contains(value), "{name} leaked: {debug}");
        }
        assert_eq!(s.secrets().count(), 3);
        assert_eq!(s.table.as_deref(), Some("kvplug"));
        assert!(debug.contains("AKIDEXAMPLE") && debug.contains("eu-west-1"));
    }
}
