//! The benchmark runs end to end with a tiny plan (one round, a few operations, every
//! client); its figures are not asserted, only that every section is measured.

use kvplug_bench::{artifacts, backends, memory, report, timing};

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
