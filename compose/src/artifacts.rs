//! Building the wasm artifacts: one adapter per backend, and the guest programs in
//! `fixtures/`.
//!
//! This is a library function (not a `build.rs`) so that the quickstart, the tests and the
//! `kvplug build` command share one build of each artifact: a `build.rs` would rebuild into
//! every dependent's `OUT_DIR`. A file lock ([`BuildLock`]) makes concurrent callers safe,
//! and a second call is a no-op of well under a second.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::registry;

/// The backends this tree can build, each into `kvplug-<backend>.wasm`: the names of
/// [`registry::BACKENDS`].
pub const BACKENDS: &[&str] = &registry::NAMES;

/// The guest programs under `fixtures/`, each a binary of that workspace.
pub const FIXTURES: &[&str] = &[
    "example-app",
    "conformance-draft",
    "conformance-draft2",
    "conformance-spin",
    "conformance-entries",
    "http-app",
    "kv-bench",
    "http-bench",
    "p3-probe",
    "watch-app",
    "watch-app-draft",
];

/// The backends with a watch driver (`kvplug-watch-<backend>.wasm`, and
/// `kvplug-watch-<backend>-draft.wasm` for apps on `wasi:keyvalue@0.2.0-draft`): those whose
/// service has a change feed the driver reads (docs/watch-design.md).
pub const WATCH_BACKENDS: &[&str] = &["http", "etcd", "dynamodb", "redis"];

/// The path of the watch driver for `backend`, for apps on draft2 or (`draft`) the older draft.
pub fn driver_path(backend: &str, draft: bool) -> PathBuf {
    out_dir().join(driver_name(backend, draft) + ".wasm")
}

fn driver_name(backend: &str, draft: bool) -> String {
    format!(
        "kvplug-watch-{backend}{}",
        if draft { "-draft" } else { "" }
    )
}

/// Builds both watch drivers of `backend`.
pub fn build_drivers(backend: &str) -> Result<Vec<PathBuf>> {
    [false, true]
        .iter()
        .map(|&draft| {
            let features = if draft {
                format!("{backend},draft")
            } else {
                backend.to_owned()
            };
            build_component("kvplug-watch", &features, &driver_name(backend, draft))
        })
        .collect()
}

const WASM_TARGET: &str = "wasm32-wasip2";

/// The repository root (this crate lives in `compose/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Cargo's target directory for this workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map_or_else(
            || repo_root().join("target"),
            |dir| {
                if dir.is_absolute() {
                    dir
                } else {
                    repo_root().join(dir)
                }
            },
        )
}

/// Where finished artifacts are collected: `target/kvplug/`.
pub fn out_dir() -> PathBuf {
    target_dir().join("kvplug")
}

/// The path of adapter `kvplug-<backend>.wasm` (built or not).
pub fn adapter_path(backend: &str) -> PathBuf {
    match registry::backend(backend) {
        Some(registered) => out_dir().join(registered.artifact),
        None => out_dir().join(format!("kvplug-{backend}.wasm")),
    }
}

/// The path of fixture `<name>.wasm` (built or not).
pub fn fixture_path(name: &str) -> PathBuf {
    out_dir().join(format!("{name}.wasm"))
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(repo_root());
    // Flags meant for the host build (coverage, sanitizers) must not leak into wasm builds;
    // `-D warnings` from CI is kept through RUSTFLAGS.
    command.env_remove("CARGO_ENCODED_RUSTFLAGS");
    if std::env::var_os("CI").is_some() {
        command.arg("--locked");
    }
    command
}

fn run(mut command: Command, what: &str) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("failed to start cargo to build {what}"))?;
    if !status.success() {
        bail!(
            "building {what} failed ({status}); is the target installed? `rustup target add {WASM_TARGET}`"
        );
    }
    Ok(())
}

