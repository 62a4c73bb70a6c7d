#!/usr/bin/env bash
# Re-vendors the standard WIT packages under wit/deps from the crates that ship them, then
# rewrites wit/deps.toml (origin + sha256 of every file). Run it from anywhere; it needs only
# cargo and python3. keyvalue-draft2 is not re-vendored: no crate ships it (see deps.toml).
#
# `vendor.sh --check` re-vendors into a scratch copy and fails if anything differs from the
# committed wit/deps and wit/deps.toml: proof that the vendored files are the crates' own.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if [ "${1:-}" = "--check" ]; then
    mkdir -p "$tmp/wit"
    cp -r "$here/deps" "$here/deps.toml" "$here/vendor.sh" "$tmp/wit/"
    bash "$tmp/wit/vendor.sh" >/dev/null
    if ! diff -r "$here/deps" "$tmp/wit/deps" || ! diff "$here/deps.toml" "$tmp/wit/deps.toml"; then
        echo "wit/deps differs from its origin crates (see the diff above)" >&2
        exit 1
    fi
    echo "wit/deps matches its origin crates"
    exit 0
fi
cat > "$tmp/Cargo.toml" <<'TOML'
[package]
name = "vendor-wit"
version = "0.0.0"
edition = "2024"
[dependencies]
wasi = "=0.13.0"
wasmtime-wasi-config = "=48.0.8"
wasmtime-wasi-keyvalue = "=48.0.8"
TOML
mkdir -p "$tmp/src" && echo 'fn main() {}' > "$tmp/src/main.rs"
cargo metadata --format-version 1 --manifest-path "$tmp/Cargo.toml" > "$tmp/meta.json"
python3 - "$here" "$tmp/meta.json" <<'PY'
import hashlib, json, os, shutil, sys
wit, meta = sys.argv[1], json.load(open(sys.argv[2]))
src = {(p["name"], p["version"]): os.path.dirname(p["manifest_path"]) for p in meta["packages"]}
wasi = ("wasi", "0.13.0+wasi-0.2.0")
origins = {d: (f"wasi:{d}@0.2.0",) + wasi + (f"wit/deps/{d}",)
           for d in ["cli", "clocks", "filesystem", "http", "io", "random", "sockets"]}
origins["config"] = ("wasi:config@0.2.0-rc.1", "wasmtime-wasi-config", "48.0.8", "wit/deps/config")
origins["keyvalue-draft"] = ("wasi:keyvalue@0.2.0-draft", "wasmtime-wasi-keyvalue", "48.0.8", "wit/deps/keyvalue")
for d, (_, crate, ver, cpath) in origins.items():
    dst = os.path.join(wit, "deps", d)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(os.path.join(src[(crate, ver)], cpath), dst)
origins["keyvalue-draft2"] = ("wasi:keyvalue@0.2.0-draft2", None, None, None)
out = ["# Where every file under wit/deps comes from. Files there are never edited by hand:",
       "# re-vendor with `bash wit/vendor.sh`, which rewrites this record. The test",
       "# `tests/tests/vendored_wit.rs` fails when a file differs from its recorded sha256, when a",
       "# file is not recorded, and (for crate origins present in the local cargo registry) when a",
       "# file differs from the crate's own copy.", ""]
for d, (pkg, crate, ver, cpath) in sorted(origins.items()):
    out += ["[[package]]", f'dir = "{d}"', f'package = "{pkg}"']
    if crate:
        out += [f'crate = "{crate}"', f'crate-version = "{ver}"', f'crate-path = "{cpath}"']
    else:
        out += ["# No published crate ships upstream draft2. Written for kvplug from the signatures of",
                "# WebAssembly/wasi-keyvalue main (fb6e23d, PR #46), with upstream's get-many shape",
                "# (not Spin's); the doc comments are our own words.",
                'origin = "hand-written from upstream signatures"']
    out.append("[package.files]")
    for f in sorted(os.listdir(os.path.join(wit, "deps", d))):
        h = hashlib.sha256(open(os.path.join(wit, "deps", d, f), "rb").read()).hexdigest()
        out.append(f'"{f}" = "{h}"')
    out.append("")
open(os.path.join(wit, "deps.toml"), "w").write("\n".join(out))
PY
echo "re-vendored into $here/deps; record: $here/deps.toml"
