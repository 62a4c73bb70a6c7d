fn main() {
    // As the adapter's (adapter/build.rs): keep our `wasi:io@0.2.0` imports at the version the
    // world says instead of wasm-component-ld's built-in 0.2.6, so every 0.2 host runs it.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("wasi") {
        println!("cargo:rustc-link-arg=--merge-imports-based-on-semver=false");
    }
    println!("cargo:rerun-if-changed=../wit");
}
