#!/usr/bin/env bash
# Runs ON the GPU machine, in one call: the CUDA decode-attention check and
# benchmark (kvrt-cuda-attention), then PyTorch SDPA on the same shapes.
# The binary is built here, not there (that machine has CUDA and PyTorch
# but no MLIR, LLVM or protobuf; the binary links protobuf and cudart
# statically and needs only libc/libstdc++ and the driver):
#
#   nice -n 10 ninja -C build-cuda kvrt-cuda-attention
#   mkdir -p .gpu-bin && cp build-cuda/test/cuda/kvrt-cuda-attention .gpu-bin/
#   # .gpu-bin/ is in .git/info/exclude; the run tool carries it:
#   run(command="scripts/gpu-bench.sh", carry=[".gpu-bin"], kind="nvidia-h200")
#
# Outputs go to $OUT (or ./gpu-bench-out): kvrt-cuda-attention.txt,
# sdpa-peer.txt, gpu.txt. Exits non-zero when a check fails.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-bench-out}
mkdir -p "$out"
bin=.gpu-bin/kvrt-cuda-attention
reps=${REPS:-100}

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu \
  --format=csv | tee "$out/gpu.txt"
ldd "$bin" | tee -a "$out/gpu.txt"

# A hang (a kernel waiting on a barrier nothing completes) ends here.
timeout 150 "$bin" --reps "$reps" > "$out/kvrt-cuda-attention.txt" 2>&1
status=$?
PYTHONUNBUFFERED=1 python3 test/cuda/sdpa_peer.py --reps "$reps" \
  > "$out/sdpa-peer.txt" 2>&1 || status=$((status ? status : 3))

# The tables last: the run tool returns the end of the output.
grep -E '^(FAIL|checks:|device)' "$out/kvrt-cuda-attention.txt"
echo
sed -n '/^kernel/,$p' "$out/kvrt-cuda-attention.txt"
echo
grep -E '^(torch|auto runs)' "$out/sdpa-peer.txt"
sed -n '/^impl/,$p' "$out/sdpa-peer.txt"
if ((status)); then
  echo "gpu-bench: exit $status"
  tail -20 "$out/kvrt-cuda-attention.txt" "$out/sdpa-peer.txt"
fi
exit $status
