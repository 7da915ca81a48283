#!/usr/bin/env bash
# Sets up (toolchain target, ONNX Runtime, the embedded model), builds, and runs batos on
# ./batos-image (or $BATOS_IMAGE). With no arguments it starts the interactive
# `Architect >` session; any arguments are a batos command line, e.g.
# `./scripts/run.sh send genesis factorial 5`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --release -p batos-cli --bin batos
batos="$CARGO_TARGET_DIR/release/batos"
"$batos" model pull
if [ "$#" -eq 0 ]; then
    "$batos" session
else
    "$batos" "$@"
fi
