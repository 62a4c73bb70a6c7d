//! The benchmark runs end to end with a tiny plan (one round, a few operations, every
//! client); its figures are not asserted, only that every section is measured.

use kvplug_bench::{artifacts, backends, load, memory, report, timing};

#[tokio::test(flavor = "multi_thread")]
async fn the_benchmark_measures_every_section() {
    let measured = artifacts::measure(2).unwrap();
    let names: Vec<&str> = measured.sizes.iter().map(|s| s.what.as_str()).collect();
    for expected in [
        "kvplug-http.wasm",
        "kvplug-config-static.wasm",
        "kvplug-config-env.wasm",
        "example-app.wasm",
    ] {
        assert!(names.contains(&expected), "{names:?}");
    }
    assert!(measured.sizes.iter().all(|s| s.bytes > 0));
    assert!(measured.timings.iter().all(|t| t.runs.len() == 2));

    let work = tempfile::tempdir().unwrap();
    let mut config = kvplug_server::Config::new(work.path().join("data"));
    config.durable = false;
    let server = kvplug_server::Server::start(config).unwrap();
    let sizes = [(100, 2)];
    let backends = backends::measure(&sizes, 1).await.unwrap();
    let memory = memory::measure(&server.url(), 1 << 20).await.unwrap();
    assert!(memory.peak > memory.after_open);

    let plan = timing::Plan::smoke();
    let samples = timing::run(&plan, &server.url(), work.path())
        .await
        .unwrap();
    assert_eq!(samples.len(), plan.clients.len() * plan.sizes.len());
    let text = report::render(&report::Results {
        artifacts: measured,
        artifact_runs: 2,
        backends,
        plan,
        samples,
        memory: Some(memory),
    });
    for section in [
        "## Artifact sizes",
        "## Backends: requests per call",
        "## Backends: time per operation",
        "## Time per operation",
        "### Ratios",
        "## Adapter linear memory",
    ] {
        assert!(text.contains(section), "missing {section}");
    }
    assert!(text.contains("| emb-kv / emb-http (adapter overhead, embedded) | "));
    for backend in [
        "kvplug-http",
        "kvplug-etcd",
        "kvplug-redis",
        "kvplug-dynamodb (dynalite)",
        "kvplug-azure-table (Azurite)",
    ] {
        assert!(
            text.contains(&format!("| {backend} | 100 B × 2 |")),
            "no timing row for {backend}"
        );
    }
    // Every count meets the fewest requests its service allows.
    assert!(!text.contains("not met)"), "{text}");
}

/// The load benchmark runs every front against every backend's real service with a tiny
/// plan. Not its figures but its counts are asserted: no errors, and the connection
/// behaviour each front is measured for (wasmtime's default client: at least one store
/// connection per app request; the pool: no more connections than clients).
#[tokio::test(flavor = "multi_thread")]
async fn the_load_benchmark_measures_every_front_on_every_backend() {
    let plan = load::Plan {
        concurrency: vec![1, 3],
        per_point: std::time::Duration::from_millis(300),
        with_jco: false,
    };
    let work = tempfile::tempdir().unwrap();
    let points = load::run(&plan, work.path()).await.unwrap();
    for backend in backends::backends() {
        for front in [
            load::Front::Embedded,
            load::Front::Pooled,
            load::Front::Serve,
            load::Front::Native,
        ] {
            let curve: Vec<&load::Point> = points
                .iter()
                .filter(|p| p.backend == backend && p.front == front && p.mix == load::Mix::Notes)
                .collect();
            assert_eq!(curve.len(), 2, "{backend} {}", front.name());
            for point in curve {
                assert!(point.done > 0, "{point:?}");
                assert_eq!(point.errors, 0, "{point:?}");
                match front {
                    load::Front::Embedded | load::Front::Serve => {
                        assert!(point.connections >= point.done, "{point:?}");
                    }
                    _ => assert!(point.connections <= point.k as u64, "{point:?}"),
                }
            }
        }
    }
    assert!(
        points
            .iter()
            .any(|p| p.mix == load::Mix::Floor && p.done > 0)
    );
    let text = load::render(&plan, &points);
    assert!(text.contains("## Throughput under load"), "{text}");
    assert!(text.contains("### The fronts' own cost"), "{text}");
}

/// The watch drivers' section measures every backend with a driver, with a few writes.
#[tokio::test(flavor = "multi_thread")]
async fn the_watch_section_measures_every_driver() {
    let rows = kvplug_bench::watch::measure(5, 20).await.unwrap();
    let backends: Vec<&str> = rows.iter().map(|r| r.backend).collect();
    assert_eq!(backends, kvplug_compose::artifacts::WATCH_BACKENDS);
    for row in &rows {
        assert_eq!(row.latencies_ms.len(), 5, "{row:?}");
        assert!(row.events_per_second > 0.0, "{row:?}");
        // The app alone sends its share; the driver adds its reads and saves.
        assert!(
            row.requests_per_event > row.app_requests_per_event,
            "{row:?}"
        );
    }
    let text = kvplug_bench::watch::render(&rows);
    assert!(text.contains("## Watch drivers"), "{text}");
}
