//! `kvplug watch`: one command component from an app in the `watch-service` world, the
//! adapter it imports its store from, and a watch driver (docs/watch-design.md §2.2). The
//! same graph as `compose/recipes/watch.wac`:
//!
//! - the app's imports that the adapter exports are the adapter's;
//! - the driver's store import is the same adapter instance (so the buckets it hands the
//!   watcher are the app's own resource type), and its watcher import is the app's export;
//! - the driver's `wasi:cli/run` is the result's export; every other import (`wasi:http`,
//!   `wasi:config`, the app's `wasi:cli`) is the result's.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use wac_graph::{CompositionGraph, EncodeOptions, NodeId, PackageId, types::Package};

const RUN: &str = "wasi:cli/run@0.2.0";

/// Wires every import of `to`'s package that `from`'s package exports under the same name;
/// returns the names wired.
fn wire(
    graph: &mut CompositionGraph,
    from: (PackageId, NodeId),
    to: (PackageId, NodeId),
) -> Result<Vec<String>> {
    let exports: Vec<String> = graph.types()[graph[from.0].ty()]
        .exports
        .keys()
        .cloned()
        .collect();
    let imports: Vec<String> = graph.types()[graph[to.0].ty()]
        .imports
        .keys()
        .cloned()
        .collect();
    let mut wired = Vec::new();
    for name in imports.into_iter().filter(|name| exports.contains(name)) {
        let export = graph.alias_instance_export(from.1, &name)?;
        graph
            .set_instantiation_argument(to.1, &name, export)
            .with_context(|| format!("`{name}` does not fit"))?;
        wired.push(name);
    }
    Ok(wired)
}

/// Composes the three components and returns the encoded, validated result.
pub fn watch_bytes(app: Vec<u8>, adapter: Vec<u8>, driver: Vec<u8>) -> Result<Vec<u8>> {
    let mut graph = CompositionGraph::new();
    let mut register = |name: &str, bytes: Vec<u8>, what: &str| -> Result<(PackageId, NodeId)> {
        let package = Package::from_bytes(name, None, bytes, graph.types_mut())
            .with_context(|| format!("the {what} is not a valid component"))?;
        let id = graph.register_package(package)?;
        Ok((id, graph.instantiate(id)))
    };
    let adapter = register("kvplug:adapter", adapter, "adapter")?;
    let app = register("kvplug:app", app, "app")?;
    let driver = register("kvplug:watch", driver, "driver")?;

    let store = wire(&mut graph, adapter, app).context("linking the app with the adapter")?;
    if !store
        .iter()
        .any(|name| name.starts_with("wasi:keyvalue/store@"))
    {
        bail!("the app imports no `wasi:keyvalue/store` that the adapter exports");
    }
    let driver_store =
        wire(&mut graph, adapter, driver).context("linking the driver with the adapter")?;
    let watcher = wire(&mut graph, app, driver).context("linking the driver with the app")?;
    let draft_of = |names: &[String], interface: &str| {
        names
            .iter()
            .find_map(|n| n.strip_prefix(interface).map(str::to_owned))
    };
    if draft_of(&watcher, "wasi:keyvalue/watcher@").is_none() {
        let app_exports: Vec<String> = graph.types()[graph[app.0].ty()]
            .exports
            .keys()
            .cloned()
            .collect();
        let driver_imports: Vec<String> = graph.types()[graph[driver.0].ty()]
            .imports
            .keys()
            .filter(|n| n.starts_with("wasi:keyvalue/"))
            .cloned()
            .collect();
        bail!(
            "the app exports no watcher the driver calls: the app exports [{}], the driver \
             imports [{}]; an app on wasi:keyvalue@0.2.0-draft needs \
             kvplug-watch-<backend>-draft.wasm",
            app_exports.join(", "),
            driver_imports.join(", ")
        );
    }
    if draft_of(&driver_store, "wasi:keyvalue/store@").is_none() {
        bail!("the adapter exports no `wasi:keyvalue/store` of the draft the driver imports");
    }
    let run = graph
        .alias_instance_export(driver.1, RUN)
        .context("the driver exports no `wasi:cli/run@0.2.0`")?;
    graph.export(run, RUN)?;
    Ok(graph.encode(EncodeOptions::default())?)
}

/// [`watch_bytes`] on files; writes `output` only on success.
pub fn watch_files(app: &Path, adapter: &Path, driver: &Path, output: &Path) -> Result<()> {
    let read = |path: &Path| {
        std::fs::read(path).with_context(|| format!("failed to read `{}`", path.display()))
    };
    let bytes = watch_bytes(read(app)?, read(adapter)?, read(driver)?)?;
    crate::artifacts::write_atomically(output, &bytes)
}
