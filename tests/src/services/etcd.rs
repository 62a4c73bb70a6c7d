//! The `etcd` backend: one etcd member, or a three-member cluster behind `etcd gateway`.

use std::process::Command;
use std::time::Duration;

use kvplug_runner::Settings;

use super::{
    BackendTests, Fewest, NameLimits, OversizedBatch, Secrets, Service, TestService, ValueLimit,
    log_file, require, wait_for_http, wide,
};
use crate::fault_server::{Action, response};
use crate::process::{Running, free_port};

/// What the tests expect of `kvplug-etcd.wasm`.
pub struct Backend;

impl BackendTests for Backend {
    const NAME: &'static str = "etcd";
    const VALUE_LIMIT: Option<ValueLimit> = None;
    // A bucket is a key range: nothing to check. etcd cannot add, so incrementing an
    // existing counter is a read, then a conditional write (1 for a new counter).
    // etcd's default --max-txn-ops is 128; `delete-many` deletes each key's companion (the
    // entries extension's metadata) with it, so 64 keys a transaction.
    const FEWEST: Fewest = Fewest {
        open: 0,
        increment: 2,
        increment_new: 1,
        batch_read: 128,
        batch_write: 128,
        batch_delete: 64,
    };
    const MARK: Option<&'static str> = None;
    const SIGNS: bool = false;
    const TAKES_TOKEN: bool = true;
    const TAKES_PREFIX: bool = true;
    const EXACT_PAGES: bool = true;
    const CAS_COMPARES_VALUES: bool = false;

    fn name_limits() -> NameLimits {
        // etcd limits requests, not keys: the adapter's own limit keeps every call inside
        // the default request limit. Bucket names are not limited.
        NameLimits::new(wide(64 * 1024), "the 65536 bytes", wide(1024), None)
    }

    fn fault_settings(url: &str, secrets: &Secrets) -> Settings {
        super::http::token_settings(url, secrets)
    }

    fn configured_secrets(secrets: &Secrets) -> Vec<&'static str> {
        secrets.token.into_iter().collect()
    }

    fn error_body(message: &str) -> String {
        message.to_owned()
    }

    fn absent() -> Action {
        response(200, &[], br#"{"header":{"revision":"1"}}"#)
    }

    fn requests() -> [&'static str; 11] {
        [
            "POST /v3/kv/put:",
            "POST /v3/kv/range:",
            // `delete` removes the key and its companion in one transaction.
            "POST /v3/kv/txn:",
            "POST /v3/kv/range:",
            "POST /v3/kv/range:",
            "POST /v3/kv/txn:",
            "POST /v3/kv/range:",
            "POST /v3/kv/txn:",
            "POST /v3/kv/txn:",
            "POST /v3/kv/txn:",
            "POST /v3/kv/txn:",
        ]
    }

    fn oversized_batch() -> OversizedBatch {
        OversizedBatch {
            service: Box::new(Etcd::start(&[])),
            size: 1_600_000,
            limit: "--max-request-bytes",
        }
    }
}

/// One etcd member, data in a temporary directory.
pub struct Etcd {
    process: Option<Running>,
    data: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    extra: Vec<String>,
}

impl Etcd {
    /// Starts a single-member cluster; `extra` are further etcd flags.
    pub fn start(extra: &[&str]) -> Etcd {
        require("etcd", "etcd-server");
        let mut etcd = Etcd {
            process: None,
            data: tempfile::tempdir().expect("temporary directory"),
            client_port: free_port(),
            peer_port: free_port(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        etcd.resume();
        etcd
    }

    /// `http://127.0.0.1:<client port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Kills the member (its data stays).
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Starts the member again on the same ports and data.
    pub fn resume(&mut self) {
        let client = self.url();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new("etcd");
        command
            .args(["--name", "kvplug-test", "--data-dir"])
            .arg(self.data.path().join("member"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("kvplug-test={peer}")])
            .args(["--log-outputs", "stderr", "--logger", "zap"])
            .args(&self.extra)
            .stdout(std::process::Stdio::null())
            .stderr(log_file(self.data.path(), "etcd.log"));
        let mut running = Running::start(command);
        running.wait_for_port(self.client_port, Duration::from_secs(20));
        wait_for_http(self.client_port, "/health", "\"health\":\"true\"");
        self.process = Some(running);
    }
}

impl Service for Etcd {
    fn backend(&self) -> &'static str {
        <Backend as BackendTests>::NAME
    }
    fn settings(&self) -> Settings {
        crate::settings(&self.url())
    }
}

impl TestService for Etcd {
    type Backend = Backend;
    const NAME: &'static str = "etcd";
    const IMPLEMENTATION: &'static str = "kvplug-etcd.wasm + etcd 3.4 (v3 JSON gateway)";
    const LABEL: &'static str = "kvplug-etcd";
    fn start_default() -> Etcd {
        // Big enough for the 4 MiB values of the semantics tests; the default is 1.5 MiB.
        Etcd::start(&["--max-request-bytes", "10485760"])
    }
}

/// A three-member etcd cluster behind `etcd gateway`, the TCP proxy etcd ships: what the
/// README tells users to point `url` at when they outgrow one machine.
pub struct EtcdCluster {
    members: Vec<Option<Running>>,
    _gateway: Running,
    _data: tempfile::TempDir,
    gateway_port: u16,
}

impl EtcdCluster {
    pub fn start() -> EtcdCluster {
        require("etcd", "etcd-server");
        let data = tempfile::tempdir().expect("temporary directory");
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members: Vec<Running> = ports
            .iter()
            .enumerate()
            .map(|(i, (client, peer))| {
                let client = format!("http://127.0.0.1:{client}");
                let peer = format!("http://127.0.0.1:{peer}");
                let mut command = Command::new("etcd");
                command
                    .args(["--name", &format!("m{i}"), "--data-dir"])
                    .arg(data.path().join(format!("m{i}")))
                    .args(["--listen-client-urls", &client])
                    .args(["--advertise-client-urls", &client])
                    .args(["--listen-peer-urls", &peer])
                    .args(["--initial-advertise-peer-urls", &peer])
                    .args(["--initial-cluster", &cluster])
                    .args(["--log-outputs", "stderr", "--logger", "zap"])
                    .stdout(std::process::Stdio::null())
                    .stderr(log_file(data.path(), &format!("m{i}.log")));
                Running::start(command)
            })
            .collect();
        for (member, (client, _)) in members.iter_mut().zip(&ports) {
            member.wait_for_port(*client, Duration::from_secs(20));
            wait_for_http(*client, "/health", "\"health\":\"true\"");
        }
        let gateway_port = free_port();
        let endpoints = ports
            .iter()
            .map(|(client, _)| format!("127.0.0.1:{client}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut command = Command::new("etcd");
        command
            .args(["gateway", "start", "--endpoints", &endpoints])
            .args(["--listen-addr", &format!("127.0.0.1:{gateway_port}")])
            .stdout(std::process::Stdio::null())
            .stderr(log_file(data.path(), "gateway.log"));
        let mut gateway = Running::start(command);
        gateway.wait_for_port(gateway_port, Duration::from_secs(20));
        EtcdCluster {
            members: members.into_iter().map(Some).collect(),
            _gateway: gateway,
            _data: data,
            gateway_port,
        }
    }

    /// Kills member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(member) = self.members.get_mut(i) {
            *member = None;
        }
    }
}

impl Service for EtcdCluster {
    fn backend(&self) -> &'static str {
        <Backend as BackendTests>::NAME
    }
    fn settings(&self) -> Settings {
        crate::settings(&format!("http://127.0.0.1:{}", self.gateway_port))
    }
}
