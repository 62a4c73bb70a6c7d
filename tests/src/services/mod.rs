//! The real services behind each backend, started on free loopback ports for one test and
//! stopped when dropped: kvplug-server (in process), etcd, Redis behind webdis, the
//! DynamoDB emulators dynalite and moto, and Azurite's Table service.
//!
//! One module per backend (named as in the backend registry, `kvplug_compose::registry`)
//! holds its test services and everything the tests expect of that backend: a `Backend`
//! type implementing [`BackendTests`], and one type per test service implementing
//! [`TestService`]. The lists of backends and services below are generated from the
//! registry, so a registered backend without its module, its expectations or its services
//! does not compile.
//!
//! A missing binary fails the test with the command that installs it: a backend is never
//! skipped.

pub mod azure_table;
pub mod dynamodb;
pub mod etcd;
pub mod http;
pub mod redis;

pub use azure_table::Azurite;
pub use dynamodb::{Dynalite, Moto};
pub use etcd::{Etcd, EtcdCluster};
pub use http::Reference;
pub use redis::Redis;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use kvplug_runner::Settings;

use crate::fault_server::Action;

/// A running service that one adapter backend speaks to.
pub trait Service: Send + Sync {
    /// The backend (`kvplug-<backend>.wasm`) that talks to this service.
    fn backend(&self) -> &'static str;
    /// The settings an adapter needs to reach it.
    fn settings(&self) -> Settings;
}

/// A test service named in the backend registry: the tests generated for every service
/// (`on_every_backend!`, the conformance matrix, the benchmark) start it through this.
pub trait TestService: Service + Sized + 'static {
    /// The backend it stands for.
    type Backend: BackendTests;
    /// Its name in the registry (and the module of its generated tests).
    const NAME: &'static str;
    /// Its row in the conformance matrix (`docs/conformance.md`).
    const IMPLEMENTATION: &'static str;
    /// Its column or row name in the benchmark.
    const LABEL: &'static str;
    /// Starts it as every generated test uses it.
    fn start_default() -> Self;
}

