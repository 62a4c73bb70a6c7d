//! The benchmark runs end to end (with two runs per step); its figures are not asserted.

#[test]
fn the_benchmark_measures_every_artifact_and_step() {
    let measured = kvplug_bench::artifacts::measure(2).unwrap();
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
    assert_eq!(measured.timings.len(), 3);
    assert!(measured.timings.iter().all(|t| t.runs.len() == 2));
    let report = kvplug_bench::report::render(&measured, 2);
    assert!(report.contains("## Artifact sizes") && report.contains("| seal kvplug-http.wasm"));
}
