//! Bindings for the `kvplug:adapter/adapter` world (`wit/kvplug.wit`).

wit_bindgen::generate!({
    path: "../wit",
    world: "kvplug:adapter/adapter",
    generate_all,
});
