//! The conformance suite (`fixtures/conformance`) on every combination this tree has, and
//! the matrix `docs/conformance.md` generated from the runs.
//!
//! The draft suite also runs on wasmtime's own in-memory `wasi-keyvalue` host: a second,
//! independent implementation, which shows the suite tests the specification and not our
//! code. Cases that host cannot pass by design are marked in the suite (`--host
//! wasmtime-in-memory`) and reported as expected failures, never skipped.
//!
//! Set `BLESS=1` to rewrite `docs/conformance.md` when the matrix changes.

#![expect(
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test, which is how a test reports it"
)]

use std::path::Path;

use kvplug_compose::{artifacts, plug, spin};
use kvplug_runner::{RunOutput, Runtime};
use kvplug_tests::{runtime, services};

/// One line of the matrix.
struct Row {
    draft: &'static str,
    implementation: &'static str,
    runtime: &'static str,
    passed: usize,
    failed: usize,
    expected: usize,
}

/// Reads the suite's `N passed, N failed` and `N expected failures` lines.
fn summary(output: &RunOutput) -> (usize, usize, usize) {
    counts(&output.stdout)
}

fn counts(stdout: &str) -> (usize, usize, usize) {
    let mut counts = (usize::MAX, usize::MAX, 0);
    for line in stdout.lines() {
        if let Some((passed, failed)) = line.split_once(" passed, ")
            && let (Ok(p), Some(Ok(f))) = (
                passed.parse(),
                failed.strip_suffix(" failed").map(str::parse),
            )
        {
            counts.0 = p;
            counts.1 = f;
        }
        if let Some(n) = line
            .split_once(" expected failures")
            .and_then(|(n, _)| n.parse().ok())
        {
            counts.2 = n;
        }
    }
    assert_ne!(counts.0, usize::MAX, "no summary line in:\n{stdout}");
    counts
}

/// The runtimes of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Host {
    Embedded,
    /// `wasmtime run`, settings as `-S config-var=…`, with the host's WASI 0.3 (P3) support on
    /// (`-S p3`, the CLI's default since 47).
    Cli,
    /// The same with P3 off (`-S p3=n`): the results must not differ.
    CliP2,
    /// `jco transpile` and Node, settings through the env config component (`KVPLUG_*`).
    Jco,
}

impl Host {
    const ALL: [Host; 4] = [Host::Embedded, Host::Cli, Host::CliP2, Host::Jco];

    fn name(self) -> &'static str {
        match self {
            Host::Embedded => "embedded wasmtime 48",
            Host::Cli => "wasmtime CLI 48, P3 on (`-S p3`)",
            Host::CliP2 => "wasmtime CLI 48, P3 off (`-S p3=n`)",
            Host::Jco => "jco 1.35 on Node",
        }
    }
}

/// Runs `suite` linked with `backend`'s adapter on `host`; returns success and what it printed.
async fn run_on(
    host: Host,
    suite: &str,
    backend: &str,
    settings: &kvplug_runner::Settings,
    args: &[&str],
    dir: &Path,
) -> (bool, String) {
    match host {
        Host::Embedded => {
            let output = run(
                runtime(),
                &linked(suite, backend, dir),
                args,
                settings.clone(),
            )
            .await;
            (output.success, output.stdout)
        }
        Host::Cli | Host::CliP2 => {
            let p3 = if host == Host::Cli { "p3=y" } else { "p3=n" };
            let mut command = std::process::Command::new("wasmtime");
            command.args(["run", "-S", p3, "-S", "http", "-S", "config"]);
            for (name, value) in settings {
                command.arg("-S").arg(format!("config-var={name}={value}"));
            }
            command.arg(linked(suite, backend, dir)).args(args);
            let output = kvplug_tests::process::output(command);
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            print!("{stdout}");
            (output.status.success(), stdout)
        }
        Host::Jco => {
            let out = kvplug_tests::process::JsOut::new(&format!("{suite}-{backend}"));
            let env = std::fs::read(artifacts::config_path("kvplug-config-env")).unwrap();
            let adapter = plug::plug_bytes(
                std::fs::read(artifacts::adapter_path(backend)).unwrap(),
                vec![env],
            )
            .unwrap();
            let component = out.join("suite.wasm");
            std::fs::write(
                &component,
                plug::plug_bytes(
                    std::fs::read(artifacts::fixture_path(suite)).unwrap(),
                    vec![shaped_for(suite, adapter)],
                )
                .unwrap(),
            )
            .unwrap();
            let script = kvplug_tests::process::transpile_command(&component, &out);
            let mut node = std::process::Command::new("node");
            node.arg(script).args(args);
            for (name, value) in settings {
                node.env(
                    format!("KVPLUG_{}", name.to_ascii_uppercase().replace('-', "_")),
                    value,
                );
            }
            let output = kvplug_tests::process::output(node);
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            print!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
            (output.status.success(), stdout)
        }
    }
}

