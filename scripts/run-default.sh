#!/usr/bin/env bash
# The main job: all setup (idempotent), a build, then the pipeline on the
# embedded default model as far as this version of kvopt goes (see
# docs/status.md).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
build=${KVOPT_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -G Ninja \
  -DPython3_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build "$build"
bin=$build/bin

echo "== kv-quantize on examples/decoder-layer.mlir (polar, 4 bits) =="
"$bin/kvopt-opt" "$root/examples/decoder-layer.mlir" \
  --pass-pipeline='builtin.module(kv-quantize{encoding=polar bits=4})'
