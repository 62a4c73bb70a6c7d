//! `wit/keyvalue`, kvplug's own `kvplug:keyvalue@0.1.0`, resolves the way an app will use
//! it: copied next to the vendored draft2 in an app's `wit/deps`, its `bucket` is draft2's
//! very resource (one handle serves both), and its interface has the functions and error
//! cases the design promises (docs/extension-design.md §1.1).

#![expect(
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test, which is how a test reports it"
)]

use std::path::Path;

use wit_parser::{Resolve, TypeDefKind, TypeOwner};

fn wit() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit"))
}

/// An app's WIT directory: a world importing the extension, with the extension and draft2
/// under `deps/`, as the README tells apps to lay them out.
fn app_resolve() -> (Resolve, wit_parser::PackageId) {
    let app = tempfile::tempdir().unwrap();
    std::fs::write(
        app.path().join("app.wit"),
        "package example:app;\n\nworld app {\n    import kvplug:keyvalue/entries@0.1.0;\n}\n",
    )
    .unwrap();
    for (from, to) in [
        ("keyvalue", "kvplug-keyvalue"),
        ("deps/keyvalue-draft2", "keyvalue-draft2"),
    ] {
        let target = app.path().join("deps").join(to);
        std::fs::create_dir_all(&target).unwrap();
        for file in std::fs::read_dir(wit().join(from)).unwrap() {
            let file = file.unwrap();
            std::fs::copy(file.path(), target.join(file.file_name())).unwrap();
        }
    }
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_dir(app.path()).unwrap();
    (resolve, package)
}

#[test]
fn the_extension_shares_draft2s_bucket_and_has_the_promised_shape() {
    let (resolve, package) = app_resolve();
    let world = resolve.select_world(&[package], Some("app")).unwrap();
    let names: Vec<String> = resolve.worlds[world]
        .imports
        .keys()
        .map(|key| resolve.name_world_key(key))
        .collect();
    // Importing the extension brings draft2's store along: the bucket comes from there.
    assert!(
        names.contains(&"kvplug:keyvalue/entries@0.1.0".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"wasi:keyvalue/store@0.2.0-draft2".to_owned()),
        "{names:?}"
    );

    let entries = resolve
        .interfaces
        .iter()
        .find(|(_, i)| i.name.as_deref() == Some("entries"))
        .map(|(id, _)| id)
        .unwrap();
    let interface = &resolve.interfaces[entries];
    let mut functions: Vec<&str> = interface.functions.keys().map(String::as_str).collect();
    functions.sort_unstable();
    assert_eq!(
        functions,
        ["delete", "get-limits", "insert", "list", "lookup"]
    );

    // `bucket` here is a `use` of draft2's resource, not a resource of its own.
    let bucket = interface.types["bucket"];
    let TypeDefKind::Type(wit_parser::Type::Id(target)) = resolve.types[bucket].kind else {
        panic!("`bucket` is not an alias: {:?}", resolve.types[bucket].kind);
    };
    let TypeOwner::Interface(owner) = resolve.types[target].owner else {
        panic!("`bucket` is not owned by an interface");
    };
    assert_eq!(
        resolve.id_of(owner).as_deref(),
        Some("wasi:keyvalue/store@0.2.0-draft2")
    );
    assert!(matches!(resolve.types[target].kind, TypeDefKind::Resource));

    // The error names each failure the design distinguishes.
    let TypeDefKind::Variant(error) = &resolve.types[interface.types["error"]].kind else {
        panic!("`error` is not a variant");
    };
    let cases: Vec<&str> = error.cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        cases,
        [
            "no-such-store",
            "access-denied",
            "precondition-failed",
            "too-large",
            "time-to-live-out-of-range",
            "invalid-argument",
            "other"
        ]
    );
    let TypeDefKind::Enum(modes) = &resolve.types[interface.types["insert-mode"]].kind else {
        panic!("`insert-mode` is not an enum");
    };
    let modes: Vec<&str> = modes.cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(modes, ["overwrite", "add", "append", "prepend"]);
}
