//! The watch drivers (issue #15): an app in the `watch-service` world, its adapter and
//! `kvplug-watch-<backend>.wasm` composed into one command and run by the wasmtime CLI against
//! the real service, while another adapter instance writes. The app (fixtures/watch-app)
//! mirrors every change into bucket `mirror`, so what it was told is read back from the store.
//!
//! Each backend with a driver runs every scenario: all writes and deletes delivered, the
//! driver killed and restarted mid-stream, the service restarted under the driver, a watcher
//! that traps (once, and always), a resume position the feed no longer holds, a key prefix,
//! and settings that are wrong.

#![expect(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test, which is how a test reports it"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kvplug_compose::artifacts;
use kvplug_runner::Settings;
use kvplug_tests::counting_proxy::CountingProxy;
use kvplug_tests::fault_server::{Action, Request};
use kvplug_tests::services::{Etcd, Moto, Redis, Service as _};
use kvplug_tests::watch::{Driver, composed, driver_settings};
use kvplug_tests::{Kv, adapter, settings};

/// A service a driver follows, which the tests can restart and make forget history.
trait Followed {
    const BACKEND: &'static str;
    fn start() -> Self;
    fn url(&self) -> String;
    /// The adapter's settings for this service: its `url`, and credentials where it takes
    /// them.
    fn adapter_settings(&self) -> Settings {
        settings(&self.url())
    }
    /// The settings of this backend for a service at `url` that is not this one (a silent
    /// listener): what `open` requires besides `url`.
    fn settings_at(url: &str) -> Settings {
        settings(url)
    }
    /// Whether `request` reads the feed of a bucket: a poll, and its head where the same
    /// request gives that (Redis's READ_CHANGES; the others ask the head elsewhere).
    fn reads_the_feed(request: &Request) -> bool;
    /// A feed answer (the whole response) holding one change to key `k` whose value is
    /// `size` bytes, with
    /// everything a reader needs to take it whole (a `content-length`, the service's
    /// headers); `None` where the service caps its answers far below that (DynamoDB
    /// Streams: 1 MB a `GetRecords`).
    fn one_large_change(size: usize) -> Option<Vec<u8>> {
        let _ = size;
        None
    }
    /// [`Followed::adapter_settings`] with credentials, for a fault server in front of the
    /// service that drops a bearer token or password (the service was given none).
    fn settings_with_credentials(&self) -> Settings {
        let mut all = self.adapter_settings();
        all.push(("token".into(), "app:s3cr3t/p4ss+word".into()));
        all
    }
    /// Stops the service and starts it again on the same port with the same data.
    fn restart(&mut self);
    /// Makes the feed drop what it holds before now (retention, compaction).
    fn forget_history(&mut self);
}

/// The reference server, restartable on its port and data.
struct Server {
    data: tempfile::TempDir,
    addr: std::net::SocketAddr,
    server: Option<kvplug_server::Server>,
    /// Changes its feed keeps (the default until a test makes it forget).
    retention: Option<u64>,
}

impl Server {
    fn config(&self) -> kvplug_server::Config {
        let mut config = kvplug_server::Config::new(self.data.path());
        config.listen = self.addr;
        if let Some(changes) = self.retention {
            config.feed_retention.changes = changes;
        }
        config
    }
}

impl Followed for Server {
    const BACKEND: &'static str = "http";

    fn start() -> Server {
        let data = tempfile::tempdir().unwrap();
        let server = kvplug_server::Server::start(kvplug_server::Config::new(data.path())).unwrap();
        Server {
            data,
            addr: server.addr(),
            server: Some(server),
            retention: None,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn reads_the_feed(request: &Request) -> bool {
        request.path.contains("/changes?") && request.path.contains("after=")
    }

    fn one_large_change(size: usize) -> Option<Vec<u8>> {
        let mut page = Vec::new();
        kvplug_protocol::changes::put(
            &mut page,
            &kvplug_protocol::changes::Change {
                position: 1,
                key: "k",
                value: Some(&vec![b'v'; size]),
            },
        )
        .unwrap();
        Some(kvplug_tests::fault_server::response_bytes(
            200,
            &["kvplug-protocol: 1", "kvplug-position: 1"],
            &page,
        ))
    }

    fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
        std::thread::sleep(Duration::from_millis(500));
        self.server = Some(kvplug_server::Server::start(self.config()).unwrap());
    }

    fn forget_history(&mut self) {
        // Back with a feed of 10 changes, which the next write trims to.
        self.retention = Some(10);
        self.restart();
        let (status, body) =
            kvplug_tests::process::http(self.addr.port(), "PUT", "/v1/buckets/other/keys/x", b"1");
        assert_eq!(status, 204, "{body}");
    }
}

impl Followed for Etcd {
    const BACKEND: &'static str = "etcd";

    fn start() -> Etcd {
        Etcd::start(&[])
    }

    fn url(&self) -> String {
        Etcd::url(self)
    }

    fn reads_the_feed(request: &Request) -> bool {
        request.path.starts_with("/v3/watch")
    }

    fn one_large_change(size: usize) -> Option<Vec<u8>> {
        use base64::Engine as _;
        let value = base64::engine::general_purpose::STANDARD.encode(vec![b'v'; size]);
        let key = base64::engine::general_purpose::STANDARD.encode("!watched/k");
        let stream = format!(
            "{{\"result\":{{\"header\":{{\"revision\":\"1\"}},\"created\":true}}}}\n\
             {{\"result\":{{\"header\":{{\"revision\":\"2\"}},\"events\":[{{\"kv\":\
             {{\"key\":\"{key}\",\"value\":\"{value}\",\"mod_revision\":\"2\"}}}}]}}}}\n"
        );
        Some(kvplug_tests::fault_server::response_bytes(
            200,
            &["content-type: application/json"],
            stream.as_bytes(),
        ))
    }

    fn restart(&mut self) {
        self.stop();
        std::thread::sleep(Duration::from_millis(500));
        self.resume();
    }

    fn forget_history(&mut self) {
        let port: u16 = self.url().rsplit(':').next().unwrap().parse().unwrap();
        let (status, body) = kvplug_tests::process::http(
            port,
            "POST",
            "/v3/kv/range",
            b"{\"key\":\"AA==\",\"count_only\":true}",
        );
        assert_eq!(status, 200, "{body}");
        let revision = body
            .split("\"revision\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a revision in etcd's answer")
            .to_owned();
        let (status, body) = kvplug_tests::process::http(
            port,
            "POST",
            "/v3/kv/compaction",
            format!("{{\"revision\":\"{revision}\",\"physical\":true}}").as_bytes(),
        );
        assert_eq!(status, 200, "{body}");
    }
}

/// moto with a stream on its table (`NEW_IMAGE`), reached through a proxy.
struct MotoStream {
    moto: Moto,
    addr: std::net::SocketAddr,
    proxy: Option<CountingProxy>,
}

impl MotoStream {
    fn moto_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.moto.port())
    }
}

