//! `kvplug check APP.wasm`: which adapter an app links with, said before any link is tried.
//! Run on every fixture, and on apps made here from WIT: Spin's draft2 (vendored under
//! `wit/spin`), a store-only app, and key-value packages kvplug does not export.

#![expect(
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test, which is how a test reports it"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use kvplug_compose::artifacts;
use kvplug_compose::fit::{self, Finding};
use kvplug_compose::spin;
use wit_component::{ComponentEncoder, StringEncoding, dummy_module, embed_component_metadata};
use wit_parser::{ManglingAndAbi, Resolve};

fn adapter() -> PathBuf {
    artifacts::build_adapter("http").unwrap()
}

/// A component that imports what `world` imports, doing nothing; `packages` are WIT files,
/// the last one holding `world`.
fn app_from_wit(packages: &[(String, String)], world: &str) -> Vec<u8> {
    let mut resolve = Resolve::default();
    let mut main = None;
    for (name, text) in packages {
        main = Some(resolve.push_str(name, text).unwrap());
    }
    let world = resolve.select_world(&[main.unwrap()], Some(world)).unwrap();
    let mut module = dummy_module(&resolve, world, ManglingAndAbi::Standard32);
    embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8).unwrap();
    ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap()
}

/// A package's WIT files in `dir`, as one source each.
fn wit_dir(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    files.sort();
    // One package spread over files: join them into one source, package line first.
    let mut text = String::new();
    for file in &files {
        let body = std::fs::read_to_string(file).unwrap();
        for line in body.lines() {
            if line.trim_start().starts_with("package ") {
                text.insert_str(0, &format!("{line}\n"));
            } else {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    vec![(dir.join("all.wit").display().to_string(), text)]
}

fn repo_wit(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// An app written against Spin's copy of draft2 (vendored verbatim).
fn spin_app() -> Vec<u8> {
    app_from_wit(
        &wit_dir(&repo_wit("wit/spin/deps/keyvalue-2024-10-17")),
        "imports",
    )
}

/// An app written against upstream's draft2 (the copy every adapter exports) importing the
/// interfaces in `imports` only.
fn upstream_app(imports: &str) -> Vec<u8> {
    let mut packages = wit_dir(&repo_wit("wit/deps/keyvalue-draft2"));
    packages.push((
        "app.wit".into(),
        format!("package test:app;\nworld app {{\n{imports}\n}}\n"),
    ));
    app_from_wit(&packages, "app")
}

/// An app importing one interface of a key-value package kvplug does not export.
fn foreign_app(package: &str, interface: &str) -> Vec<u8> {
    let text = format!(
        "package {package};\ninterface {interface} {{\n  get: func(key: string) -> option<list<u8>>;\n}}\nworld app {{\n  import {interface};\n}}\n"
    );
    app_from_wit(&[("foreign.wit".into(), text)], "app")
}

fn check(app: &[u8]) -> fit::Fit {
    fit::check(app, &std::fs::read(adapter()).unwrap()).unwrap()
}

/// Runs `kvplug` and returns success and everything it printed.
fn kvplug(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kvplug"))
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn every_fixture_links_and_says_which_draft() {
    artifacts::build_fixtures().unwrap();
    // (fixture, the draft it is written against)
    let cases = [
        ("example-app", "0.2.0-draft2"),
        ("conformance-draft", "0.2.0-draft"),
        ("conformance-draft2", "0.2.0-draft2"),
        ("http-app", "0.2.0-draft2"),
        ("kv-bench", "0.2.0-draft2"),
    ];
    for (fixture, draft) in cases {
        let fit = check(&std::fs::read(artifacts::fixture_path(fixture)).unwrap());
        assert!(fit.links(), "{fixture}: {fit:?}");
        let report = fit.render();
        assert!(
            report.contains(&format!("shape: upstream wasi:keyvalue@{draft}.")),
            "{fixture}: {report}"
        );
    }
    // The benchmark's plain-HTTP guest imports no key-value interface.
    let fit = check(&std::fs::read(artifacts::fixture_path("http-bench")).unwrap());
    assert!(fit.findings.is_empty() && !fit.links(), "{fit:?}");
}

#[test]
fn spins_draft2_is_named_with_the_one_function_that_differs() {
    let fit = check(&spin_app());
    assert!(!fit.links() && fit.needs_spin_shape(), "{fit:?}");
    let differs: Vec<&Finding> = fit
        .findings
        .iter()
        .filter(|f| !matches!(f, Finding::Offered { .. }))
        .collect();
    assert_eq!(
        differs,
        [&Finding::Differs {
            interface: "wasi:keyvalue/batch@0.2.0-draft2".into(),
            item: "get-many".into(),
            app: "func(bucket: borrow<bucket>, keys: list<string>) -> result<list<tuple<string, option<list<u8>>>>, error>".into(),
            kvplug: "func(bucket: borrow<bucket>, keys: list<string>) -> result<list<option<tuple<string, list<u8>>>>, error>".into(),
        }]
    );
    let report = fit.render();
    assert!(
        report.contains("shape: Spin's wasi:keyvalue@0.2.0-draft2")
            && report.contains("kvplug spin"),
        "{report}"
    );
    // The same app against an adapter given Spin's shape by `kvplug spin` links.
    let shaped = spin::spin_shaped(
        std::fs::read(adapter()).unwrap(),
        std::fs::read(artifacts::build_shapes().unwrap().remove(0)).unwrap(),
    )
    .unwrap();
    let fit = fit::check(&spin_app(), &shaped).unwrap();
    assert!(fit.links() && fit.spin, "{fit:?}");
    assert!(
        fit.render().contains("this adapter has it"),
        "{}",
        fit.render()
    );
    // An upstream app against the Spin-shaped adapter is the mirror image: named, not linked.
    let fit = fit::check(
        &upstream_app("  import wasi:keyvalue/batch@0.2.0-draft2;"),
        &shaped,
    )
    .unwrap();
    assert!(
        !fit.links()
            && matches!(
                &fit.findings[..],
                [Finding::Offered { .. }, Finding::Differs { item, .. }] if item == "get-many"
            ),
        "{fit:?}"
    );
}

#[test]
fn an_app_importing_store_alone_links() {
    let fit = check(&upstream_app("  import wasi:keyvalue/store@0.2.0-draft2;"));
    assert_eq!(
        fit.findings,
        [Finding::Offered {
            interface: "wasi:keyvalue/store@0.2.0-draft2".into()
        }]
    );
    assert!(fit.links());
}

#[test]
fn key_value_packages_kvplug_does_not_export_are_named() {
    let cases = [
        (
            "wasi:keyvalue@0.1.0",
            "readwrite",
            "not wasi:keyvalue/readwrite at version 0.1.0",
        ),
        (
            "wasi:keyvalue@0.2.0-draft3",
            "store",
            "not wasi:keyvalue/store at version 0.2.0-draft3",
        ),
        (
            "spin:key-value@3.0.0",
            "key-value",
            "Spin's own key-value interface",
        ),
        (
            "fermyon:spin@2.0.0",
            "key-value",
            "Spin's own key-value interface",
        ),
        (
            "wasmcloud:keyvalue@0.2.0-draft",
            "store",
            "wasmCloud's own key-value interface",
        ),
        (
            "acme:keyvalue@1.0.0",
            "kv",
            "a key-value interface kvplug does not know",
        ),
    ];
    for (package, interface, words) in cases {
        let fit = check(&foreign_app(package, interface));
        let report = fit.render();
        assert!(!fit.links(), "{package}: {report}");
        assert!(
            matches!(&fit.findings[..], [Finding::NotOffered { what, .. }] if what.contains(words)),
            "{package}: {report}"
        );
    }
}

#[test]
fn the_command_fails_on_an_app_that_does_not_fit_and_plug_points_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let spin = dir.path().join("spin-app.wasm");
    std::fs::write(&spin, spin_app()).unwrap();
    let adapter = adapter();
    let (ok, text) = kvplug(&[
        "check".as_ref(),
        spin.as_os_str(),
        "--against".as_ref(),
        adapter.as_os_str(),
    ]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("differs   wasi:keyvalue/batch@0.2.0-draft2: `get-many`")
            && text.contains("does not link with a kvplug adapter"),
        "{text}"
    );
    // Linking it fails too, and the message says where to look.
    let out = dir.path().join("linked.wasm");
    let (ok, text) = kvplug(&[
        "plug".as_ref(),
        spin.as_os_str(),
        "--plug".as_ref(),
        adapter.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(!ok && !out.exists(), "{text}");
    assert!(
        text.contains("kvplug check")
            && text.contains("differs   wasi:keyvalue/batch@0.2.0-draft2: `get-many`")
            && text.contains("kvplug spin"),
        "{text}"
    );
    // A fitting app passes.
    let good = dir.path().join("good.wasm");
    std::fs::write(
        &good,
        upstream_app("  import wasi:keyvalue/store@0.2.0-draft2;"),
    )
    .unwrap();
    let (ok, text) = kvplug(&[
        "check".as_ref(),
        good.as_os_str(),
        "--against".as_ref(),
        adapter.as_os_str(),
    ]);
    assert!(ok, "{text}");
}
