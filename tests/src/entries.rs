//! Calls into an adapter's `kvplug:keyvalue/entries@0.1.0` export from the host, as an app
//! using draft2 and the extension would.
//!
//! The types are declared here rather than generated: wasmtime 48's `bindgen!` cannot bind
//! this interface, because its generated export lookup is a local closure named `lookup`,
//! which the WIT function `lookup` shadows (the functions after it fail to compile).

use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, ComponentType, Lift, Lower, ResourceAny};

use crate::{KeyvalueProvider, TRAPPED, adapter, runtime};
use kvplug_runner::{Host, Settings};

/// The extension's export name.
pub const INTERFACE: &str = "kvplug:keyvalue/entries@0.1.0";

#[derive(ComponentType, Lift, Lower, Debug, Clone, Copy, PartialEq, Eq)]
#[component(enum)]
#[repr(u8)]
pub enum InsertMode {
    #[component(name = "overwrite")]
    Overwrite,
    #[component(name = "add")]
    Add,
    #[component(name = "append")]
    Append,
    #[component(name = "prepend")]
    Prepend,
}

#[derive(ComponentType, Lift, Lower, Debug, Clone, PartialEq, Eq)]
#[component(record)]
pub struct InsertOptions {
    pub mode: InsertMode,
    #[component(name = "time-to-live-sec")]
    pub time_to_live_sec: Option<u32>,
    pub metadata: Option<Vec<u8>>,
    #[component(name = "if-generation-match")]
    pub if_generation_match: Option<u64>,
}

impl InsertOptions {
    /// A plain insert in `mode`: no expiry, no metadata, no generation.
    pub fn new(mode: InsertMode) -> Self {
        InsertOptions {
            mode,
            time_to_live_sec: None,
            metadata: None,
            if_generation_match: None,
        }
    }
}

#[derive(ComponentType, Lift, Lower, Debug, Clone, PartialEq, Eq)]
#[component(record)]
pub struct Entry {
    pub value: Vec<u8>,
    pub metadata: Vec<u8>,
    pub generation: u64,
}

#[derive(ComponentType, Lift, Lower, Debug, Clone, PartialEq, Eq)]
#[component(record)]
pub struct DeleteOptions {
    #[component(name = "if-generation-match")]
    pub if_generation_match: Option<u64>,
}

