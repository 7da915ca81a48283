#!/usr/bin/env bash
# The synthesis benchmark through llama.cpp's OpenAI-compatible server (PyPI
# `llama-cpp-python[server]`, installed by scripts/llama-cpp.sh: about 11 minutes to
# build, so kept out of CI), running the very same GGUF as the in-process mind, on the
# same threads. Usage: scripts/bench-server.sh [MODEL] — MODEL defaults to the
# catalogue's first; BATOS_TASKS and BATOS_MBPP choose the tasks as for the bench.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
./scripts/llama-cpp.sh
model="${1:-qwen2.5-coder-1.5b-instruct-q4_k_m}"
gguf="${BATOS_MODELS:-$HOME/.cache/batos/models}/$model.gguf"
[ -f "$gguf" ] || cargo run -q -p batos-cli --bin batos -- model pull "$model"
port=8765
threads="$(nproc)"
PYTHONPATH="$HOME/.cache/batos/llama-cpp" python3 -m llama_cpp.server \
  --model "$gguf" --model_alias "$model" --n_threads "$threads" --n_threads_batch "$threads" \
  --n_ctx 4096 --host 127.0.0.1 --port "$port" > /tmp/batos-llama-server.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  if curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then cat /tmp/batos-llama-server.log; exit 1; fi
  sleep 1
done
BATOS_BENCH_MODELS="$model" BATOS_BENCH_SERVER="http://127.0.0.1:$port/v1" \
  cargo bench -p batos --bench synthesis
