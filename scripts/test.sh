#!/usr/bin/env bash
# Checks the formatting and lints, then runs every test of the workspace: unit,
# integration (one binary per crate, in tests/<crate>/), the crash harness, the CLI,
# the examples and benches (benches in their quick mode), and the doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# The UI's tests drive a real browser: Debian's chromium through its chromedriver; the
# workers' tests run real NATS servers (Debian's nats-server, with JetStream).
missing=()
if ! command -v chromedriver >/dev/null 2>&1 || ! [ -x /usr/bin/chromium ]; then
    missing+=(chromium chromium-driver)
fi
if ! command -v nats-server >/dev/null 2>&1; then
    missing+=(nats-server)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then apt=(apt-get); else apt=(sudo apt-get); fi
    "${apt[@]}" update -qq
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq "${missing[@]}"
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc
# The example plugins are a workspace of their own (built for wasm by `batos plugin
# add`); their unit tests run natively through the SDK's test harness.
(cd plugins && cargo test --locked)
