#!/usr/bin/env bash
# Idempotent set-up shared by run.sh and test.sh: everything a fresh machine needs.
# Sourced, not executed, so that its exports reach the caller.

# One target directory shared by every clone of the repository: builds are slow on
# small machines, and CI clones afresh each time.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/batos/target}"
mkdir -p "$CARGO_TARGET_DIR"

if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "batos needs a Rust toolchain (cargo); install it with rustup first." >&2
        exit 1
    fi
fi

# Capabilities written in Rust are built for core wasm and componentized by the host.
if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
        rustup target add wasm32-unknown-unknown
    fi
    # The test command checks formatting and lints.
    for component in rustfmt clippy; do
        if ! rustup component list --installed | grep -q "^$component"; then
            rustup component add "$component"
        fi
    done
fi

# ONNX Runtime's shared library, for the mind: from the Python registry's onnxruntime
# package (the host loads it dynamically; ORT_DYLIB_PATH overrides the location).
ORT_VERSION=1.31.1
ORT_HOME="$HOME/.cache/batos/onnxruntime-$ORT_VERSION"
if [ ! -f "$ORT_HOME/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" ]; then
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$ORT_HOME" "onnxruntime==$ORT_VERSION"
fi
