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
    clippy::panic,
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test, which is how a test reports it"
)]

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use kvplug_compose::{artifacts, watch};
use kvplug_runner::Settings;
use kvplug_tests::counting_proxy::CountingProxy;
use kvplug_tests::services::{Etcd, Moto, Service as _};
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

/// The composed command of `watch-app` (or its draft twin), the backend's adapter and driver.
fn composed(backend: &str, draft: bool, dir: &Path) -> PathBuf {
    kvplug_tests::artifacts();
    let app = artifacts::fixture_path(if draft {
        "watch-app-draft"
    } else {
        "watch-app"
    });
    let out = dir.join(format!("watching-{backend}-{draft}.wasm"));
    watch::watch_files(
        &app,
        &artifacts::adapter_path(backend),
        &artifacts::driver_path(backend, draft),
        &out,
    )
    .expect("kvplug watch composes the three");
    out
}

/// A driver run by `wasmtime run`, killed with its process group on drop.
struct Driver {
    child: Child,
    log: PathBuf,
}

impl Driver {
    fn start(component: &Path, settings: &[(String, String)], log: &Path) -> Driver {
        let mut command = Command::new("wasmtime");
        command.args(["run", "-S", "http", "-S", "config"]);
        for (name, value) in settings {
            command.arg("-S").arg(format!("config-var={name}={value}"));
        }
        command
            .arg(component)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .process_group(0);
        let child = command
            .spawn()
            .expect("the wasmtime CLI must be installed (scripts/setup.sh)");
        Driver {
            child,
            log: log.to_owned(),
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the driver says it follows its buckets (its positions are then saved).
    fn ready(&mut self) {
        let started = Instant::now();
        while !self.stderr().contains("following bucket") {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "the driver exited ({status}) before following: {}",
                    self.stderr()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the driver did not start: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the driver to exit, at most `limit`.
    fn exit(&mut self, limit: Duration) -> (ExitStatus, String) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.stderr());
            }
            assert!(
                started.elapsed() < limit,
                "the driver did not exit within {limit:?}: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The settings of a driver watching bucket `watched`, on top of the adapter's `base`.
fn driver_settings(base: Settings, extra: &[(&str, &str)]) -> Settings {
    let mut all = base;
    all.push(("watch-buckets".into(), "watched".into()));
    // Short reads, so a test's driver notices a restart quickly.
    all.push(("watch-wait-ms".into(), "1000".into()));
    all.push(("watch-idle-ms".into(), "5000".into()));
    for (name, value) in extra {
        all.retain(|(n, _)| n != name);
        all.push(((*name).into(), (*value).into()));
    }
    all
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
/// with `watch-on-gap=skip`, says so and carries on from where the feed starts.
async fn a_lost_position_is_named<S: Followed>() {
    let mut service = S::start();
    let dir = tempfile::tempdir().unwrap();
    let component = composed(S::BACKEND, false, dir.path());
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
    let started = Instant::now();
    while !driver.stderr().contains("skipping to position") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            driver.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    writer.expected.clear();
    writer.set("later", b"2").await;
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
    // wasmtime's `-S` cannot carry a comma, so the adapter's allow-list holds one bucket.
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
                super::a_lost_position_is_named::<$service>().await;
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

/// Every backend with a driver has its row above.
#[test]
fn every_driver_is_tested() {
    assert_eq!(
        artifacts::WATCH_BACKENDS,
        [
            <Server as Followed>::BACKEND,
            <Etcd as Followed>::BACKEND,
            <MotoStream as Followed>::BACKEND
        ]
    );
}