#[derive(ComponentType, Lift, Lower, Debug, Clone, PartialEq, Eq, Default)]
#[component(record)]
pub struct ListOptions {
    pub prefix: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[derive(ComponentType, Lift, Lower, Debug, Clone, PartialEq, Eq)]
#[component(record)]
pub struct ListPage {
    pub keys: Vec<String>,
    pub cursor: Option<String>,
}

#[derive(ComponentType, Lift, Lower, Debug, Clone, Copy, PartialEq, Eq)]
#[component(enum)]
#[repr(u8)]
pub enum Precondition {
    #[component(name = "key-exists")]
    KeyExists,
    #[component(name = "generation-mismatch")]
    GenerationMismatch,
}

#[derive(ComponentType, Lift, Lower, Debug, Clone, Copy, PartialEq, Eq)]
#[component(enum)]
#[repr(u8)]
pub enum Limited {
    #[component(name = "key")]
    Key,
    #[component(name = "value")]
    Value,
    #[component(name = "metadata")]
    Metadata,
}

#[derive(ComponentType, Lift, Lower, Debug, Clone, Copy, PartialEq, Eq)]
#[component(record)]
pub struct SizeLimit {
    pub what: Limited,
    pub limit: Option<u64>,
    pub size: u64,
}

#[derive(ComponentType, Lift, Lower, Debug, Clone, Copy, PartialEq, Eq)]
#[component(record)]
pub struct TtlRange {
    #[component(name = "min-sec")]
    pub min_sec: u32,
    #[component(name = "max-sec")]
    pub max_sec: u32,
}

#[derive(ComponentType, Lift, Lower, Debug, Clone, Copy, PartialEq, Eq)]
#[component(record)]
pub struct Limits {
    #[component(name = "max-value-bytes")]
    pub max_value_bytes: Option<u64>,
    #[component(name = "max-metadata-bytes")]
    pub max_metadata_bytes: u32,
    #[component(name = "time-to-live")]
    pub time_to_live: TtlRange,
}

#[derive(ComponentType, Lift, Lower, Debug, Clone, PartialEq, Eq)]
#[component(variant)]
pub enum EntryError {
    #[component(name = "no-such-store")]
    NoSuchStore,
    #[component(name = "access-denied")]
    AccessDenied,
    #[component(name = "precondition-failed")]
    PreconditionFailed(Precondition),
    #[component(name = "too-large")]
    TooLarge(SizeLimit),
    #[component(name = "time-to-live-out-of-range")]
    TimeToLiveOutOfRange(TtlRange),
    #[component(name = "invalid-argument")]
    InvalidArgument(String),
    #[component(name = "other")]
    Other(String),
}

/// Requests per extension call on `backend`, the fewest its service allows
/// (docs/extension-design.md §2.6); `None` for a backend without the extension yet.
pub struct Expected {
    pub lookup: u64,
    pub overwrite: u64,
    pub overwrite_ttl: u64,
    pub add: u64,
    /// `add` over a live key.
    pub add_refused: u64,
    pub with_generation: u64,
    /// An insert whose generation no longer names the live entry.
    pub with_generation_lost: u64,
    pub append_absent: u64,
    pub append_present: u64,
    pub delete: u64,
    pub list_page: u64,
}

pub fn expected_requests(backend: &str) -> Option<Expected> {
    match backend {
        // One request per call: the server decides inside its transaction.
        "http" => Some(Expected {
            lookup: 1,
            overwrite: 1,
            overwrite_ttl: 1,
            add: 1,
            add_refused: 1,
            with_generation: 1,
            with_generation_lost: 1,
            append_absent: 1,
            append_present: 1,
            delete: 1,
            list_page: 1,
        }),
        // etcd: a time-to-live is a lease, granted before the write; append and prepend
        // are a compare-and-swap whose first transaction assumes the key absent (its
        // failure branch reads the entry), so an absent key costs 1 and a present one 2.
        "etcd" => Some(Expected {
            lookup: 1,
            overwrite: 1,
            overwrite_ttl: 2,
            add: 1,
            add_refused: 1,
            with_generation: 1,
            with_generation_lost: 1,
            append_absent: 1,
            append_present: 2,
            delete: 1,
            list_page: 1,
        }),
        // Redis: one Lua script per call, atomic on the server.
        "redis" => Some(Expected {
            lookup: 1,
            overwrite: 1,
            overwrite_ttl: 1,
            add: 1,
            add_refused: 1,
            with_generation: 1,
            with_generation_lost: 1,
            append_absent: 1,
            append_present: 1,
            delete: 1,
            list_page: 1,
        }),
        // DynamoDB conditions every write on the item's `ver` and liveness in the request
        // itself; only append and prepend read first (GetItem, then a conditional PutItem).
        "dynamodb" => Some(Expected {
            lookup: 1,
            overwrite: 1,
            overwrite_ttl: 1,
            add: 1,
            add_refused: 1,
            with_generation: 1,
            with_generation_lost: 1,
            append_absent: 2,
            append_present: 2,
            delete: 1,
            list_page: 1,
        }),
        // Azure conditions writes on the ETag only, so whatever depends on the entry's
        // liveness reads first (docs/extension-design.md §2.5).
        "azure-table" => Some(Expected {
            lookup: 1,
            overwrite: 1,
            overwrite_ttl: 1,
            // An insert; on `409` a read tells a live entry from an expired one.
            add: 1,
            add_refused: 2,
            // A read, then `If-Match` its ETag; a stale generation is seen by the read.
            with_generation: 2,
            with_generation_lost: 1,
            // A read, then an insert or `If-Match`.
            append_absent: 2,
            append_present: 2,
            // A read (`$select=x`), then `DELETE If-Match`: true only for a live entity.
            delete: 2,
            list_page: 1,
        }),
        _ => None,
    }
}

/// An adapter instance called through draft2's `store` and the extension.
pub struct EntriesKv {
    store: Store<Host>,
    kv: KeyvalueProvider,
    instance: wasmtime::component::Instance,
    interface: ComponentExportIndex,
}

impl EntriesKv {
    /// Instantiates the adapter for `backend` with `settings`; an error if it does not
    /// export the extension.
    pub async fn try_with(backend: &str, settings: Settings) -> wasmtime::Result<EntriesKv> {
        let mut store = runtime().store(&settings, &[]);
        let instance = runtime()
            .linker()
            .instantiate_async(&mut store, adapter(backend))
            .await?;
        let kv = KeyvalueProvider::new(&mut store, &instance)?;
        let interface = instance
            .get_export_index(&mut store, None, INTERFACE)
            .ok_or_else(|| wasmtime::format_err!("the adapter does not export `{INTERFACE}`"))?;
        Ok(EntriesKv {
            store,
            kv,
            instance,
            interface,
        })
    }