impl Followed for MotoStream {
    const BACKEND: &'static str = "dynamodb";

    fn start() -> MotoStream {
        let moto = Moto::start_with_stream();
        let proxy = CountingProxy::start(&format!("http://127.0.0.1:{}", moto.port()));
        let addr = proxy.url().trim_start_matches("http://").parse().unwrap();
        MotoStream {
            moto,
            addr,
            proxy: Some(proxy),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn reads_the_feed(request: &Request) -> bool {
        request.header("x-amz-target") == "DynamoDBStreams_20120810.GetRecords"
    }

    /// moto checks every signature, made with its own secret, which the settings already
    /// hold.
    fn settings_with_credentials(&self) -> Settings {
        self.adapter_settings()
    }

    fn adapter_settings(&self) -> Settings {
        let mut all = self.moto.settings();
        for (name, value) in &mut all {
            if name == "url" {
                *value = self.url();
            }
        }
        all
    }

    fn settings_at(url: &str) -> Settings {
        let mut all = settings(url);
        for (name, value) in [
            ("region", "us-east-1"),
            ("access-key-id", "AKIDEXAMPLE"),
            (
                "secret-access-key",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            ),
        ] {
            all.push((name.into(), value.into()));
        }
        all
    }

    /// moto keeps everything in memory: stopping its process would lose the table, which no
    /// real service restart does. So the outage is made in front of it: the proxy stops (its
    /// connections cut, new ones refused) and comes back on the same port after 500 ms, which
    /// is what the driver sees of a restarting service; moto's data, streams and iterators
    /// stay as they were.
    fn restart(&mut self) {
        drop(self.proxy.take());
        std::thread::sleep(Duration::from_millis(500));
        self.proxy = Some(CountingProxy::start_at(&self.moto_url(), self.addr));
    }

    /// moto does not emulate a stream's 24-hour trim. What loses history for real there is a
    /// new stream: the table restored (deleted, created again with its items, the driver's
    /// saved positions among them), so the saved position names the old stream, whose
    /// records and the writes between are in no stream the table has.
    fn forget_history(&mut self) {
        self.moto.recreate_table_keeping_items();
    }
}

impl Followed for Redis {
    const BACKEND: &'static str = "redis";

    fn start() -> Redis {
        Redis::start()
    }

    fn url(&self) -> String {
        Redis::url(self)
    }

    /// The READ_CHANGES script, by SHA-1: the only script called with one key, the stream
    /// (`EVALSHA/<sha>/1/<stream>/<after>/<budget>`).
    fn reads_the_feed(request: &Request) -> bool {
        let parts: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
        matches!(parts.as_slice(), ["EVALSHA", _, "1", _, _, _])
    }

    /// READ_CHANGES's answer (docs/watch-design.md §4.3) as webdis passes a bulk string on.
    fn one_large_change(size: usize) -> Option<Vec<u8>> {
        use kvplug_protocol::frames;
        let mut answer = b"S".to_vec();
        for text in ["9-0", "0-0", "9-0", "0", "9-0", "k"] {
            frames::put(&mut answer, text.as_bytes()).unwrap();
        }
        frames::put_optional(&mut answer, Some(&vec![b'v'; size])).unwrap();
        let mut body = format!("${}\r\n", answer.len()).into_bytes();
        body.extend_from_slice(&answer);
        body.extend_from_slice(b"\r\n");
        Some(kvplug_tests::fault_server::response_bytes(
            200,
            &["content-type: application/octet-stream"],
            &body,
        ))
    }

    fn restart(&mut self) {
        self.restart_keeping_data();
    }

    /// Empties every change stream (`XTRIM … MAXLEN 0`), as the adapter's own `MAXLEN ~`
    /// trimming would after 100,000 more writes: the entries after the saved position are gone
    /// while the stream stays.
    fn forget_history(&mut self) {
        let trimmed = self.cli(&[
            "EVAL",
            "local c, n = '0', 0
repeat
  local r = redis.call('SCAN', c, 'MATCH', '*!changes', 'COUNT', 1000)
  c = r[1]
  for _, s in ipairs(r[2]) do n = n + redis.call('XTRIM', s, 'MAXLEN', 0) end
until c == '0'
return n",
            "0",
        ]);
        assert!(trimmed.trim().parse::<u64>().unwrap() > 0, "{trimmed}");
    }
}

/// Writes to bucket `watched` through an adapter instance of its own, and remembers what each
/// key should hold.
struct Writer {
    kv: Kv,
    expected: BTreeMap<String, Option<Vec<u8>>>,
    writes: u32,
}

impl Writer {
    async fn new(backend: &str, settings: Settings) -> Writer {
        Writer {
            kv: Kv::with_adapter(adapter(backend), settings).await,
            expected: BTreeMap::new(),
            writes: 0,
        }
    }

    async fn set(&mut self, key: &str, value: &[u8]) {
        let bucket = self.kv.open("watched").await.unwrap();
        self.kv.set(bucket, key, value).await.unwrap();
        self.expected.insert(key.to_owned(), Some(value.to_vec()));
        self.writes += 1;
    }

    async fn delete(&mut self, key: &str) {
        let bucket = self.kv.open("watched").await.unwrap();
        self.kv.delete(bucket, key).await.unwrap();
        self.expected.insert(key.to_owned(), None);
        self.writes += 1;
    }

    /// `count` writes over 10 keys, every 7th a delete; values carry the write's number, so
    /// a key mirrored out of order ends with an older value than it should.
    async fn burst(&mut self, tag: &str, count: u32) {
        for i in 0..count {
            let key = format!("k{}", (self.writes + i) % 10);
            if i % 7 == 6 {
                self.delete(&key).await;
            } else {
                self.set(&key, format!("{tag}-{i}").as_bytes()).await;
            }
        }
    }

    /// Waits until bucket `mirror` holds what every written key should, or fails naming the
    /// first key that differs.
    async fn mirrored(&mut self, driver: &Driver) {
        let started = Instant::now();
        loop {
            let mirror = self.kv.open("mirror").await.unwrap();
            let mut differs = None;
            for (key, value) in &self.expected {
                let got = self.kv.get(mirror, key).await.unwrap();
                if &got != value {
                    differs = Some((key.clone(), value.clone(), got));
                    break;
                }
            }
            let Some((key, want, got)) = differs else {
                return;
            };
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "mirror[{key}] is {:?}, not {:?}; driver: {}",
                got.map(|v| String::from_utf8_lossy(&v).into_owned()),
                want.map(|v| String::from_utf8_lossy(&v).into_owned()),
                driver.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn mirror(&mut self, key: &str) -> Option<Vec<u8>> {
        let mirror = self.kv.open("mirror").await.unwrap();
        self.kv.get(mirror, key).await.unwrap()
    }
}

/// Every write and delete delivered while the driver runs, across a kill of the driver (the
/// writes made while it is down are delivered on its restart) and a restart of the service
/// under it; the bucket handle the app gets is one of its own store.
async fn delivers_everything<S: Followed>(draft: bool) {
    let mut service = S::start();
    let dir = tempfile::tempdir().unwrap();
    let component = composed(S::BACKEND, draft, dir.path());
    let config = driver_settings(service.adapter_settings(), &[]);
    let mut writer = Writer::new(S::BACKEND, service.adapter_settings()).await;

    let mut driver = Driver::start(&component, &config, &dir.path().join("1.log"));
    driver.ready();
    writer.burst("a", 100).await;
    writer.set("probe", b"through the handle").await;
    writer.mirrored(&driver).await;
    assert_eq!(
        writer.mirror("probe-read").await.as_deref(),
        Some(&b"through the handle"[..])
    );

    // Killed mid-stream: what is written while it is away comes on its next start.
    writer.burst("b", 30).await;
    driver.kill();
    writer.burst("c", 50).await;
    let mut driver = Driver::start(&component, &config, &dir.path().join("2.log"));
    driver.ready();
    writer.burst("d", 30).await;
    writer.mirrored(&driver).await;

    // The service restarts under the driver: it retries, then carries on.
    service.restart();
    writer.burst("e", 50).await;
    writer.mirrored(&driver).await;
    assert!(
        driver.child.try_wait().unwrap().is_none(),
        "the driver stopped: {}",
        driver.stderr()
    );
}

/// A watcher that traps does not lose the change: the run ends, the next run delivers it. One
/// that always traps makes the driver stop, with a message, after `watch-max-attempts` starts.
async fn a_trapping_watcher_loses_nothing<S: Followed>() {
    let service = S::start();
    let dir = tempfile::tempdir().unwrap();
    let component = composed(S::BACKEND, false, dir.path());
    let config = driver_settings(service.adapter_settings(), &[("watch-max-attempts", "2")]);
    let mut writer = Writer::new(S::BACKEND, service.adapter_settings()).await;

    let mut driver = Driver::start(&component, &config, &dir.path().join("1.log"));
    driver.ready();
    writer.set("before", b"1").await;
    writer.set("trap-once", b"2").await;
    writer.set("after", b"3").await;
    let (status, stderr) = driver.exit(Duration::from_secs(30));
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("watch-app: trap-once"), "{stderr}");

    let mut driver = Driver::start(&component, &config, &dir.path().join("2.log"));
    driver.ready();
    writer.mirrored(&driver).await;
    drop(driver);

    writer.set("trap-always", b"4").await;
    for run in 3..=4 {
        let mut driver = Driver::start(&component, &config, &dir.path().join(format!("{run}.log")));
        let (status, stderr) = driver.exit(Duration::from_secs(60));
        assert!(!status.success(), "{stderr}");
        assert!(
            stderr.contains("watch-app: trap-always"),
            "run {run}: {stderr}"
        );
    }
    let mut driver = Driver::start(&component, &config, &dir.path().join("5.log"));
    let (status, stderr) = driver.exit(Duration::from_secs(60));
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("started 3 times") && stderr.contains("not delivering them again"),
        "{stderr}"
    );
    assert!(!stderr.contains("watch-app: trap-always"), "{stderr}");
}

/// A saved position the feed no longer holds: the driver stops and says what was lost, or,
/// with `watch-on-gap=skip`, says so and carries on from where the feed starts, or, with
/// `watch-on-gap=resync`, delivers every key's current value first.
async fn a_lost_position_is_named<S: Followed>(draft: bool) {
    let mut service = S::start();
    let dir = tempfile::tempdir().unwrap();
    let component = composed(S::BACKEND, draft, dir.path());
    let config = driver_settings(service.adapter_settings(), &[]);
    let mut writer = Writer::new(S::BACKEND, service.adapter_settings()).await;

    let mut driver = Driver::start(&component, &config, &dir.path().join("1.log"));
    driver.ready();
    writer.set("seen", b"1").await;
    writer.mirrored(&driver).await;
    drop(driver);
    writer.burst("away", 40).await;
    service.forget_history();

    let mut driver = Driver::start(&component, &config, &dir.path().join("2.log"));
    let (status, stderr) = driver.exit(Duration::from_secs(30));
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("are lost to this driver") && stderr.contains("watch-on-gap=skip"),
        "{stderr}"
    );

    let skip = driver_settings(service.adapter_settings(), &[("watch-on-gap", "skip")]);
    let mut driver = Driver::start(&component, &skip, &dir.path().join("3.log"));
    driver.ready();
    driver.said("skipping to position");
    writer.expected.clear();
    writer.set("later", b"2").await;
    writer.mirrored(&driver).await;

    // Resync: every key's current value, listed through the adapter, then the feed after
    // the head it read first. Keys deleted during the gap keep their mirrored value: the
    // documented loss, so they are not checked.
    drop(driver);
    writer.burst("gone", 20).await;
    service.forget_history();
    let resync = driver_settings(service.adapter_settings(), &[("watch-on-gap", "resync")]);
    let mut driver = Driver::start(&component, &resync, &dir.path().join("4.log"));
    driver.ready();
    driver.said("resynced");
    let stderr = driver.stderr();
    assert!(
        stderr.contains("are lost to this driver")
            && stderr.contains("keys deleted during the gap are not delivered"),
        "{stderr}"
    );
    writer.expected.retain(|_, value| value.is_some());
    writer.set("after-resync", b"3").await;
    writer.mirrored(&driver).await;
}

/// Only keys under `watch-prefix` are delivered; the prefix is matched literally, reserved
/// characters of the backend's key layout included.
async fn only_the_prefix_is_delivered<S: Followed>() {
    let service = S::start();
    let dir = tempfile::tempdir().unwrap();
    let component = composed(S::BACKEND, false, dir.path());
    let config = driver_settings(service.adapter_settings(), &[("watch-prefix", "a/!#")]);
    let mut writer = Writer::new(S::BACKEND, service.adapter_settings()).await;

    let mut driver = Driver::start(&component, &config, &dir.path().join("1.log"));
    driver.ready();
    writer.set("b", b"outside").await;
    writer.set("a/!", b"outside too").await;
    writer.set("a/!#1", b"inside").await;
    writer.expected.clear();
    writer
        .expected
        .insert("a/!#1".into(), Some(b"inside".to_vec()));
    writer.mirrored(&driver).await;
    assert_eq!(writer.mirror("b").await, None);
    assert_eq!(writer.mirror("a/!").await, None);
}

/// Wrong settings stop the driver at once with a message that names the setting or bucket.
async fn wrong_settings_are_named<S: Followed>() {
    let service = S::start();
    let dir = tempfile::tempdir().unwrap();
    let component = composed(S::BACKEND, false, dir.path());
    // The adapter's allow-list holds the positions' bucket alone: a watched one is refused.
    let allow = ("buckets", "kvplug-watch");
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("watch-buckets", "")], "`watch-buckets` is not set"),
        (
            &[allow, ("watch-buckets", "secret")],
            "cannot open bucket `secret` through the adapter: access denied",
        ),
        (
            &[("buckets", "watched"), ("watch-buckets", "watched")],
            "add it there",
        ),
        (&[("watch-prefix", "a\u{1}")], "U+0001"),
        (&[("watch-buckets", "kvplug-watch")], "saves its own"),
        (&[("watch-wait-ms", "99999")], "`watch-wait-ms`"),
    ];
    for (i, (extra, expected)) in cases.iter().enumerate() {
        let config = driver_settings(service.adapter_settings(), extra);
        let mut driver = Driver::start(&component, &config, &dir.path().join(format!("{i}.log")));
        let (status, stderr) = driver.exit(Duration::from_secs(30));
        assert!(!status.success(), "{extra:?}: {stderr}");
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{extra:?}: {stderr}");
    }
}

