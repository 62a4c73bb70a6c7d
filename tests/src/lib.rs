//! Shared pieces of the integration tests: the artifacts (built once per test binary), one
//! wasmtime runtime, typed calls into an adapter's `wasi:keyvalue` exports, the reference
//! server, and a fault-injecting server for what a real server will not do.

#![expect(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test, which is how a test reports it"
)]

pub mod counting_proxy;
pub mod entries;
pub mod fault_server;
pub mod process;
pub mod services;
pub mod watch;

use std::sync::OnceLock;

use kvplug_compose::artifacts;
#[doc(hidden)]
pub use kvplug_compose::{foreach_backend, foreach_service};
use kvplug_runner::{Host, Runtime, Settings};
use wasmtime::Store;
use wasmtime::component::{Component, ResourceAny};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "kvplug:adapter/keyvalue-provider",
    exports: { default: async },
    additional_derives: [PartialEq, Eq],
});

/// Host bindings for an adapter's `wasi:keyvalue@0.2.0-draft` exports.
pub mod draft {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "kvplug:adapter/keyvalue-provider-draft",
        exports: { default: async },
        additional_derives: [PartialEq, Eq],
    });
}

pub use exports::wasi::keyvalue0_2_0_draft2::atomics::CasError;
pub use exports::wasi::keyvalue0_2_0_draft2::store::{Error as KvError, KeyResponse};

/// The built `kvplug-http.wasm` and fixtures; built on first use, once per test binary.
pub fn artifacts() -> &'static artifacts::Built {
    static BUILT: OnceLock<artifacts::Built> = OnceLock::new();
    BUILT.get_or_init(|| match artifacts::build_all() {
        Ok(built) => built,
        Err(e) => panic!("building the wasm artifacts failed: {e:?}"),
    })
}

/// One runtime for all tests of a binary. Its guests send through `kvplug-http-pool`, as the
/// quickstart's do: the tests about wasmtime's default client (a connection per request)
/// build a runtime of their own.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let pool = kvplug_http_pool::Pool::new(kvplug_http_pool::PoolConfig::default())
            .expect("connection pool");
        Runtime::new().expect("wasmtime runtime").with_pool(pool)
    })
}

/// `kvplug-http.wasm`, compiled once.
pub fn http_adapter() -> &'static Component {
    static COMPONENT: OnceLock<Component> = OnceLock::new();
    COMPONENT.get_or_init(|| {
        artifacts();
        runtime()
            .load(&artifacts::adapter_path("http"))
            .expect("compile kvplug-http.wasm")
    })
}

/// `kvplug-<backend>.wasm`, compiled once per test binary.
pub fn adapter(backend: &str) -> &'static Component {
    static COMPONENTS: OnceLock<std::collections::BTreeMap<&'static str, Component>> =
        OnceLock::new();
    let components = COMPONENTS.get_or_init(|| {
        artifacts()
            .adapters
            .iter()
            .map(|(name, path)| {
                let component = runtime()
                    .load(path)
                    .unwrap_or_else(|e| panic!("compile {}: {e:?}", path.display()));
                (*name, component)
            })
            .collect()
    });
    components
        .get(backend)
        .unwrap_or_else(|| panic!("no adapter for backend `{backend}`"))
}

/// Settings with just `url`.
pub fn settings(url: &str) -> Settings {
    vec![("url".to_owned(), url.to_owned())]
}

/// A reference server on a free loopback port, data in a temporary directory.
pub fn reference_server() -> (tempfile::TempDir, kvplug_server::Server) {
    reference_server_with(|_| {})
}

/// Like [`reference_server`], with the configuration adjusted by `adjust`.
pub fn reference_server_with(
    adjust: impl FnOnce(&mut kvplug_server::Config),
) -> (tempfile::TempDir, kvplug_server::Server) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = kvplug_server::Config::new(dir.path());
    adjust(&mut config);
    let server = kvplug_server::Server::start(config).expect("reference server starts");
    (dir, server)
}

/// An instance of an adapter, called through its `wasi:keyvalue` exports as an application
/// would. Every method fails the test if the adapter traps: a trap would kill the user's
/// component, so it is never an acceptable outcome.
pub struct Kv {
    store: Store<Host>,
    kv: KeyvalueProvider,
}

const TRAPPED: &str = "the adapter trapped";

impl Kv {
    /// Instantiates `kvplug-http.wasm` with `settings`.
    pub async fn new(settings: Settings) -> Kv {
        Kv::with_adapter(http_adapter(), settings).await
    }