    /// Instantiates the adapter for `backend` with `settings`.
    pub async fn with(backend: &str, settings: Settings) -> EntriesKv {
        EntriesKv::try_with(backend, settings)
            .await
            .expect("instantiate the adapter with the extension")
    }

    pub async fn open(&mut self, name: &str) -> ResourceAny {
        let api = self.kv.wasi_keyvalue0_2_0_draft2_store();
        api.call_open(&mut self.store, name)
            .await
            .expect(TRAPPED)
            .expect("open")
    }

    pub async fn get(&mut self, b: ResourceAny, key: &str) -> Option<Vec<u8>> {
        let api = self.kv.wasi_keyvalue0_2_0_draft2_store().bucket();
        api.call_get(&mut self.store, b, key)
            .await
            .expect(TRAPPED)
            .expect("get")
    }

    pub async fn set(&mut self, b: ResourceAny, key: &str, value: &[u8]) {
        let api = self.kv.wasi_keyvalue0_2_0_draft2_store().bucket();
        api.call_set(&mut self.store, b, key, value)
            .await
            .expect(TRAPPED)
            .expect("set")
    }

    /// Calls the extension's `name` with `params`; a trap fails the test.
    async fn call<P, R>(&mut self, name: &str, params: P) -> R
    where
        P: wasmtime::component::ComponentNamedList + Lower + Send + Sync,
        R: wasmtime::component::ComponentNamedList + Lift + Send + Sync + 'static,
    {
        let index = self
            .instance
            .get_export_index(&mut self.store, Some(&self.interface), name)
            .unwrap_or_else(|| panic!("no `{name}` in `{INTERFACE}`"));
        let func = self
            .instance
            .get_typed_func::<P, R>(&mut self.store, index)
            .unwrap_or_else(|e| panic!("`{name}` has another type: {e:#}"));
        func.call_async(&mut self.store, params)
            .await
            .expect(TRAPPED)
    }

    pub async fn limits(&mut self, b: ResourceAny) -> Limits {
        self.call::<_, (Limits,)>("get-limits", (b,)).await.0
    }

    pub async fn insert(
        &mut self,
        b: ResourceAny,
        key: &str,
        value: &[u8],
        options: &InsertOptions,
    ) -> Result<u64, EntryError> {
        self.call::<_, (Result<u64, EntryError>,)>("insert", (b, key, value, options))
            .await
            .0
    }

    pub async fn lookup(&mut self, b: ResourceAny, key: &str) -> Result<Option<Entry>, EntryError> {
        self.call::<_, (Result<Option<Entry>, EntryError>,)>("lookup", (b, key))
            .await
            .0
    }

    pub async fn delete(
        &mut self,
        b: ResourceAny,
        key: &str,
        if_generation_match: Option<u64>,
    ) -> Result<bool, EntryError> {
        let options = DeleteOptions {
            if_generation_match,
        };
        self.call::<_, (Result<bool, EntryError>,)>("delete", (b, key, &options))
            .await
            .0
    }

    pub async fn list(
        &mut self,
        b: ResourceAny,
        options: &ListOptions,
    ) -> Result<ListPage, EntryError> {
        self.call::<_, (Result<ListPage, EntryError>,)>("list", (b, options))
            .await
            .0
    }
}
