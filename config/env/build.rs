fn main() {
    // wasm-component-ld merges a built-in WASI world (0.2.6 with Rust 1.95) into every
    // component and, by default, unifies semver-compatible imports to the highest version,
    // which would turn our `wasi:io@0.2.0` into `@0.2.6`. The adapter targets wasi:http 0.2.0
    // and its own wasi:io 0.2.0 so that every 0.2 host can satisfy it: keep versions as the
    // world says.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("wasi") {
        println!("cargo:rustc-link-arg=--merge-imports-based-on-semver=false");
    }
    println!("cargo:rerun-if-changed=../wit");
}
