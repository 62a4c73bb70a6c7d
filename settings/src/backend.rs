//! What each backend requires of the settings, beyond what every backend shares.
//!
//! The adapter's `open` reads a backend's typed settings from here, and `kvplug seal` runs the
//! same checks against the backend of the adapter it seals, so both refuse a setting with the
//! same message. What a check cannot know before a bucket is named (how long the bucket's key
//! prefix gets) stays with the backend.

use alloc::format;
use alloc::string::String;

use crate::Settings;

/// The backends an adapter can be built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Http,
    Etcd,
    Redis,
    DynamoDb,
    AzureTable,
}

impl Backend {
    /// Every backend, in the order artifacts are listed.
    pub const ALL: [Backend; 5] = [
        Backend::Http,
        Backend::Etcd,
        Backend::Redis,
        Backend::DynamoDb,
        Backend::AzureTable,
    ];

    /// The name of the backend's cargo feature and artifact (`kvplug-<name>.wasm`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Http => "http",
            Backend::Etcd => "etcd",
            Backend::Redis => "redis",
            Backend::DynamoDb => "dynamodb",
            Backend::AzureTable => "azure-table",
        }
    }

    /// The backend called `name`.
    pub fn from_name(name: &str) -> Option<Backend> {
        Backend::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Checks one setting's value as this backend reads it, beyond [`crate::validate`]: what
    /// sealing can refuse even when other settings come from the runtime.
    pub fn validate(self, name: &str, value: &str) -> Result<(), String> {
        crate::validate(name, value)?;
        match (self, name) {
            (Backend::AzureTable, "table") => check_azure_table(value.trim()),
            _ => Ok(()),
        }
    }

    /// Checks complete settings as `open` of this backend does, before any bucket is named:
    /// what it requires, and a `prefix` too long for even the empty bucket name.
    pub fn check(self, settings: &Settings) -> Result<(), String> {
        match self {
            Backend::Http | Backend::Etcd => Ok(()),
            Backend::Redis => redis_space(&settings.prefix, ""),
            Backend::DynamoDb => {
                DynamoDbSettings::from_settings(settings)?;
                // The empty bucket name is encoded `~`.
                dynamodb_partition(settings.prefix.len() + "!~".len())
            }
            Backend::AzureTable => {
                AzureTableSettings::from_settings(settings)?;
                // The empty bucket name is encoded `~`.
                let prefix: usize = settings.prefix.chars().map(azure_field_units).sum();
                azure_field(prefix + "!~".len(), AZURE_PARTITION)
            }
        }
    }
}

/// Azure Table's limit on `PartitionKey` and `RowKey`: 1 KiB each, counted in UTF-16 (the
/// service stores strings as UTF-16; Azurite counts 512 JavaScript string units).
pub const AZURE_MAX_KEY_UNITS: usize = 512;

/// What an Azure `PartitionKey` holds, as its refusal names it.
pub const AZURE_PARTITION: &str = "bucket name (with the `prefix` setting and `!`)";

/// Whether Azure key fields must not hold `c` as it is: the service refuses or mishandles
/// these, and kvplug writes them as `~XX` (so `~` itself too).
pub fn azure_escaped(c: char) -> bool {
    matches!(c, '/' | '\\' | '#' | '?' | '%' | '\'' | '~') || c.is_control()
}

/// The UTF-16 units `c` takes in an Azure key field once escaped.
fn azure_field_units(c: char) -> usize {
    if azure_escaped(c) { 3 } else { c.len_utf16() }
}

/// Refuses an Azure key field (`what`) of `units` UTF-16 units over [`AZURE_MAX_KEY_UNITS`].
pub fn azure_field(units: usize, what: &str) -> Result<(), String> {
    if units > AZURE_MAX_KEY_UNITS {
        return Err(format!(
            "azure-table: a {what} may take 1 KiB ({AZURE_MAX_KEY_UNITS} UTF-16 units once `/ \\ # ? % ' ~` and control characters are escaped as ~XX); this one takes {units}"
        ));
    }
    Ok(())
}

