//! Building artifacts from many threads at once, as test binaries do: every adapter is built
//! from the same package into the same cargo output file, one feature set at a time, so each
//! caller must collect its own build, not a neighbour's, and two callers writing the same
//! artifact must not trip over each other's temporary file.

use kvplug_compose::{artifacts, seal};

#[test]
fn concurrent_builds_each_collect_their_own_backend() {
    let built = std::thread::scope(|scope| {
        // Two callers per backend: they write the same artifact at once.
        let handles: Vec<_> = artifacts::BACKENDS
            .iter()
            .chain(artifacts::BACKENDS)
            .map(|backend| scope.spawn(move || (*backend, artifacts::build_adapter(backend))))
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect::<Vec<_>>()
    });
    for (backend, path) in built {
        let path = path.unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let named = seal::backend_of(&bytes).unwrap();
        assert_eq!(
            named.name(),
            backend,
            "`{}` was built for another backend",
            path.display()
        );
    }
}

#[test]
fn concurrent_writes_of_one_file_all_succeed_and_leave_one_whole_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("artifact.wasm");
    let contents: Vec<Vec<u8>> = (0..16u8).map(|n| vec![n; 256 * 1024]).collect();
    std::thread::scope(|scope| {
        for bytes in &contents {
            let path = &path;
            scope.spawn(move || artifacts::write_atomically(path, bytes).unwrap());
        }
    });
    let left = std::fs::read(&path).unwrap();
    assert!(
        contents.contains(&left),
        "the file is not one writer's copy"
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["artifact.wasm"], "temporary files were left behind");
}
