# Sourced by the scripts in this folder: installs what a fresh machine of this kind lacks.
# Each step checks first, so a second run costs nothing.
# usage: source scripts/setup.sh; kvplug_setup [--with-tools]

# The wasmtime CLI features this project uses (run, serve, wasi:http, wasi:config): the
# full default set takes about twice as long to build.
WASMTIME_FEATURES=run,serve,cranelift,component-model,component-model-async,wasi-http,wasi-config,wasi-keyvalue,cache,config,parallel-compilation,pooling-allocator,wat,logging

kvplug_setup() {
    if ! rustup target list --installed | grep -qx wasm32-wasip2; then
        echo "==> installing the wasm32-wasip2 target"
        rustup target add wasm32-wasip2
    fi
    [ "${1:-}" = "--with-tools" ] || return 0
    if [ "$(wac --version 2>/dev/null)" != "wac-cli 0.12.0" ]; then
        # Only the `wit` feature: `wac plug`/`wac compose` on local files need no registry
        # client, and leaving it out halves the install (about 2 minutes here).
        echo "==> installing wac-cli 0.12.0"
        cargo install --locked wac-cli --version 0.12.0 --no-default-features --features wit
    fi
    case "$(wasmtime --version 2>/dev/null)" in
        "wasmtime 48.0.8"*) ;;
        *)
            echo "==> installing wasmtime-cli 48.0.8 (the newest that builds with rustc 1.95)"
            cargo install --locked wasmtime-cli --version 48.0.8 --no-default-features \
                --features "$WASMTIME_FEATURES"
            ;;
    esac
    # The services the backends' tests start on loopback (Debian bookworm: etcd 3.4.23,
    # Redis 7.0.15, webdis 0.1.9). The packages do not start daemons here.
    local packages=""
    command -v node >/dev/null || packages="$packages nodejs npm"
    python3 -c "import venv, ensurepip" 2>/dev/null || packages="$packages python3-venv"
    command -v etcd >/dev/null || packages="$packages etcd-server"
    command -v redis-server >/dev/null || packages="$packages redis-server"
    command -v webdis >/dev/null || packages="$packages webdis"
    if [ -n "$packages" ]; then
        echo "==> installing apt packages:$packages"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages
    fi
    if [ ! -x tests/js/node_modules/.bin/jco ] || [ tests/js/package-lock.json -nt tests/js/node_modules/.package-lock.json ]; then
        echo "==> installing jco and the WASI shims (tests/js/package-lock.json)"
        # Not `npm ci`: npm 11 rejects this lock file because some of jco's optional,
        # other-platform packages resolve to no version. `npm install` with the lock present
        # installs exactly the locked versions and leaves the lock unchanged (checked).
        (cd tests/js && npm install --no-audit --no-fund)
    fi
    # The cloud-store emulators: dynalite and Azurite from npm, moto from PyPI, each at the
    # versions of its lock file (tests/services/package-lock.json, requirements.txt: the
    # whole dependency closure, pinned).
    if [ ! -x tests/services/node_modules/.bin/dynalite ] || [ tests/services/package-lock.json -nt tests/services/node_modules/.package-lock.json ]; then
        echo "==> installing dynalite and Azurite (tests/services/package-lock.json)"
        (cd tests/services && npm ci --no-audit --no-fund)
    fi
    if [ ! -x tests/services/venv/bin/moto_server ] || [ tests/services/requirements.txt -nt tests/services/venv/pyvenv.cfg ]; then
        echo "==> installing moto (tests/services/requirements.txt) in tests/services/venv"
        rm -rf tests/services/venv
        python3 -m venv tests/services/venv
        tests/services/venv/bin/pip install --quiet --disable-pip-version-check -r tests/services/requirements.txt
    fi
}
