//! The watch drivers (issue #15), per backend with a driver: how long after a write's
//! acknowledgement the app's `on-set` runs, how many events per second one driver delivers
//! from a backlog, and how many requests each event costs.
//!
//! The driver runs as users run it: `watch-app`, the adapter and the driver composed by
//! `kvplug watch` and run by the wasmtime CLI, every request through a counting proxy. The app
//! writes the wall-clock time of each `on-set` to bucket `mirror-log` (and mirrors the value),
//! and the writer is an embedded adapter instance on the same machine, so both clocks are one.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use kvplug_runner::Settings;
use kvplug_tests::counting_proxy::CountingProxy;
use kvplug_tests::services::{Etcd, Moto, Redis, Service as _};
use kvplug_tests::watch::{Driver, composed, driver_settings};
use kvplug_tests::{Kv, adapter, settings};

/// One backend's figures.
#[derive(Debug, Clone)]
pub struct Row {
    pub backend: &'static str,
    /// Milliseconds from a write's acknowledgement to `on-set`, sorted.
    pub latencies_ms: Vec<f64>,
    /// Events per second delivered from a backlog.
    pub events_per_second: f64,
    pub backlog: usize,
    /// Requests through the proxy per event during the backlog: the whole composition's, and
    /// the app's own share (its writes and bucket opens, known from the request counts).
    pub requests_per_event: f64,
    pub app_requests_per_event: f64,
}

/// What `watch-app` sends per `on-set`: two opens and two writes; an `open` is a request on
/// the reference server (a `HEAD`) and none elsewhere (docs/protocol.md, the README's table).
fn app_requests(backend: &str) -> f64 {
    match backend {
        "http" => 4.0,
        _ => 2.0,
    }
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Waits until `mirror-log` has an entry for every key; returns their on-set times (ns).
async fn on_set_times(kv: &mut Kv, keys: &[String], limit: Duration) -> Result<Vec<u128>> {
    let started = Instant::now();
    let log = kv
        .open("mirror-log")
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut times = Vec::with_capacity(keys.len());
    for key in keys {
        loop {
            let value = kv
                .get(log, key)
                .await
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            if let Some(value) = value {
                times.push(String::from_utf8(value)?.parse()?);
                break;
            }
            if started.elapsed() > limit {
                bail!("`{key}` was not delivered within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(times)
}

async fn measure_one(
    backend: &'static str,
    service: Settings,
    writes: usize,
    backlog: usize,
) -> Result<Row> {
    let dir = tempfile::tempdir()?;
    let component = composed(backend, false, dir.path());
    let url = service
        .iter()
        .find(|(name, _)| name == "url")
        .map(|(_, url)| url.clone())
        .context("no `url`")?;
    let proxy = CountingProxy::start(&url);
    let mut through_proxy = service.clone();
    for (name, value) in &mut through_proxy {
        if name == "url" {
            *value = proxy.url();
        }
    }
    let config = driver_settings(
        through_proxy,
        &[("watch-wait-ms", "25000"), ("watch-idle-ms", "60000")],
    );
    let mut writer = Kv::with_adapter(adapter(backend), service).await;
    let watched = writer
        .open("watched")
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;

    // Latency: one write at a time, a pause between, so that no write queues behind another.
    let mut driver = Driver::start(&component, &config, &dir.path().join("latency.log"));
    driver.ready();
    let mut acked = Vec::with_capacity(writes);
    let mut keys = Vec::with_capacity(writes);
    for i in 0..writes {
        let key = format!("latency-{i}");
        writer
            .set(watched, &key, b"x")
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        acked.push(now_ns());
        keys.push(key);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let times = on_set_times(&mut writer, &keys, Duration::from_secs(120))
        .await
        .with_context(|| driver.stderr())?;
    let mut latencies_ms: Vec<f64> = times
        .iter()
        .zip(&acked)
        .map(|(&on_set, &ack)| (on_set as f64 - ack as f64) / 1e6)
        .collect();
    latencies_ms.sort_by(f64::total_cmp);
    driver.kill();

    // Throughput: a backlog written while the driver is away, delivered on its next start.
    let pairs: Vec<(String, Vec<u8>)> = (0..backlog)
        .map(|i| (format!("backlog-{i}"), b"y".to_vec()))
        .collect();
    for chunk in pairs.chunks(100) {
        let chunk: Vec<(&str, &[u8])> = chunk
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        writer
            .set_many(watched, &chunk)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let keys: Vec<String> = pairs.into_iter().map(|(k, _)| k).collect();
    let before = proxy.requests();
    let mut driver = Driver::start(&component, &config, &dir.path().join("backlog.log"));
    driver.ready();
    let times = on_set_times(&mut writer, &keys, Duration::from_secs(600))
        .await
        .with_context(|| driver.stderr())?;
    let requests = proxy.requests() - before;
    driver.kill();
    let first = times.iter().min().copied().unwrap_or(0);
    let last = times.iter().max().copied().unwrap_or(0);
    let seconds = ((last - first) as f64 / 1e9).max(1e-9);
    Ok(Row {
        backend,
        latencies_ms,
        events_per_second: (backlog as f64 - 1.0) / seconds,
        backlog,
        requests_per_event: requests as f64 / backlog as f64,
        app_requests_per_event: app_requests(backend),
    })
}

/// Measures every backend with a driver: `writes` single writes for latency, a `backlog` for
/// throughput.
pub async fn measure(writes: usize, backlog: usize) -> Result<Vec<Row>> {
    kvplug_tests::artifacts();
    let mut rows = Vec::new();
    let (_data, server) = kvplug_tests::reference_server();
    rows.push(measure_one("http", settings(&server.url()), writes, backlog).await?);
    drop(server);
    let etcd = Etcd::start(&[]);
    rows.push(measure_one("etcd", settings(&etcd.url()), writes, backlog).await?);
    drop(etcd);
    // DynamoDB Streams: moto (dynalite has none), its table created with a stream.
    let moto = Moto::start_with_stream();
    rows.push(measure_one("dynamodb", moto.settings(), writes, backlog).await?);
    drop(moto);
    let redis = Redis::start();
    rows.push(measure_one("redis", redis.settings(), writes, backlog).await?);
    drop(redis);
    Ok(rows)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(rank).copied().unwrap_or(f64::NAN)
}

/// The section of BENCHMARKS.md.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::from(
        "\n## Watch drivers\n\n\
         `watch-app` + adapter + `kvplug-watch-<backend>.wasm` composed by `kvplug watch`, run by \
         the wasmtime CLI; DynamoDB on moto (Streams) (a connection per request), watching one bucket; every request through \
         a counting proxy. Latency: from the writer's acknowledgement of a single write (one at a \
         time, 5 ms apart) to the wall-clock time `on-set` recorded; it can be below zero when \
         `on-set` runs before the acknowledgement reaches the writer. Throughput: a backlog written \
         while the driver was stopped, from its first `on-set` to its last. Requests per event: \
         during the backlog, the whole composition's, and of them the app's own (`watch-app` \
         opens two buckets and writes twice per event).\n\n\
         | backend | writes | latency median | p90 | p99 | max | backlog | events/s | requests/event | of which the app's |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {} | {:.0} | {:.2} | {:.0} |\n",
            row.backend,
            row.latencies_ms.len(),
            percentile(&row.latencies_ms, 0.5),
            percentile(&row.latencies_ms, 0.9),
            percentile(&row.latencies_ms, 0.99),
            row.latencies_ms.last().copied().unwrap_or(f64::NAN),
            row.backlog,
            row.events_per_second,
            row.requests_per_event,
            row.app_requests_per_event,
        ));
    }
    out
}