/// How long after a deadline `backend`'s service may still show an entry: the extension's
/// suite waits this long past each time-to-live (docs/extension-design.md §4).
/// `None` for a backend whose slack is not stated yet, which fails the run.
fn expiry_slack_ms(backend: &str) -> Option<u64> {
    match backend {
        // The server judges deadlines to the millisecond on every read.
        "http" => Some(100),
        // The adapter judges deadlines (`x`, epoch ms) by its own wall clock on every read,
        // the clock it writes them by: exact, bar scheduling.
        "azure-table" => Some(100),
        // etcd raises a lease to its minimum TTL (2 s by default), so a 1 s time-to-live
        // lives about 2 s, and its lessor revokes expired leases in a loop every 0.5 s: the
        // suite's `1000 + slack` wait must cover 1 s of rounding plus that lateness.
        // Measured on etcd 3.4.23: a 1 s lease's key gone after 2.09–2.52 s, a 2 s one's
        // after 2.49–2.51 s; 2,000 ms leaves about 0.5 s for a loaded machine.
        "etcd" => Some(2000),
        // `e` is whole epoch seconds, rounded up (`ceil(now) + ttl`): a time-to-live of 1 s
        // lasts up to 2 s after the adapter read its clock, which is before the suite starts
        // waiting `ttl * 1000 + slack`. Reads judge it to the millisecond.
        "dynamodb" => Some(1000),
        // Redis expires keys to the millisecond (`PXAT`), on its own clock.
        "redis" => Some(100),
        _ => None,
    }
}

/// `adapter`, given Spin's shape when `suite` is built against Spin's WIT.
fn shaped_for(suite: &str, adapter: Vec<u8>) -> Vec<u8> {
    if suite == "conformance-spin" {
        spin::spin_shaped(
            adapter,
            std::fs::read(artifacts::shape_path("kvplug-spin-shape")).unwrap(),
        )
        .unwrap()
    } else {
        adapter
    }
}

