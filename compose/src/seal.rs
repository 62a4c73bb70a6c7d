//! Sealing: baking settings into an adapter, so that it imports only `wasi:http`.
//!
//! The settings are written into a copy of the prebuilt `kvplug-config-static.wasm` (a
//! `wasi:config/store` component with a fixed slot, see `kvplug_settings::sealed`), which is
//! then plugged into the adapter. With `layered`, `kvplug-config-layered.wasm` is used
//! instead: it answers unsealed settings from the runtime's `wasi:config`, so the sealed
//! adapter keeps that one import and a secret need not be baked in.
//!
//! Every input is checked before anything is written: the adapter is an adapter, each
//! setting is known and valid (with the very parser the adapter uses), and the result
//! imports only what it should.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail, ensure};
use kvplug_settings::backend::Backend;
use kvplug_settings::sealed;

use crate::{artifacts, plug, surface};

/// The config import a layered sealed adapter keeps.
pub const CONFIG_IMPORT: &str = "wasi:config/store@0.2.0-rc.1";

/// What to seal.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `(name, value)` pairs, each a setting from `kvplug_settings::NAMES`.
    pub settings: Vec<(String, String)>,
    /// Fall back to the runtime's `wasi:config` for settings not given here.
    pub layered: bool,
}

/// The outcome of sealing.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The generated config component (settings written in).
    pub config: Vec<u8>,
    /// The adapter with the config plugged in.
    pub adapter: Vec<u8>,
}

/// The prebuilt config component `seal` uses by default: next to the adapter if there is
/// one, else in `target/kvplug/`.
pub fn default_config_component(adapter: &Path, layered: bool) -> PathBuf {
    let name = if layered {
        "kvplug-config-layered"
    } else {
        "kvplug-config-static"
    };
    let beside = adapter
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(format!("{name}.wasm"));
    if beside.exists() {
        beside
    } else {
        artifacts::config_path(name)
    }
}

/// The custom section in which an adapter names its backend.
pub const BACKEND_SECTION: &str = "kvplug-backend";

/// The backend `adapter` was built with, from its [`BACKEND_SECTION`].
pub fn backend_of(adapter: &[u8]) -> Result<Backend> {
    for payload in wasmparser::Parser::new(0).parse_all(adapter) {
        if let wasmparser::Payload::CustomSection(section) = payload?
            && section.name() == BACKEND_SECTION
        {
            let name = std::str::from_utf8(section.data()).unwrap_or_default();
            return Backend::from_name(name)
                .with_context(|| format!("the adapter names an unknown backend `{name}`"));
        }
    }
    bail!(
        "the adapter does not name its backend (no `{BACKEND_SECTION}` section): build it with this version's `kvplug build`"
    )
}

/// Checks the settings as `backend`'s `open` will: known names, valid values, no name twice,
/// a `url` unless the runtime may supply it, and, when every setting is sealed, what the
/// backend requires (credentials, a region) with the very checks the adapter runs.
fn check_settings(request: &Request, backend: Backend) -> Result<()> {
    for (index, (name, value)) in request.settings.iter().enumerate() {
        backend.validate(name, value).map_err(anyhow::Error::msg)?;
        if request.settings.iter().take(index).any(|(n, _)| n == name) {
            bail!("setting `{name}` is given twice");
        }
    }
    if request.layered {
        // The runtime may supply any setting not given here: only values can be checked.
        return Ok(());
    }
    if !request.settings.iter().any(|(n, _)| n == "url") {
        bail!(
            "`url` must be sealed (or pass --runtime-config to take unsealed settings from the runtime)"
        );
    }
    let settings = kvplug_settings::Settings::from_lookup(|name| {
        Ok(request
            .settings
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone()))
    })
    .map_err(anyhow::Error::msg)?;
    backend
        .check(&settings)
        .map_err(|message| anyhow::anyhow!("{message} (the adapter is kvplug-{})", backend.name()))
}

