//! Throughput under concurrent load: K clients (1 to 64), each on a kept-alive connection,
//! send a read-heavy mix of requests to the example HTTP app (`fixtures/http-app`) linked with
//! each backend's adapter, for a fixed time per point. The app is served by embedded wasmtime
//! with wasmtime's default outgoing client, by the same with `kvplug-http-pool`, by
//! `wasmtime serve`, and (for the reference server only) by jco; against them, a native Rust
//! server answers the same requests by replaying, through kept-alive connections, the very
//! store requests the adapter sent for each kind of request (recorded first). Every store
//! connection passes a TCP forwarder that counts them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use kvplug_compose::{artifacts, plug, seal};
use kvplug_http_pool::{Pool, PoolConfig};
use kvplug_runner::Runtime;
use kvplug_tests::counting_proxy::{CountingProxy, Recorded};
use kvplug_tests::process::{Running, free_port};
use kvplug_tests::services;

use crate::backends::backends;

/// What serves the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    /// Embedded wasmtime 48, wasmtime's default outgoing client.
    Embedded,
    /// Embedded wasmtime 48, outgoing requests through `kvplug-http-pool`.
    Pooled,
    /// `wasmtime serve` 48.0.8.
    Serve,
    /// A native hyper server replaying the adapter's store requests, kept alive.
    Native,
    /// `jco serve` (Node), the reference server's adapter sealed.
    Jco,
}

impl Front {
    pub fn name(self) -> &'static str {
        match self {
            Front::Embedded => "embedded",
            Front::Pooled => "embedded + pool",
            Front::Serve => "wasmtime serve",
            Front::Native => "native",
            Front::Jco => "jco serve",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub concurrency: Vec<usize>,
    pub per_point: Duration,
    pub with_jco: bool,
}

impl Plan {
    pub fn full() -> Plan {
        Plan {
            concurrency: vec![1, 4, 16, 64],
            per_point: Duration::from_secs(2),
            with_jco: true,
        }
    }

    pub fn smoke() -> Plan {
        Plan {
            concurrency: vec![1, 4],
            per_point: Duration::from_millis(300),
            with_jco: false,
        }
    }
}

/// One point of one curve.
#[derive(Debug, Clone)]
pub struct Point {
    pub backend: &'static str,
    pub mix: Mix,
    pub front: Front,
    pub k: usize,
    pub done: u64,
    pub errors: u64,
    pub seconds: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// TCP connections opened to the store while the point ran.
    pub connections: u64,
    /// On a curve's last point: the sockets its store connections left in TIME_WAIT.
    pub lingering: Option<usize>,
    /// What the first failed request got, if any failed.
    pub first_error: Option<String>,
}

impl Point {
    pub fn rps(&self) -> f64 {
        self.done as f64 / self.seconds
    }

    /// The table cells every curve shows: front, K, req/s, p50 and p99 in ms, errors.
    fn row(&self) -> String {
        format!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {} |",
            self.front.name(),
            self.k,
            self.rps(),
            self.p50_us / 1000.0,
            self.p99_us / 1000.0,
            self.errors,
        )
    }
}

/// The kinds of request in the mix, and the app's route for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Read,
    Write,
    Count,
}

const KINDS: [Kind; 3] = [Kind::Read, Kind::Write, Kind::Count];

/// What the clients ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// The notes mix: the app's work.
    Notes,
    /// Only a path the app does not serve: it opens the bucket and answers 404 without a
    /// request to the store, so what is measured is the front's own cost per request.
    Floor,
}

/// Request `i` of client `client`: in the notes mix, 6 reads, 3 writes and 1 counter
/// increment in every 10, over 8 notes of the client's own.
fn request_for(mix: Mix, client: usize, i: u64) -> (hyper::Method, String) {
    if mix == Mix::Floor {
        return (hyper::Method::GET, "/floor".to_owned());
    }
    let note = format!("/notes/c{client}-{}", i % 8);
    match i % 10 {
        0..=2 => (hyper::Method::PUT, note),
        9 => (hyper::Method::POST, "/visits".to_owned()),
        _ => (hyper::Method::GET, note),
    }
}

