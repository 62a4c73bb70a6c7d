//! An artifact's imports and exports, and the allow-list an adapter's imports must keep to.

use anyhow::{Context as _, Result, bail};
use wac_graph::types::{Package, Types};

/// A component's import and export names, in declaration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Surface {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// Reads the import and export names of a component.
pub fn surface(bytes: &[u8]) -> Result<Surface> {
    let mut types = Types::default();
    let package = Package::from_bytes("artifact", None, bytes.to_vec(), &mut types)
        .context("not a valid WebAssembly component")?;
    let world = &types[package.ty()];
    Ok(Surface {
        imports: world.imports.keys().cloned().collect(),
        exports: world.exports.keys().cloned().collect(),
    })
}

/// What an adapter may import: `wasi:http` (the transport), the interfaces `wasi:http/types`
/// itself depends on (`wasi:io` for bodies; `wasi:clocks/monotonic-clock` for the `duration`
/// of request timeouts, and the waits between retries of the cloud backends), the
/// wall clock the cloud backends' signatures carry (part of the `wasi:http/proxy` world, so
/// every `wasi:http` host has it), and `wasi:config/store` (settings, until sealed). Any
/// `0.2.x` of each.
pub const ADAPTER_IMPORTS: &[&str] = &[
    "wasi:http/outgoing-handler@0.2.",
    "wasi:http/types@0.2.",
    "wasi:io/error@0.2.",
    "wasi:io/poll@0.2.",
    "wasi:io/streams@0.2.",
    "wasi:clocks/monotonic-clock@0.2.",
    "wasi:clocks/wall-clock@0.2.",
    "wasi:config/store@0.2.0-rc.1",
];

/// What every adapter exports: both drafts, so one artifact links with apps on either.
pub const ADAPTER_EXPORTS: &[&str] = &[
    "wasi:keyvalue/store@0.2.0-draft2",
    "wasi:keyvalue/atomics@0.2.0-draft2",
    "wasi:keyvalue/batch@0.2.0-draft2",
    "wasi:keyvalue/store@0.2.0-draft",
    "wasi:keyvalue/atomics@0.2.0-draft",
    "wasi:keyvalue/batch@0.2.0-draft",
];

/// kvplug's own extension, exported next to [`ADAPTER_EXPORTS`] by the backends that carry
/// it (`registry::Backend::entries`), right after draft2's `store` whose `bucket` it uses.
pub const ENTRIES_EXPORT: &str = "kvplug:keyvalue/entries@0.1.0";

/// What the adapter of `backend` exports, in order.
pub fn expected_exports(backend: &crate::registry::Backend) -> Vec<&'static str> {
    let mut exports = ADAPTER_EXPORTS.to_vec();
    if backend.entries {
        exports.insert(1, ENTRIES_EXPORT);
    }
    exports
}

/// Fails unless `surface` is an adapter's: every import on the allow-list, every
/// `wasi:keyvalue` export present.
pub fn check_adapter(surface: &Surface) -> Result<()> {
    let stray: Vec<&String> = surface
        .imports
        .iter()
        .filter(|name| {
            !ADAPTER_IMPORTS
                .iter()
                .any(|allowed| name.starts_with(allowed))
        })
        .collect();
    if !stray.is_empty() {
        bail!(
            "imports outside the adapter allow-list: {}",
            stray
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let missing: Vec<&&str> = ADAPTER_EXPORTS
        .iter()
        .filter(|name| !surface.exports.iter().any(|e| e == *name))
        .collect();
    if !missing.is_empty() {
        bail!(
            "not a kvplug adapter: it does not export {}",
            missing
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// What a watch driver (`kvplug-watch-<backend>.wasm`) may import besides [`ADAPTER_IMPORTS`]:
/// the store it hands buckets of, the app's watcher (one draft), and stderr for its messages.
pub const DRIVER_IMPORTS: &[&str] = &[
    "wasi:keyvalue/store@0.2.0-draft",
    "wasi:keyvalue/watcher@0.2.0-draft",
    "wasi:cli/stderr@0.2.",
];

/// What a watch driver exports: it is a command.
pub const DRIVER_EXPORT: &str = "wasi:cli/run@0.2.0";

/// Whether `surface` is a watch driver's: it imports a `watcher`, which only a driver calls.
pub fn is_driver(surface: &Surface) -> bool {
    surface
        .imports
        .iter()
        .any(|name| name.starts_with("wasi:keyvalue/watcher@"))
}

/// Fails unless `surface` is a watch driver's: every import on the allow-lists, exactly one
/// export, `wasi:cli/run`.
pub fn check_driver(surface: &Surface) -> Result<()> {
    let stray: Vec<&String> = surface
        .imports
        .iter()
        .filter(|name| {
            !ADAPTER_IMPORTS
                .iter()
                .chain(DRIVER_IMPORTS)
                .any(|allowed| name.starts_with(allowed))
        })
        .collect();
    if !stray.is_empty() {
        bail!("imports outside the watch driver allow-list: {stray:?}");
    }
    if surface.exports != [DRIVER_EXPORT] {
        bail!(
            "not a kvplug watch driver: it exports {:?}, not only `{DRIVER_EXPORT}`",
            surface.exports
        );
    }
    Ok(())
}