/// Builds `package` of this workspace for wasm (profile `wasm-release`) with `features`
/// only, and collects the result as `target/kvplug/<name>.wasm`.
fn build_component(package: &str, features: &str, name: &str) -> Result<PathBuf> {
    let mut command = cargo();
    command.args([
        "build",
        "--quiet",
        "-p",
        package,
        "--target",
        WASM_TARGET,
        "--profile",
        "wasm-release",
        "--no-default-features",
    ]);
    if !features.is_empty() {
        command.args(["--features", features]);
    }
    // Every feature set of `package` lands on the same output file: hold the build lock
    // from the build until the copy, or a concurrent build of another feature set (another
    // test thread, another test binary) may replace it in between.
    let _lock = BuildLock::take()?;
    run(command, &format!("`{name}.wasm`"))?;
    let built = target_dir()
        .join(WASM_TARGET)
        .join("wasm-release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    let out = out_dir().join(format!("{name}.wasm"));
    let bytes = std::fs::read(&built)
        .with_context(|| format!("build output `{}` is missing", built.display()))?;
    write_atomically(&out, &without_custom_section(&bytes, "component-name")?)?;
    Ok(out)
}

/// `component` without its top-level custom sections called `name`. `kvplug build` drops
/// `component-name`: `strip = true` removes the core module's names, but the linker writes
/// the component's own (names of its instances, types and functions, for debuggers only)
/// after that, about 10 KB of every adapter.
pub fn without_custom_section(component: &[u8], name: &str) -> Result<Vec<u8>> {
    let mut reader = wasmparser::BinaryReader::new(component, 0);
    let mut out = reader.read_bytes(8).context("not a component")?.to_vec();
    while !reader.eof() {
        let start = usize::try_from(reader.original_position())?;
        let id = reader.read_u8()?;
        let size = reader.read_var_u32()?;
        let body = reader.read_bytes(usize::try_from(size)?)?;
        let dropped = id == 0 && wasmparser::BinaryReader::new(body, 0).read_string()? == name;
        if !dropped {
            let section = component
                .get(start..usize::try_from(reader.original_position())?)
                .context("section out of bounds")?;
            out.extend_from_slice(section);
        }
    }
    Ok(out)
}

/// Builds `kvplug-<backend>.wasm` and returns its path.
pub fn build_adapter(backend: &str) -> Result<PathBuf> {
    let Some(registered) = registry::backend(backend) else {
        bail!(
            "unknown backend `{backend}`; known: {}",
            BACKENDS.join(", ")
        );
    };
    let name = registered
        .artifact
        .strip_suffix(".wasm")
        .unwrap_or(registered.artifact);
    build_component("kvplug-adapter", registered.feature, name)
}

/// The configuration components: what `kvplug seal` fills in, with and without a fallback
/// to the runtime's `wasi:config`, and the one that reads environment variables.
pub const CONFIG_COMPONENTS: &[(&str, &str, &str)] = &[
    ("kvplug-config-static", "kvplug-config-static", ""),
    ("kvplug-config-layered", "kvplug-config-static", "layered"),
    ("kvplug-config-env", "kvplug-config-env", ""),
];

/// The path of config component `name` next to the artifacts (built or not).
pub fn config_path(name: &str) -> PathBuf {
    out_dir().join(format!("{name}.wasm"))
}

/// Builds every configuration component.
pub fn build_config_components() -> Result<Vec<PathBuf>> {
    CONFIG_COMPONENTS
        .iter()
        .map(|(name, package, features)| build_component(package, features, name))
        .collect()
}

/// The components that give an adapter another interface shape: Spin's draft2 `batch`
/// (`kvplug spin`).
pub const SHAPES: &[(&str, &str)] = &[("kvplug-spin-shape", "kvplug-spin-shape")];

/// The path of shape component `name` next to the artifacts (built or not).
pub fn shape_path(name: &str) -> PathBuf {
    out_dir().join(format!("{name}.wasm"))
}

/// Builds every shape component.
pub fn build_shapes() -> Result<Vec<PathBuf>> {
    SHAPES
        .iter()
        .map(|(name, package)| build_component(package, "", name))
        .collect()
}

/// Builds every guest program under `fixtures/` (release) and returns their paths, in
/// [`FIXTURES`] order.
pub fn build_fixtures() -> Result<Vec<PathBuf>> {
    let fixtures_target = target_dir().join("fixtures");
    let mut command = cargo();
    command
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            WASM_TARGET,
            "--manifest-path",
        ])
        .arg(repo_root().join("fixtures").join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&fixtures_target);
    let _lock = BuildLock::take()?;
    run(command, "the fixtures")?;
    FIXTURES
        .iter()
        .map(|name| {
            // Binaries keep their name; libraries (HTTP handlers) get `-` turned into `_`.
            let release = fixtures_target.join(WASM_TARGET).join("release");
            let built = [name.to_string(), name.replace('-', "_")]
                .iter()
                .map(|stem| release.join(format!("{stem}.wasm")))
                .find(|path| path.exists())
                .unwrap_or_else(|| release.join(format!("{name}.wasm")));
            let out = fixture_path(name);
            copy_atomically(&built, &out)?;
            Ok(out)
        })
        .collect()
}

