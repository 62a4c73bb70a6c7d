//! `kvplug`: the pipeline tool.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use kvplug_compose::{artifacts, fit, plug, registry, seal, spin, surface, watch};

const USAGE: &str = "\
usage:
  kvplug build                                 build every adapter and fixture into target/kvplug/
  kvplug plug APP.wasm --plug PLUG.wasm... -o OUT.wasm
                                               link APP with the plugs (same semantics as `wac plug`)
  kvplug seal ADAPTER.wasm --set NAME=VALUE... [--runtime-config] [--config-component C.wasm]
              [--emit-config CONFIG.wasm] -o SEALED.wasm
                                               bake settings into ADAPTER: the result imports only
                                               wasi:http (with --runtime-config, unsealed settings
                                               still come from the runtime's wasi:config); a watch
                                               driver is sealed the same way, with its watch- settings
  kvplug spin ADAPTER.wasm -o OUT.wasm         ADAPTER with Spin's shape of wasi:keyvalue/batch@0.2.0-draft2
                                               (for apps built against Spin's WIT); the rest as is
  kvplug check APP.wasm [--against ADAPTER.wasm]
                                               print imports and exports, and say whether APP's
                                               key-value imports link with a kvplug adapter (the
                                               shape: upstream draft, draft2, Spin's draft2), or
                                               name each interface and item that does not; fails
                                               when they do not link
  kvplug check --adapter ARTIFACT.wasm         fail unless the imports keep to the adapter allow-list
  kvplug watch APP.wasm --adapter ADAPTER.wasm --driver DRIVER.wasm -o OUT.wasm
                                               compose a watch-service APP, the adapter it uses and a
                                               watch driver (kvplug-watch-<backend>.wasm) into one
                                               command: `wasmtime run -S http -S config ... OUT.wasm`
  kvplug backends                              print the registered backends, one name a line
";

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("build") => {
            let built = artifacts::build_all()?;
            for (backend, path) in &built.adapters {
                println!(
                    "adapter {backend:<12} {:>9} bytes  {}",
                    size(path),
                    path.display()
                );
            }
            for (name, path) in built.configs.iter().chain(&built.shapes) {
                println!(
                    "config  {name:<22} {:>9} bytes  {}",
                    size(path),
                    path.display()
                );
            }
            for (name, path) in &built.drivers {
                println!(
                    "driver  {name:<22} {:>9} bytes  {}",
                    size(path),
                    path.display()
                );
            }
            for (name, path) in &built.fixtures {
                println!(
                    "fixture {name:<12} {:>9} bytes  {}",
                    size(path),
                    path.display()
                );
            }
            Ok(())
        }
        Some("plug") => {
            let mut app = None;
            let mut plugs = Vec::new();
            let mut output = None;
            let mut rest = args.iter().skip(1);
            while let Some(arg) = rest.next() {
                match arg.as_str() {
                    "--plug" => {
                        plugs.push(PathBuf::from(rest.next().context("`--plug` needs a file")?))
                    }
                    "-o" | "--output" => {
                        output = Some(PathBuf::from(rest.next().context("`-o` needs a file")?))
                    }
                    other if app.is_none() && !other.starts_with('-') => {
                        app = Some(PathBuf::from(other))
                    }
                    other => bail!("unexpected argument `{other}`\n{USAGE}"),
                }
            }
            let (Some(app), Some(output)) = (app, output) else {
                bail!("`plug` needs APP.wasm and -o OUT.wasm\n{USAGE}");
            };
            if plugs.is_empty() {
                bail!("`plug` needs at least one --plug\n{USAGE}");
            }
            let plug_refs: Vec<&Path> = plugs.iter().map(PathBuf::as_path).collect();
            plug::plug_files(&app, &plug_refs, &output).with_context(|| {
                let why = fit::explain(&app, &plug_refs);
                format!(
                    "linking failed{why}\n`kvplug check {}` says the same before any link is tried",
                    app.display()
                )
            })?;
            println!("wrote {} ({} bytes)", output.display(), size(&output));
            Ok(())
        }
        Some("seal") => {
            let mut adapter = None;
            let mut request = seal::Request::default();
            let mut config = None;
            let mut emit_config = None;
            let mut output = None;
            let mut rest = args.iter().skip(1);
            while let Some(arg) = rest.next() {
                let mut path = |flag: &str| -> Result<PathBuf> {
                    Ok(PathBuf::from(
                        rest.next()
                            .with_context(|| format!("`{flag}` needs a file"))?,
                    ))
                };
                match arg.as_str() {
                    "--set" => {
                        let pair = rest.next().context("`--set` needs NAME=VALUE")?;
                        let (name, value) =
                            pair.split_once('=').context("`--set` needs NAME=VALUE")?;
                        request.settings.push((name.to_owned(), value.to_owned()));
                    }
                    "--runtime-config" => request.layered = true,
                    "--config-component" => config = Some(path(arg)?),
                    "--emit-config" => emit_config = Some(path(arg)?),
                    "-o" | "--output" => output = Some(path(arg)?),
                    other if adapter.is_none() && !other.starts_with('-') => {
                        adapter = Some(PathBuf::from(other));
                    }
                    other => bail!("unexpected argument `{other}`\n{USAGE}"),
                }
            }
            let (Some(adapter), Some(output)) = (adapter, output) else {
                bail!("`seal` needs ADAPTER.wasm and -o SEALED.wasm\n{USAGE}");
            };
            let config =
                config.unwrap_or_else(|| seal::default_config_component(&adapter, request.layered));
            let started = std::time::Instant::now();
            let sealed = seal::seal_files(&adapter, &config, &request, &output)?;
            let took = started.elapsed();
            if let Some(path) = emit_config {
                artifacts::write_atomically(&path, &sealed.config)?;
            }
            println!(
                "sealed {} setting(s) into {} ({} bytes; config component {} bytes) in {:.1} ms",
                request.settings.len(),
                output.display(),
                sealed.adapter.len(),
                sealed.config.len(),
                took.as_secs_f64() * 1e3
            );
            Ok(())
        }
        Some("spin") => {
            let (mut adapter, mut output) = (None, None);
            let mut rest = args.iter().skip(1);
            while let Some(arg) = rest.next() {
                match arg.as_str() {
                    "-o" | "--output" => {
                        output = Some(PathBuf::from(rest.next().context("`-o` needs a file")?))
                    }
                    other if adapter.is_none() && !other.starts_with('-') => {
                        adapter = Some(PathBuf::from(other))
                    }
                    other => bail!("unexpected argument `{other}`\n{USAGE}"),
                }
            }
            let (Some(adapter), Some(output)) = (adapter, output) else {
                bail!("`spin` needs ADAPTER.wasm and -o OUT.wasm\n{USAGE}");
            };
            let shape = artifacts::shape_path("kvplug-spin-shape");
            let shape = if shape.exists() {
                shape
            } else {
                artifacts::build_shapes()?;
                shape
            };
            let read = |path: &Path| {
                std::fs::read(path).with_context(|| format!("failed to read `{}`", path.display()))
            };
            let bytes = spin::spin_shaped(read(&adapter)?, read(&shape)?)?;
            artifacts::write_atomically(&output, &bytes)?;
            println!("wrote {} ({} bytes)", output.display(), size(&output));
            Ok(())
        }
        Some("watch") => {
            let (mut app, mut adapter, mut driver, mut output) = (None, None, None, None);
            let mut rest = args.iter().skip(1);
            while let Some(arg) = rest.next() {
                let mut path = |flag: &str| -> Result<Option<PathBuf>> {
                    Ok(Some(PathBuf::from(
                        rest.next()
                            .with_context(|| format!("`{flag}` needs a file"))?,
                    )))
                };
                match arg.as_str() {
                    "--adapter" => adapter = path(arg)?,
                    "--driver" => driver = path(arg)?,
                    "-o" | "--output" => output = path(arg)?,
                    other if app.is_none() && !other.starts_with('-') => {
                        app = Some(PathBuf::from(other))
                    }
                    other => bail!("unexpected argument `{other}`\n{USAGE}"),
                }
            }
            let (Some(app), Some(adapter), Some(driver), Some(output)) =
                (app, adapter, driver, output)
            else {
                bail!("`watch` needs APP.wasm, --adapter, --driver and -o OUT.wasm\n{USAGE}");
            };
            watch::watch_files(&app, &adapter, &driver, &output)?;
            println!("wrote {} ({} bytes)", output.display(), size(&output));
            Ok(())
        }
        Some("backends") => {
            for backend in registry::BACKENDS {
                println!("{}", backend.name);
            }
            Ok(())
        }
        Some("check") => {
            let mut adapter = false;
            let mut against = None;
            let mut artifact = None;
            let mut rest = args.iter().skip(1);
            while let Some(arg) = rest.next() {
                match arg.as_str() {
                    "--adapter" => adapter = true,
                    "--against" => {
                        against = Some(PathBuf::from(
                            rest.next().context("`--against` needs a file")?,
                        ))
                    }
                    other if artifact.is_none() && !other.starts_with('-') => {
                        artifact = Some(other.to_owned())
                    }
                    other => bail!("unexpected argument `{other}`\n{USAGE}"),
                }
            }
            let Some(path) = artifact else {
                bail!("`check` needs an artifact\n{USAGE}");
            };
            let bytes = std::fs::read(&path).with_context(|| format!("failed to read `{path}`"))?;
            let found = surface::surface(&bytes)?;
            for name in &found.imports {
                println!("import {name}");
            }
            for name in &found.exports {
                println!("export {name}");
            }
            if adapter {
                surface::check_adapter(&found)
                    .with_context(|| format!("`{path}` fails the adapter check"))?;
                println!("ok: `{path}` imports only what an adapter may");
                return Ok(());
            }
            // Every adapter exports the same interfaces: one stands for all.
            let against = match against {
                Some(file) => file,
                None if artifacts::adapter_path("http").exists() => artifacts::adapter_path("http"),
                None => artifacts::build_adapter("http")?,
            };
            let reference = std::fs::read(&against)
                .with_context(|| format!("failed to read `{}`", against.display()))?;
            let fit = fit::check(&bytes, &reference)?;
            print!("{}", fit.render());
            if !fit.findings.is_empty() && !fit.links() {
                bail!("`{path}` does not link with a kvplug adapter as it is (see above)");
            }
            Ok(())
        }
        _ => {
            print!("{USAGE}");
            Ok(())
        }
    }
}