fn kind_of(method: &hyper::Method, path: &str) -> Option<Kind> {
    match (method, path) {
        (&hyper::Method::POST, "/visits") => Some(Kind::Count),
        (&hyper::Method::PUT, _) if path.starts_with("/notes/") => Some(Kind::Write),
        (&hyper::Method::GET, _) if path.starts_with("/notes/") => Some(Kind::Read),
        _ => None,
    }
}

const NOTE: &[u8] = &[b'n'; 100];

/// A TCP forwarder on loopback that counts the connections made through it: how connections
/// to the store are counted without changing how they are used.
struct ConnectionCounter {
    addr: SocketAddr,
    opened: Arc<AtomicU64>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl ConnectionCounter {
    fn start(upstream: SocketAddr) -> Result<ConnectionCounter> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let opened = Arc::new(AtomicU64::new(0));
        let counting = Arc::clone(&opened);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let accept = async {
                    while let Ok((mut client, _)) = listener.accept().await {
                        counting.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(async move {
                            let _ = client.set_nodelay(true);
                            let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await
                            else {
                                return;
                            };
                            let _ = server.set_nodelay(true);
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        });
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
        });
        Ok(ConnectionCounter {
            addr,
            opened,
            _stop: stop,
        })
    }

    fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

/// `http://ip:port/path` as `("ip:port", "/path")`.
fn split_url(url: &str) -> (&str, &str) {
    let rest = url.trim_start_matches("http://");
    match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    }
}

/// `settings` with the `url` pointed at `authority`, its path kept.
fn pointed_at(settings: &[(String, String)], authority: SocketAddr) -> Vec<(String, String)> {
    settings
        .iter()
        .map(|(name, value)| match name.as_str() {
            "url" => (
                name.clone(),
                format!("http://{authority}{}", split_url(value).1),
            ),
            _ => (name.clone(), value.clone()),
        })
        .collect()
}

/// Kept-alive native HTTP/1 connections to one address, `TCP_NODELAY`, no limit: the native
/// server's store client.
struct NativePool {
    addr: SocketAddr,
    idle: Mutex<Vec<http1::SendRequest<Full<Bytes>>>>,
}

impl NativePool {
    async fn send(&self, recorded: &Recorded) -> Result<(u16, Bytes)> {
        let kept = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut sender = match kept {
            Some(sender) if !sender.is_closed() => sender,
            _ => {
                let stream = tokio::net::TcpStream::connect(self.addr).await?;
                stream.set_nodelay(true)?;
                let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(connection);
                sender
            }
        };
        sender.ready().await?;
        let mut builder = hyper::Request::builder()
            .method(recorded.method.clone())
            .uri(recorded.path.as_str())
            .header("content-length", recorded.body.len());
        for (name, value) in &recorded.headers {
            builder = builder.header(name.as_str(), value.as_slice());
        }
        let response = sender
            .send_request(builder.body(Full::new(recorded.body.clone()))?)
            .await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(sender);
        }
        Ok((status, body))
    }
}

/// A native hyper server that answers each request of the mix by replaying the store
/// requests the adapter sent for its kind.
struct NativeServer {
    addr: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl Drop for NativeServer {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl NativeServer {
    async fn start(store: SocketAddr, replay: HashMap<Kind, Vec<Recorded>>) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let pool = Arc::new(NativePool {
            addr: store,
            idle: Mutex::default(),
        });
        let replay = Arc::new(replay);
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let _ = client.set_nodelay(true);
                let (pool, replay) = (Arc::clone(&pool), Arc::clone(&replay));
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let (pool, replay) = (Arc::clone(&pool), Arc::clone(&replay));
                        async move { answer(&pool, &replay, request).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(client), service)
                        .await;
                });
            }
        });
        Ok(NativeServer { addr, accepting })
    }
}

