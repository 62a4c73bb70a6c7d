# Sourced by scripts/quickstart and scripts/test: installs what a fresh machine of this kind
# lacks. Each step checks first, so a second run costs nothing.
# usage: source scripts/setup.sh [--with-wac]

kvplug_setup() {
    if ! rustup target list --installed | grep -qx wasm32-wasip2; then
        echo "==> installing the wasm32-wasip2 target"
        rustup target add wasm32-wasip2
    fi
    if [ "${1:-}" = "--with-wac" ] && [ "$(wac --version 2>/dev/null)" != "wac-cli 0.12.0" ]; then
        # Only the `wit` feature: `wac plug` on local files needs no registry client, and
        # leaving it out halves the install (about 2 minutes here instead of 5).
        echo "==> installing wac-cli 0.12.0"
        cargo install --locked wac-cli --version 0.12.0 --no-default-features --features wit
    fi
}
