//! Spin's shape over any adapter: `kvplug spin ADAPTER.wasm -o ADAPTER.spin.wasm` composes the
//! adapter with the spin-shape component (`spin-shape/`), so that an app built against Spin's
//! copy of `wasi:keyvalue@0.2.0-draft2` links with it by `wac plug`. The result exports
//! everything the adapter does, except that `wasi:keyvalue/batch@0.2.0-draft2` is Spin's
//! shape; `store` and `atomics` are the adapter's own, so the bucket the app opens is the one
//! the shape's `batch` takes. One build of each backend serves both shapes.

use anyhow::{Context as _, Result};
use wac_graph::{CompositionGraph, EncodeOptions, types::Package};

/// The interface whose shape Spin changed, as apps import it.
pub const BATCH: &str = "wasi:keyvalue/batch@0.2.0-draft2";
/// What the shape's batch needs from the adapter besides its batch.
const STORE: &str = "wasi:keyvalue/store@0.2.0-draft2";
/// The shape component's export, Spin's `batch`.
const SPIN_BATCH: &str = "kvplug:adapter/spin-batch@0.1.0";

/// `adapter` with its draft2 `batch` replaced by Spin's, through `shape` (the spin-shape
/// component).
pub fn spin_shaped(adapter: Vec<u8>, shape: Vec<u8>) -> Result<Vec<u8>> {
    let mut graph = CompositionGraph::new();
    let adapter = Package::from_bytes("kvplug:adapter", None, adapter, graph.types_mut())
        .context("the adapter is not a valid component")?;
    let shape = Package::from_bytes("kvplug:spin-shape", None, shape, graph.types_mut())
        .context("the spin-shape component is not valid")?;
    let exports: Vec<String> = graph.types()[adapter.ty()]
        .exports
        .keys()
        .cloned()
        .collect();
    anyhow::ensure!(
        exports.iter().any(|name| name == BATCH) && exports.iter().any(|name| name == STORE),
        "not a kvplug adapter: it does not export {STORE} and {BATCH}"
    );
    let adapter = graph.register_package(adapter)?;
    let shape = graph.register_package(shape)?;
    let adapter = graph.instantiate(adapter);
    let shape = graph.instantiate(shape);
    // The recipe's `let` names, which `wac compose` records as the instances' names.
    graph.set_node_name(adapter, "adapter");
    graph.set_node_name(shape, "shape");
    for name in [STORE, BATCH] {
        let export = graph.alias_instance_export(adapter, name)?;
        graph.set_instantiation_argument(shape, name, export)?;
    }
    // In the order `compose/recipes/adapter-spin.wac` gives: Spin's batch, then the rest.
    let spin_batch = graph.alias_instance_export(shape, SPIN_BATCH)?;
    graph.export(spin_batch, BATCH)?;
    for name in exports.iter().filter(|name| *name != BATCH) {
        let export = graph.alias_instance_export(adapter, name)?;
        graph.export(export, name.as_str())?;
    }
    Ok(graph.encode(EncodeOptions::default())?)
}
