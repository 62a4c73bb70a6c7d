//! `wit/deps` is never edited by hand: every file matches its sha256 in `wit/deps.toml`,
//! every file is recorded, and the crate-sourced packages are byte-for-byte the crates' own.
//! The same holds for Spin's copy of the draft2 WIT under `wit/spin`.

#![expect(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test, which is how a test reports it"
)]

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Every difference between the files under `wit/deps` and the record.
fn check(wit: &Path) -> Vec<String> {
    let record: toml::Table =
        toml::from_str(&std::fs::read_to_string(wit.join("deps.toml")).unwrap()).unwrap();
    let mut recorded = BTreeMap::new();
    for package in record["package"].as_array().unwrap() {
        let dir = package["dir"].as_str().unwrap();
        assert!(
            package.get("crate").is_some() || package.get("origin").is_some(),
            "{dir} has no origin"
        );
        for (file, hash) in package["files"].as_table().unwrap() {
            recorded.insert(format!("{dir}/{file}"), hash.as_str().unwrap().to_owned());
        }
    }
    let mut problems = Vec::new();
    let mut seen = 0;
    for dir in std::fs::read_dir(wit.join("deps")).unwrap() {
        let dir = dir.unwrap();
        for file in std::fs::read_dir(dir.path()).unwrap() {
            let file = file.unwrap();
            let name = format!(
                "{}/{}",
                dir.file_name().to_string_lossy(),
                file.file_name().to_string_lossy()
            );
            let hash = format!("{:x}", Sha256::digest(std::fs::read(file.path()).unwrap()));
            seen += 1;
            match recorded.get(&name) {
                None => problems.push(format!("{name} is not recorded")),
                Some(expected) if *expected != hash => problems.push(format!("{name} changed")),
                Some(_) => {}
            }
        }
    }
    if seen != recorded.len() {
        problems.push(format!("{} files recorded, {seen} present", recorded.len()));
    }
    problems
}

#[test]
fn spins_vendored_wit_matches_its_record() {
    assert_eq!(check(&repo().join("wit/spin")), Vec::<String>::new());
}

#[test]
fn every_vendored_file_matches_its_record() {
    assert_eq!(check(&repo().join("wit")), Vec::<String>::new());
}

#[test]
fn the_check_notices_an_edit_and_an_extra_file() {
    let copy = tempfile::tempdir().unwrap();
    let wit = copy.path().join("wit");
    std::fs::create_dir_all(wit.join("deps")).unwrap();
    std::fs::copy(repo().join("wit/deps.toml"), wit.join("deps.toml")).unwrap();
    for dir in std::fs::read_dir(repo().join("wit/deps")).unwrap() {
        let dir = dir.unwrap();
        let to = wit.join("deps").join(dir.file_name());
        std::fs::create_dir_all(&to).unwrap();
        for file in std::fs::read_dir(dir.path()).unwrap() {
            let file = file.unwrap();
            std::fs::copy(file.path(), to.join(file.file_name())).unwrap();
        }
    }
    let types = wit.join("deps/http/types.wit");
    let mut text = std::fs::read_to_string(&types).unwrap();
    text.push_str("\n// a hand edit\n");
    std::fs::write(&types, text).unwrap();
    std::fs::write(wit.join("deps/io/extra.wit"), "package x:y;").unwrap();
    let problems = check(&wit);
    assert!(
        problems.contains(&"http/types.wit changed".to_owned()),
        "{problems:?}"
    );
    assert!(
        problems.contains(&"io/extra.wit is not recorded".to_owned()),
        "{problems:?}"
    );
}

#[test]
fn crate_sourced_packages_are_the_crates_own_files() {
    let output = std::process::Command::new("bash")
        .arg(repo().join("wit/vendor.sh"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "wit/vendor.sh --check failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `wit/p3` (the WASI 0.3 packages of the P3 probe) matches its record, and every file is the
/// `wasmtime-wasi-http` 48.0.8 crate's own, found through `cargo metadata`.
#[test]
fn the_p3_wit_matches_its_record_and_the_crates_own_files() {
    let wit = repo().join("wit/p3");
    assert_eq!(check(&wit), Vec::<String>::new());
    let metadata = std::process::Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(repo())
        .output()
        .unwrap();
    let text = String::from_utf8(metadata.stdout).unwrap();
    let suffix = "wasmtime-wasi-http-48.0.8/Cargo.toml";
    let end = text
        .find(suffix)
        .expect("wasmtime-wasi-http 48.0.8 in cargo metadata")
        + suffix.len();
    let start = text[..end].rfind('"').unwrap() + 1;
    let crate_dir = Path::new(&text[start..end]).parent().unwrap().to_owned();
    for dir in std::fs::read_dir(wit.join("deps")).unwrap() {
        for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let file = file.unwrap();
            let theirs = crate_dir.join("src/p3/wit/deps").join(file.file_name());
            assert_eq!(
                std::fs::read(file.path()).unwrap(),
                std::fs::read(&theirs).unwrap(),
                "{} differs from {}",
                file.path().display(),
                theirs.display()
            );
        }
    }
}
