//! The `redis` backend: redis-server with webdis in front of it.

use std::process::Command;
use std::time::Duration;

use kvplug_runner::Settings;

use super::{
    BackendTests, Fewest, NameLimits, OversizedBatch, Secrets, Service, TestService, ValueLimit,
    log_file, longer, require, wide,
};
use crate::fault_server::{Action, response};
use crate::process::{Running, free_port};

/// What the tests expect of `kvplug-redis.wasm`.
pub struct Backend;

impl BackendTests for Backend {
    const NAME: &'static str = "redis";
    const VALUE_LIMIT: Option<ValueLimit> = None;
    // A bucket is a key prefix; a script runs INCRBY; a batch script takes 1000 entries.
    const FEWEST: Fewest = Fewest {
        open: 0,
        increment: 1,
        increment_new: 1,
        batch_read: 1000,
        batch_write: 1000,
        batch_delete: 1000,
    };
    const MARK: Option<&'static str> = None;
    const SIGNS: bool = false;
    const TAKES_TOKEN: bool = true;
    const TAKES_PREFIX: bool = true;
    // SCAN's COUNT is a hint: pages hold about `page-size` keys, not exactly.
    const EXACT_PAGES: bool = false;
    // Every kvplug write gives the key a new generation in its companion hash, which CAS
    // compares: a rewrite with identical bytes is detected.
    const CAS_COMPARES_VALUES: bool = false;

    fn name_limits() -> NameLimits {
        // webdis's URLs: 8 KiB keys, 512 bytes for prefix and bucket name (a write names the
        // bucket three times: value, companion, change stream).
        NameLimits::new(
            wide(8192),
            "the 8192 bytes",
            wide(512),
            Some((longer(&wide(512)), "at most 512 fit")),
        )
    }

    fn fault_settings(url: &str, secrets: &Secrets) -> Settings {
        super::http::token_settings(url, secrets)
    }

    fn configured_secrets(secrets: &Secrets) -> Vec<&'static str> {
        // `user:password`: the password part is a secret on its own.
        secrets
            .token
            .into_iter()
            .flat_map(|token| {
                [
                    Some(token),
                    token.split_once(':').map(|(_, password)| password),
                ]
            })
            .flatten()
            .collect()
    }

    fn error_body(message: &str) -> String {
        message.to_owned()
    }

    fn absent() -> Action {
        response(200, &[], b"$1\r\nA\r\n")
    }

    fn requests() -> [&'static str; 11] {
        [
            "PUT /EVALSHA/",
            "GET /GET/",
            "GET /EVALSHA/",
            "GET /EXISTS/",
            "GET /EVALSHA/",
            "GET /EVALSHA/",
            "GET /EVALSHA/",
            "PUT /EVALSHA/",
            "PUT /EVALSHA/",
            "PUT /EVALSHA/",
            "PUT /EVALSHA/",
        ]
    }

    fn oversized_batch() -> OversizedBatch {
        OversizedBatch {
            service: Box::new(Redis::start_with_max_request(1 << 20)),
            size: 17 << 20,
            // webdis answers 413 or closes the connection, depending on timing.
            limit: "over webdis's `http_max_request_size`",
        }
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

    /// Runs `args` with `redis-cli` against this Redis, and returns what it printed.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p"])
            .arg(self.redis_port.to_string())
            .args(args)
            .output()
            .expect("run redis-cli");
        assert!(output.status.success(), "redis-cli {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Stops webdis and Redis and starts them again on the same ports with Redis's data:
    /// Redis runs without persistence, so its data is saved once (`SAVE`, an RDB file in the
    /// temporary directory), which the new Redis loads at start. Nothing else writes that file,
    /// so `resume_redis` alone still starts empty.
    pub fn restart_keeping_data(&mut self) {
        assert_eq!(self.cli(&["SAVE"]).trim(), "OK");
        self.stop_webdis();
        self.stop_redis();
        std::thread::sleep(Duration::from_millis(500));
        self.resume_redis();
        self.start_webdis();
        let _ = std::fs::remove_file(self.dir.path().join("dump.rdb"));
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
        <Backend as BackendTests>::NAME
    }
    fn settings(&self) -> Settings {
        let mut settings = crate::settings(&self.url());
        if let Some(credentials) = &self.basic_auth {
            settings.push(("token".to_owned(), credentials.clone()));
        }
        settings
    }
}

impl TestService for Redis {
    type Backend = Backend;
    const NAME: &'static str = "redis";
    const IMPLEMENTATION: &'static str = "kvplug-redis.wasm + Redis 7.0 behind webdis 0.1.9";
    const LABEL: &'static str = "kvplug-redis";
    fn start_default() -> Redis {
        Redis::start()
    }
}