async fn answer(
    pool: &NativePool,
    replay: &HashMap<Kind, Vec<Recorded>>,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>> {
    let kind = kind_of(request.method(), request.uri().path());
    let _ = request.into_body().collect().await?;
    let Some(kind) = kind else {
        return Ok(hyper::Response::builder()
            .status(404)
            .body(Full::new(Bytes::from_static(b"no such endpoint\n")))?);
    };
    // A replayed conditional write finds the entry changed since it was recorded: the store
    // refuses it (409, 412) after doing the same work, so that counts as answered.
    let answered = |status: u16| status < 300 || matches!(status, 404 | 409 | 412);
    let mut last = (500, Bytes::new());
    for recorded in replay.get(&kind).map(Vec::as_slice).unwrap_or_default() {
        last = pool.send(recorded).await?;
        if !answered(last.0) {
            break;
        }
    }
    let status = if answered(last.0) { 200 } else { 502 };
    Ok(hyper::Response::builder()
        .status(status)
        .body(Full::new(last.1))?)
}

/// Sends one request of the mix on `sender`.
async fn one(
    sender: &mut http1::SendRequest<Full<Bytes>>,
    authority: &str,
    method: hyper::Method,
    path: &str,
) -> Result<(u16, Bytes)> {
    sender.ready().await?;
    let body = if method == hyper::Method::PUT {
        Bytes::from_static(NOTE)
    } else {
        Bytes::new()
    };
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", authority)
        .header("content-length", body.len())
        .body(Full::new(body))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

async fn connect(addr: SocketAddr) -> Result<http1::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// What `k` clients got in a run.
#[derive(Default)]
struct Run {
    done: u64,
    errors: u64,
    latencies: Vec<u32>,
    seconds: f64,
    /// The first failed answer's status and body, or the transport error.
    first_error: Option<String>,
}

/// `k` clients for `duration`.
async fn drive(addr: SocketAddr, mix: Mix, k: usize, duration: Duration) -> Run {
    let started = Instant::now();
    let deadline = started + duration;
    let mut clients = Vec::new();
    for client in 0..k {
        clients.push(tokio::spawn(async move {
            let authority = addr.to_string();
            let (mut done, mut errors, mut latencies) = (0u64, 0u64, Vec::new());
            let mut first_error = None;
            let mut sender = None;
            let mut i = 0u64;
            while Instant::now() < deadline {
                let (method, path) = request_for(mix, client, i);
                i += 1;
                let sent = Instant::now();
                if sender.is_none() {
                    sender = connect(addr).await.ok();
                }
                let outcome = match sender.as_mut() {
                    Some(s) => one(s, &authority, method, &path).await,
                    None => Err(anyhow::anyhow!("cannot connect")),
                };
                match outcome {
                    // A read of a note not written yet is a 404, and a correct answer.
                    Ok((status, _)) if status < 300 || status == 404 => {
                        done += 1;
                        let us = sent.elapsed().as_micros();
                        latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
                    }
                    Ok((status, body)) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| {
                            format!("{status} {}", String::from_utf8_lossy(&body).trim())
                        });
                    }
                    Err(error) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{error:#}"));
                        sender = None;
                        // A front that refuses connections must not spin the client.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            (done, errors, latencies, first_error)
        }));
    }
    let mut run = Run::default();
    for client in clients {
        if let Ok((done, errors, latencies, first_error)) = client.await {
            run.done += done;
            run.errors += errors;
            run.latencies.extend(latencies);
            if run.first_error.is_none() {
                run.first_error = first_error;
            }
        }
    }
    run.seconds = started.elapsed().as_secs_f64();
    run
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(rank).map_or(f64::NAN, |&v| f64::from(v))
}

/// Records, per kind, the store requests the adapter sends for one app request (the
/// second of two, so that first-use costs such as loading a Redis script are left out).
async fn record(
    runtime: &Runtime,
    component: &wasmtime::component::Component,
    settings: &[(String, String)],
) -> Result<HashMap<Kind, Vec<Recorded>>> {
    let url = services::url_of(&settings.to_vec()).to_owned();
    let proxy = CountingProxy::start(&url);
    let mut through = settings.to_vec();
    CountingProxy::point_at(&mut through, &proxy);
    let served = runtime.serve(component, through).await?;
    let addr: SocketAddr = served.url().trim_start_matches("http://").parse()?;
    let mut sender = connect(addr).await?;
    let mut replay = HashMap::new();
    for kind in KINDS {
        let (method, path) = match kind {
            Kind::Read => (hyper::Method::GET, "/notes/recorded"),
            Kind::Write => (hyper::Method::PUT, "/notes/recorded"),
            Kind::Count => (hyper::Method::POST, "/visits"),
        };
        for _ in 0..2 {
            proxy.take_log();
            let (status, body) = one(&mut sender, &addr.to_string(), method.clone(), path).await?;
            if status >= 300 && status != 404 {
                let body = String::from_utf8_lossy(&body);
                bail!("recording {method} {path}: the app answered {status}: {body}");
            }
        }
        replay.insert(kind, proxy.take_log());
    }
    Ok(replay)
}

/// Serves the app with `front` and runs every point; the front is stopped afterwards.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site; a struct would only rename the arguments"
)]
async fn curve(
    plan: &Plan,
    backend: &'static str,
    mix: Mix,
    front: Front,
    linked: &Path,
    settings: &[(String, String)],
    store: SocketAddr,
    shared: &ConnectionCounter,
    replay: &HashMap<Kind, Vec<Recorded>>,
    jco_app: Option<&Path>,
) -> Result<Vec<Point>> {
    // A counter of the curve's own, so that the sockets its connections leave in TIME_WAIT
    // can be told from everyone else's; jco's app was sealed with the backend's counter.
    let own;
    let counter = if front == Front::Jco {
        shared
    } else {
        own = ConnectionCounter::start(store)?;
        &own
    };
    let settings = pointed_at(settings, counter.addr);
    // Each front holds what it needs alive until the curve ends.
    let mut _served = None;
    let mut _native = None;
    let mut _process = None;
    let addr: SocketAddr = match front {
        Front::Embedded | Front::Pooled => {
            let runtime = match front {
                Front::Pooled => {
                    Runtime::for_serving()?.with_pool(Pool::new(PoolConfig::default())?)
                }
                _ => Runtime::for_serving()?,
            };
            let component = runtime.load(linked)?;
            let served = runtime.serve(&component, settings).await?;
            let addr = served.url().trim_start_matches("http://").parse()?;
            _served = Some((served, runtime));
            addr
        }
        Front::Native => {
            let native = NativeServer::start(counter.addr, replay.clone()).await?;
            let addr = native.addr;
            _native = Some(native);
            addr
        }
        Front::Serve | Front::Jco => {
            let port = free_port();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
            let mut command;
            if front == Front::Serve {
                command = Command::new("wasmtime");
                command.args(["serve", "-S", "cli", "-S", "config"]);
                for (name, value) in &settings {
                    command.arg("-S").arg(format!("config-var={name}={value}"));
                }
                command.arg("--addr").arg(addr.to_string()).arg(linked);
            } else {
                let app = jco_app.context("jco needs a sealed app")?;
                command = Command::new(jco_bin()?);
                command
                    .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
                    .arg("--jco-dir")
                    .arg(app.with_extension("jco"))
                    .arg(app);
            }
            command.stdout(Stdio::null()).stderr(Stdio::null());
            // Killed with its whole process group when the curve ends (jco serve runs a
            // worker process of its own).
            let mut running = Running::start(command);
            running.wait_for_port(port, Duration::from_secs(60));
            _process = Some(running);
            addr
        }
    };
    // Warm-up: compiles, first connections, the note keys written once.
    drive(addr, mix, 4, Duration::from_millis(300)).await;
    let mut points = Vec::new();
    for &k in &plan.concurrency {
        let before = counter.opened();
        let Run {
            done,
            errors,
            mut latencies,
            seconds,
            first_error,
        } = drive(addr, mix, k, plan.per_point).await;
        let connections = counter.opened() - before;
        latencies.sort_unstable();
        points.push(Point {
            backend,
            mix,
            front,
            k,
            done,
            errors,
            seconds,
            p50_us: percentile(&latencies, 0.5),
            p99_us: percentile(&latencies, 0.99),
            connections,
            lingering: None,
            first_error,
        });
    }
    if front != Front::Jco
        && let Some(last) = points.last_mut()
    {
        last.lingering = time_wait_towards(counter.addr.port());
    }
    Ok(points)
}

/// Sockets in TIME_WAIT whose remote port is `port` (on loopback, every such socket is a
/// connection to that port closed from this side less than 60 s ago); `None` where
/// `/proc/net/tcp` cannot be read.
fn time_wait_towards(port: u16) -> Option<usize> {
    const TIME_WAIT: &str = "06";
    let mut count = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(remote), Some(state)) = (fields.get(2), fields.get(3)) else {
                continue;
            };
            let remote_port = remote
                .rsplit(':')
                .next()
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            if *state == TIME_WAIT && remote_port == Some(port) {
                count += 1;
            }
        }
    }
    std::fs::metadata("/proc/net/tcp").ok().map(|_| count)
}

