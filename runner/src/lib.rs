//! An embedded wasmtime 48 host offering exactly what a kvplug composition needs: WASI p2
//! for the application, `wasi:http` for the adapter's requests, and `wasi:config` with the
//! adapter's settings. The quickstart, the tests and the benchmark all run components here.

pub mod quickstart;
pub mod serve;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// Per-instance host state.
pub struct Host {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    config: WasiConfigVariables,
    keyvalue: wasmtime_wasi_keyvalue::WasiKeyValueCtx,
    memory: MemoryMeter,
    /// Outgoing requests through these hooks (`kvplug-http-pool`'s); `None`: wasmtime's
    /// default client, a new connection per request.
    hooks: Option<Box<dyn WasiHttpHooks + Send>>,
}

/// Counts the linear memory an instance has: wasmtime reports every memory's creation
/// (from 0 to its initial size) and growth here, and memories never shrink, so the sum is
/// the instance's peak.
#[derive(Debug, Default)]
pub struct MemoryMeter {
    bytes: usize,
    /// A cap on the total, like `wasmtime run -W max-memory-size`: growth beyond it fails
    /// (`memory.grow` answers -1), as on a host that limits its guests.
    limit: Option<usize>,
}

impl wasmtime::ResourceLimiter for MemoryMeter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.bytes + desired.saturating_sub(current);
        if self.limit.is_some_and(|limit| total > limit) {
            return Ok(false);
        }
        self.bytes = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

impl Host {
    /// Bytes of linear memory across every memory of the instance (its peak so far).
    pub fn linear_memory(&self) -> usize {
        self.memory.bytes
    }

    /// Caps the instance's linear memory, across all its memories, at `bytes`.
    pub fn cap_memory(&mut self, bytes: usize) {
        self.memory.limit = Some(bytes);
    }
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_io::IoView for Host {
    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: match &mut self.hooks {
                Some(hooks) => hooks.as_mut(),
                None => wasmtime_wasi_http::default_hooks(),
            },
        }
    }
}

/// What a component run printed, and whether it succeeded.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Settings handed to the component through `wasi:config/store`.
pub type Settings = Vec<(String, String)>;

/// An engine and a linker, built once and reused for many instances.
pub struct Runtime {
    engine: Engine,
    linker: Linker<Host>,
    hooks: Option<Hooks>,
}

/// Makes the `wasi:http` hooks of each new store.
pub type Hooks = Arc<dyn Fn() -> Box<dyn WasiHttpHooks + Send> + Send + Sync>;

impl Runtime {
    /// A runtime with WASI p2, `wasi:http` and `wasi:config` linked.
    pub fn new() -> Result<Runtime> {
        Runtime::on(Engine::new(&Config::new())?)
    }

