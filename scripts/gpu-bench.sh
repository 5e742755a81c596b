#!/usr/bin/env bash
# Runs ON the GPU machine, in one call, after scripts/gpu-prepare.sh here:
#
#   run(command="scripts/gpu-bench.sh [SECTION...]", carry=[".gpu-bin"])
#
# Sections (default: all, in this order):
#   check      kvrt-cuda-attention --check (decode and prefill attention
#              against cpu::attention, quantize-on-append against the CPU
#              codecs) and kvrt-cuda-engine check (the whole decoder against
#              the CPU backend: greedy tokens and logits) on llama-tiny in
#              every encoding the GPU runs
#   attention  kvrt-cuda-attention --bench and PyTorch SDPA on the same
#              shapes (test/cuda/sdpa_peer.py)
#   e2e        kvrt-cuda-engine bench of llama3-8b in each encoding at
#              POINTS (default 1x4096 8x32768 32x4096: batch x context)
#   peers      test/cuda/e2e_peer.py: HF transformers and a plain PyTorch
#              decode step in a CUDA graph at the same points
#   sparse     kvrt-cuda-sparse --check (two-level sparse selection and
#              attention against the CPU backend), then --bench (against
#              dense decode attention on the same bf16 cache, Llama-3-8B
#              shape, B 1 and 8, L 32K to 128K)
# Outputs go to $OUT (or ./gpu-bench-out). Exits non-zero when a check
# fails.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-bench-out}
mkdir -p "$out"
bin=.gpu-bin
reps=${REPS:-100}
points=${POINTS:-"1x4096 8x32768 32x4096"}
encodings=${ENCODINGS:-"bf16 fp8 polar4 nvfp4"}
sections=("$@")
[ ${#sections[@]} -eq 0 ] && sections=(check attention e2e peers sparse)
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
status=0

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu \
  --format=csv | tee "$out/gpu.txt"

for section in "${sections[@]}"; do
  case $section in
  check)
    # A hang (a kernel waiting on a barrier nothing completes) ends here.
    timeout 300 "$bin/kvrt-cuda-attention" --check > "$out/check.txt" 2>&1 ||
      status=1
    grep -E '^(FAIL|checks:|prefill checks:|append checks:)' "$out/check.txt"
    for e in $encodings; do
      timeout 120 "$bin/kvrt-cuda-engine" check "$bin/llama-tiny-$e.kvpkg" \
        --prompt 300 --steps 16 > "$out/engine-check-$e.txt" 2>&1 || status=1
      echo "engine $e: $(tail -1 "$out/engine-check-$e.txt")"
    done
    ;;
  attention)
    timeout 300 "$bin/kvrt-cuda-attention" --bench --reps "$reps" \
      > "$out/attention.txt" 2>&1 || status=1
    PYTHONUNBUFFERED=1 python3 test/cuda/sdpa_peer.py --reps "$reps" \
      > "$out/sdpa-peer.txt" 2>&1 || status=1
    sed -n '/^kernel/,$p' "$out/attention.txt"
    sed -n '/^impl/,$p' "$out/sdpa-peer.txt"
    ;;
  e2e)
    for e in $encodings; do
      for p in $points; do
        b=${p%x*} l=${p#*x}
        timeout 300 "$bin/kvrt-cuda-engine" bench "$bin/llama3-8b-$e.kvpkg" \
          --batch "$b" --context "$l" --chunk "$l" --steps 30 \
          >> "$out/e2e.txt" 2>&1 || status=1
      done
    done
    grep -E '^(copy|\| llama)' "$out/e2e.txt"
    ;;
  peers)
    PYTHONUNBUFFERED=1 python3 test/cuda/e2e_peer.py \
      --points "$(echo "$points" | tr ' ' ,)" --json "$out/e2e-peers.json" \
      > "$out/e2e-peers.txt" 2>&1 || status=1
    tail -20 "$out/e2e-peers.txt"
    ;;
  sparse)
    timeout 150 "$bin/kvrt-cuda-sparse" --check > "$out/sparse-check.txt" 2>&1 ||
      status=1
    grep -vE '^device' "$out/sparse-check.txt"
    timeout 240 "$bin/kvrt-cuda-sparse" --bench --reps "$reps" \
      > "$out/sparse-bench.txt" 2>&1 || status=1
    sed -n '/^policy/,$p' "$out/sparse-bench.txt"
    ;;
  *)
    echo "gpu-bench: unknown section $section" >&2
    exit 2
    ;;
  esac
done
exit $status
