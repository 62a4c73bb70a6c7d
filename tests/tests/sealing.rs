//! Configuration as a component: sealed settings, sealed-plus-runtime settings, settings
//! from environment variables, and the sealing tool's refusals.

#![expect(
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test, which is how a test reports it"
)]

use kvplug_compose::{artifacts, plug, seal, surface};
use kvplug_runner::Runtime;
use kvplug_tests::{Kv, KvError, reference_server, reference_server_with, runtime, settings};

fn request(pairs: &[(&str, &str)], layered: bool) -> seal::Request {
    seal::Request {
        settings: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        layered,
    }
}

fn sealed(pairs: &[(&str, &str)], layered: bool) -> Vec<u8> {
    kvplug_tests::artifacts();
    let adapter = std::fs::read(artifacts::adapter_path("http")).unwrap();
    let config_name = if layered {
        "kvplug-config-layered"
    } else {
        "kvplug-config-static"
    };
    let config = std::fs::read(artifacts::config_path(config_name)).unwrap();
    seal::seal(&adapter, &config, &request(pairs, layered))
        .unwrap()
        .adapter
}

fn load(bytes: &[u8], runtime: &Runtime) -> wasmtime::component::Component {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("component.wasm");
    std::fs::write(&path, bytes).unwrap();
    runtime.load(&path).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sealed_adapter_imports_only_http_and_needs_no_runtime_config() {
    let (_dir, server) = reference_server();
    let bytes = sealed(
        &[
            ("url", &server.url()),
            ("buckets", "notes, todo"),
            ("page-size", "5"),
        ],
        false,
    );
    let found = surface::surface(&bytes).unwrap();
    surface::check_adapter(&found).unwrap();
    assert!(
        found.imports.iter().all(|i| i.starts_with("wasi:http/")
            || i.starts_with("wasi:io/")
            || i.starts_with("wasi:clocks/monotonic-clock")),
        "{:?}",
        found.imports
    );
    // A runtime with no wasi:config at all would do; this one has it, empty.
    let runtime = Runtime::adapter_only().unwrap();
    let component = load(&bytes, &runtime);
    let mut kv = Kv::on(&runtime, &component, vec![]).await;
    let b = kv.open("todo").await.unwrap();
    kv.set(b, "milk", b"2 litres").await.unwrap();
    assert_eq!(kv.get(b, "milk").await, Ok(Some(b"2 litres".to_vec())));
    // The sealed allow-list holds without asking the server.
    let before = server.requests();
    assert_eq!(kv.open("elsewhere").await, Err(KvError::AccessDenied));
    assert_eq!(server.requests(), before);
    // The sealed page size is in force.
    for i in 0..12 {
        kv.set(b, &format!("k{i}"), b"").await.unwrap();
    }
    assert_eq!(kv.list_keys(b, None).await.unwrap().keys.len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn layered_sealing_keeps_secrets_in_the_runtime() {
    const TOKEN: &str = "runtime-only-token-93d1";
    let (_dir, server) = reference_server_with(|c| c.token = Some(TOKEN.into()));
    let bytes = sealed(&[("buckets", "allowed")], true);
    assert!(!bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()));
    let found = surface::surface(&bytes).unwrap();
    assert!(
        found.imports.iter().any(|i| i == seal::CONFIG_IMPORT),
        "{:?}",
        found.imports
    );

    let component = load(&bytes, runtime());
    // The runtime supplies url and token; its `buckets` loses to the sealed one.
    let mut runtime_settings = settings(&server.url());
    runtime_settings.push(("token".into(), TOKEN.into()));
    runtime_settings.push(("buckets".into(), "other".into()));
    let mut kv = Kv::on(runtime(), &component, runtime_settings).await;
    let b = kv.open("allowed").await.unwrap();
    kv.set(b, "k", b"v").await.unwrap();
    assert_eq!(kv.open("other").await, Err(KvError::AccessDenied));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_env_config_component_reads_kvplug_variables() {
    kvplug_tests::artifacts();
    let (_dir, server) = reference_server();
    let adapter = std::fs::read(artifacts::adapter_path("http")).unwrap();
    let env = std::fs::read(artifacts::config_path("kvplug-config-env")).unwrap();
    let configured = plug::plug_bytes(adapter, vec![env]).unwrap();
    let imports = surface::surface(&configured).unwrap().imports;
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("wasi:cli/environment@")),
        "{imports:?}"
    );
    assert!(
        !imports.iter().any(|i| i == seal::CONFIG_IMPORT),
        "{imports:?}"
    );

    let app = std::fs::read(artifacts::fixture_path("example-app")).unwrap();
    let linked = plug::plug_bytes(app, vec![configured]).unwrap();
    let component = load(&linked, runtime());
    let env = [
        ("KVPLUG_URL".to_owned(), server.url()),
        ("KVPLUG_BUCKETS".to_owned(), "guestbook".to_owned()),
    ];
    let output = runtime()
        .run_command_with_env(&component, &["example-app".into()], &vec![], &env)
        .await
        .unwrap();
    assert!(output.success, "{}{}", output.stdout, output.stderr);
    assert!(
        output.stdout.contains("this is visit #1"),
        "{}",
        output.stdout
    );
    let output = runtime()
        .run_command_with_env(
            &component,
            &["example-app".into(), "not-allowed".into()],
            &vec![],
            &env,
        )
        .await
        .unwrap();
    assert!(!output.success);
    assert!(output.stderr.contains("access denied"), "{}", output.stderr);
}

#[test]
fn sealing_refuses_bad_input_and_writes_nothing() {
    kvplug_tests::artifacts();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sealed.wasm");
    let adapter = artifacts::adapter_path("http");
    let config = artifacts::config_path("kvplug-config-static");
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm but not really").unwrap();
    let already = dir.path().join("already.wasm");
    std::fs::write(&already, sealed(&[("url", "http://127.0.0.1:1")], false)).unwrap();
    let app = artifacts::fixture_path("example-app");

    let cases: Vec<(&std::path::Path, &std::path::Path, seal::Request, &str)> = vec![
        (
            &adapter,
            &config,
            request(&[("url", "http://h"), ("tokn", "x")], false),
            "unknown setting `tokn`",
        ),
        (
            &adapter,
            &config,
            request(&[("url", "htp:/oops")], false),
            "must start with http://",
        ),
        (
            &adapter,
            &config,
            request(&[("url", "http://h"), ("timeout-ms", "soon")], false),
            "`timeout-ms` must be a whole number",
        ),
        (
            &adapter,
            &config,
            request(&[("url", "http://h"), ("prefix", "apps!one/")], false),
            "`prefix` may not contain `!`",
        ),
        (
            &adapter,
            &config,
            request(&[("buckets", "a")], false),
            "`url` must be sealed",
        ),
        (
            &app,
            &config,
            request(&[("url", "http://h")], false),
            "not a kvplug adapter",
        ),
        (
            &junk,
            &config,
            request(&[("url", "http://h")], false),
            "not a kvplug adapter",
        ),
        (
            &already,
            &config,
            request(&[("url", "http://h")], false),
            "sealed already",
        ),
        (
            &adapter,
            &adapter,
            request(&[("url", "http://h")], false),
            "does not export `wasi:config/store",
        ),
    ];
    for (input, config, request, expected) in cases {
        let error = seal::seal_files(input, config, &request, &out).unwrap_err();
        let message = format!("{error:#}");
        assert!(
            message.contains(expected),
            "expected {expected:?} in: {message}"
        );
        assert!(!out.exists(), "an output was written for: {message}");
    }
}

/// One table of bad settings per backend: `kvplug seal` of that backend's adapter and the
/// adapter's own `open` (the same settings from the runtime) refuse each with the same words.
#[tokio::test(flavor = "multi_thread")]
async fn sealing_and_open_refuse_the_same_settings_with_the_same_message() {
    kvplug_tests::artifacts();
    let config = std::fs::read(artifacts::config_path("kvplug-config-static")).unwrap();
    let url = ("url", "http://127.0.0.1:9");
    let aws = [
        ("region", "us-east-1"),
        ("access-key-id", "AKID"),
        ("secret-access-key", "secret"),
    ];
    let azure = [
        ("account-name", "devstoreaccount1"),
        ("account-key", "c2VjcmV0"),
    ];
    let with = |extra: &[(&'static str, &'static str)], base: &[(&'static str, &'static str)]| {
        let mut pairs = vec![url];
        pairs.extend(
            base.iter()
                .filter(|(n, _)| extra.iter().all(|(e, _)| e != n)),
        );
        pairs.extend(extra.iter().filter(|(_, v)| !v.is_empty()));
        pairs
    };
    // The adapter, its settings, and the words both refusals contain.
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let mut cases: Vec<Case> = vec![
        (
            "dynamodb",
            with(&[("region", "")], &aws),
            "the dynamodb backend needs `region` (it is read from the `url` only for dynamodb.<region>.amazonaws.com)",
        ),
        (
            "dynamodb",
            with(&[("access-key-id", "")], &aws),
            "the dynamodb backend needs `access-key-id`",
        ),
        (
            "dynamodb",
            with(&[("secret-access-key", "")], &aws),
            "the dynamodb backend needs `secret-access-key`",
        ),
        (
            "azure-table",
            with(&[("table", "kv_plug")], &azure),
            "`table` must be 3 to 63 letters and digits, starting with a letter, for azure-table",
        ),
        (
            "azure-table",
            with(&[("account-name", "")], &azure),
            "azure-table needs `account-name`: the storage account's name (devstoreaccount1 for Azurite)",
        ),
        (
            "azure-table",
            with(&[("account-key", "")], &azure),
            "azure-table needs `account-key`: the storage account's base64 key",
        ),
    ];
    // A prefix too long for any bucket name, the empty one included.
    let long_prefix = |bytes: usize| -> &'static str { "p".repeat(bytes).leak() };
    cases.push((
        "redis",
        vec![url, ("prefix", long_prefix(1025))],
        "at most 512 fit in the URLs webdis serves",
    ));
    cases.push((
        "dynamodb",
        with(&[("prefix", long_prefix(2047))], &aws),
        "DynamoDB partition keys hold at most 2048 bytes: prefix, `!` and encoded bucket name are 2049",
    ));
    cases.push((
        "azure-table",
        with(&[("prefix", long_prefix(511))], &azure),
        "azure-table: a bucket name (with the `prefix` setting and `!`) may take 1 KiB (512 UTF-16 units once `/ \\ # ? % ' ~` and control characters are escaped as ~XX); this one takes 513",
    ));
    // What every backend refuses alike.
    for backend in kvplug_compose::registry::NAMES {
        cases.push((
            backend,
            vec![url, ("timeout-ms", "0")],
            "`timeout-ms` must be a whole number from 1 to 3600000",
        ));
        cases.push((
            backend,
            vec![url, ("prefix", "apps!one/")],
            "`prefix` may not contain `!`",
        ));
    }
    for (backend, pairs, expected) in cases {
        let adapter = std::fs::read(artifacts::adapter_path(backend)).unwrap();
        let sealing = seal::seal(&adapter, &config, &request(&pairs, false)).unwrap_err();
        let sealing = format!("{sealing:#}");
        assert!(sealing.contains(expected), "{backend}: seal: {sealing}");
        let settings = pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        let mut kv = Kv::with_adapter(kvplug_tests::adapter(backend), settings).await;
        let Err(KvError::Other(opening)) = kv.open("b").await else {
            panic!("{backend}: open accepted {pairs:?}");
        };
        assert!(opening.contains(expected), "{backend}: open: {opening}");
    }
}
