//! Every backend side by side, each against its real service started here on loopback:
//! HTTP requests per `wasi:keyvalue` call (counted by a proxy in front of the service), and
//! the time per operation of a component linked with the backend's adapter against a native
//! Rust client sending the very same requests (recorded from the adapter) to the same
//! service, with the same connection policy as wasmtime (a new connection per request).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use kvplug_compose::{artifacts, plug, registry};
use kvplug_http_pool::{Pool, PoolConfig};
use kvplug_runner::Runtime;
use kvplug_tests::counting_proxy::{CountingProxy, Recorded};
use kvplug_tests::services::{self, Service};
use kvplug_tests::{Kv, adapter, entries};

/// The test services measured, one per backend in registry order: each backend's first
/// (`services::start` names).
pub fn backends() -> Vec<&'static str> {
    registry::BACKENDS
        .iter()
        .filter_map(|backend| backend.services.first().copied())
        .collect()
}

/// The column or row name of a service: its adapter, and the emulator where that is not
/// the backend's own service.
fn label(service: &str) -> &'static str {
    services::services()
        .iter()
        .find(|entry| entry.name == service)
        .map_or("unknown", |entry| entry.label)
}

/// `(call, requests, limit)`.
pub type Count = (&'static str, u64, u64);

fn fail(error: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("{error:?}")
}

/// Calls every operation once through the adapter and counts the requests.
pub async fn count(service: &dyn Service) -> Result<Vec<Count>> {
    let mut settings = service.settings();
    let proxy = CountingProxy::in_front_of(&mut settings);
    let mut kv = Kv::with_adapter(adapter(service.backend()), settings).await;
    let fewest = services::fewest_requests(service.backend());
    let (open, increment, increment_new) = (fewest.open, fewest.increment, fewest.increment_new);
    let reads = 2500usize.div_ceil(fewest.batch_read) as u64;
    let writes = 2500usize.div_ceil(fewest.batch_write) as u64;
    let deletes = 2500usize.div_ceil(fewest.batch_delete) as u64;
    let mut rows = Vec::new();
    macro_rules! row {
        ($name:expr, $limit:expr, $call:expr) => {{
            let before = proxy.requests();
            let result = $call;
            let requests = proxy.requests() - before;
            rows.push(($name, requests, $limit));
            result.map_err(fail)?
        }};
    }
    let b = row!("open", open, kv.open("requests").await);
    // Redis loads each script on its first use after a start: warm them, count the rest.
    kv.set(b, "warm", b"w").await.map_err(fail)?;
    kv.increment(b, "warm-counter", 1).await.map_err(fail)?;
    let cas = kv.cas_new(b, "warm").await.map_err(fail)?;
    kv.swap(cas, b"w").await.map_err(fail)?;
    kv.set_many(b, &[("warm", b"w")]).await.map_err(fail)?;
    kv.get_many(b, &["warm"]).await.map_err(fail)?;
    kv.delete_many(b, &["warm"]).await.map_err(fail)?;
    kv.delete(b, "warm").await.map_err(fail)?;
    kv.list_keys(b, None).await.map_err(fail)?;
    let keys: Vec<String> = (0..2500).map(|i| format!("k{i}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let pairs: Vec<(&str, &[u8])> = refs.iter().map(|k| (*k, &b"v"[..])).collect();
    row!("set", 1, kv.set(b, "k", b"v").await);
    row!("get", 1, kv.get(b, "k").await);
    row!("get (missing key)", 1, kv.get(b, "missing").await);
    row!("exists", 1, kv.exists(b, "k").await);
    row!("delete", 1, kv.delete(b, "k").await);
    row!(
        "increment (new counter)",
        increment_new,
        kv.increment(b, "n", 1).await
    );
    row!("increment", increment, kv.increment(b, "n", 1).await);
    let cas = row!("cas.new", 1, kv.cas_new(b, "n").await);
    row!("swap", 1, kv.swap(cas, b"7").await);
    row!(
        "set-many (2500 pairs)",
        writes,
        kv.set_many(b, &pairs).await
    );
    row!("get-many (2500 keys)", reads, kv.get_many(b, &refs).await);
    row!("list-keys (one page)", 1, kv.list_keys(b, None).await);
    row!(
        "delete-many (2500 keys)",
        deletes,
        kv.delete_many(b, &refs).await
    );
    if let Some(fewest) = entries::expected_requests(service.backend()) {
        count_entries(&proxy, &mut rows, fewest, service).await?;
    }
    Ok(rows)
}

/// The extension's calls (`kvplug:keyvalue/entries`), for a backend that carries it.
async fn count_entries(
    proxy: &CountingProxy,
    rows: &mut Vec<Count>,
    fewest: entries::Expected,
    service: &dyn Service,
) -> Result<()> {
    use entries::{InsertMode, InsertOptions, ListOptions};
    let mut settings = service.settings();
    CountingProxy::point_at(&mut settings, proxy);
    let mut kv = entries::EntriesKv::with(service.backend(), settings).await;
    let b = kv.open("requests").await;
    macro_rules! row {
        ($name:expr, $limit:expr, $call:expr) => {{
            let before = proxy.requests();
            let result = $call;
            rows.push(($name, proxy.requests() - before, $limit));
            result.map_err(fail)?
        }};
    }
    // Warm every path once (Redis loads each script on its first use).
    let plain = InsertOptions::new;
    kv.insert(b, "e", b"1", &plain(InsertMode::Append))
        .await
        .map_err(fail)?;
    kv.insert(b, "e", b"1", &plain(InsertMode::Append))
        .await
        .map_err(fail)?;
    kv.delete(b, "e", None).await.map_err(fail)?;
    kv.list(b, &ListOptions::default()).await.map_err(fail)?;
    row!(
        "ext: insert overwrite",
        fewest.overwrite,
        kv.insert(b, "e", b"v", &plain(InsertMode::Overwrite)).await
    );
    let ttl = InsertOptions {
        time_to_live_sec: Some(600),
        metadata: Some(b"m".to_vec()),
        ..plain(InsertMode::Overwrite)
    };
    row!(
        "ext: insert with TTL and metadata",
        fewest.overwrite_ttl,
        kv.insert(b, "t", b"v", &ttl).await
    );
    row!(
        "ext: insert add",
        fewest.add,
        kv.insert(b, "a", b"v", &plain(InsertMode::Add)).await
    );
    let entry = row!("ext: lookup", fewest.lookup, kv.lookup(b, "e").await);
    let generation = entry.map_or(0, |entry| entry.generation);
    let conditional = InsertOptions {
        if_generation_match: Some(generation),
        ..plain(InsertMode::Overwrite)
    };
    row!(
        "ext: insert with generation",
        fewest.with_generation,
        kv.insert(b, "e", b"w", &conditional).await
    );
    row!(
        "ext: append",
        fewest.append_present,
        kv.insert(b, "e", b"+", &plain(InsertMode::Append)).await
    );
    let page = ListOptions {
        prefix: Some("e".into()),
        ..ListOptions::default()
    };
    row!(
        "ext: list page (prefix)",
        fewest.list_page,
        kv.list(b, &page).await
    );
    row!("ext: delete", fewest.delete, kv.delete(b, "e", None).await);
    Ok(())
}

/// One round of one backend at one size: mean µs per operation (sets and gets together).
#[derive(Debug, Clone, Copy)]
pub struct Timed {
    pub backend: &'static str,
    pub size: usize,
    pub round: usize,
    pub component_us: f64,
    pub native_us: f64,
    /// The component with `kvplug-http-pool` as the host's client.
    pub pooled_us: f64,
    /// Native hyper replaying the same requests on one kept-alive connection (`TCP_NODELAY`).
    pub native_kept_us: f64,
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(authority: &str) -> Result<Sender> {
    let stream = tokio::net::TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends `request` on `kept` if given (kept alive), else on a new connection (wasmtime's
/// policy), and checks for a 2xx.
async fn send(authority: &str, request: &Recorded, kept: Option<&mut Sender>) -> Result<Bytes> {
    let mut fresh;
    let sender = match kept {
        Some(sender) => {
            sender.ready().await?;
            sender
        }
        None => {
            fresh = connect(authority).await?;
            &mut fresh
        }
    };
    let mut builder = hyper::Request::builder()
        .method(request.method.clone())
        .uri(request.path.as_str())
        .header("content-length", request.body.len());
    // The recorded `host` is the one the request was signed with (SigV4 covers it).
    if !request.headers.iter().any(|(name, _)| name == "host") {
        builder = builder.header("host", authority);
    }
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_slice());
    }
    let response = sender
        .send_request(builder.body(Full::new(request.body.clone()))?)
        .await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!("native {} {}: {status}", request.method, request.path);
    }
    Ok(body)
}

/// `n` replays of the recorded set, then `n` of the recorded get, each on a new connection
/// or (`keep_alive`) all on one.
async fn native(
    authority: &str,
    set: &Recorded,
    get: &Recorded,
    n: usize,
    keep_alive: bool,
) -> Result<Duration> {
    let mut kept = if keep_alive {
        Some(connect(authority).await?)
    } else {
        None
    };
    let started = Instant::now();
    for _ in 0..n {
        send(authority, set, kept.as_mut()).await?;
    }
    for _ in 0..n {
        send(authority, get, kept.as_mut()).await?;
    }
    Ok(started.elapsed())
}

fn parse_total(output: &str) -> Result<Duration> {
    let field = |name: &str| -> Result<u64> {
        output
            .split_whitespace()
            .find_map(|word| word.strip_prefix(name))
            .with_context(|| format!("no `{name}` in: {output}"))?
            .parse()
            .map_err(Into::into)
    };
    Ok(Duration::from_nanos(field("set_ns=")? + field("get_ns=")?))
}

/// Times every backend at each `(size, n)` for `rounds` interleaved rounds.
pub async fn time(sizes: &[(usize, usize)], rounds: usize) -> Result<Vec<Timed>> {
    let runtime = Runtime::new()?;
    let pooled = Runtime::new()?.with_pool(Pool::new(PoolConfig::default())?);
    let work = tempfile::tempdir()?;
    let kv_bench = std::fs::read(artifacts::fixture_path("kv-bench"))?;
    let mut prepared = Vec::new();
    for backend in backends() {
        let service = services::start(backend);
        let linked = work.path().join(format!("kv-bench.{backend}.wasm"));
        let adapter = std::fs::read(artifacts::adapter_path(service.backend()))?;
        std::fs::write(&linked, plug::plug_bytes(kv_bench.clone(), vec![adapter])?)?;
        let component = runtime.load(&linked)?;
        let pooled_component = pooled.load(&linked)?;
        // Record the adapter's own set and get of each size, through a proxy.
        let url = services::url_of(&service.settings()).to_owned();
        let proxy = CountingProxy::start(&url);
        let mut recorded = Vec::new();
        for &(size, _) in sizes {
            let args = vec![
                "kv-bench".into(),
                size.to_string(),
                "1".into(),
                "rec".into(),
            ];
            let mut settings = service.settings();
            CountingProxy::point_at(&mut settings, &proxy);
            runtime.run_command(&component, &args, &settings).await?;
            let log = proxy.take_log();
            let [.., set, get] = log.as_slice() else {
                bail!(
                    "{backend}: recorded {} requests for a set and a get",
                    log.len()
                );
            };
            recorded.push((size, set.clone(), get.clone()));
        }
        prepared.push((backend, service, component, pooled_component, url, recorded));
    }
    let mut timed = Vec::new();
    for round in 0..rounds {
        for (backend, service, component, pooled_component, url, recorded) in &prepared {
            let authority = url.trim_start_matches("http://");
            let authority = authority.split('/').next().unwrap_or(authority);
            for (&(size, n), (_, set, get)) in sizes.iter().zip(recorded) {
                let args = vec![
                    "kv-bench".into(),
                    size.to_string(),
                    n.to_string(),
                    format!("r{round}-"),
                ];
                let settings = service.settings();
                let output = runtime.run_command(component, &args, &settings).await?;
                if !output.success {
                    bail!("kv-bench on {backend}: {}", output.stdout);
                }
                let component_total = parse_total(&output.stdout)?;
                let native_total = native(authority, set, get, n, false).await?;
                let output = pooled
                    .run_command(pooled_component, &args, &settings)
                    .await?;
                if !output.success {
                    bail!("kv-bench on {backend} through the pool: {}", output.stdout);
                }
                let pooled_total = parse_total(&output.stdout)?;
                let native_kept_total = native(authority, set, get, n, true).await?;
                let per_op = |d: Duration| d.as_secs_f64() * 1e6 / (2 * n) as f64;
                timed.push(Timed {
                    backend,
                    size,
                    round,
                    component_us: per_op(component_total),
                    native_us: per_op(native_total),
                    pooled_us: per_op(pooled_total),
                    native_kept_us: per_op(native_kept_total),
                });
            }
        }
    }
    Ok(timed)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The report's section on backends.
pub fn render(counts: &[(&str, Vec<Count>)], timed: &[Timed], sizes: &[(usize, usize)]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n## Backends: requests per call\n");
    let _ = writeln!(
        out,
        "Each adapter against its real service on loopback (kvplug-server, etcd 3.4, Redis 7.0 \
         behind webdis 0.1.9, dynalite 4.0 for DynamoDB, Azurite 3.37 for Azure Table), counted \
         by a proxy in front of the service. A cell is `requests (fewest the service allows)`. \
         Batches are 2500 entries: kvplug-server and the Redis scripts take 1000 per request, \
         etcd 128 operations per transaction (`--max-txn-ops`), DynamoDB 100 keys per \
         BatchGetItem and 25 per BatchWriteItem, Azure Table 100 operations per `$batch` and \
         14 keys per query (a `$filter` may hold 15 comparisons). etcd and Azure Table cannot \
         add, so an increment reads and then writes conditionally. Redis counts are \
         steady-state: the first use of each Lua script after Redis starts sends the script \
         once (one more request).\n"
    );
    let mut header = String::from("| call |");
    let mut rule = String::from("|---|");
    for (backend, _) in counts {
        let _ = write!(header, " {} |", label(backend));
        rule.push_str("---:|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    if let Some((_, first)) = counts.first() {
        for (i, (call, _, _)) in first.iter().enumerate() {
            let mut line = format!("| {call} |");
            for (_, rows) in counts {
                match rows.get(i) {
                    Some((_, n, limit)) if n <= limit => {
                        let _ = write!(line, " {n} ({limit}) |");
                    }
                    Some((_, n, limit)) => {
                        let _ = write!(line, " **{n}** ({limit}, not met) |");
                    }
                    None => line.push_str(" – |"),
                }
            }
            let _ = writeln!(out, "{line}");
        }
    }

    let _ = writeln!(
        out,
        "\n## Backends: time per operation against a native client\n"
    );
    let _ = writeln!(
        out,
        "kv-bench linked with each adapter on embedded wasmtime 48 (N sets then N gets), against \
         native hyper replaying the adapter's own recorded set and get requests to the same \
         service in the same run, one new connection per request like wasmtime; then the same \
         component with `kvplug-http-pool` as the host's client against the same replay on one \
         kept-alive connection (`TCP_NODELAY` on both). Medians over interleaved rounds; each \
         ratio is computed per round, [min–max] across rounds.\n"
    );
    let _ = writeln!(
        out,
        "| backend | value | component µs/op | native µs/op | component / native | component + kvplug-http-pool µs/op | native keep-alive µs/op | pooled / native keep-alive | default / pooled component |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for backend in backends() {
        for &(size, n) in sizes {
            let runs: Vec<&Timed> = timed
                .iter()
                .filter(|t| t.backend == backend && t.size == size)
                .collect();
            if runs.is_empty() {
                continue;
            }
            let spread = |ratios: Vec<f64>| {
                let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                format!("{:.2} [{lo:.2}–{hi:.2}]", median(ratios))
            };
            let kept = spread(
                runs.iter()
                    .map(|t| t.pooled_us / t.native_kept_us)
                    .collect(),
            );
            let gain = spread(runs.iter().map(|t| t.component_us / t.pooled_us).collect());
            let ratios: Vec<f64> = runs.iter().map(|t| t.component_us / t.native_us).collect();
            let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let _ = writeln!(
                out,
                "| {} | {} × {n} | {:.0} | {:.0} | {:.2} [{lo:.2}–{hi:.2}] | {:.0} | {:.0} | {kept} | {gain} |",
                label(backend),
                if size >= 1024 {
                    format!("{} KiB", size >> 10)
                } else {
                    format!("{size} B")
                },
                median(runs.iter().map(|t| t.component_us).collect()),
                median(runs.iter().map(|t| t.native_us).collect()),
                median(ratios),
                median(runs.iter().map(|t| t.pooled_us).collect()),
                median(runs.iter().map(|t| t.native_kept_us).collect()),
            );
        }
    }
    out
}

/// Counts and times every backend; the report section.
pub async fn measure(sizes: &[(usize, usize)], rounds: usize) -> Result<String> {
    let counts = count_all().await?;
    let timed = time(sizes, rounds).await?;
    Ok(render(&counts, &timed, sizes))
}

/// Requests per call on every backend.
pub async fn count_all() -> Result<Vec<(&'static str, Vec<Count>)>> {
    let mut counts = Vec::new();
    for backend in backends() {
        let service = services::start(backend);
        counts.push((backend, count(&*service).await?));
    }
    Ok(counts)
}

/// The requests-per-call section alone (`kvplug-bench --counts-only`).
pub fn render_counts(counts: &[(&str, Vec<Count>)]) -> String {
    let full = render(counts, &[], &[]);
    let end = full
        .find("\n## Backends: time per operation")
        .unwrap_or(full.len());
    full.get(..end).unwrap_or_default().to_owned()
}
