//! The `kvplug` command as a pipeline step: failures exit non-zero, say what is wrong, and
//! leave no output file behind.

#![expect(
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test, which is how a test reports it"
)]

use std::process::Command;

use kvplug_compose::artifacts;

fn kvplug(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kvplug"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn seal_and_check_fail_cleanly_on_bad_input() {
    let adapter = artifacts::build_adapter("http").unwrap();
    artifacts::build_config_components().unwrap();
    let adapter = adapter.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sealed.wasm");
    let out_arg = out.to_str().unwrap();
    let not_wasm = dir.path().join("notes.txt");
    std::fs::write(&not_wasm, "not a component").unwrap();
    let not_wasm = not_wasm.to_str().unwrap();

    for (args, expected) in [
        (
            vec![
                "seal",
                adapter,
                "--set",
                "url=http://h",
                "--set",
                "colour=blue",
                "-o",
                out_arg,
            ],
            "unknown setting `colour`",
        ),
        (
            vec![
                "seal",
                adapter,
                "--set",
                "url=localhost:8787",
                "-o",
                out_arg,
            ],
            "must start with http://",
        ),
        (
            vec!["seal", adapter, "--set", "url", "-o", out_arg],
            "NAME=VALUE",
        ),
        (
            vec!["seal", not_wasm, "--set", "url=http://h", "-o", out_arg],
            "not a kvplug adapter",
        ),
    ] {
        let (ok, text) = kvplug(&args);
        assert!(!ok, "{args:?} succeeded");
        assert!(text.contains(expected), "{args:?}: {text}");
        assert!(!out.exists(), "{args:?} wrote an output");
    }

    let (ok, text) = kvplug(&[
        "seal",
        adapter,
        "--set",
        "url=http://127.0.0.1:1",
        "-o",
        out_arg,
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("sealed 1 setting(s)"), "{text}");
    let (ok, text) = kvplug(&["check", "--adapter", out_arg]);
    assert!(ok, "{text}");
    assert!(!text.contains("wasi:config"), "{text}");
    let (ok, text) = kvplug(&["check", "--adapter", not_wasm]);
    assert!(
        !ok && text.contains("not a valid WebAssembly component"),
        "{text}"
    );
}

/// `kvplug watch` composes a watch-service app, its adapter and a driver; a driver of the
/// other draft is refused with the artifact to use instead, and nothing is written.
#[test]
fn watch_composes_and_names_a_draft_mismatch() {
    let adapter = artifacts::build_adapter("http").unwrap();
    let drivers = artifacts::build_drivers("http").unwrap();
    artifacts::build_fixtures().unwrap();
    let app = artifacts::fixture_path("watch-app");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("watching.wasm");
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let (app, adapter, out_arg) = (path(&app), path(&adapter), path(&out));
    let (draft2, draft) = (path(&drivers[0]), path(&drivers[1]));

    let (ok, text) = kvplug(&[
        "watch",
        &app,
        "--adapter",
        &adapter,
        "--driver",
        &draft,
        "-o",
        &out_arg,
    ]);
    assert!(!ok, "{text}");
    assert!(text.contains("kvplug-watch-<backend>-draft.wasm"), "{text}");
    assert!(!out.exists());

    let (ok, text) = kvplug(&["watch", &app, "--adapter", &adapter, "-o", &out_arg]);
    assert!(!ok && text.contains("--driver"), "{text}");

    let (ok, text) = kvplug(&[
        "watch",
        &app,
        "--adapter",
        &adapter,
        "--driver",
        &draft2,
        "-o",
        &out_arg,
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("wrote"), "{text}");
    let imports = kvplug_compose::surface::surface(&std::fs::read(&out).unwrap())
        .unwrap()
        .imports;
    assert!(
        !imports.iter().any(|i| i.starts_with("wasi:keyvalue/")),
        "{imports:?}"
    );
}
