//! The `azure-table` backend: Azurite's Table service, in memory, on a free loopback port, with the table `kvplug`
//! created: what `kvplug-azure-table.wasm` talks to in the tests.
//!
//! Azurite checks Shared Key signatures, so the table is created with a request signed
//! here, by code independent of the adapter's signing.

use std::process::Command;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use kvplug_codec::base64;
use kvplug_runner::Settings;
use sha2::Sha256;

use super::{
    BackendTests, Fewest, NameLimits, OversizedBatch, Secrets, Service, TestService, ValueLimit,
    log_file, node_tool,
};
use crate::fault_server::{Action, response};
use crate::process::{Running, free_port, try_http_with};

/// What the tests expect of `kvplug-azure-table.wasm`.
pub struct Backend;

impl BackendTests for Backend {
    const NAME: &'static str = "azure-table";
    // An entity's JSON may take 1 MiB (Azurite checks that on every write), and base64
    // makes values 4/3 larger.
    const VALUE_LIMIT: Option<ValueLimit> = Some(ValueLimit {
        stored: 768_000,
        refused: 768_001,
    });
    // Buckets are partitions of one table. The Table service cannot add, nor answer an
    // insert that conflicts with the current value: every increment is a read, then a
    // conditional write (or insert). A query's `$filter` may hold 15 comparisons, one
    // of them on the PartitionKey; an entity group transaction 100 operations.
    const FEWEST: Fewest = Fewest {
        open: 0,
        increment: 2,
        increment_new: 2,
        batch_read: 14,
        batch_write: 100,
        batch_delete: 100,
    };
    const MARK: Option<&'static str> = Some("x-ms-request-id: fault-server");
    const SIGNS: bool = true;
    const TAKES_TOKEN: bool = false;
    const TAKES_PREFIX: bool = true;
    const EXACT_PAGES: bool = true;
    const CAS_COMPARES_VALUES: bool = false;

    fn name_limits() -> NameLimits {
        // 512 UTF-16 units per key field; the partition key holds `!` before the bucket.
        NameLimits::new(
            "é".repeat(512),
            "1 KiB",
            "é".repeat(511),
            Some(("é".repeat(512), "1 KiB")),
        )
    }

    fn fault_settings(url: &str, secrets: &Secrets) -> Settings {
        let mut s = crate::settings(url);
        s.push(("account-name".into(), ACCOUNT.into()));
        s.push(("account-key".into(), secrets.account_key.into()));
        s
    }

    fn configured_secrets(secrets: &Secrets) -> Vec<&'static str> {
        vec![secrets.account_key]
    }

    fn error_body(message: &str) -> String {
        message.to_owned()
    }

    fn absent() -> Action {
        response(
            404,
            &["x-ms-request-id: r"],
            br#"{"odata.error":{"code":"ResourceNotFound","message":{"value":"The specified resource does not exist."}}}"#,
        )
    }

    fn requests() -> [&'static str; 11] {
        [
            "PUT /kvplug(PartitionKey=",
            "GET /kvplug(PartitionKey=",
            "DELETE /kvplug(PartitionKey=",
            "GET /kvplug(PartitionKey=",
            "GET /kvplug()?$filter=",
            "GET /kvplug(PartitionKey=",
            "GET /kvplug(PartitionKey=",
            "POST /kvplug:",
            "GET /kvplug()?$filter=",
            "POST /$batch:",
            "POST /$batch:",
        ]
    }

    fn oversized_batch() -> OversizedBatch {
        OversizedBatch {
            service: Box::new(Azurite::start()),
            size: 768_001,
            limit: "at most 768000 bytes",
        }
    }
}

/// Azurite's well-known development account.
pub const ACCOUNT: &str = "devstoreaccount1";
/// Its published key (not a secret: every Azurite has it).
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The table the adapter uses unless its `table` setting says otherwise.
pub const TABLE: &str = "kvplug";

/// `azurite-table` with its data in memory.
pub struct Azurite {
    _process: Running,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Azurite {
    /// Starts the Table service and creates the table `kvplug`.
    pub fn start() -> Azurite {
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = free_port();
        let mut command = Command::new(node_tool("azurite-table"));
        command
            .args(["--tableHost", "127.0.0.1", "--tablePort"])
            .arg(port.to_string())
            .args(["--inMemoryPersistence", "--disableTelemetry", "--silent"])
            .current_dir(dir.path())
            .stdout(log_file(dir.path(), "azurite.log"))
            .stderr(log_file(dir.path(), "azurite.err"));
        let mut process = Running::start(command);
        process.wait_for_port(port, Duration::from_secs(30));
        let azurite = Azurite {
            _process: process,
            _dir: dir,
            port,
        };
        azurite.create_table(TABLE);
        azurite
    }

    /// The `url` setting: the path-style endpoint of the development account.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// The settings with `account-key` replaced, for tests of wrong credentials.
    pub fn settings_with_key(&self, key: &str) -> Settings {
        let mut settings = crate::settings(&self.url());
        settings.push(("account-name".to_owned(), ACCOUNT.to_owned()));
        settings.push(("account-key".to_owned(), key.to_owned()));
        settings.push(("table".to_owned(), TABLE.to_owned()));
        settings
    }

    /// Creates table `name` (an existing one is fine).
    pub fn create_table(&self, name: &str) {
        let body = format!("{{\"TableName\":\"{name}\"}}");
        let (status, answer) = self.signed(
            "POST",
            &format!("/{ACCOUNT}/Tables"),
            Some(("application/json", body.as_bytes())),
        );
        assert!(
            matches!(status, 201 | 204 | 409),
            "creating table {name} in Azurite: HTTP {status}: {answer}"
        );
    }

    /// One request signed with the development key; `path` is sent as it is, and signed as
    /// it is (with no `comp` query).
    fn signed(&self, method: &str, path: &str, body: Option<(&str, &[u8])>) -> (u16, String) {
        let date = httpdate::fmt_http_date(SystemTime::now());
        let content_type = body.map_or("", |(content_type, _)| content_type);
        let to_sign = format!("{method}\n\n{content_type}\n{date}\n/{ACCOUNT}{path}");
        let key = base64::decode(KEY).expect("the development key is base64");
        let mut mac = <Hmac<Sha256>>::new_from_slice(&key).expect("any key length");
        mac.update(to_sign.as_bytes());
        let authorization = format!(
            "SharedKey {ACCOUNT}:{}",
            base64::encode(&mac.finalize().into_bytes())
        );
        let mut headers = vec![
            ("x-ms-date", date.as_str()),
            ("x-ms-version", "2019-02-02"),
            ("accept", "application/json;odata=nometadata"),
            ("dataserviceversion", "3.0"),
            ("authorization", authorization.as_str()),
        ];
        if !content_type.is_empty() {
            headers.push(("content-type", content_type));
        }
        let payload = body.map_or(&[][..], |(_, bytes)| bytes);
        try_http_with(self.port, method, path, &headers, payload)
            .unwrap_or_else(|e| panic!("{method} {path} on Azurite: {e}"))
    }
}

impl Service for Azurite {
    fn backend(&self) -> &'static str {
        <Backend as BackendTests>::NAME
    }
    fn settings(&self) -> Settings {
        self.settings_with_key(KEY)
    }
}

impl TestService for Azurite {
    type Backend = Backend;
    const NAME: &'static str = "azurite";
    const IMPLEMENTATION: &'static str = "kvplug-azure-table.wasm + Azurite 3.37.0 (Table)";
    const LABEL: &'static str = "kvplug-azure-table (Azurite)";
    fn start_default() -> Azurite {
        Azurite::start()
    }
}