    /// Instantiates the adapter for `service`, with its settings.
    pub async fn connect(service: &dyn services::Service) -> Kv {
        Kv::with_adapter(adapter(service.backend()), service.settings()).await
    }

    /// Instantiates `adapter` with `settings`.
    pub async fn with_adapter(adapter: &Component, settings: Settings) -> Kv {
        Kv::on(runtime(), adapter, settings).await
    }

    /// Instantiates `adapter` with `settings`, its memory capped at `bytes` as a host
    /// that limits its guests would.
    pub async fn capped(adapter: &Component, settings: Settings, bytes: usize) -> Kv {
        let mut store = runtime().store(&settings, &[]);
        store.data_mut().cap_memory(bytes);
        let kv = KeyvalueProvider::instantiate_async(&mut store, adapter, runtime().linker())
            .await
            .expect("instantiate the adapter");
        Kv { store, kv }
    }

    /// Instantiates `adapter` with `settings` on `runtime`.
    pub async fn on(runtime: &Runtime, adapter: &Component, settings: Settings) -> Kv {
        let mut store = runtime.store(&settings, &[]);
        let kv = KeyvalueProvider::instantiate_async(&mut store, adapter, runtime.linker())
            .await
            .expect("instantiate the adapter");
        Kv { store, kv }
    }

    /// Bytes of linear memory the adapter instance has grown to.
    pub fn linear_memory(&self) -> usize {
        self.store.data().linear_memory()
    }

    pub async fn open(&mut self, name: &str) -> Result<ResourceAny, KvError> {
        let store_api = self.kv.wasi_keyvalue0_2_0_draft2_store();
        store_api
            .call_open(&mut self.store, name)
            .await
            .expect(TRAPPED)
    }

    pub async fn get(&mut self, b: ResourceAny, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let api = self.kv.wasi_keyvalue0_2_0_draft2_store().bucket();
        api.call_get(&mut self.store, b, key).await.expect(TRAPPED)
    }

    pub async fn set(&mut self, b: ResourceAny, key: &str, value: &[u8]) -> Result<(), KvError> {
        let api = self.kv.wasi_keyvalue0_2_0_draft2_store().bucket();
        api.call_set(&mut self.store, b, key, value)
            .await
            .expect(TRAPPED)
    }

    pub async fn delete(&mut self, b: ResourceAny, key: &str) -> Result<(), KvError> {
        let api = self.kv.wasi_keyvalue0_2_0_draft2_store().bucket();
        api.call_delete(&mut self.store, b, key)
            .await
            .expect(TRAPPED)
    }

    pub async fn exists(&mut self, b: ResourceAny, key: &str) -> Result<bool, KvError> {
        let api = self.kv.wasi_keyvalue0_2_0_draft2_store().bucket();
        api.call_exists(&mut self.store, b, key)
            .await
            .expect(TRAPPED)
    }

    pub async fn list_keys(
        &mut self,
        b: ResourceAny,
        cursor: Option<&str>,
    ) -> Result<KeyResponse, KvError> {
        let api = self.kv.wasi_keyvalue0_2_0_draft2_store().bucket();
        api.call_list_keys(&mut self.store, b, cursor)
            .await
            .expect(TRAPPED)
    }

    pub async fn increment(
        &mut self,
        b: ResourceAny,
        key: &str,
        delta: i64,
    ) -> Result<i64, KvError> {
        let api = self.kv.wasi_keyvalue0_2_0_draft2_atomics();
        api.call_increment(&mut self.store, b, key, delta)
            .await
            .expect(TRAPPED)
    }

    pub async fn cas_new(&mut self, b: ResourceAny, key: &str) -> Result<ResourceAny, KvError> {
        let api = self.kv.wasi_keyvalue0_2_0_draft2_atomics().cas();
        api.call_new(&mut self.store, b, key).await.expect(TRAPPED)
    }

    pub async fn cas_current(&mut self, cas: ResourceAny) -> Result<Option<Vec<u8>>, KvError> {
        let api = self.kv.wasi_keyvalue0_2_0_draft2_atomics().cas();
        api.call_current(&mut self.store, cas).await.expect(TRAPPED)
    }

    pub async fn swap(&mut self, cas: ResourceAny, value: &[u8]) -> Result<(), CasError> {
        let api = self.kv.wasi_keyvalue0_2_0_draft2_atomics();
        api.call_swap(&mut self.store, cas, value)
            .await
            .expect(TRAPPED)
    }

