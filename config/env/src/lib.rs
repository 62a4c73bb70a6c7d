//! `wasi:config/store` from environment variables, for runtimes where the environment is
//! how configuration arrives (jco on Node, containers): setting `timeout-ms` is
//! `KVPLUG_TIMEOUT_MS`, i.e. `KVPLUG_` and the name in upper case with `-` as `_`.

#![cfg_attr(all(target_arch = "wasm32", not(test)), no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

#[cfg(all(target_arch = "wasm32", not(test)))]
use kvplug_guest_rt as _;

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "kvplug:adapter/config-env",
        generate_all,
    });
}

use bindings::exports::wasi::config::store::{Error, Guest};
use bindings::wasi::cli::environment::get_environment;

const PREFIX: &str = "KVPLUG_";

/// The variable that holds setting `name`.
fn variable(name: &str) -> String {
    let mut var = String::from(PREFIX);
    var.extend(name.chars().map(|c| {
        if c == '-' {
            '_'
        } else {
            c.to_ascii_uppercase()
        }
    }));
    var
}

/// The setting a variable holds, if it is one of ours.
fn setting(var: &str) -> Option<String> {
    let name = var.strip_prefix(PREFIX)?;
    Some(
        name.chars()
            .map(|c| {
                if c == '_' {
                    '-'
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect(),
    )
}

struct Config;

impl Guest for Config {
    fn get(key: String) -> Result<Option<String>, Error> {
        let var = variable(&key);
        Ok(get_environment()
            .into_iter()
            .find(|(name, _)| *name == var)
            .map(|(_, value)| value))
    }

    fn get_all() -> Result<Vec<(String, String)>, Error> {
        Ok(get_environment()
            .into_iter()
            .filter_map(|(name, value)| setting(&name).map(|key| (key, value)))
            .collect())
    }
}

#[expect(unsafe_code, reason = "wit-bindgen's export glue is unsafe FFI")]
mod glue {
    use super::Config;
    crate::bindings::export!(Config with_types_in crate::bindings);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_both_ways() {
        assert_eq!(variable("timeout-ms"), "KVPLUG_TIMEOUT_MS");
        assert_eq!(setting("KVPLUG_TIMEOUT_MS").as_deref(), Some("timeout-ms"));
        assert_eq!(setting("HOME"), None);
    }
}