/// Everything [`build_all`] produced.
#[derive(Debug, Clone)]
pub struct Built {
    /// `(backend, path)` of each adapter.
    pub adapters: Vec<(&'static str, PathBuf)>,
    /// `(name, path)` of each configuration component.
    pub configs: Vec<(&'static str, PathBuf)>,
    /// `(name, path)` of each shape component.
    pub shapes: Vec<(&'static str, PathBuf)>,
    /// `(name, path)` of each fixture.
    pub fixtures: Vec<(&'static str, PathBuf)>,
    /// `(name, path)` of each watch driver.
    pub drivers: Vec<(String, PathBuf)>,
}

/// Builds every adapter, configuration component, fixture and watch driver.
pub fn build_all() -> Result<Built> {
    let adapters = BACKENDS
        .iter()
        .map(|backend| Ok((*backend, build_adapter(backend)?)))
        .collect::<Result<Vec<_>>>()?;
    let configs = CONFIG_COMPONENTS
        .iter()
        .map(|(name, _, _)| *name)
        .zip(build_config_components()?)
        .collect();
    let shapes = SHAPES
        .iter()
        .map(|(name, _)| *name)
        .zip(build_shapes()?)
        .collect();
    let fixtures = FIXTURES.iter().copied().zip(build_fixtures()?).collect();
    let mut drivers = Vec::new();
    for backend in WATCH_BACKENDS {
        for path in build_drivers(backend)? {
            let name = path
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
            drivers.push((name, path));
        }
    }
    Ok(Built {
        adapters,
        configs,
        shapes,
        fixtures,
        drivers,
    })
}

/// An exclusive lock on `target/kvplug/.build.lock`, across threads and processes, released
/// when dropped (closing the file releases it).
struct BuildLock {
    _held: std::fs::File,
}

impl BuildLock {
    fn take() -> Result<Self> {
        let dir = out_dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create `{}`", dir.display()))?;
        let path = dir.join(".build.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("failed to open `{}`", path.display()))?;
        file.lock()
            .with_context(|| format!("failed to lock `{}`", path.display()))?;
        Ok(Self { _held: file })
    }
}

fn copy_atomically(from: &Path, to: &Path) -> Result<()> {
    let bytes = std::fs::read(from)
        .with_context(|| format!("build output `{}` is missing", from.display()))?;
    write_atomically(to, &bytes)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so that concurrent
/// readers see the old file or the new one, never half of one, and a failure leaves no file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    // Unique per call, not only per process: test threads write the same artifact at once.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{call}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("failed to write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("failed to write `{}`", path.display()))
}