/// What the tests expect of one backend, wherever it differs from the others. Every item
/// is required: a backend without one does not compile.
pub trait BackendTests {
    /// Its name in the registry.
    const NAME: &'static str;
    /// Where its service limits values, if it does.
    const VALUE_LIMIT: Option<ValueLimit>;
    /// The fewest requests its service allows for the calls that differ.
    const FEWEST: Fewest;
    /// The header by which the adapter recognises its service's answers, if one does.
    const MARK: Option<&'static str>;
    /// Whether the adapter signs its requests (and so imports the wall clock).
    const SIGNS: bool;
    /// Whether its credential is the `token` setting.
    const TAKES_TOKEN: bool;
    /// Whether it honours the `prefix` setting.
    const TAKES_PREFIX: bool;
    /// Whether a `list-keys` page holds exactly `page-size` keys (Redis's SCAN: a hint).
    const EXACT_PAGES: bool;
    /// Whether `swap` compares the captured value rather than a version (Redis).
    const CAS_COMPARES_VALUES: bool;
    /// Where its service (or the URLs that carry names to it) limits keys and buckets.
    fn name_limits() -> NameLimits;
    /// Settings that reach `url` (the fault server) with `secrets` as its credentials.
    fn fault_settings(url: &str, secrets: &Secrets) -> Settings;
    /// Of `secrets`, those it is configured with by [`BackendTests::fault_settings`], as
    /// the service could see them.
    fn configured_secrets(secrets: &Secrets) -> Vec<&'static str>;
    /// An error body of its service that says `message` (in the JSON it wraps errors in,
    /// if any).
    fn error_body(message: &str) -> String;
    /// What its own service answers when `cas.new` reads an absent key.
    fn absent() -> Action;
    /// The start of the request each error names, for `set`, `get`, `delete`, `exists`,
    /// `list-keys`, `increment`, `cas.new`, `swap`, `get-many`, `set-many`, `delete-many`.
    fn requests() -> [&'static str; 11];
    /// A service whose value or request limit one batch entry passes: the service, the
    /// size of that entry and what its refusal says.
    fn oversized_batch() -> OversizedBatch;
}

/// See [`BackendTests::oversized_batch`].
pub struct OversizedBatch {
    pub service: Box<dyn Service>,
    pub size: usize,
    pub limit: &'static str,
}

/// Credentials a fault test configures; each backend takes those of its kind.
#[derive(Debug, Clone, Copy)]
pub struct Secrets {
    /// `token`, for the backends that take one; `None`: no token.
    pub token: Option<&'static str>,
    /// `secret-access-key` (DynamoDB).
    pub aws_secret: &'static str,
    /// `session-token` (DynamoDB); `None`: none.
    pub session_token: Option<&'static str>,
    /// `account-key` (Azure Table).
    pub account_key: &'static str,
}

/// [`BackendTests`] of one backend, as values.
#[derive(Clone, Copy)]
pub struct Expectations {
    pub name: &'static str,
    pub value_limit: Option<ValueLimit>,
    pub fewest: Fewest,
    pub mark: Option<&'static str>,
    pub signs: bool,
    pub takes_token: bool,
    pub takes_prefix: bool,
    pub exact_pages: bool,
    pub cas_compares_values: bool,
    pub name_limits: fn() -> NameLimits,
    pub fault_settings: fn(&str, &Secrets) -> Settings,
    pub configured_secrets: fn(&Secrets) -> Vec<&'static str>,
    pub error_body: fn(&str) -> String,
    pub absent: fn() -> Action,
    pub requests: fn() -> [&'static str; 11],
    pub oversized_batch: fn() -> OversizedBatch,
}

impl Expectations {
    /// The expectations of `B`.
    pub fn of<B: BackendTests>() -> Expectations {
        Expectations {
            name: B::NAME,
            value_limit: B::VALUE_LIMIT,
            fewest: B::FEWEST,
            mark: B::MARK,
            signs: B::SIGNS,
            takes_token: B::TAKES_TOKEN,
            takes_prefix: B::TAKES_PREFIX,
            exact_pages: B::EXACT_PAGES,
            cas_compares_values: B::CAS_COMPARES_VALUES,
            name_limits: B::name_limits,
            fault_settings: B::fault_settings,
            configured_secrets: B::configured_secrets,
            error_body: B::error_body,
            absent: B::absent,
            requests: B::requests,
            oversized_batch: B::oversized_batch,
        }
    }
}

/// A registered test service, as values.
#[derive(Clone, Copy)]
pub struct ServiceEntry {
    pub name: &'static str,
    pub backend: &'static str,
    pub implementation: &'static str,
    pub label: &'static str,
    pub start: fn() -> Box<dyn Service>,
}

impl ServiceEntry {
    /// The entry of `S`.
    pub fn of<S: TestService>() -> ServiceEntry {
        ServiceEntry {
            name: S::NAME,
            backend: <S::Backend as BackendTests>::NAME,
            implementation: S::IMPLEMENTATION,
            label: S::LABEL,
            start: || Box::new(S::start_default()),
        }
    }
}

/// Whether `a` and `b` are equal, at compile time.
#[doc(hidden)]
pub const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

macro_rules! push_backend {
    ($module:ident, $name:literal; $into:ident) => {
        const _: () = assert!(
            same(<self::$module::Backend as BackendTests>::NAME, $name),
            concat!(
                "services::",
                stringify!($module),
                "::Backend is not `",
                $name,
                "`"
            )
        );
        $into.extend([Expectations::of::<self::$module::Backend>()]);
    };
}

macro_rules! push_service {
    ($service:ident, $name:literal, $module:ident, $ty:ident; $into:ident) => {
        const _: () = assert!(
            same(<self::$module::$ty as TestService>::NAME, $name),
            concat!(
                "services::",
                stringify!($module),
                "::",
                stringify!($ty),
                " is not `",
                $name,
                "`"
            )
        );
        $into.extend([ServiceEntry::of::<self::$module::$ty>()]);
    };
}

/// Every registered backend's expectations, in registry order.
pub fn backends() -> &'static [Expectations] {
    static BACKENDS: OnceLock<Vec<Expectations>> = OnceLock::new();
    BACKENDS.get_or_init(|| {
        let mut backends = Vec::new();
        kvplug_compose::foreach_backend!(push_backend; backends);
        backends
    })
}

/// Every registered test service, in registry order.
pub fn services() -> &'static [ServiceEntry] {
    static SERVICES: OnceLock<Vec<ServiceEntry>> = OnceLock::new();
    SERVICES.get_or_init(|| {
        let mut services = Vec::new();
        kvplug_compose::foreach_service!(push_service; services);
        services
    })
}

