#!/usr/bin/env bash
# Sets up, builds and runs batos on ./batos-image (or $BATOS_IMAGE).
# With no arguments it awakens the image and shows genesis; any arguments are a batos
# command line, e.g. `./scripts/run.sh send genesis clone`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --release -p batos-host --bin batos
batos="$CARGO_TARGET_DIR/release/batos"
if [ "$#" -eq 0 ]; then
    "$batos" awaken
    "$batos" inspect genesis
else
    "$batos" "$@"
fi
