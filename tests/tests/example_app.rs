//! The user's path: the quickstart (build, link with `wac plug` semantics, serve, run) twice
//! against one data directory, and the real `wac` CLI producing the same link.

use kvplug_compose::{artifacts, plug};
use kvplug_tests::{reference_server, runtime, settings};

#[tokio::test(flavor = "multi_thread")]
async fn the_quickstart_runs_and_its_data_persists_across_runs() {
    let data = tempfile::tempdir().unwrap();
    let mut log = Vec::new();
    let first = kvplug_runner::quickstart::run(data.path(), &mut log)
        .await
        .unwrap();
    let first_out = first.output.stdout;
    assert!(first_out.contains("this is visit #1"), "{first_out}");
    assert!(
        first_out.contains("first visitor recorded by CAS: visitor 1"),
        "{first_out}"
    );
    assert!(first_out.contains("the book has 1 entries"), "{first_out}");
    let second = kvplug_runner::quickstart::run(data.path(), &mut log)
        .await
        .unwrap();
    let second_out = second.output.stdout;
    assert!(second_out.contains("this is visit #2"), "{second_out}");
    assert!(
        second_out.contains("latest visitor swapped by CAS: visitor 1 -> visitor 2"),
        "{second_out}"
    );
    assert!(
        second_out.contains("entry/0001: visitor 1 signed the book"),
        "{second_out}"
    );
    assert!(
        second_out.contains("entry/0002: visitor 2 signed the book"),
        "{second_out}"
    );
    // open, increment, set, get, cas.new, swap, one list page, get-many.
    assert_eq!(second.requests, 8);
    let log = String::from_utf8(log).unwrap();
    assert!(log.contains("imports only wasi:http"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_wac_cli_links_the_same_component() {
    kvplug_tests::artifacts();
    let app = artifacts::fixture_path("example-app");
    let adapter = artifacts::adapter_path("http");
    let out = tempfile::tempdir().unwrap();
    let by_cli = out.path().join("by-wac.wasm");
    let status = std::process::Command::new("wac")
        .arg("plug")
        .arg(&app)
        .arg("--plug")
        .arg(&adapter)
        .arg("-o")
        .arg(&by_cli)
        .status()
        .expect("the `wac` CLI must be installed (scripts/test installs wac-cli 0.12.0)");
    assert!(status.success(), "wac plug failed: {status}");
    let in_process = out.path().join("in-process.wasm");
    plug::plug_files(&app, &[&adapter], &in_process).unwrap();
    assert!(
        std::fs::read(&by_cli).unwrap() == std::fs::read(&in_process).unwrap(),
        "wac plug and kvplug_compose::plug must produce the same bytes"
    );

    let (_dir, server) = reference_server();
    let component = runtime().load(&by_cli).unwrap();
    let args = [
        "example-app".to_owned(),
        "wac-book".to_owned(),
        "Ada".to_owned(),
    ];
    let output = runtime()
        .run_command(&component, &args, &settings(&server.url()))
        .await
        .unwrap();
    assert!(output.success, "{}{}", output.stdout, output.stderr);
    assert!(
        output.stdout.contains("opened bucket `wac-book`"),
        "{}",
        output.stdout
    );
    assert!(
        output.stdout.contains("entry/0001: Ada signed the book"),
        "{}",
        output.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_reports_store_errors_instead_of_trapping() {
    kvplug_tests::artifacts();
    let dir = tempfile::tempdir().unwrap();
    let linked = dir.path().join("linked.wasm");
    plug::plug_files(
        &artifacts::fixture_path("example-app"),
        &[&artifacts::adapter_path("http")],
        &linked,
    )
    .unwrap();
    let component = runtime().load(&linked).unwrap();
    let mut allow_list = settings("http://127.0.0.1:9");
    allow_list.push(("buckets".into(), "only-this".into()));
    let output = runtime()
        .run_command(&component, &["example-app".into()], &allow_list)
        .await
        .unwrap();
    assert!(!output.success);
    assert!(
        output.stderr.contains("open `guestbook`: access denied"),
        "{}",
        output.stderr
    );
}
