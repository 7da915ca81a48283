#!/usr/bin/env bash
# Runs every test of the workspace: unit, integration (tests/), the crash harness,
# the CLI, the examples and benches (benches in their quick mode).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc
