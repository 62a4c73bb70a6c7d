//! Bindings for the `kvplug:adapter/adapter` world (`wit/kvplug.wit`): the exports are generated
//! here, the imports are `kvplug-core`'s.

wit_bindgen::generate!({
    path: "../wit",
    world: "kvplug:adapter/adapter",
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