/// The expectations of `backend`.
pub fn expectations(backend: &str) -> &'static Expectations {
    backends()
        .iter()
        .find(|expected| expected.name == backend)
        .unwrap_or_else(|| panic!("no backend `{backend}` in the registry"))
}

/// Starts the service `name` (a backend, or one of the emulators of `dynamodb`) with its
/// defaults.
pub fn start(name: &str) -> Box<dyn Service> {
    let entry = services()
        .iter()
        .find(|service| service.name == name)
        .unwrap_or_else(|| panic!("no test service `{name}`"));
    (entry.start)()
}

/// The headers by which each adapter recognises its service's answers, in registry order.
pub fn marks() -> &'static [&'static str] {
    static MARKS: OnceLock<Vec<&'static str>> = OnceLock::new();
    MARKS.get_or_init(|| backends().iter().filter_map(|b| b.mark).collect())
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
    expectations(backend).value_limit
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

impl NameLimits {
    /// The limits `longest_key` and so on, with `too_long_key` one byte longer.
    pub fn new(
        longest_key: String,
        key_limit: &'static str,
        longest_bucket: String,
        too_long_bucket: Option<(String, &'static str)>,
    ) -> NameLimits {
        NameLimits {
            too_long_key: longer(&longest_key),
            longest_key,
            key_limit,
            longest_bucket,
            too_long_bucket,
        }
    }
}

/// `bytes` bytes of `é`: two bytes of UTF-8 that percent-encoding makes six.
pub fn wide(bytes: usize) -> String {
    "é".repeat(bytes / 2)
}

/// `name` one byte longer.
pub fn longer(name: &str) -> String {
    format!("{name}k")
}

/// The name limits of `backend`.
pub fn name_limits(backend: &str) -> NameLimits {
    (expectations(backend).name_limits)()
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
    /// Entries one batch write (`set-many`) can carry.
    pub batch_write: usize,
    /// Keys one `delete-many` request can carry (fewer than `batch_write` where each key
    /// has a companion to delete with it: etcd).
    pub batch_delete: usize,
}

/// What the adapter for `backend` must meet (asserted by the tests, reported by the
/// benchmark).
pub fn fewest_requests(backend: &str) -> Fewest {
    expectations(backend).fewest
}

/// The `url` of `settings`.
pub fn url_of(settings: &Settings) -> &str {
    settings
        .iter()
        .find(|(name, _)| name == "url")
        .map(|(_, url)| url.as_str())
        .expect("settings with a url")
}

pub(crate) fn require(binary: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(binary).is_file()));
    assert!(
        found,
        "`{binary}` is not installed: `apt-get install {package}` (scripts/setup.sh does)"
    );
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

/// Forms of `secret` a service could echo, written independently of the adapter.
pub fn echoed_forms(secret: &str) -> Vec<String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    let percent = |lower: bool| -> String {
        secret
            .bytes()
            .map(
                |b| match (b.is_ascii_alphanumeric() || b"-._~".contains(&b), lower) {
                    (true, _) => char::from(b).to_string(),
                    (false, false) => format!("%{b:02X}"),
                    (false, true) => format!("%{b:02x}"),
                },
            )
            .collect()
    };
    vec![
        secret.to_owned(),
        b64.clone(),
        b64.trim_end_matches('=').to_owned(),
        percent(false),
        percent(true),
        secret.replace('/', "\\/"),
    ]
}
