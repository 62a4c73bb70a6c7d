//! Azurite's Table service, in memory, on a free loopback port, with the table `kvplug`
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

use super::{Service, log_file, node_tool};
use crate::process::{Running, free_port, try_http_with};

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
        "azure-table"
    }
    fn settings(&self) -> Settings {
        self.settings_with_key(KEY)
    }
}
