#!/usr/bin/env bash
# Sets up (toolchain target, ONNX Runtime, the embedded model), builds, and runs batos on
# ./batos-image (or $BATOS_IMAGE).
#
# With no arguments it starts the kernel (`batos serve` on $BATOS_LISTEN, default
# 127.0.0.1:7777; its log goes to a file named below), prints its address, and opens
# the interactive `Architect >` session as its client; leaving the session stops the
# kernel cleanly. A kernel already serving the image is used as it is.
#
# Any arguments are a batos command line instead, e.g.
# `./scripts/run.sh send genesis factorial 5` (a client of the kernel if one serves).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --release -p batos-cli --bin batos
batos="$CARGO_TARGET_DIR/release/batos"
"$batos" model pull
if [ "$#" -gt 0 ]; then
    exec "$batos" "$@"
fi

image="${BATOS_IMAGE:-batos-image}"
listen="${BATOS_LISTEN:-127.0.0.1:7777}"
serving_pid() {
    [ -f "$image/kernel.json" ] || return 1
    local pid
    pid=$(sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p' "$image/kernel.json")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

if pid=$(serving_pid); then
    echo "a kernel (pid $pid) already serves $image; opening the session as its client"
else
    run=$(mktemp -d "${TMPDIR:-/tmp}/batos-run.XXXXXX")
    log="$run/kernel.log"
    mkfifo "$run/ready"
    "$batos" --image "$image" serve --listen "$listen" >"$run/ready" 2>"$log" &
    kernel=$!
    # Leaving the session (or this script failing) stops the kernel: SIGTERM is its
    # clean stop.
    trap 'kill -TERM "$kernel" 2>/dev/null; wait "$kernel" 2>/dev/null; true' EXIT
    # The kernel prints one line once it listens; end of file means it could not start.
    if ! read -r line <"$run/ready"; then
        echo "the kernel did not start:" >&2
        cat "$log" >&2
        exit 1
    fi
    echo "$line (pid $kernel; log: $log)"
fi
"$batos" --image "$image" session