/// Checks a driver's `watch-` settings with the driver's parser. Layered, only the values
/// given are checked (the runtime may supply `watch-buckets`).
fn check_watch_settings(request: &Request) -> Result<()> {
    let given = |name: &str| {
        request
            .settings
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    kvplug_settings::watch::WatchSettings::from_lookup(|name| {
        Ok(match (name, given(name)) {
            ("watch-buckets", None) if request.layered => Some(String::from("placeholder")),
            (_, value) => value,
        })
    })
    .map_err(anyhow::Error::msg)
    .context("the driver's settings")?;
    Ok(())
}

/// Writes the encoded settings into the slot of an unsealed config component.
fn fill_slot(config: &[u8], settings: &[(String, String)]) -> Result<Vec<u8>> {
    let found = surface::surface(config).context("the config component is not a component")?;
    ensure!(
        found.exports.iter().any(|e| e == CONFIG_IMPORT),
        "the config component does not export `{CONFIG_IMPORT}`"
    );
    let mut at = config
        .windows(sealed::MAGIC.len())
        .enumerate()
        .filter(|(_, window)| *window == sealed::MAGIC)
        .map(|(offset, _)| offset);
    let (Some(offset), None) = (at.next(), at.next()) else {
        bail!("not an unsealed kvplug config component (its settings slot is missing)");
    };
    let len_at = offset + sealed::MAGIC.len();
    let data_at = len_at + 4;
    let truncated = "the config component's settings slot is truncated";
    ensure!(config.len() >= data_at + sealed::CAPACITY, truncated);
    ensure!(
        config.get(len_at..data_at) == Some(&[0; 4][..]),
        "this config component is sealed already"
    );
    let encoded = sealed::encode(settings).map_err(anyhow::Error::msg)?;
    let length = u32::try_from(encoded.len()).context("settings too large")?;
    let mut out = config.to_vec();
    out.get_mut(len_at..data_at)
        .context(truncated)?
        .copy_from_slice(&length.to_le_bytes());
    out.get_mut(data_at..data_at + encoded.len())
        .context(truncated)?
        .copy_from_slice(&encoded);
    Ok(out)
}

/// Seals `adapter` with `request`, using the unsealed config component `config`.
///
/// A watch driver (`kvplug-watch-<backend>.wasm`) is sealed the same way: its settings are its
/// backend's and the `watch-` ones, checked by the driver's own parser.
pub fn seal(adapter: &[u8], config: &[u8], request: &Request) -> Result<Sealed> {
    let found = surface::surface(adapter).context("the input is not a kvplug adapter")?;
    let driver = surface::is_driver(&found);
    let check = |surface: &surface::Surface| {
        if driver {
            surface::check_driver(surface).context("the input is not a kvplug watch driver")
        } else {
            surface::check_adapter(surface).context("the input is not a kvplug adapter")
        }
    };
    check(&found)?;
    ensure!(
        found.imports.iter().any(|i| i == CONFIG_IMPORT),
        "the input adapter is sealed already (it does not import `{CONFIG_IMPORT}`)"
    );
    if driver {
        check_watch_settings(request)?;
        let rest = Request {
            settings: request
                .settings
                .iter()
                .filter(|(name, _)| !kvplug_settings::watch::NAMES.contains(&name.as_str()))
                .cloned()
                .collect(),
            layered: request.layered,
        };
        check_settings(&rest, backend_of(adapter)?)?;
    } else {
        check_settings(request, backend_of(adapter)?)?;
    }
    let config = fill_slot(config, &request.settings)?;
    let sealed_adapter = plug::plug_bytes(adapter.to_vec(), vec![config.clone()])?;
    let after = surface::surface(&sealed_adapter)?;
    check(&after)?;
    let keeps_config = after.imports.iter().any(|i| i == CONFIG_IMPORT);
    ensure!(
        keeps_config == request.layered,
        "sealing left the config import {}",
        if keeps_config { "in place" } else { "out" }
    );
    Ok(Sealed {
        config,
        adapter: sealed_adapter,
    })
}

/// [`seal`] on files: reads `adapter` and `config`, writes `output` only on success.
pub fn seal_files(
    adapter: &Path,
    config: &Path,
    request: &Request,
    output: &Path,
) -> Result<Sealed> {
    let read = |path: &Path| {
        std::fs::read(path).with_context(|| format!("failed to read `{}`", path.display()))
    };
    let sealed = seal(&read(adapter)?, &read(config)?, request)?;
    artifacts::write_atomically(output, &sealed.adapter)?;
    Ok(sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&str, &str)], layered: bool) -> Request {
        Request {
            settings: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            layered,
        }
    }

    #[test]
    fn settings_are_checked_before_anything_is_built() {
        let error = check_settings(
            &request(&[("url", "http://h"), ("tokn", "x")], false),
            Backend::Http,
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("unknown setting `tokn`"),
            "{error}"
        );
        let error =
            check_settings(&request(&[("url", "ftp://h")], false), Backend::Http).unwrap_err();
        assert!(error.to_string().contains("http://"), "{error}");
        let error =
            check_settings(&request(&[("buckets", "a")], false), Backend::Http).unwrap_err();
        assert!(
            error.to_string().contains("`url` must be sealed"),
            "{error}"
        );
        check_settings(&request(&[("buckets", "a")], true), Backend::Http).unwrap();
        let error = check_settings(
            &request(&[("url", "http://h"), ("url", "http://i")], false),
            Backend::Http,
        )
        .unwrap_err();
        assert!(error.to_string().contains("given twice"), "{error}");
    }

    #[test]
    fn each_backend_checks_what_its_open_requires() {
        let error = check_settings(
            &request(&[("url", "http://h"), ("table", "kv_plug")], false),
            Backend::AzureTable,
        )
        .unwrap_err();
        assert!(error.to_string().contains("3 to 63 letters"), "{error}");
        // A value is checked even when other settings come from the runtime.
        check_settings(&request(&[("table", "kv_plug")], true), Backend::DynamoDb).unwrap();
        assert!(
            check_settings(&request(&[("table", "kv_plug")], true), Backend::AzureTable).is_err()
        );
        let error =
            check_settings(&request(&[("url", "http://h")], false), Backend::DynamoDb).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the dynamodb backend needs `region` (it is read from the `url` only for dynamodb.<region>.amazonaws.com) (the adapter is kvplug-dynamodb)"
        );
        check_settings(&request(&[("url", "http://h")], false), Backend::Etcd).unwrap();
    }
}