async fn run(
    runtime: &Runtime,
    component: &Path,
    args: &[&str],
    settings: kvplug_runner::Settings,
) -> RunOutput {
    let component = runtime.load(component).unwrap();
    let mut argv = vec!["conformance".to_owned()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let output = runtime
        .run_command(&component, &argv, &settings)
        .await
        .unwrap();
    print!("{}", output.stdout);
    output
}

/// `suite` linked with `backend`'s adapter; Spin's suite with the adapter in Spin's shape
/// (`kvplug spin`).
fn linked(suite: &str, backend: &str, dir: &Path) -> std::path::PathBuf {
    let out = dir.join(format!("{suite}.{backend}.linked.wasm"));
    if !out.exists() {
        let adapter = shaped_for(
            suite,
            std::fs::read(artifacts::adapter_path(backend)).unwrap(),
        );
        let suite = std::fs::read(artifacts::fixture_path(suite)).unwrap();
        std::fs::write(&out, plug::plug_bytes(suite, vec![adapter]).unwrap()).unwrap();
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_suite_passes_everywhere_and_the_matrix_is_current() {
    kvplug_tests::artifacts();
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    let mut times = Vec::new();

    // Every test service of the backend registry, in its order.
    for entry in services::services() {
        let implementation = entry.implementation;
        let extended =
            kvplug_compose::registry::backend(entry.backend).is_some_and(|backend| backend.entries);
        let suites = [
            ("conformance-draft2", "`wasi:keyvalue@0.2.0-draft2`"),
            ("conformance-draft", "`wasi:keyvalue@0.2.0-draft`"),
            (
                "conformance-spin",
                "`wasi:keyvalue@0.2.0-draft2`, Spin's WIT, through `kvplug spin`",
            ),
            (
                "conformance-entries",
                "`kvplug:keyvalue/entries@0.1.0`, read back through both drafts",
            ),
        ];
        for (suite, draft) in suites
            .into_iter()
            .filter(|(suite, _)| extended || *suite != "conformance-entries")
        {
            let service = (entry.start)();
            let backend = service.backend();
            let mut s = service.settings();
            // Small pages, so that listing 300 keys really pages.
            s.push(("page-size".into(), "16".into()));
            // A service with a documented value limit: the largest stored value is that
            // limit, and one byte more must be refused.
            let limit = services::value_limit(backend)
                .map(|limit| format!("{}:{}", limit.stored, limit.refused));
            let slack = expiry_slack_ms(backend)
                .map(|slack| slack.to_string())
                .unwrap_or_default();
            let args: Vec<&str> = match (&limit, suite) {
                (_, "conformance-entries") => vec!["--expiry-slack-ms", &slack],
                (Some(sizes), _) => vec!["--value-limit", sizes],
                (None, _) => vec![],
            };
            for host in Host::ALL {
                let started = std::time::Instant::now();
                let (success, stdout) = run_on(host, suite, backend, &s, &args, dir.path()).await;
                let elapsed = started.elapsed();
                let (passed, failed, expected) = counts(&stdout);
                assert!(
                    success && failed == 0 && expected == 0,
                    "{suite} on kvplug-{backend}, {}:\n{stdout}",
                    host.name()
                );
                times.push(format!(
                    "{suite} on {implementation}, {}: {:.1} s",
                    host.name(),
                    elapsed.as_secs_f64()
                ));
                rows.push(Row {
                    draft,
                    implementation,
                    runtime: host.name(),
                    passed,
                    failed,
                    expected,
                });
            }
        }
    }
    // Measured, not asserted: what one run of a suite takes on each runtime.
    for time in &times {
        eprintln!("time: {time}");
    }

    let native = Runtime::with_native_keyvalue().unwrap();
    let output = run(
        &native,
        &artifacts::fixture_path("conformance-draft"),
        &[
            "--host",
            "wasmtime-in-memory",
            "--bucket",
            "",
            "--other-bucket",
            "other",
        ],
        vec![],
    )
    .await;
    let (passed, failed, expected) = summary(&output);
    assert!(
        output.success && failed == 0,
        "draft suite on wasmtime's host:\n{}",
        output.stdout
    );
    assert_eq!(
        expected, 2,
        "exactly the two marked limitations fail:\n{}",
        output.stdout
    );
    rows.push(Row {
        draft: "`wasi:keyvalue@0.2.0-draft`",
        implementation: "wasmtime-wasi-keyvalue 48 (in-memory, native)",
        runtime: "embedded wasmtime 48",
        passed,
        failed,
        expected,
    });

    let mut table = String::from(
        "# Conformance matrix\n\n\
         Generated by `tests/tests/conformance.rs` (`BLESS=1 cargo test -p kvplug-tests --test conformance` rewrites it);\n\
         the test fails when a run's counts differ from this file. Each run is the suite in\n\
         `fixtures/conformance` for one draft, linked with the implementation (or, for wasmtime's\n\
         native host, run against it directly), on embedded wasmtime, on the `wasmtime run` CLI\n\
         (settings as `-S config-var=…`) and on jco on Node (settings from `KVPLUG_*` environment\n\
         variables through the env config component; secrets never sealed into a file). *Expected failures* are cases the suite marks as\n\
         limitations of that host by design, with the reason printed in the run; they still run.\n\n\
         | draft | implementation | runtime | passed | failed | expected failures |\n\
         |---|---|---|---:|---:|---:|\n",
    );
    for r in &rows {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.draft, r.implementation, r.runtime, r.passed, r.failed, r.expected
        ));
    }
    table.push_str(
        "\nwasmtime's in-memory host fails two cases by design: it has one bucket, named `\"\"`\n\
         (`bucket-isolation`), and every `open` gets its own copy of the data\n\
         (`second-handle-sees-writes`). It has no draft2, so it runs only the draft suite.\n\n\
         The Spin rows run the draft2 suite built against Spin's copy of the WIT (`wit/spin`),\n\
         whose `get-many` names every key asked with an optional value, linked with the\n\
         adapter composed by `kvplug spin`; the suite checks that shape, then the same cases.\n\n\
         `binary-values` stores a 1 MiB value, except where the service documents a smaller\n\
         limit: there it stores the largest value the backend takes (DynamoDB: 400,000 bytes,\n\
         within a 400 KB item; Azure Table: 768,000 bytes, whose base64 fills an entity's\n\
         1 MiB of JSON) and checks that one byte more is refused and leaves the stored value\n\
         intact.\n",
    );
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/conformance.md");
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&doc, &table).unwrap();
    } else {
        let committed = std::fs::read_to_string(&doc).unwrap_or_default();
        assert_eq!(
            committed, table,
            "docs/conformance.md is stale: rerun with BLESS=1"
        );
    }
}