/// A service that accepts connections and never answers: the driver gives up after
/// `watch-retry-ms` with a message naming the request, not a hang or a trap.
async fn a_silent_service_is_an_error<S: Followed>() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(64) {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let component = composed(S::BACKEND, false, dir.path());
    let config = driver_settings(
        S::settings_at(&url),
        &[("timeout-ms", "500"), ("watch-retry-ms", "1500")],
    );
    let started = Instant::now();
    let mut driver = Driver::start(&component, &config, &dir.path().join("1.log"));
    let (status, stderr) = driver.exit(Duration::from_secs(60));
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("timed out"), "{stderr}");
    assert!(stderr.contains("kvplug-watch: stopped"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "{stderr}");
    drop(keep);
}

/// A feed read answered, in front of the real service, by a careless or hostile server, to a
/// driver whose host caps each memory at 128 MiB: an endless answer, an error that quotes the
/// credentials in every encoding, or one change whose value fits the cap once but not twice. The driver stops with a message, never a trap, and the
/// message holds no form of a secret. Everything else reaches the service.
async fn a_huge_or_echoing_feed_is_named<S: Followed>() {
    use kvplug_tests::fault_server::{FaultServer, chunked_head, forward, response};
    use kvplug_tests::services::{self, echoed_forms, marks};

    let service = S::start();
    let dir = tempfile::tempdir().unwrap();
    let component = composed(S::BACKEND, false, dir.path());
    let base = service.settings_with_credentials();
    let secrets: Vec<String> = base
        .iter()
        .filter(|(name, _)| {
            ["token", "secret-access-key", "session-token"].contains(&name.as_str())
        })
        .flat_map(|(_, value)| {
            // A `user:password` token: the password alone is a secret too.
            let password = value.split_once(':').map(|(_, p)| p.to_owned());
            [Some(value.clone()), password].into_iter().flatten()
        })
        .collect();
    assert!(!secrets.is_empty(), "{base:?}");
    let quoted = secrets
        .iter()
        .flat_map(|secret| echoed_forms(secret))
        .collect::<Vec<_>>()
        .join(" ");
    let echo = (services::expectations(S::BACKEND).error_body)(&format!("you sent {quoted}"));
    type Fault = Box<dyn Fn() -> Action + Send + Sync>;
    let cases: [(&str, Fault, &[&str]); 2] = [
        (
            "endless",
            Box::new(|| Action::Endless {
                head: chunked_head(200, marks()),
            }),
            &["does not fit", "no memory left", "larger than"],
        ),
        (
            "echo",
            Box::new(move || response(500, marks(), echo.as_bytes())),
            &["<redacted>", "withheld"],
        ),
    ];
    // A whole answer that fits the cap but not its reading as well: 70 MB, or for etcd,
    // whose stream buffer doubles to 64 MiB, a 45 MB value (a 60 MB line).
    let large = S::one_large_change(if S::BACKEND == "etcd" {
        45 << 20
    } else {
        70 << 20
    })
    .map(|answer| {
        let fault: Fault = Box::new(move || Action::Raw(answer.clone()));
        ("large", fault, &["more than is left", "does not fit"][..])
    });
    for (case, fault, expected) in cases.into_iter().chain(large) {
        let upstream = service.url();
        let faults = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = std::sync::Arc::clone(&faults);
        let server = FaultServer::start_answering_all(move |request| {
            if S::reads_the_feed(request) {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                fault()
            } else {
                forward(&upstream, request)
            }
        });
        let mut config = driver_settings(base.clone(), &[("watch-retry-ms", "1500")]);
        for (name, value) in &mut config {
            if name == "url" {
                *value = server.url();
            }
        }
        let mut driver = Driver::start_with(
            &component,
            &config,
            &dir.path().join(format!("{case}.log")),
            &["-W", "max-memory-size=134217728"],
        );
        let (status, stderr) = driver.exit(Duration::from_secs(120));
        let what = format!("{} {case}: {stderr}", S::BACKEND);
        assert!(
            faults.load(std::sync::atomic::Ordering::SeqCst) > 0,
            "{what}"
        );
        assert!(!status.success(), "{what}");
        assert!(stderr.contains("kvplug-watch: stopped"), "{what}");
        assert!(expected.iter().any(|e| stderr.contains(e)), "{what}");
        for form in quoted.split(' ') {
            assert!(!stderr.contains(form), "{what}");
        }
        assert!(
            !stderr.contains("panicked") && !stderr.contains("wasm trap"),
            "{what}"
        );
    }
}

