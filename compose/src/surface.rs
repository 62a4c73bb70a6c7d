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
    check_imports(surface, "adapter", ADAPTER_IMPORTS.iter())?;
    let missing: Vec<&&str> = ADAPTER_EXPORTS
        .iter()
        .filter(|name| !surface.exports.iter().any(|e| e == *name))
        .collect();
    if !missing.is_empty() {
        bail!(
            "not a kvplug adapter: it does not export {}",
            quoted(missing)
        );
    }
    Ok(())
}

/// Fails if `surface` imports anything that none of `allowed` starts (the `what`'s
/// allow-list), naming every such import.
fn check_imports<'a>(
    surface: &Surface,
    what: &str,
    allowed: impl Iterator<Item = &'a &'a str> + Clone,
) -> Result<()> {
    let stray: Vec<&String> = surface
        .imports
        .iter()
        .filter(|name| !allowed.clone().any(|prefix| name.starts_with(prefix)))
        .collect();
    if !stray.is_empty() {
        bail!("imports outside the {what} allow-list: {}", quoted(stray));
    }
    Ok(())
}

fn quoted<T: std::fmt::Display>(names: Vec<T>) -> String {
    names
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
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
    check_imports(
        surface,
        "watch driver",
        ADAPTER_IMPORTS.iter().chain(DRIVER_IMPORTS),
    )?;
    if surface.exports != [DRIVER_EXPORT] {
        bail!(
            "not a kvplug watch driver: it exports {:?}, not only `{DRIVER_EXPORT}`",
            surface.exports
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn surface(imports: &[&str], exports: &[&str]) -> Surface {
        Surface {
            imports: imports.iter().map(|s| (*s).to_owned()).collect(),
            exports: exports.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn stray_imports_are_named_for_adapters_and_drivers() {
        let http = "wasi:http/types@0.2.0";
        let adapter = surface(&[http], ADAPTER_EXPORTS);
        assert!(check_adapter(&adapter).is_ok());
        let error = check_adapter(&surface(
            &[http, "wasi:filesystem/types@0.2.0"],
            ADAPTER_EXPORTS,
        ))
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("adapter allow-list") && error.contains("`wasi:filesystem/types@0.2.0`"),
            "{error}"
        );
        // A driver may import the store and watcher; an adapter may not.
        let watcher = "wasi:keyvalue/watcher@0.2.0-draft";
        assert!(check_adapter(&surface(&[http, watcher], ADAPTER_EXPORTS)).is_err());
        assert!(check_driver(&surface(&[http, watcher], &[DRIVER_EXPORT])).is_ok());
        let error = check_driver(&surface(
            &[watcher, "wasi:sockets/tcp@0.2.0"],
            &[DRIVER_EXPORT],
        ))
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("watch driver allow-list") && error.contains("`wasi:sockets/tcp@0.2.0`"),
            "{error}"
        );
    }
}