    /// A runtime for serving requests, an instance each ([`Runtime::serve`]): instances come
    /// from wasmtime's pooling allocator, as under `wasmtime serve`, where the host allows
    /// its address-space reservation; otherwise as from [`Runtime::new`].
    pub fn for_serving() -> Result<Runtime> {
        let mut config = Config::new();
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(
            wasmtime::PoolingAllocationConfig::default(),
        ));
        match Engine::new(&config) {
            Ok(engine) => Runtime::on(engine),
            Err(_) => Runtime::new(),
        }
    }

    fn on(engine: Engine) -> Result<Runtime> {
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        wasmtime_wasi_config::add_to_linker(&mut linker, |host: &mut Host| {
            WasiConfig::from(&host.config)
        })?;
        Ok(Runtime {
            engine,
            linker,
            hooks: None,
        })
    }

    /// This runtime, sending its guests' requests through `pool` (`kvplug-http-pool`)
    /// instead of wasmtime's default client.
    pub fn with_pool(self, pool: kvplug_http_pool::Pool) -> Runtime {
        self.with_hooks(Arc::new(move || Box::new(pool.hooks())))
    }

    /// This runtime, sending its guests' requests through the hooks `hooks` makes for each
    /// store (a benchmark's reference clients).
    pub fn with_hooks(mut self, hooks: Hooks) -> Runtime {
        self.hooks = Some(hooks);
        self
    }

    /// A runtime that links only what `wasi:http/proxy` gives every HTTP-capable host that
    /// an adapter uses: `wasi:io`, `wasi:http`, `wasi:clocks/monotonic-clock` (the call's
    /// deadline, backoff) and the wall clock (request signatures), plus `wasi:config`. An
    /// adapter that instantiates here needs nothing else from its host.
    pub fn adapter_only() -> Result<Runtime> {
        use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
        use wasmtime_wasi::p2::bindings::clocks;
        let engine = Engine::new(&Config::new())?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi_io::add_to_linker_async(&mut linker)?;
        clocks::monotonic_clock::add_to_linker::<Host, WasiClocks>(&mut linker, Host::clocks)?;
        clocks::wall_clock::add_to_linker::<Host, WasiClocks>(&mut linker, Host::clocks)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        wasmtime_wasi_config::add_to_linker(&mut linker, |host: &mut Host| {
            WasiConfig::from(&host.config)
        })?;
        Ok(Runtime {
            engine,
            linker,
            hooks: None,
        })
    }

    /// A runtime whose `wasi:keyvalue@0.2.0-draft` is wasmtime's own in-memory host
    /// (`wasmtime-wasi-keyvalue`), not an adapter: the second implementation the
    /// conformance suite is checked against.
    pub fn with_native_keyvalue() -> Result<Runtime> {
        let mut runtime = Runtime::new()?;
        wasmtime_wasi_keyvalue::add_to_linker(&mut runtime.linker, |host: &mut Host| {
            wasmtime_wasi_keyvalue::WasiKeyValue::new(&host.keyvalue, &mut host.table)
        })?;
        Ok(runtime)
    }

    /// The engine, for compiling components.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The linker, for instantiating components.
    pub fn linker(&self) -> &Linker<Host> {
        &self.linker
    }

    /// Compiles a component file.
    pub fn load(&self, path: &Path) -> Result<Component> {
        Component::from_file(&self.engine, path)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("failed to compile `{}`", path.display()))
    }

    /// A store whose instance sees `settings` through `wasi:config`, with `args` and
    /// captured stdout/stderr (see [`Runtime::run_command`]).
    pub fn store(&self, settings: &Settings, args: &[String]) -> Store<Host> {
        self.store_with_pipes(settings, args, &[], None)
    }

    fn store_with_pipes(
        &self,
        settings: &Settings,
        args: &[String],
        env: &[(String, String)],
        pipes: Option<(MemoryOutputPipe, MemoryOutputPipe)>,
    ) -> Store<Host> {
        new_store(
            &self.engine,
            self.hooks.as_ref(),
            settings,
            args,
            env,
            pipes,
        )
    }

    /// Runs a command component (`wasi:cli/run`) to completion and captures what it printed.
    /// A trap is an error; a non-zero exit is `success: false`.
    pub async fn run_command(
        &self,
        component: &Component,
        args: &[String],
        settings: &Settings,
    ) -> Result<RunOutput> {
        self.run_command_with_env(component, args, settings, &[])
            .await
    }

    /// [`Runtime::run_command`] with environment variables `env`.
    pub async fn run_command_with_env(
        &self,
        component: &Component,
        args: &[String],
        settings: &Settings,
        env: &[(String, String)],
    ) -> Result<RunOutput> {
        const CAPTURE: usize = 16 << 20;
        let stdout = MemoryOutputPipe::new(CAPTURE);
        let stderr = MemoryOutputPipe::new(CAPTURE);
        let mut store =
            self.store_with_pipes(settings, args, env, Some((stdout.clone(), stderr.clone())));
        let command = wasmtime_wasi::p2::bindings::Command::instantiate_async(
            &mut store,
            component,
            &self.linker,
        )
        .await
        .map_err(anyhow::Error::from)
        .context("failed to instantiate the component")?;
        let result = command.wasi_cli_run().call_run(&mut store).await;
        drop(store);
        let text = |pipe: &MemoryOutputPipe| String::from_utf8_lossy(&pipe.contents()).into_owned();
        let success = match result {
            Ok(outcome) => outcome.is_ok(),
            Err(trap) => {
                // `exit(n)` arrives as an error too; anything else is a real trap.
                match trap.downcast_ref::<wasmtime_wasi::I32Exit>() {
                    Some(exit) => exit.0 == 0,
                    None => {
                        return Err(anyhow::Error::from(trap).context(format!(
                            "the component trapped; it printed:\n{}{}",
                            text(&stdout),
                            text(&stderr)
                        )));
                    }
                }
            }
        };
        Ok(RunOutput {
            success,
            stdout: text(&stdout),
            stderr: text(&stderr),
        })
    }
}

/// A store for one instance: `settings` through `wasi:config`, `args` and `env`, output to
/// `pipes` (or the process's own), outgoing HTTP through `hooks` if there are any.
fn new_store(
    engine: &Engine,
    hooks: Option<&Hooks>,
    settings: &Settings,
    args: &[String],
    env: &[(String, String)],
    pipes: Option<(MemoryOutputPipe, MemoryOutputPipe)>,
) -> Store<Host> {
    let mut wasi = WasiCtx::builder();
    wasi.args(args);
    for (name, value) in env {
        wasi.env(name, value);
    }
    match pipes {
        Some((stdout, stderr)) => {
            wasi.stdout(stdout).stderr(stderr);
        }
        None => {
            wasi.inherit_stdio();
        }
    }
    let config = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut store = Store::new(
        engine,
        Host {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            config,
            keyvalue: wasmtime_wasi_keyvalue::WasiKeyValueCtx::builder().build(),
            memory: MemoryMeter::default(),
            hooks: hooks.map(|make| make()),
        },
    );
    store.limiter(|host| &mut host.memory);
    store
}
