#!/usr/bin/env bash
# Runs HERE (the build machine): builds the CUDA test and benchmark
# binaries and compiles the artifacts scripts/gpu-bench.sh runs, into
# .gpu-bin/ (ignored by git; the run tool carries it). The GPU machine has
# CUDA and PyTorch but no MLIR, LLVM or protobuf, so nothing is compiled
# there; the binaries link protobuf and cudart statically and need
# libcublasLt.so.13, which the CUDA toolkit there has.
#
#   scripts/gpu-prepare.sh
#   run(command="scripts/gpu-bench.sh", carry=[".gpu-bin"], kind="nvidia-h200")
#
# `scripts/gpu-prepare.sh sparse` builds and copies kvrt-cuda-sparse alone
# (for `scripts/gpu-bench.sh sparse`), with no artifacts to compile.
#
# The artifacts: llama-tiny (2 layers, head dim 64; checked against the
# CPU backend) and llama3-8b with --synthetic-weights generated (timed):
# 2.5 MB each, the runtime makes the 16 GB of weights on the GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
mkdir -p .gpu-bin
if [ "${1:-}" = sparse ]; then
  nice -n 10 ninja -C "$build" kvrt-cuda-sparse
  cp "$build"/test/cuda/kvrt-cuda-sparse .gpu-bin/
  ls -la .gpu-bin
  exit 0
fi
nice -n 10 ninja -C "$build" kvopt kvrt-cuda-attention kvrt-cuda-engine \
  kvrt-cuda-sparse
cp "$build"/test/cuda/kvrt-cuda-attention "$build"/test/cuda/kvrt-cuda-engine \
  "$build"/test/cuda/kvrt-cuda-sparse .gpu-bin/
kvopt="$build/bin/kvopt"
encodings=(bf16 fp8 polar4 nvfp4)
passes=("" "kv-quantize{encoding=fp8}" "kv-quantize{encoding=polar bits=4}"
        "kv-quantize{encoding=nvfp4}")
for i in "${!encodings[@]}"; do
  for model in llama-tiny llama3-8b; do
    args=(compile --synthetic "$model" --synthetic-weights generated --target h200
          -o ".gpu-bin/$model-${encodings[$i]}.kvpkg")
    [ -n "${passes[$i]}" ] && args+=(--passes "${passes[$i]}")
    "$kvopt" "${args[@]}"
  done
done
ls -la .gpu-bin
