//! Bindings for the adapter's world: the exports are generated here, the imports are
//! `kvplug-core`'s.

/// The bindings of `$world` from the WIT at `$path`, with the imports taken from
/// `kvplug-core`.
macro_rules! adapter_bindings {
    ($path:tt, $world:literal) => {
        wit_bindgen::generate!({
            path: $path,
            world: $world,
            with: {
                "wasi:http/types@0.2.0": kvplug_core::bindings::wasi::http::types,
                "wasi:http/outgoing-handler@0.2.0": kvplug_core::bindings::wasi::http::outgoing_handler,
                "wasi:config/store@0.2.0-rc.1": kvplug_core::bindings::wasi::config::store,
                "wasi:clocks/wall-clock@0.2.0": kvplug_core::bindings::wasi::clocks::wall_clock,
                "wasi:clocks/monotonic-clock@0.2.0": kvplug_core::bindings::wasi::clocks::monotonic_clock,
                "wasi:io/poll@0.2.0": kvplug_core::bindings::wasi::io::poll,
                "wasi:io/error@0.2.0": kvplug_core::bindings::wasi::io::error,
                "wasi:io/streams@0.2.0": kvplug_core::bindings::wasi::io::streams,
            },
            generate_all,
        });
    };
}

// A backend that carries `kvplug:keyvalue/entries` exports it too: `wit/`, then the
// extension, then the world joining them, each resolving against what came before.
#[cfg(feature = "entries")]
adapter_bindings!(
    [
        "../wit",
        "../wit/keyvalue/entries.wit",
        "../wit/extended/worlds.wit"
    ],
    "kvplug:extended/adapter"
);

#[cfg(not(feature = "entries"))]
adapter_bindings!("../wit", "kvplug:adapter/adapter");
