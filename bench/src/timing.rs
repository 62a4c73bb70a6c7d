//! Per-operation time of `set` and `get` through the adapter, against the same HTTP requests
//! sent without it: by a guest straight over `wasi:http` on the same runtime (the adapter's
//! overhead), and by a native hyper client (the runtime's overhead). All clients run in
//! interleaved rounds against one reference server, and ratios are taken round by round.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use kvplug_compose::{artifacts, plug, seal};
use kvplug_http_pool::{Pool, PoolConfig};
use kvplug_runner::Runtime;

/// Who sends the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// kv-bench linked with kvplug-http.wasm, embedded wasmtime 48.
    EmbeddedKv,
    /// The same, its requests sent through `kvplug-http-pool` (kept alive, `TCP_NODELAY`).
    EmbeddedPooled,
    /// http-bench (the same requests, no adapter), embedded wasmtime 48.
    EmbeddedHttp,
    /// The same, its requests sent through `kvplug-http-pool`.
    EmbeddedHttpPooled,
    /// The same, its requests sent through hyper-util's pooled `Client` (the yardstick).
    EmbeddedHttpReference,
    /// kv-bench + kvplug-http.wasm on `wasmtime run -S http`.
    CliKv,
    /// http-bench on `wasmtime run -S http`.
    CliHttp,
    /// Native hyper 1, a new connection per request (what wasmtime does).
    NativeNew,
    /// Native hyper 1, one keep-alive connection.
    NativeKeepAlive,
    /// kv-bench + sealed kvplug-http.wasm on jco + Node.
    Jco,
}

impl Client {
    pub fn name(self) -> &'static str {
        match self {
            Client::EmbeddedKv => "emb-kv",
            Client::EmbeddedPooled => "emb-pool",
            Client::EmbeddedHttp => "emb-http",
            Client::EmbeddedHttpPooled => "emb-http-pool",
            Client::EmbeddedHttpReference => "emb-http-ref",
            Client::CliKv => "cli-kv",
            Client::CliHttp => "cli-http",
            Client::NativeNew => "hyper-new",
            Client::NativeKeepAlive => "hyper-ka",
            Client::Jco => "jco-kv",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Client::EmbeddedKv => {
                "guest → wasi:keyvalue → kvplug-http.wasm → wasi:http, embedded wasmtime 48"
            }
            Client::EmbeddedPooled => {
                "emb-kv with kvplug-http-pool as the host's client (kept-alive connections)"
            }
            Client::EmbeddedHttp => {
                "guest → wasi:http directly (same requests, no adapter), embedded wasmtime 48"
            }
            Client::EmbeddedHttpPooled => "emb-http with kvplug-http-pool as the host's client",
            Client::EmbeddedHttpReference => {
                "emb-http with hyper-util's pooled `Client` as the host's client (a yardstick)"
            }
            Client::CliKv => "guest → kvplug-http.wasm, `wasmtime run -S http` 48.0.8",
            Client::CliHttp => "guest → wasi:http directly, `wasmtime run -S http` 48.0.8",
            Client::NativeNew => "native hyper 1, new connection per request (wasmtime's policy)",
            Client::NativeKeepAlive => "native hyper 1, keep-alive (for reference)",
            Client::Jco => "guest → sealed kvplug-http.wasm, jco 1.35 + Node 20 (for information)",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `(value size, operations of each kind per run)`.
    pub sizes: Vec<(usize, usize)>,
    pub rounds: usize,
    pub clients: Vec<Client>,
}

impl Plan {
    /// The benchmark: 100 B, 64 KiB and 4 MiB values, 5 rounds, every client.
    pub fn full() -> Plan {
        Plan {
            sizes: vec![(100, 500), (64 << 10, 100), (4 << 20, 8)],
            rounds: 5,
            clients: vec![
                Client::EmbeddedKv,
                Client::EmbeddedPooled,
                Client::EmbeddedHttp,
                Client::EmbeddedHttpPooled,
                Client::EmbeddedHttpReference,
                Client::CliKv,
                Client::CliHttp,
                Client::NativeNew,
                Client::NativeKeepAlive,
                Client::Jco,
            ],
        }
    }