/// A component that exports only `wasi:keyvalue@0.2.0-draft`, made from the WIT world
/// `keyvalue-provider-draft` with stub code: what an adapter for one draft looks like.
fn draft_only_provider() -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit"))
        .unwrap();
    let world = resolve
        .select_world(&[package], Some("keyvalue-provider-draft"))
        .unwrap();
    let mut module =
        wit_component::dummy_module(&resolve, world, wit_parser::ManglingAndAbi::Standard32);
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap()
}

#[test]
fn an_app_on_a_draft_the_plug_lacks_fails_to_link_with_wacs_error() {
    kvplug_tests::artifacts();
    let dir = tempfile::tempdir().unwrap();
    let provider = dir.path().join("draft-only.wasm");
    std::fs::write(&provider, draft_only_provider()).unwrap();

    // The example app imports draft2; the plug offers only draft.
    let app = artifacts::fixture_path("example-app");
    let error = plug::plug_files(&app, &[&provider], &dir.path().join("out.wasm")).unwrap_err();
    let error = format!("{error:#}");
    assert!(error.contains("no matching imports"), "{error}");
    assert!(
        !dir.path().join("out.wasm").exists(),
        "no output on failure"
    );

    let output = std::process::Command::new("wac")
        .arg("plug")
        .arg(&app)
        .arg("--plug")
        .arg(&provider)
        .arg("-o")
        .arg(dir.path().join("by-wac.wasm"))
        .output()
        .expect("the `wac` CLI must be installed");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no matching imports"), "{stderr}");

    // The same app links with the real adapter, which exports both drafts.
    plug::plug_files(
        &app,
        &[&artifacts::adapter_path("http")],
        &dir.path().join("ok.wasm"),
    )
    .unwrap();
    // And an app on the older draft links with it too.
    plug::plug_files(
        &artifacts::fixture_path("conformance-draft"),
        &[&artifacts::adapter_path("http")],
        &dir.path().join("ok-draft.wasm"),
    )
    .unwrap();
}

/// Spin's shape adds no request: the draft2 suite makes exactly as many requests through
/// `kvplug spin`'s composition, in Spin's shape, as through the adapter alone, on a backend
/// with native batches (kvplug-server) and one whose batches are transactions (etcd).
#[tokio::test(flavor = "multi_thread")]
async fn spins_shape_adds_no_request() {
    kvplug_tests::artifacts();
    let dir = tempfile::tempdir().unwrap();
    for backend in ["http", "etcd"] {
        let mut counts = Vec::new();
        for suite in ["conformance-draft2", "conformance-spin"] {
            let service = services::start(backend);
            let mut settings = service.settings();
            let proxy = kvplug_tests::counting_proxy::CountingProxy::in_front_of(&mut settings);
            let output = run(
                runtime(),
                &linked(suite, backend, dir.path()),
                &[],
                settings,
            )
            .await;
            let (_, failed, _) = summary(&output);
            assert!(output.success && failed == 0, "{suite} on {backend}");
            counts.push(proxy.requests());
        }
        assert_eq!(counts[0], counts[1], "{backend}: upstream's shape, Spin's");
        eprintln!("{backend}: {} requests in either shape", counts[0]);
    }
}

/// An app importing `store` alone (the benchmark guest: no `atomics`, no `batch`) links with
/// every adapter and runs on every runtime of the matrix.
#[tokio::test(flavor = "multi_thread")]
async fn an_app_importing_store_alone_runs_on_every_runtime() {
    kvplug_tests::artifacts();
    let dir = tempfile::tempdir().unwrap();
    for entry in services::services() {
        let service = (entry.start)();
        let backend = service.backend();
        for host in Host::ALL {
            let (success, stdout) = run_on(
                host,
                "kv-bench",
                backend,
                &service.settings(),
                &["100", "3", "store-only/"],
                dir.path(),
            )
            .await;
            assert!(
                success && stdout.contains("kv-bench set_ns=") && stdout.contains(" n=3 "),
                "{} on {}: {stdout}",
                entry.implementation,
                host.name()
            );
        }
    }
}