fn jco_bin() -> Result<PathBuf> {
    let jco = artifacts::repo_root().join("tests/js/node_modules/.bin/jco");
    if !jco.exists() {
        bail!("jco is not installed: run `npm install` in tests/js (scripts/test does)");
    }
    Ok(jco)
}

/// The backend whose adapter serves the floor measurement: its `open` sends no request.
const FLOOR_BACKEND: &str = "etcd";

/// Every curve: each backend against its real service, each front, every K.
pub async fn run(plan: &Plan, work: &Path) -> Result<Vec<Point>> {
    artifacts::build_all()?;
    let app = std::fs::read(artifacts::fixture_path("http-app"))?;
    let recorder = Runtime::new()?;
    let mut points = Vec::new();
    // `KVPLUG_LOAD_BACKENDS=etcd,redis`: only these (a quicker look while investigating).
    let only = std::env::var("KVPLUG_LOAD_BACKENDS").unwrap_or_default();
    for backend in backends() {
        if !only.is_empty() && !only.split(',').any(|b| b == backend) {
            continue;
        }
        let service = services::start(backend);
        let settings = service.settings();
        let store: SocketAddr = split_url(services::url_of(&settings)).0.parse()?;
        let counter = ConnectionCounter::start(store)?;
        let adapter = std::fs::read(artifacts::adapter_path(service.backend()))?;
        let linked = work.join(format!("http-app.{backend}.wasm"));
        std::fs::write(
            &linked,
            plug::plug_bytes(app.clone(), vec![adapter.clone()])?,
        )?;
        let component = recorder.load(&linked)?;
        let replay = record(&recorder, &component, &pointed_at(&settings, counter.addr))
            .await
            .with_context(|| format!("recording {backend}"))?;
        let jco_app = if plan.with_jco && service.backend() == "http" {
            let config = std::fs::read(artifacts::config_path("kvplug-config-static"))?;
            let request = seal::Request {
                settings: pointed_at(&settings, counter.addr),
                layered: false,
            };
            let sealed = seal::seal(&adapter, &config, &request)?;
            let path = work.join("http-app.sealed.wasm");
            std::fs::write(&path, plug::plug_bytes(app.clone(), vec![sealed.adapter])?)?;
            Some(path)
        } else {
            None
        };
        let mut fronts = vec![Front::Embedded, Front::Pooled, Front::Serve, Front::Native];
        if jco_app.is_some() {
            fronts.push(Front::Jco);
        }
        for front in fronts {
            let curve = curve(
                plan,
                backend,
                Mix::Notes,
                front,
                &linked,
                &settings,
                store,
                &counter,
                &replay,
                jco_app.as_deref(),
            )
            .await
            .with_context(|| format!("{backend} served by {}", front.name()))?;
            points.extend(curve);
        }
        // The fronts' own cost, with an adapter whose `open` sends nothing.
        if backend == FLOOR_BACKEND {
            for front in [Front::Embedded, Front::Serve, Front::Native] {
                let curve = curve(
                    plan,
                    backend,
                    Mix::Floor,
                    front,
                    &linked,
                    &settings,
                    store,
                    &counter,
                    &replay,
                    None,
                )
                .await
                .with_context(|| format!("the floor of {}", front.name()))?;
                points.extend(curve);
            }
        }
    }
    Ok(points)
}

