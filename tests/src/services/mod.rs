//! The real services behind each backend, started on free loopback ports for one test and
//! stopped when dropped: kvplug-server (in process), etcd, Redis behind webdis, the
//! DynamoDB emulators dynalite and moto, and Azurite's Table service.
//!
//! A missing binary fails the test with the command that installs it: a backend is never
//! skipped.

mod azurite;
mod dynamodb;

pub use azurite::Azurite;
pub use dynamodb::{Dynalite, Moto};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kvplug_runner::Settings;

use crate::process::{Running, free_port};

/// A running service that one adapter backend speaks to.
pub trait Service: Send + Sync {
    /// The backend (`kvplug-<backend>.wasm`) that talks to this service.
    fn backend(&self) -> &'static str;
    /// The settings an adapter needs to reach it.
    fn settings(&self) -> Settings;
}

/// Every test service, by the name `start` takes: one per backend, two for `dynamodb`.
pub const SERVICES: [&str; 6] = ["http", "etcd", "redis", "dynalite", "moto", "azurite"];

/// Starts the service `name` (a backend, or one of the emulators of `dynamodb`) with its
/// defaults.
pub fn start(name: &str) -> Box<dyn Service> {
    match name {
        "http" => Box::new(Reference::start()),
        // Big enough for the 4 MiB values of the semantics tests; the default is 1.5 MiB.
        "etcd" => Box::new(Etcd::start(&["--max-request-bytes", "10485760"])),
        "redis" => Box::new(Redis::start()),
        "dynalite" => Box::new(Dynalite::start()),
        "moto" => Box::new(Moto::start()),
        "azurite" => Box::new(Azurite::start()),
        other => panic!("no test service `{other}`"),
    }
}

/// Where a backend's service limits values: a size that is stored (with a short key), and
/// the smallest size the adapter refuses with a clear error before sending anything.
#[derive(Debug, Clone, Copy)]
pub struct ValueLimit {
    pub stored: usize,
    pub refused: usize,
}

/// The value limit of `backend`, if its service has one.
pub fn value_limit(backend: &str) -> Option<ValueLimit> {
    match backend {
        // A 400 KB item holds the value and the other attributes. moto counts sizes a
        // little differently and refuses from 404,993 value bytes.
        "dynamodb" => Some(ValueLimit {
            stored: 400_000,
            refused: 400 * 1024 + 1,
        }),
        // An entity's JSON may take 1 MiB (Azurite checks that on every write), and base64
        // makes values 4/3 larger.
        "azure-table" => Some(ValueLimit {
            stored: 768_000,
            refused: 768_001,
        }),
        _ => None,
    }
}

