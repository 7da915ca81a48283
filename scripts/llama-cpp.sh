#!/usr/bin/env bash
# Installs llama.cpp's Python binding and its OpenAI-compatible server
# (PyPI `llama-cpp-python[server]`) into ~/.cache/batos/llama-cpp: the anchor of the mind
# bench and the server the synthesis bench measures beside the in-process mind. Builds
# llama.cpp from source for this CPU (about 11 minutes on 2 cores), once; kept out of CI.
set -euo pipefail
target="${HOME}/.cache/batos/llama-cpp"
version="0.3.36"
if PYTHONPATH="$target" python3 -c "import llama_cpp, llama_cpp.server, sys; sys.exit(llama_cpp.__version__ != '$version')" 2>/dev/null; then
  echo "llama-cpp-python $version is installed in $target"
  exit 0
fi
if ! command -v cmake >/dev/null || ! command -v g++ >/dev/null; then
  apt-get update -qq && apt-get install -y -qq cmake g++ >/dev/null
fi
rm -rf "$target.partial"
CMAKE_ARGS="-DGGML_NATIVE=ON" python3 -m pip install --quiet --no-cache-dir \
  --target "$target.partial" "llama-cpp-python[server]==$version"
rm -rf "$target"
mv "$target.partial" "$target"
echo "llama-cpp-python $version is installed in $target"
