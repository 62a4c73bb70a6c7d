fn main() {
    // The bindings are generated from the WIT at build time.
    println!("cargo:rerun-if-changed=../wit");
}