    /// One tiny round of everything: proves the benchmark works.
    pub fn smoke() -> Plan {
        Plan {
            sizes: vec![(100, 3), (64 << 10, 2)],
            rounds: 1,
            ..Plan::full()
        }
    }
}

/// One run of one client.
#[derive(Debug, Clone)]
pub struct Sample {
    pub client: Client,
    pub size: usize,
    pub round: usize,
    pub n: usize,
    pub set: Duration,
    pub get: Duration,
}

impl Sample {
    /// Mean microseconds per operation (sets and gets together).
    pub fn op_us(&self) -> f64 {
        (self.set + self.get).as_secs_f64() * 1e6 / (2 * self.n) as f64
    }
}

/// Reads `set_ns=… get_ns=…` from a bench guest's output.
fn parse(output: &str) -> Result<(Duration, Duration)> {
    let field = |name: &str| -> Result<Duration> {
        let value = output
            .split_whitespace()
            .find_map(|word| word.strip_prefix(name))
            .with_context(|| format!("no `{name}` in the guest's output: {output}"))?;
        Ok(Duration::from_nanos(value.parse()?))
    };
    Ok((field("set_ns=")?, field("get_ns=")?))
}

/// Everything the clients need, prepared once (outside the timings).
struct Bench {
    runtime: Runtime,
    /// A runtime whose guests send through `kvplug-http-pool`, and kv-bench compiled for it.
    pooled: Runtime,
    kv_pooled: wasmtime::component::Component,
    http_pooled: wasmtime::component::Component,
    /// A runtime whose guests send through hyper-util's `Client`, and http-bench for it.
    reference: Runtime,
    http_reference: wasmtime::component::Component,
    url: String,
    authority: String,
    kv_path: PathBuf,
    http_path: PathBuf,
    kv: wasmtime::component::Component,
    http: wasmtime::component::Component,
    jco_dir: PathBuf,
}

fn run_process(mut command: Command) -> Result<String> {
    let output = command
        .output()
        .with_context(|| format!("failed to start {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

async fn native(
    authority: &str,
    size: usize,
    n: usize,
    keep_alive: bool,
) -> Result<(Duration, Duration)> {
    let value = Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let paths: Vec<String> = (0..n)
        .map(|i| format!("/v1/buckets/bench/keys/native{i}"))
        .collect();
    let connect = || async {
        let stream = tokio::net::TcpStream::connect(authority).await?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        anyhow::Ok(sender)
    };
    let mut kept = if keep_alive {
        Some(connect().await?)
    } else {
        None
    };
    let mut send = async |request: hyper::Request<Full<Bytes>>| -> Result<(u16, Bytes)> {
        let mut sender = match kept.take() {
            Some(sender) => sender,
            None => connect().await?,
        };
        // A kept connection may still be finishing the previous exchange.
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        if keep_alive {
            kept = Some(sender);
        }
        Ok((status, body))
    };
    let started = Instant::now();
    for path in &paths {
        let request = hyper::Request::put(path.as_str())
            .header("host", authority)
            .header("content-length", size)
            .body(Full::new(value.clone()))?;
        let (status, _) = send(request).await?;
        if status != 204 {
            bail!("native PUT {path}: {status}");
        }
    }
    let set = started.elapsed();
    let started = Instant::now();
    for path in &paths {
        let request = hyper::Request::get(path.as_str())
            .header("host", authority)
            .body(Full::new(Bytes::new()))?;
        let (status, body) = send(request).await?;
        if status != 200 || body.len() != size {
            bail!("native GET {path}: {status}");
        }
    }
    Ok((set, started.elapsed()))
}

impl Bench {
    async fn run(&self, client: Client, size: usize, n: usize) -> Result<(Duration, Duration)> {
        let (size_arg, n_arg, prefix) = (size.to_string(), n.to_string(), client.name().to_owned());
        match client {
            Client::EmbeddedKv | Client::EmbeddedPooled => {
                let args = vec!["kv-bench".into(), size_arg, n_arg, prefix];
                let settings = vec![("url".to_owned(), self.url.clone())];
                let (runtime, component) = match client {
                    Client::EmbeddedPooled => (&self.pooled, &self.kv_pooled),
                    _ => (&self.runtime, &self.kv),
                };
                let output = runtime.run_command(component, &args, &settings).await?;
                parse(&output.stdout)
            }
            Client::EmbeddedHttp | Client::EmbeddedHttpPooled | Client::EmbeddedHttpReference => {
                let args = vec![
                    "http-bench".into(),
                    self.authority.clone(),
                    size_arg,
                    n_arg,
                    prefix,
                ];
                let (runtime, component) = match client {
                    Client::EmbeddedHttpPooled => (&self.pooled, &self.http_pooled),
                    Client::EmbeddedHttpReference => (&self.reference, &self.http_reference),
                    _ => (&self.runtime, &self.http),
                };
                let output = runtime.run_command(component, &args, &vec![]).await?;
                parse(&output.stdout)
            }
            Client::CliKv => {
                let mut command = Command::new("wasmtime");
                command
                    .args(["run", "-S", "http", "-S", "config", "-S"])
                    .arg(format!("config-var=url={}", self.url))
                    .arg(&self.kv_path)
                    .args([size_arg, n_arg, prefix]);
                parse(&run_process(command)?)
            }
            Client::CliHttp => {
                let mut command = Command::new("wasmtime");
                command
                    .args(["run", "-S", "http"])
                    .arg(&self.http_path)
                    .args([self.authority.clone(), size_arg, n_arg, prefix]);
                parse(&run_process(command)?)
            }
            Client::NativeNew => native(&self.authority, size, n, false).await,
            Client::NativeKeepAlive => native(&self.authority, size, n, true).await,
            Client::Jco => {
                let mut command = Command::new("node");
                command
                    .arg(self.jco_dir.join("run.mjs"))
                    .args([size_arg, n_arg, prefix]);
                parse(&run_process(command)?)
            }
        }
    }
}

fn transpile_for_jco(linked: &[u8]) -> Result<PathBuf> {
    let js = artifacts::repo_root().join("tests/js");
    let jco = js.join("node_modules/.bin/jco");
    if !jco.exists() {
        bail!("jco is not installed: run `npm install` in tests/js (scripts/test does)");
    }
    let dir = js.join("out").join(format!("bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let component = dir.join("kv.wasm");
    std::fs::write(&component, linked)?;
    let mut command = Command::new(&jco);
    command
        .arg("transpile")
        .arg(&component)
        .arg("-o")
        .arg(dir.join("gen"))
        .arg("--quiet");
    run_process(command)?;
    std::fs::write(
        dir.join("run.mjs"),
        "import { run } from './gen/kv.js';\nrun.run();\n",
    )?;
    Ok(dir)
}

/// Runs the plan against `url` (a reference server) and returns every sample.
pub async fn run(plan: &Plan, url: &str, work: &Path) -> Result<Vec<Sample>> {
    artifacts::build_all()?;
    let read =
        |path: &Path| std::fs::read(path).with_context(|| format!("read {}", path.display()));
    let adapter = read(&artifacts::adapter_path("http"))?;
    let kv_bench = read(&artifacts::fixture_path("kv-bench"))?;
    let kv_path = work.join("kv-bench.linked.wasm");
    std::fs::write(
        &kv_path,
        plug::plug_bytes(kv_bench.clone(), vec![adapter.clone()])?,
    )?;
    let http_path = artifacts::fixture_path("http-bench");
    let jco_dir = if plan.clients.contains(&Client::Jco) {
        let config = read(&artifacts::config_path("kvplug-config-static"))?;
        let request = seal::Request {
            settings: vec![("url".into(), url.into())],
            layered: false,
        };
        let sealed = seal::seal(&adapter, &config, &request)?;
        transpile_for_jco(&plug::plug_bytes(kv_bench, vec![sealed.adapter])?)?
    } else {
        PathBuf::new()
    };
    let runtime = Runtime::new()?;
    let pooled = Runtime::new()?.with_pool(Pool::new(PoolConfig::default())?);
    let reference = Runtime::new()?.with_hooks(crate::reference_client::hooks());
    let bench = Bench {
        kv_pooled: pooled.load(&kv_path)?,
        http_pooled: pooled.load(&http_path)?,
        http_reference: reference.load(&http_path)?,
        reference,
        pooled,
        kv: runtime.load(&kv_path)?,
        http: runtime.load(&http_path)?,
        runtime,
        url: url.to_owned(),
        authority: url.trim_start_matches("http://").to_owned(),
        kv_path,
        http_path,
        jco_dir,
    };
    // One untimed pass warms the server, the compile caches and the page cache.
    for &client in &plan.clients {
        bench
            .run(client, 100, 2)
            .await
            .with_context(|| format!("warming up {}", client.name()))?;
    }
    let mut samples = Vec::new();
    for round in 0..plan.rounds {
        for &(size, n) in &plan.sizes {
            // Rotate the order so no client always runs first or last.
            let count = plan.clients.len();
            for client in plan
                .clients
                .iter()
                .cycle()
                .skip(round % count.max(1))
                .take(count)
            {
                let client = *client;
                let (set, get) = bench
                    .run(client, size, n)
                    .await
                    .with_context(|| format!("{} with {size}-byte values", client.name()))?;
                samples.push(Sample {
                    client,
                    size,
                    round,
                    n,
                    set,
                    get,
                });
            }
        }
    }
    if plan.clients.contains(&Client::Jco) {
        let _ = std::fs::remove_dir_all(&bench.jco_dir);
    }
    Ok(samples)
}