/// Longest `prefix` and bucket name together on Redis. A write's script names the bucket's
/// key prefix three times in its URL (the value, its companion and the change stream the
/// watch driver reads), escaped once more for webdis (up to 10 bytes per byte); at this length
/// every URL, with the longest key and a script sent whole on first use, stays inside the
/// 64 KiB request target the host's HTTP stack accepts (1 KiB, before the change stream, no
/// longer did: measured by `the_longest_names_work_in_every_call`).
pub const REDIS_MAX_SPACE_BYTES: usize = 512;

/// Refuses a `prefix` and bucket name that take more than [`REDIS_MAX_SPACE_BYTES`].
pub fn redis_space(prefix: &str, bucket: &str) -> Result<(), String> {
    let space = prefix.len() + bucket.len();
    if space > REDIS_MAX_SPACE_BYTES {
        return Err(format!(
            "redis: the `prefix` setting and the bucket name take {space} bytes together; at most {REDIS_MAX_SPACE_BYTES} fit in the URLs webdis serves, where a write names them three times (the value, its companion, the change stream)"
        ));
    }
    Ok(())
}

/// DynamoDB's limit on a partition key's value.
pub const DYNAMODB_MAX_PARTITION_KEY_BYTES: usize = 2048;

/// Refuses a partition key (`prefix`, `!` and the encoded bucket name) of `len` bytes over
/// [`DYNAMODB_MAX_PARTITION_KEY_BYTES`].
pub fn dynamodb_partition(len: usize) -> Result<(), String> {
    if len > DYNAMODB_MAX_PARTITION_KEY_BYTES {
        return Err(format!(
            "DynamoDB partition keys hold at most {DYNAMODB_MAX_PARTITION_KEY_BYTES} bytes: prefix, `!` and encoded bucket name are {len}"
        ));
    }
    Ok(())
}

/// The DynamoDB backend's settings.
#[derive(Clone, PartialEq, Eq)]
pub struct DynamoDbSettings {
    /// `region`, or the one named by a `dynamodb.<region>.amazonaws.com` `url`.
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// `table`, `kvplug` by default.
    pub table: String,
}

impl DynamoDbSettings {
    /// The DynamoDB backend's view of `settings`.
    pub fn from_settings(settings: &Settings) -> Result<DynamoDbSettings, String> {
        let required = |value: &Option<String>, name: &str| {
            value
                .clone()
                .ok_or_else(|| format!("the dynamodb backend needs `{name}`"))
        };
        let region = match &settings.region {
            Some(region) => region.clone(),
            None => region_of_host(&settings.endpoint.authority).ok_or_else(|| {
                String::from(
                    "the dynamodb backend needs `region` (it is read from the `url` only for dynamodb.<region>.amazonaws.com)",
                )
            })?,
        };
        Ok(DynamoDbSettings {
            region,
            access_key_id: required(&settings.access_key_id, "access-key-id")?,
            secret_access_key: required(&settings.secret_access_key, "secret-access-key")?,
            session_token: settings.session_token.clone(),
            table: settings
                .table
                .clone()
                .unwrap_or_else(|| String::from("kvplug")),
        })
    }
}

/// `dynamodb.<region>.amazonaws.com[.cn]` names its region (the watch driver also finds the
/// region's streams endpoint by it).
pub fn region_of_host(authority: &str) -> Option<String> {
    let host = authority.split(':').next()?;
    let rest = host.strip_prefix("dynamodb.")?;
    let (region, domain) = rest.split_once('.')?;
    domain
        .starts_with("amazonaws.com")
        .then(|| String::from(region))
}

/// The Azure Table backend's settings.
#[derive(Clone, PartialEq, Eq)]
pub struct AzureTableSettings {
    pub account_name: String,
    /// The base64 key, checked for its alphabet by [`crate::validate`]; decoded by the signer.
    pub account_key: String,
    /// `table`, `kvplug` by default.
    pub table: String,
}