/// `compose/recipes/watch.wac` composed by the real `wac` CLI, on both drafts: the result runs,
/// delivers, and stops by itself after `watch-max-events`, then after `watch-max-seconds`.
#[tokio::test(flavor = "multi_thread")]
async fn the_recipe_composes_with_the_wac_cli_on_both_drafts() {
    kvplug_tests::artifacts();
    let service = Server::start();
    let url = service.url();
    let dir = tempfile::tempdir().unwrap();
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compose/recipes/watch.wac");
    let mut writer = Writer::new("http", settings(&url)).await;
    for draft in [false, true] {
        let app = artifacts::fixture_path(if draft {
            "watch-app-draft"
        } else {
            "watch-app"
        });
        let out = dir.path().join(format!("recipe-{draft}.wasm"));
        let deps = [
            ("kvplug:adapter", artifacts::adapter_path("http")),
            ("kvplug:app", app),
            ("kvplug:watch", artifacts::driver_path("http", draft)),
        ];
        let mut wac = Command::new("wac");
        wac.arg("compose").arg(&recipe).arg("-o").arg(&out);
        for (package, path) in &deps {
            wac.arg("--dep")
                .arg(format!("{package}={}", path.display()));
        }
        let output = wac.output().expect("the `wac` CLI must be installed");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );

        let config = driver_settings(
            settings(&url),
            &[
                ("watch-max-events", "2"),
                ("watch-id", if draft { "draft" } else { "draft2" }),
            ],
        );
        let mut driver = Driver::start(&out, &config, &dir.path().join(format!("{draft}.log")));
        driver.ready();
        writer.set(&format!("one-{draft}"), b"1").await;
        writer.set(&format!("two-{draft}"), b"2").await;
        let (status, stderr) = driver.exit(Duration::from_secs(30));
        assert!(status.success(), "{stderr}");
        assert!(stderr.contains("delivered 2 change(s)"), "{stderr}");
        writer.mirrored(&driver).await;

        let config = driver_settings(settings(&url), &[("watch-max-seconds", "2")]);
        let started = Instant::now();
        let mut driver = Driver::start(&out, &config, &dir.path().join(format!("{draft}-s.log")));
        let (status, stderr) = driver.exit(Duration::from_secs(30));
        assert!(status.success(), "{stderr}");
        assert!(started.elapsed() >= Duration::from_secs(2), "{stderr}");
    }
}