    pub async fn get_many(
        &mut self,
        b: ResourceAny,
        keys: &[&str],
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        let api = self.kv.wasi_keyvalue0_2_0_draft2_batch();
        api.call_get_many(&mut self.store, b, &keys)
            .await
            .expect(TRAPPED)
    }

    pub async fn set_many(
        &mut self,
        b: ResourceAny,
        pairs: &[(&str, &[u8])],
    ) -> Result<(), KvError> {
        let pairs: Vec<(String, Vec<u8>)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
            .collect();
        let api = self.kv.wasi_keyvalue0_2_0_draft2_batch();
        api.call_set_many(&mut self.store, b, &pairs)
            .await
            .expect(TRAPPED)
    }

    pub async fn delete_many(&mut self, b: ResourceAny, keys: &[&str]) -> Result<(), KvError> {
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        let api = self.kv.wasi_keyvalue0_2_0_draft2_batch();
        api.call_delete_many(&mut self.store, b, &keys)
            .await
            .expect(TRAPPED)
    }

    /// Every key of a bucket, following cursors; fails on a repeated key.
    pub async fn all_keys(&mut self, b: ResourceAny) -> Result<(Vec<String>, usize), KvError> {
        let mut keys = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = self.list_keys(b, cursor.as_deref()).await?;
            pages += 1;
            keys.extend(page.keys);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), keys.len(), "a key was listed twice: {keys:?}");
        Ok((keys, pages))
    }
}

/// An instance of an adapter called through its older-draft exports
/// (`wasi:keyvalue@0.2.0-draft`, unsigned `increment`), as an app on that draft would.
pub struct DraftKv {
    store: Store<Host>,
    kv: draft::KeyvalueProviderDraft,
}

/// The older draft's `error`.
pub use draft::exports::wasi::keyvalue0_2_0_draft::store::Error as DraftError;

impl DraftKv {
    /// Instantiates the adapter for `service`, with its settings.
    pub async fn connect(service: &dyn services::Service) -> DraftKv {
        let mut store = runtime().store(&service.settings(), &[]);
        let kv = draft::KeyvalueProviderDraft::instantiate_async(
            &mut store,
            adapter(service.backend()),
            runtime().linker(),
        )
        .await
        .expect("instantiate the adapter");
        DraftKv { store, kv }
    }

    pub async fn open(&mut self, name: &str) -> Result<ResourceAny, DraftError> {
        let api = self.kv.wasi_keyvalue0_2_0_draft_store();
        api.call_open(&mut self.store, name).await.expect(TRAPPED)
    }

    pub async fn increment(
        &mut self,
        b: ResourceAny,
        key: &str,
        delta: u64,
    ) -> Result<u64, DraftError> {
        let api = self.kv.wasi_keyvalue0_2_0_draft_atomics();
        api.call_increment(&mut self.store, b, key, delta)
            .await
            .expect(TRAPPED)
    }
}

/// The message of an `other` error; fails the test on any other variant.
pub fn other_message(error: KvError) -> String {
    match error {
        KvError::Other(message) => message,
        other => panic!("expected `other`, got {other:?}"),
    }
}

/// Runs each named `async fn(&dyn Service)` as one test per test service of the backend
/// registry (`kvplug_compose::foreach_service!`), each against a service of its own
/// started by [`services::TestService::start_default`]: `http::case`, `etcd::case`,
/// `redis::case`, `dynalite::case`, `moto::case`, `azurite::case`.
#[macro_export]
macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {
        $crate::foreach_service!($crate::service_tests; $($case),*);
    };
}

/// One test per case for one test service; see [`on_every_backend`]. It names the
/// service's type, so a service in the registry without one does not compile.
#[doc(hidden)]
#[macro_export]
macro_rules! service_tests {
    ($service:ident, $name:literal, $backend:ident, $ty:ident; $($case:ident),*) => {
        mod $service {
            use $crate::services::$backend::$ty as Tested;
            const _: () = assert!(
                $crate::services::same(
                    <Tested as $crate::services::TestService>::NAME,
                    $name,
                ),
                concat!("the test service `", $name, "` is another type"),
            );
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $case() {
                    let service = <Tested as $crate::services::TestService>::start_default();
                    super::$case(&service).await;
                }
            )*
        }
    };
}
