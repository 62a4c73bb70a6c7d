//! Bindings for what the backends import (`kvplug:adapter/backend-imports`); the component
//! crate reuses them for its own world, so there is one set of `wasi:http` types.

wit_bindgen::generate!({
    path: "../wit",
    world: "kvplug:adapter/backend-imports",
    generate_all,
    pub_export_macro: false,
});