/// A feed that answers garbage, a page or stream cut short, or changes out of order: the
/// driver delivers none of it, retries, then stops with a message naming the request and
/// what was wrong; it never traps. The fault server stands in for the whole service (the
/// positions bucket included), since no real service sends these on demand.
#[test]
fn a_broken_feed_is_named_and_nothing_of_it_delivered() {
    use kvplug_tests::fault_server::{Action, FaultServer, Request, chunked_head, response};
    use std::sync::{Arc, Mutex};

    kvplug_tests::artifacts();
    let dir = tempfile::tempdir().unwrap();
    type Responder = Box<dyn Fn(&Request) -> Action + Send + Sync>;
    let protocol = "kvplug-protocol: 1";
    let http = |feed: fn() -> Action| -> Responder {
        Box::new(move |request: &Request| {
            let path = request.path.as_str();
            if path.contains("/changes") && path.contains("after=") {
                return feed();
            }
            match (request.method.as_str(), path.contains("/changes")) {
                ("GET", true) => response(200, &[protocol, "kvplug-position: 5"], b""),
                ("GET", false) => response(404, &[protocol, "kvplug-error: no-such-key"], b""),
                _ => response(204, &[protocol], b""),
            }
        })
    };
    let etcd = |feed: Vec<u8>| -> Responder {
        Box::new(move |request: &Request| match request.path.as_str() {
            "/v3/watch" => {
                let mut raw = chunked_head(200, &["content-type: application/json"]);
                raw.extend_from_slice(format!("{:x}\r\n", feed.len()).as_bytes());
                raw.extend_from_slice(&feed);
                // The last chunk never comes: the connection closes mid-body.
                Action::Raw(raw)
            }
            _ => response(200, &[], br#"{"header":{"revision":"5"}}"#),
        })
    };
    let cases: Vec<(&str, &str, Responder, &str)> = vec![
        (
            "http",
            "garbled page",
            http(|| {
                response(
                    200,
                    &["kvplug-protocol: 1", "kvplug-position: 9"],
                    b"\xff\xff\xff",
                )
            }),
            "a change that cannot be read",
        ),
        (
            "http",
            "page cut short",
            http(|| {
                Action::Raw(
                    b"HTTP/1.1 200 OK\r\nkvplug-protocol: 1\r\nkvplug-position: 9\r\ncontent-length: 100\r\n\r\n1\n"
                        .to_vec(),
                )
            }),
            "cut short",
        ),
        (
            "http",
            "changes out of order",
            http(|| {
                let mut page = Vec::new();
                for (position, key) in [(8, "a"), (7, "b")] {
                    kvplug_protocol::changes::put(
                        &mut page,
                        &kvplug_protocol::changes::Change {
                            position,
                            key,
                            value: Some(b"v"),
                        },
                    )
                    .unwrap();
                }
                response(200, &["kvplug-protocol: 1", "kvplug-position: 9"], &page)
            }),
            "changes out of order",
        ),
        (
            "etcd",
            "garbled stream",
            etcd(b"{\"result\":{\"created\":true}}\nthis is not json\n".to_vec()),
            "a watch message that is not etcd's JSON",
        ),
        (
            "etcd",
            "stream cut mid-message",
            etcd(
                b"{\"result\":{\"created\":true}}\n{\"result\":{\"events\":[{\"kv\":{\"key\":\""
                    .to_vec(),
            ),
            "the stream broke",
        ),
        (
            "etcd",
            "a key that is not base64",
            etcd(
                b"{\"result\":{\"events\":[{\"kv\":{\"key\":\"!!\",\"mod_revision\":\"6\"}}]}}\n"
                    .to_vec(),
            ),
            "not base64",
        ),
    ];
    for (i, (backend, case, responder, expected)) in cases.into_iter().enumerate() {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = Arc::clone(&seen);
        let server = FaultServer::start_answering_all(move |request| {
            log.lock()
                .unwrap()
                .push(format!("{} {}", request.method, request.path));
            responder(request)
        });
        let component = composed(backend, false, dir.path());
        let config = driver_settings(settings(&server.url()), &[("watch-retry-ms", "1500")]);
        let mut driver = Driver::start(&component, &config, &dir.path().join(format!("{i}.log")));
        let (status, stderr) = driver.exit(Duration::from_secs(60));
        assert!(!status.success(), "{backend} {case}: {stderr}");
        assert!(
            stderr.contains("kvplug-watch: stopped"),
            "{backend} {case}: {stderr}"
        );
        assert!(stderr.contains(expected), "{backend} {case}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("wasm trap"),
            "{backend} {case}: {stderr}"
        );
        let seen = seen.lock().unwrap();
        assert!(
            !seen.iter().any(|r| r.contains("mirror")),
            "{backend} {case}: something was delivered: {seen:?}"
        );
    }
}

fn seal_request(pairs: &[(&str, &str)]) -> kvplug_compose::seal::Request {
    kvplug_compose::seal::Request {
        settings: pairs
            .iter()
            .map(|(n, v)| ((*n).into(), (*v).into()))
            .collect(),
        layered: false,
    }
}

/// `watch-app` with the http adapter and driver, both sealed for the service at `url`; the
/// driver watches bucket `watched` and stops after one event.
fn sealed_watch_app(url: &str) -> Vec<u8> {
    use kvplug_compose::seal;

    kvplug_tests::artifacts();
    let static_config = std::fs::read(artifacts::config_path("kvplug-config-static")).unwrap();
    let driver = std::fs::read(artifacts::driver_path("http", false)).unwrap();
    let sealed_driver = seal::seal(
        &driver,
        &static_config,
        &seal_request(&[
            ("url", url),
            ("watch-buckets", "watched"),
            ("watch-max-events", "1"),
        ]),
    )
    .expect("the driver seals");
    let adapter = std::fs::read(artifacts::adapter_path("http")).unwrap();
    let sealed_adapter = seal::seal(&adapter, &static_config, &seal_request(&[("url", url)]))
        .expect("the adapter seals");
    let app = std::fs::read(artifacts::fixture_path("watch-app")).unwrap();
    kvplug_compose::watch::watch_bytes(app, sealed_adapter.adapter, sealed_driver.adapter).unwrap()
}

/// A driver sealed like an adapter (`kvplug seal`, the driver's own settings checked by its
/// parser), composed with a sealed adapter: the result imports no `wasi:config` and runs with
/// no runtime settings at all.
#[tokio::test(flavor = "multi_thread")]
async fn a_sealed_driver_with_a_sealed_adapter_runs_without_runtime_config() {
    use kvplug_compose::{seal, surface};

    kvplug_tests::artifacts();
    let service = Server::start();
    let url = service.url();
    let dir = tempfile::tempdir().unwrap();
    let static_config = std::fs::read(artifacts::config_path("kvplug-config-static")).unwrap();
    let driver = std::fs::read(artifacts::driver_path("http", false)).unwrap();

    // Mistakes are refused before anything is written, in the driver's words.
    for (pairs, expected) in [
        (vec![("url", url.as_str())], "`watch-buckets` is not set"),
        (
            vec![
                ("url", url.as_str()),
                ("watch-buckets", "a"),
                ("watch-wait-ms", "0"),
            ],
            "`watch-wait-ms`",
        ),
        (
            vec![
                ("url", url.as_str()),
                ("watch-buckets", "a"),
                ("watch-typo", "1"),
            ],
            "watch-typo",
        ),
    ] {
        let error = seal::seal(&driver, &static_config, &seal_request(&pairs)).unwrap_err();
        assert!(
            format!("{error:#}").contains(expected),
            "{pairs:?}: {error:#}"
        );
    }

    let composed = sealed_watch_app(&url);
    let imports = surface::surface(&composed).unwrap().imports;
    assert!(
        !imports.iter().any(|i| i.starts_with("wasi:config/")),
        "{imports:?}"
    );
    let path = dir.path().join("sealed.wasm");
    std::fs::write(&path, composed).unwrap();

    let mut driver = Driver::start(&path, &[], &dir.path().join("sealed.log"));
    driver.ready();
    let mut writer = Writer::new("http", settings(&url)).await;
    writer.set("sealed", b"1").await;
    let (status, stderr) = driver.exit(Duration::from_secs(30));
    assert!(status.success(), "{stderr}");
    writer.mirrored(&driver).await;
}

/// The same sealed composition on jco and Node: transpiled, run by `node`, it follows the
/// bucket, delivers a write (the driver's long poll and the app's store calls through Node's
/// HTTP), and stops by itself after `watch-max-events`.
#[tokio::test(flavor = "multi_thread")]
async fn the_sealed_composition_runs_on_jco_and_node() {
    use kvplug_tests::process::{JsOut, transpile_command};

    let service = Server::start();
    let url = service.url();
    let dir = JsOut::new("watch");
    let component = dir.join("watching.wasm");
    std::fs::write(&component, sealed_watch_app(&url)).unwrap();
    let mut node = Command::new("node");
    node.arg(transpile_command(&component, &dir));
    let mut driver = Driver::spawn(node, &dir.join("node.log"));
    driver.ready();
    let mut writer = Writer::new("http", settings(&url)).await;
    writer.set("on-node", b"from node").await;
    let (status, stderr) = driver.exit(Duration::from_secs(60));
    assert!(status.success(), "{stderr}");
    writer.mirrored(&driver).await;
}

macro_rules! watch_tests {
    ($($module:ident: $service:ty, draft $draft:literal;)*) => {$(
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread")]
            async fn delivers_every_write_across_driver_and_service_restarts() {
                delivers_everything::<$service>($draft).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn a_trapping_watcher_loses_nothing() {
                super::a_trapping_watcher_loses_nothing::<$service>().await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn a_lost_position_is_named() {
                super::a_lost_position_is_named::<$service>($draft).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn only_the_prefix_is_delivered() {
                super::only_the_prefix_is_delivered::<$service>().await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn wrong_settings_are_named() {
                super::wrong_settings_are_named::<$service>().await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn a_huge_or_echoing_feed_is_named() {
                super::a_huge_or_echoing_feed_is_named::<$service>().await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn a_silent_service_is_an_error() {
                super::a_silent_service_is_an_error::<$service>().await;
            }
        }
    )*};
}

// The etcd row runs the older draft's app and driver, the http row draft2's.
watch_tests! {
    http: Server, draft false;
    etcd: Etcd, draft true;
    dynamodb: MotoStream, draft false;
    redis: Redis, draft false;
}

/// What only the DynamoDB driver has: positions of its own shape, and iterators kept between
/// reads. On moto, behind the proxy that counts every request.
mod dynamodb_stream {
    use super::*;

    /// The driver's requests in `log`, by kind: stream reads, table and stream descriptions,
    /// and position saves (the driver's writes to bucket `kvplug-watch`).
    #[derive(Debug, Default)]
    struct Counts {
        get_records: u64,
        get_shard_iterator: u64,
        describe: u64,
        positions: u64,
    }

    fn counts(log: &[kvplug_tests::counting_proxy::Recorded]) -> Counts {
        let mut counts = Counts::default();
        for request in log {
            let target = request
                .headers
                .iter()
                .find(|(name, _)| name == "x-amz-target")
                .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
                .unwrap_or_default();
            let body = String::from_utf8_lossy(&request.body);
            match target.rsplit('.').next().unwrap_or_default() {
                "GetRecords" => counts.get_records += 1,
                "GetShardIterator" => counts.get_shard_iterator += 1,
                "DescribeTable" | "DescribeStream" => counts.describe += 1,
                _ if body.contains("\"!kvplug-watch\"") => counts.positions += 1,
                _ => {}
            }
        }
        counts
    }

    /// Requests per event, counted at the proxy: while idle, for a burst of writes, and for
    /// writes one at a time (each waited for). A steady reader asks for no new iterator and
    /// describes nothing.
    #[tokio::test(flavor = "multi_thread")]
    async fn requests_per_event() {
        let service = MotoStream::start();
        let proxy = service.proxy.as_ref().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let component = composed("dynamodb", false, dir.path());
        let config = driver_settings(service.adapter_settings(), &[]);
        let mut writer = Writer::new("dynamodb", service.adapter_settings()).await;
        let mut driver = Driver::start(&component, &config, &dir.path().join("1.log"));
        driver.ready();
        writer.set("warm", b"0").await;
        writer.mirrored(&driver).await;

        proxy.take_log();
        let idle = Instant::now();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let quiet = counts(&proxy.take_log());
        let idle_s = idle.elapsed().as_secs_f64();

        writer.burst("burst", 100).await;
        writer.mirrored(&driver).await;
        let burst = counts(&proxy.take_log());

        for i in 0..20 {
            writer.set(&format!("one{i}"), b"x").await;
            writer.mirrored(&driver).await;
        }
        let single = counts(&proxy.take_log());
        eprintln!(
            "idle: {quiet:?} in {idle_s:.1} s ({:.1} GetRecords/s); burst of 100: {burst:?}; 20 \
             writes one at a time: {single:?}",
            quiet.get_records as f64 / idle_s
        );
        for counted in [&quiet, &burst, &single] {
            assert_eq!(
                (counted.get_shard_iterator, counted.describe),
                (0, 0),
                "{counted:?}"
            );
        }
        // Idle: one read per 200 ms at most (AWS allows 5 per second per shard), and no
        // position saved (a save is itself a record, which would never let the stream rest).
        assert!(quiet.get_records as f64 / idle_s <= 5.5, "{quiet:?}");
        assert_eq!(quiet.positions, 0, "{quiet:?}");
        // Each delivered batch saves its position once; a burst comes in fewer batches than
        // writes.
        assert!(burst.positions < 100, "{burst:?}");
        assert!(single.positions <= 20, "{single:?}");
    }

    /// A counter (`increment`: `UpdateItem ADD` on the number attribute) reaches the watcher
    /// as `get` reads it, its decimal text; a write to another bucket does not.
    #[tokio::test(flavor = "multi_thread")]
    async fn counters_arrive_as_get_reads_them() {
        let service = MotoStream::start();
        let dir = tempfile::tempdir().unwrap();
        let component = composed("dynamodb", false, dir.path());
        let config = driver_settings(service.adapter_settings(), &[]);
        let mut writer = Writer::new("dynamodb", service.adapter_settings()).await;
        let mut driver = Driver::start(&component, &config, &dir.path().join("1.log"));
        driver.ready();
        let watched = writer.kv.open("watched").await.unwrap();
        writer.kv.increment(watched, "count", 40).await.unwrap();
        let watched = writer.kv.open("watched").await.unwrap();
        assert_eq!(writer.kv.increment(watched, "count", 2).await.unwrap(), 42);
        let other = writer.kv.open("other").await.unwrap();
        writer.kv.set(other, "elsewhere", b"no").await.unwrap();
        writer.expected.insert("count".into(), Some(b"42".to_vec()));
        writer.set("after", b"1").await;
        writer.mirrored(&driver).await;
        assert_eq!(writer.mirror("elsewhere").await, None);
    }

    /// The saved record of bucket `watched`, and a hand edit of it.
    async fn saved(writer: &mut Writer) -> String {
        let bucket = writer.kv.open("kvplug-watch").await.unwrap();
        let record = writer.kv.get(bucket, "default/watched").await.unwrap();
        String::from_utf8(record.expect("a saved position")).unwrap()
    }

    async fn save(writer: &mut Writer, record: &str) {
        let bucket = writer.kv.open("kvplug-watch").await.unwrap();
        writer
            .kv
            .set(bucket, "default/watched", record.as_bytes())
            .await
            .unwrap();
    }

    /// A saved position naming a shard the stream does not have is a gap that names it; one
    /// with a sequence number the shard never had (moto answers `500` to reading there, with a
    /// new iterator too) is an error naming shard and sequence number; one of another shape is
    /// refused before any read.
    #[tokio::test(flavor = "multi_thread")]
    async fn positions_it_cannot_read_are_named() {
        let service = MotoStream::start();
        let dir = tempfile::tempdir().unwrap();
        let component = composed("dynamodb", false, dir.path());
        let config = driver_settings(service.adapter_settings(), &[("watch-retry-ms", "1000")]);
        let mut writer = Writer::new("dynamodb", service.adapter_settings()).await;
        let mut driver = Driver::start(&component, &config, &dir.path().join("1.log"));
        driver.ready();
        writer.set("seen", b"1").await;
        writer.mirrored(&driver).await;
        drop(driver);
        let record = saved(&mut writer).await;
        let (label, rest) = record.split_once(',').expect("label and shard");
        let shard = rest.split_once('=').expect("shard=sequence").0.to_owned();

        save(&mut writer, &format!("{label},shardId-gone=7 0")).await;
        let mut driver = Driver::start(&component, &config, &dir.path().join("2.log"));
        let (status, stderr) = driver.exit(Duration::from_secs(30));
        assert!(!status.success(), "{stderr}");
        assert!(
            stderr.contains("no longer has shard(s) shardId-gone")
                && stderr.contains("are lost to this driver"),
            "{stderr}"
        );

        save(&mut writer, &format!("{label},{shard}=5 0")).await;
        let mut driver = Driver::start(&component, &config, &dir.path().join("3.log"));
        let (status, stderr) = driver.exit(Duration::from_secs(30));
        assert!(!status.success(), "{stderr}");
        assert!(
            stderr.contains("HTTP 500")
                && stderr.contains(&format!("shard `{shard}` after sequence number `5`")),
            "{stderr}"
        );
        let secret = service
            .adapter_settings()
            .into_iter()
            .find(|(name, _)| name == "secret-access-key")
            .unwrap()
            .1;
        assert!(!stderr.contains(&secret), "{stderr}");

        // etcd's or the reference server's position, and this one's separators changed.
        for (i, bad) in ["42 0".to_owned(), format!("{label};{shard}:5 0")]
            .iter()
            .enumerate()
        {
            save(&mut writer, bad).await;
            let log = dir.path().join(format!("bad-{i}.log"));
            let mut driver = Driver::start(&component, &config, &log);
            let (status, stderr) = driver.exit(Duration::from_secs(30));
            assert!(!status.success(), "{bad}: {stderr}");
            assert!(
                stderr.contains("is not one this backend's feed makes"),
                "{bad}: {stderr}"
            );
        }
    }

    /// A table without a stream stops the driver at once, saying how to turn one on.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_table_without_a_stream_is_named() {
        let moto = Moto::start();
        let dir = tempfile::tempdir().unwrap();
        let component = composed("dynamodb", false, dir.path());
        let config = driver_settings(moto.settings(), &[]);
        let started = Instant::now();
        let mut driver = Driver::start(&component, &config, &dir.path().join("1.log"));
        let (status, stderr) = driver.exit(Duration::from_secs(30));
        assert!(!status.success(), "{stderr}");
        assert!(
            stderr.contains("has no stream (`StreamSpecification`)")
                && stderr.contains("StreamEnabled=true,StreamViewType=NEW_IMAGE"),
            "{stderr}"
        );
        assert!(!stderr.contains("retrying"), "{stderr}");
        assert!(started.elapsed() < Duration::from_secs(20), "{stderr}");
    }
}

/// Every driver keeps to its allow-list and imports the store and watcher of its own draft
/// only; an app on either draft finds its driver.
#[test]
fn every_driver_imports_only_what_it_needs() {
    use kvplug_compose::surface;
    kvplug_tests::artifacts();
    for backend in artifacts::WATCH_BACKENDS {
        for (draft, version) in [(false, "0.2.0-draft2"), (true, "0.2.0-draft")] {
            let bytes = std::fs::read(artifacts::driver_path(backend, draft)).unwrap();
            let found = surface::surface(&bytes).unwrap();
            surface::check_driver(&found).unwrap();
            let keyvalue: Vec<&String> = found
                .imports
                .iter()
                .filter(|i| i.starts_with("wasi:keyvalue/"))
                .collect();
            assert_eq!(
                keyvalue,
                [
                    &format!("wasi:keyvalue/store@{version}"),
                    &format!("wasi:keyvalue/watcher@{version}")
                ],
                "{backend} {draft}"
            );
        }
    }
}

/// Every backend with a driver has its row above.
/// What only the Redis driver has: a stream that kvplug's own writes append to, each in the
/// write's own script. On Redis behind webdis.
mod redis_stream {
    use super::*;
    use kvplug_tests::entries::{EntriesKv, InsertMode, InsertOptions};

    /// Every kind of kvplug write reaches the watcher as `get` then reads the key (a counter as
    /// its decimal, an append as the whole value), with one stream entry per key written: a
    /// delete of a key that is not there appends nothing.
    #[tokio::test(flavor = "multi_thread")]
    async fn every_kind_of_write_arrives_as_get_reads_it() {
        let service = Redis::start();
        let dir = tempfile::tempdir().unwrap();
        let component = composed("redis", false, dir.path());
        let config = driver_settings(service.adapter_settings(), &[]);
        let mut writer = Writer::new("redis", service.adapter_settings()).await;
        let mut entries = EntriesKv::with("redis", service.adapter_settings()).await;
        let mut driver = Driver::start(&component, &config, &dir.path().join("1.log"));
        driver.ready();

        let kv = &mut writer.kv;
        let b = kv.open("watched").await.unwrap();
        kv.increment(b, "count", 40).await.unwrap();
        let b = kv.open("watched").await.unwrap();
        assert_eq!(kv.increment(b, "count", 2).await.unwrap(), 42);
        let b = kv.open("watched").await.unwrap();
        kv.set(b, "swapped", b"old").await.unwrap();
        let b = kv.open("watched").await.unwrap();
        let cas = kv.cas_new(b, "swapped").await.unwrap();
        kv.swap(cas, b"new").await.unwrap();
        let b = kv.open("watched").await.unwrap();
        kv.set_many(b, &[("m1", b"1"), ("m2", b"2")]).await.unwrap();
        let b = kv.open("watched").await.unwrap();
        kv.delete_many(b, &["m1", "never"]).await.unwrap();
        let b = kv.open("watched").await.unwrap();
        kv.delete(b, "never").await.unwrap();
        let b = entries.open("watched").await;
        let plain = InsertOptions::new(InsertMode::Overwrite);
        entries.insert(b, "e", b"head", &plain).await.unwrap();
        let b = entries.open("watched").await;
        let append = InsertOptions::new(InsertMode::Append);
        entries.insert(b, "e", b"+tail", &append).await.unwrap();
        let b = entries.open("watched").await;
        entries.insert(b, "gone", b"x", &plain).await.unwrap();
        let b = entries.open("watched").await;
        assert!(entries.delete(b, "gone", None).await.unwrap());
        let b = entries.open("watched").await;
        assert!(!entries.delete(b, "never", None).await.unwrap());

        for (key, value) in [
            ("count", Some(&b"42"[..])),
            ("swapped", Some(b"new")),
            ("m1", None),
            ("m2", Some(b"2")),
            ("e", Some(b"head+tail")),
            ("gone", None),
        ] {
            writer
                .expected
                .insert(key.into(), value.map(<[u8]>::to_vec));
        }
        writer.set("after", b"1").await;
        writer.mirrored(&driver).await;
        assert_eq!(writer.mirror("never").await, None);
        // 2 increments, set, swap, 2 set-many, 1 delete-many, 3 inserts, 1 delete, `after`.
        assert_eq!(service.cli(&["XLEN", "!watched!changes"]).trim(), "12");
    }
}

#[test]
fn every_driver_is_tested() {
    assert_eq!(
        artifacts::WATCH_BACKENDS,
        [
            <Server as Followed>::BACKEND,
            <Etcd as Followed>::BACKEND,
            <MotoStream as Followed>::BACKEND,
            <Redis as Followed>::BACKEND
        ]
    );
}
