//! Linking an application with plugs, with exactly the semantics of `wac plug`: every export
//! of a plug that matches an import of the socket (by name, or semver-compatible name) is
//! wired to it, and the plugs' own imports become imports of the result.

use std::path::Path;

use anyhow::{Context as _, Result};
use wac_graph::{CompositionGraph, EncodeOptions, types::Package};

/// Plugs `plugs` (in order) into `socket` and returns the encoded, validated component.
pub fn plug_bytes(socket: Vec<u8>, plugs: Vec<Vec<u8>>) -> Result<Vec<u8>> {
    let mut graph = CompositionGraph::new();
    let socket = Package::from_bytes("socket", None, socket, graph.types_mut())
        .context("the application is not a valid component")?;
    let socket = graph.register_package(socket)?;
    let mut plug_ids = Vec::with_capacity(plugs.len());
    for (index, bytes) in plugs.into_iter().enumerate() {
        let package =
            Package::from_bytes(&format!("plug:plug{index}"), None, bytes, graph.types_mut())
                .with_context(|| format!("plug #{index} is not a valid component"))?;
        plug_ids.push(graph.register_package(package)?);
    }
    wac_graph::plug(&mut graph, plug_ids, socket)?;
    Ok(graph.encode(EncodeOptions::default())?)
}

/// [`plug_bytes`] on files; writes `output` only on success.
pub fn plug_files(socket: &Path, plugs: &[&Path], output: &Path) -> Result<()> {
    let read = |path: &Path| {
        std::fs::read(path).with_context(|| format!("failed to read `{}`", path.display()))
    };
    let plugs = plugs.iter().map(|p| read(p)).collect::<Result<Vec<_>>>()?;
    let bytes = plug_bytes(read(socket)?, plugs)?;
    crate::artifacts::write_atomically(output, &bytes)
}