/// The smallest K whose throughput is within 10% of the curve's best: past it, more clients
/// add latency, not throughput.
fn knee(curve: &[&Point]) -> Option<usize> {
    let best = curve.iter().map(|p| p.rps()).fold(0.0, f64::max);
    curve.iter().find(|p| p.rps() >= 0.9 * best).map(|p| p.k)
}

/// The report's section.
pub fn render(plan: &Plan, points: &[Point]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n## Throughput under load\n");
    let _ = writeln!(
        out,
        "K clients, each on one kept-alive connection, send requests to the example HTTP app \
         (`fixtures/http-app`) for {:.1} s per point: in every 10, 6 `GET /notes/N`, 3 `PUT \
         /notes/N` (100 B) and one `POST /visits` (an increment of one shared counter); each \
         app request opens the bucket and makes one key-value call. The app is linked with each \
         backend's adapter and served by embedded wasmtime 48 (one instance per request, as \
         `wasmtime serve` does) with wasmtime's default outgoing client, by the same with \
         `kvplug-http-pool`, and by `wasmtime serve`; *native* is a hyper server that answers \
         each request by replaying, on kept-alive connections with `TCP_NODELAY`, the store \
         requests the adapter sent for a request of the same kind (recorded first; a replayed \
         conditional write may fail its condition, which costs the store the same work). \
         Everything, load generator included, shares the machine's 2 cores and talks over \
         loopback. *conns/req*: TCP connections opened to the store per app request, counted \
         by a forwarder in front of the store. Errors are answers ≥ 500 (or a broken \
         connection); a 404 for a note not written yet is an answer. *Left in TIME_WAIT*: the \
         sockets a curve's store connections (warm-up included) left in TIME_WAIT, where Linux \
         keeps each for 60 s; on loopback it may reuse them (`tcp_tw_reuse` = 2), toward a \
         remote store it may not (README, \"Under load\"). jco serves only the reference \
         server's adapter, sealed.\n",
        plan.per_point.as_secs_f64()
    );
    for backend in backends() {
        let label = services::services()
            .iter()
            .find(|entry| entry.name == backend)
            .map_or(backend, |entry| entry.label);
        let mine: Vec<&Point> = points
            .iter()
            .filter(|p| p.backend == backend && p.mix == Mix::Notes)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let _ = writeln!(out, "### {label}\n");
        let _ = writeln!(
            out,
            "| front | K | req/s | p50 ms | p99 ms | errors | conns/req |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        for point in &mine {
            let _ = writeln!(
                out,
                "{} {:.2} |",
                point.row(),
                point.connections as f64 / (point.done + point.errors).max(1) as f64,
            );
        }
        for point in mine.iter().filter(|p| p.errors > 0) {
            let what = point.first_error.as_deref().unwrap_or("?");
            let what: String = what.chars().take(300).collect();
            let _ = writeln!(
                out,
                "\n{} at K = {}: {} errors, the first: `{}`",
                point.front.name(),
                point.k,
                point.errors,
                what.replace('`', "'").replace('\n', " ")
            );
        }
        let _ = writeln!(
            out,
            "\n| front | best req/s | at K | knee K (≥ 90% of best) | best / native's best | store connections in all | left in TIME_WAIT |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        let native_best = mine
            .iter()
            .filter(|p| p.front == Front::Native)
            .map(|p| p.rps())
            .fold(0.0, f64::max);
        let mut fronts: Vec<Front> = Vec::new();
        for point in &mine {
            if !fronts.contains(&point.front) {
                fronts.push(point.front);
            }
        }
        for front in fronts {
            let curve: Vec<&Point> = mine.iter().copied().filter(|p| p.front == front).collect();
            let best = curve
                .iter()
                .copied()
                .max_by(|a, b| a.rps().total_cmp(&b.rps()));
            let Some(best) = best else { continue };
            let lingering = curve.iter().find_map(|p| p.lingering);
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {} | {:.2} | {} | {} |",
                front.name(),
                best.rps(),
                best.k,
                knee(&curve).map_or("–".to_owned(), |k| k.to_string()),
                best.rps() / native_best,
                curve.iter().map(|p| p.connections).sum::<u64>(),
                lingering.map_or("–".to_owned(), |n| n.to_string()),
            );
        }
        let _ = writeln!(out);
    }
    let floor: Vec<&Point> = points.iter().filter(|p| p.mix == Mix::Floor).collect();
    if !floor.is_empty() {
        let _ = writeln!(
            out,
            "### The fronts' own cost
"
        );
        let _ = writeln!(
            out,
            "The same clients ask only for a path the app does not serve: it opens the bucket \
             (kvplug-etcd's `open` sends nothing) and answers 404, so no store request is made; \
             *native* answers the 404 itself. What a front can serve here bounds every curve \
             above: a wasm front instantiates the app and its adapter for every request.\n"
        );
        let _ = writeln!(
            out,
            "| front | K | req/s | p50 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|---:|"
        );
        for point in floor {
            let _ = writeln!(out, "{}", point.row());
        }
    }
    out
}