/// Where a backend's service (or the URLs that carry names to it) limits keys and bucket
/// names: the longest of each the adapter takes, spelled in the characters that cost the
/// most on the wire, and how the adapter's refusal of a longer key names the limit.
#[derive(Debug, Clone)]
pub struct NameLimits {
    pub longest_key: String,
    /// A key one byte (Azure: one UTF-16 unit) longer than `longest_key`.
    pub too_long_key: String,
    /// What the refusal of `too_long_key` says about the limit.
    pub key_limit: &'static str,
    pub longest_bucket: String,
    /// A bucket name `open` refuses, and what the refusal says about the limit; `None`
    /// where bucket names are not limited.
    pub too_long_bucket: Option<(String, &'static str)>,
}

/// The name limits of `backend`.
pub fn name_limits(backend: &str) -> NameLimits {
    // `é` is two bytes of UTF-8 that percent-encoding makes six.
    let wide = |bytes: usize| "é".repeat(bytes / 2);
    let longer = |name: &str| format!("{name}k");
    let (longest_key, key_limit, longest_bucket, too_long_bucket) = match backend {
        // The protocol's limits: 8 KiB keys, 1 KiB bucket names.
        "http" => (
            wide(8192),
            "the 8192 bytes",
            wide(1024),
            Some((longer(&wide(1024)), "the 1024 bytes")),
        ),
        // etcd limits requests, not keys: the adapter's own limit keeps every call inside
        // the default request limit. Bucket names are not limited.
        "etcd" => (wide(64 * 1024), "the 65536 bytes", wide(1024), None),
        // webdis's URLs: 8 KiB keys, 1 KiB for prefix and bucket name.
        "redis" => (
            wide(8192),
            "the 8192 bytes",
            wide(1024),
            Some((longer(&wide(1024)), "at most 1024 (1 KiB)")),
        ),
        // The sort key (`/` + key) holds 1024 bytes; the partition key 2048, and percent
        // encoding makes each `é` of the bucket name six.
        "dynamodb" => (
            longer(&wide(1022)),
            "1024 bytes",
            "é".repeat(341),
            Some(("é".repeat(342), "at most 2048 bytes")),
        ),
        // 512 UTF-16 units per key field; the partition key holds `!` before the bucket.
        "azure-table" => (
            "é".repeat(512),
            "1 KiB",
            "é".repeat(511),
            Some(("é".repeat(512), "1 KiB")),
        ),
        other => panic!("no name limits for backend `{other}`"),
    };
    NameLimits {
        too_long_key: longer(&longest_key),
        longest_key,
        key_limit,
        longest_bucket,
        too_long_bucket,
    }
}

/// A program installed by `scripts/setup.sh` under `tests/services/node_modules/.bin`.
pub fn node_tool(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("services/node_modules/.bin")
        .join(name);
    assert!(
        path.exists(),
        "`{}` is missing: run `(cd tests/services && npm install)` (scripts/setup.sh does)",
        path.display()
    );
    path
}

/// A program of the Python virtual environment `scripts/setup.sh` makes for moto.
pub fn venv_tool(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("services/venv/bin")
        .join(name);
    assert!(
        path.exists(),
        "`{}` is missing: run `python3 -m venv tests/services/venv && tests/services/venv/bin/pip install -r tests/services/requirements.txt` (scripts/setup.sh does)",
        path.display()
    );
    path
}

/// The fewest HTTP requests each backend's service allows for the calls that differ.
#[derive(Debug, Clone, Copy)]
pub struct Fewest {
    /// `open` of a bucket.
    pub open: u64,
    /// `increment` of an existing counter.
    pub increment: u64,
    /// `increment` of a key that does not exist yet.
    pub increment_new: u64,
    /// Keys one batch read (`get-many`) can carry.
    pub batch_read: usize,
    /// Entries one batch write (`set-many`, `delete-many`) can carry.
    pub batch_write: usize,
}

/// What the adapter for `backend` must meet (asserted by the tests, reported by the
/// benchmark).
pub fn fewest_requests(backend: &str) -> Fewest {
    match backend {
        // open checks the bucket with one HEAD; the server adds.
        "http" => Fewest {
            open: 1,
            increment: 1,
            increment_new: 1,
            batch_read: 1000,
            batch_write: 1000,
        },
        // A bucket is a key range: nothing to check. etcd cannot add, so incrementing an
        // existing counter is a read, then a conditional write (1 for a new counter).
        // etcd's default --max-txn-ops is 128.
        "etcd" => Fewest {
            open: 0,
            increment: 2,
            increment_new: 1,
            batch_read: 128,
            batch_write: 128,
        },
        // A bucket is a key prefix; a script runs INCRBY; a batch script takes 1000 entries.
        "redis" => Fewest {
            open: 0,
            increment: 1,
            increment_new: 1,
            batch_read: 1000,
            batch_write: 1000,
        },
        // Buckets are partitions of one table; `UpdateItem ADD` adds. BatchGetItem takes 100
        // keys, BatchWriteItem 25 items.
        "dynamodb" => Fewest {
            open: 0,
            increment: 1,
            increment_new: 1,
            batch_read: 100,
            batch_write: 25,
        },
        // Buckets are partitions of one table. The Table service cannot add, nor answer an
        // insert that conflicts with the current value: every increment is a read, then a
        // conditional write (or insert). A query's `$filter` may hold 15 comparisons, one
        // of them on the PartitionKey; an entity group transaction 100 operations.
        "azure-table" => Fewest {
            open: 0,
            increment: 2,
            increment_new: 2,
            batch_read: 14,
            batch_write: 100,
        },
        other => panic!("no request limits for backend `{other}`"),
    }
}

/// The `url` of `settings`.
pub fn url_of(settings: &Settings) -> &str {
    settings
        .iter()
        .find(|(name, _)| name == "url")
        .map(|(_, url)| url.as_str())
        .expect("settings with a url")
}

/// kvplug-server with its data in a temporary directory.
pub struct Reference {
    pub server: kvplug_server::Server,
    _data: tempfile::TempDir,
}

impl Reference {
    pub fn start() -> Reference {
        Reference::start_with(|_| {})
    }

    /// A server with its configuration adjusted by `adjust`.
    pub fn start_with(adjust: impl FnOnce(&mut kvplug_server::Config)) -> Reference {
        let (data, server) = crate::reference_server_with(adjust);
        Reference {
            server,
            _data: data,
        }
    }
}

impl Service for Reference {
    fn backend(&self) -> &'static str {
        "http"
    }
    fn settings(&self) -> Settings {
        crate::settings(&self.server.url())
    }
}

pub(crate) fn require(binary: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(binary).is_file()));
    assert!(
        found,
        "`{binary}` is not installed: `apt-get install {package}` (scripts/setup.sh does)"
    );
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
        "etcd"
    }
    fn settings(&self) -> Settings {
        crate::settings(&self.url())
    }
}

