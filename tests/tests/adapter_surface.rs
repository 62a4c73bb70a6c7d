//! What the built adapter imports and exports: its imports must keep to the allow-list
//! (wasi:http and what its types need, plus wasi:config/store), at the WASI 0.2.0 versions
//! that every 0.2 host can satisfy.

use kvplug_compose::{artifacts, surface};
use kvplug_tests::{Kv, reference_server, services, settings};

#[test]
fn the_http_adapter_imports_only_the_allow_list() {
    kvplug_tests::artifacts();
    let path = artifacts::adapter_path("http");
    let bytes = std::fs::read(&path).unwrap();
    println!("kvplug-http.wasm: {} bytes", bytes.len());
    let found = surface::surface(&bytes).unwrap();
    surface::check_adapter(&found).unwrap();
    let mut imports = found.imports.clone();
    imports.sort();
    assert_eq!(
        imports,
        [
            "wasi:clocks/monotonic-clock@0.2.0",
            "wasi:config/store@0.2.0-rc.1",
            "wasi:http/outgoing-handler@0.2.0",
            "wasi:http/types@0.2.0",
            "wasi:io/error@0.2.0",
            "wasi:io/poll@0.2.0",
            "wasi:io/streams@0.2.0",
        ]
    );
    assert_eq!(
        found.exports,
        surface::expected_exports(kvplug_compose::registry::backend("http").unwrap())
    );
}

#[test]
fn only_the_signing_adapters_import_the_wall_clock() {
    kvplug_tests::artifacts();
    for backend in artifacts::BACKENDS {
        let bytes = std::fs::read(artifacts::adapter_path(backend)).unwrap();
        println!("kvplug-{backend}.wasm: {} bytes", bytes.len());
        let found = surface::surface(&bytes).unwrap();
        surface::check_adapter(&found).unwrap();
        let clock = found
            .imports
            .iter()
            .any(|i| i == "wasi:clocks/wall-clock@0.2.0");
        // Signatures carry the time; nothing else needs it.
        let signs = services::expectations(backend).signs;
        assert_eq!(clock, signs, "kvplug-{backend}: {:?}", found.imports);
        // The extension is exported exactly by the backends the registry says carry it, and
        // no artifact imports any key-value interface (the extension's `bucket` is the
        // adapter's own).
        let registered = kvplug_compose::registry::backend(backend).unwrap();
        assert_eq!(
            found.exports,
            surface::expected_exports(registered),
            "kvplug-{backend}"
        );
        assert!(
            !found.imports.iter().any(|i| i.contains("keyvalue")),
            "kvplug-{backend}: {:?}",
            found.imports
        );
    }
}

#[test]
fn the_check_rejects_stray_imports_and_non_adapters() {
    kvplug_tests::artifacts();
    // The example app imports wasi:cli and exports no keyvalue: both problems are named.
    let app = std::fs::read(artifacts::fixture_path("example-app")).unwrap();
    let mut found = surface::surface(&app).unwrap();
    let error = surface::check_adapter(&found).unwrap_err().to_string();
    assert!(error.contains("`wasi:cli/environment@0.2.6`"), "{error}");
    found.imports.clear();
    let error = surface::check_adapter(&found).unwrap_err().to_string();
    assert!(error.contains("not a kvplug adapter"), "{error}");
    assert!(surface::surface(b"not wasm").is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_http_adapter_runs_with_only_what_every_wasi_http_host_has_and_config() {
    kvplug_tests::artifacts();
    let runtime = kvplug_runner::Runtime::adapter_only().unwrap();
    let adapter = runtime.load(&artifacts::adapter_path("http")).unwrap();
    let (_dir, server) = reference_server();
    let mut kv = Kv::on(&runtime, &adapter, settings(&server.url())).await;
    let b = kv.open("minimal").await.unwrap();
    kv.set(b, "k", b"v").await.unwrap();
    assert_eq!(kv.get(b, "k").await, Ok(Some(b"v".to_vec())));
}