impl AzureTableSettings {
    /// The Azure Table backend's view of `settings`.
    pub fn from_settings(settings: &Settings) -> Result<AzureTableSettings, String> {
        let required = |value: &Option<String>, name: &str, hint: &str| {
            value
                .clone()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("azure-table needs `{name}`: {hint}"))
        };
        let account_name = required(
            &settings.account_name,
            "account-name",
            "the storage account's name (devstoreaccount1 for Azurite)",
        )?;
        let account_key = required(
            &settings.account_key,
            "account-key",
            "the storage account's base64 key",
        )?;
        let table = settings
            .table
            .clone()
            .unwrap_or_else(|| String::from("kvplug"));
        check_azure_table(&table)?;
        Ok(AzureTableSettings {
            account_name,
            account_key,
            table,
        })
    }
}

/// A table name the Table service accepts: 3 to 63 letters and digits, a letter first.
fn check_azure_table(name: &str) -> Result<(), String> {
    let ok = (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic());
    if ok {
        Ok(())
    } else {
        Err(String::from(
            "`table` must be 3 to 63 letters and digits, starting with a letter, for azure-table",
        ))
    }
}

// Hand-written so that the secrets can never reach a log line through `{:?}`.
impl core::fmt::Debug for DynamoDbSettings {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DynamoDbSettings")
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl core::fmt::Debug for AzureTableSettings {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AzureTableSettings")
            .field("account_name", &self.account_name)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::string::ToString;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let map: BTreeMap<&str, &str> = pairs.iter().copied().collect();
        Settings::from_lookup(|name| Ok(map.get(name).map(|v| v.to_string()))).unwrap()
    }

    #[test]
    fn the_region_is_read_from_aws_endpoints_only() {
        assert_eq!(
            region_of_host("dynamodb.eu-west-1.amazonaws.com").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            region_of_host("dynamodb.cn-north-1.amazonaws.com.cn:443").as_deref(),
            Some("cn-north-1")
        );
        assert_eq!(region_of_host("127.0.0.1:4567"), None);
        assert_eq!(region_of_host("dynamodb.example.org"), None);
    }

    #[test]
    fn names_round_trip() {
        for backend in Backend::ALL {
            assert_eq!(Backend::from_name(backend.name()), Some(backend));
        }
        assert_eq!(Backend::from_name("dynamo"), None);
    }

    #[test]
    fn dynamodb_reads_its_region_from_an_aws_url_and_needs_credentials() {
        let s = settings(&[
            ("url", "https://dynamodb.eu-west-1.amazonaws.com"),
            ("access-key-id", "AKID"),
            ("secret-access-key", "secret"),
        ]);
        let typed = DynamoDbSettings::from_settings(&s).unwrap();
        assert_eq!(
            (typed.region.as_str(), typed.table.as_str()),
            ("eu-west-1", "kvplug")
        );
        let s = settings(&[("url", "http://127.0.0.1:1"), ("access-key-id", "AKID")]);
        assert!(
            Backend::DynamoDb
                .check(&s)
                .unwrap_err()
                .contains("`region`")
        );
        let s = settings(&[("url", "http://127.0.0.1:1"), ("region", "r")]);
        assert_eq!(
            Backend::DynamoDb.check(&s).unwrap_err(),
            "the dynamodb backend needs `access-key-id`"
        );
    }

    #[test]
    fn azure_table_refuses_a_table_name_the_service_would() {
        assert!(Backend::AzureTable.validate("table", "kv_plug").is_err());
        assert!(Backend::DynamoDb.validate("table", "kv_plug").is_ok());
        assert!(Backend::AzureTable.validate("table", "kvplug2").is_ok());
        assert!(Backend::AzureTable.validate("table", "2kvplug").is_err());
        let s = settings(&[
            ("url", "http://127.0.0.1:1"),
            ("account-name", "devstoreaccount1"),
            ("account-key", "c2VjcmV0"),
        ]);
        assert_eq!(
            AzureTableSettings::from_settings(&s).unwrap().table,
            "kvplug"
        );
        let s = settings(&[("url", "http://127.0.0.1:1"), ("account-key", "c2VjcmV0")]);
        assert!(
            Backend::AzureTable
                .check(&s)
                .unwrap_err()
                .starts_with("azure-table needs `account-name`")
        );
    }
}