/// redis-server with webdis in front of it.
pub struct Redis {
    redis: Option<Running>,
    webdis: Option<Running>,
    dir: tempfile::TempDir,
    redis_port: u16,
    webdis_port: u16,
    /// `user:password` webdis demands for every command, if any.
    basic_auth: Option<String>,
    /// Commands webdis refuses on top of the administrative ones.
    disabled: Vec<String>,
    /// webdis's `http_max_request_size`, if not its default (128 MiB).
    max_request: Option<usize>,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_with(None, &[])
    }

    /// Starts Redis and webdis; with `basic_auth`, webdis serves only requests that carry
    /// those HTTP Basic credentials; `disabled` are further commands its ACL refuses.
    pub fn start_with(basic_auth: Option<&str>, disabled: &[&str]) -> Redis {
        require("redis-server", "redis-server");
        require("webdis", "webdis");
        let mut redis = Redis {
            redis: None,
            webdis: None,
            dir: tempfile::tempdir().expect("temporary directory"),
            redis_port: free_port(),
            webdis_port: free_port(),
            basic_auth: basic_auth.map(str::to_owned),
            disabled: disabled.iter().map(|c| format!("\"{c}\"")).collect(),
            max_request: None,
        };
        redis.resume_redis();
        redis.start_webdis();
        redis
    }

    /// Starts Redis and a webdis that refuses requests larger than `max_request` bytes.
    pub fn start_with_max_request(max_request: usize) -> Redis {
        let mut redis = Redis::start();
        redis.max_request = Some(max_request);
        redis.stop_webdis();
        redis.start_webdis();
        redis
    }

    /// webdis's address.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.webdis_port)
    }

    /// Kills webdis (Redis stays up).
    pub fn stop_webdis(&mut self) {
        self.webdis = None;
    }

    /// Starts webdis again on the same port.
    pub fn resume_webdis(&mut self) {
        self.start_webdis();
    }

    /// Kills Redis; webdis stays up and answers without it.
    pub fn stop_redis(&mut self) {
        self.redis = None;
    }

    /// Starts Redis again on the same port (its data is gone: it runs without persistence).
    pub fn resume_redis(&mut self) {
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.redis_port.to_string())
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(self.dir.path())
            .stdout(log_file(self.dir.path(), "redis.log"))
            .stderr(std::process::Stdio::null());
        let mut running = Running::start(command);
        running.wait_for_port(self.redis_port, Duration::from_secs(20));
        self.redis = Some(running);
    }

    fn start_webdis(&mut self) {
        // Commands an application must never reach through webdis are disabled, as a
        // production deployment would; the adapter needs none of them.
        let mut commands = vec!["DEBUG", "FLUSHALL", "FLUSHDB", "CONFIG", "SHUTDOWN", "KEYS"]
            .into_iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>();
        commands.extend(self.disabled.iter().cloned());
        let disabled = format!(r#"{{"disabled":[{}]}}"#, commands.join(","));
        let acl = match &self.basic_auth {
            None => format!("[{disabled}]"),
            Some(credentials) => format!(
                r#"[{{"disabled":["*"]}},{{"http_basic_auth":"{credentials}","enabled":["*"]}},{disabled}]"#
            ),
        };
        let max_request = self
            .max_request
            .map(|bytes| format!(r#""http_max_request_size":{bytes},"#))
            .unwrap_or_default();
        let config = format!(
            r#"{{"redis_host":"127.0.0.1","redis_port":{},"http_host":"127.0.0.1","http_port":{},
"threads":2,"pool_size":8,"daemonize":false,"database":0,"acl":{acl},{max_request}
"verbosity":3,"logfile":"{}"}}"#,
            self.redis_port,
            self.webdis_port,
            self.dir.path().join("webdis.log").display()
        );
        let path = self.dir.path().join("webdis.json");
        std::fs::write(&path, config).expect("write webdis.json");
        let mut command = Command::new("webdis");
        command
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut running = Running::start(command);
        running.wait_for_port(self.webdis_port, Duration::from_secs(20));
        self.webdis = Some(running);
    }
}

impl Service for Redis {
    fn backend(&self) -> &'static str {
        "redis"
    }
    fn settings(&self) -> Settings {
        let mut settings = crate::settings(&self.url());
        if let Some(credentials) = &self.basic_auth {
            settings.push(("token".to_owned(), credentials.clone()));
        }
        settings
    }
}

pub(crate) fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::File::create(dir.join(name)).expect("create a log file")
}

/// Polls `path` on loopback until the body contains `expect`.
pub(crate) fn wait_for_http(port: u16, path: &str, expect: &str) {
    let started = std::time::Instant::now();
    loop {
        let ready = crate::process::try_http(port, "GET", path, b"")
            .is_ok_and(|(status, body)| status == 200 && body.contains(expect));
        if ready {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{path} on port {port} never answered {expect}"
        );
        std::thread::sleep(Duration::from_millis(50));
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
        "etcd"
    }
    fn settings(&self) -> Settings {
        crate::settings(&format!("http://127.0.0.1:{}", self.gateway_port))
    }
}
