#!/usr/bin/env bash
# Runs HERE (the build machine): builds the CUDA test and benchmark
# binaries and compiles the artifacts scripts/gpu-bench.sh runs, into
# .gpu-bin/ (ignored by git; the run tool carries it). The GPU machine has
# CUDA and PyTorch but no MLIR, LLVM or protobuf, so nothing is compiled
# there; the binaries link protobuf and cudart statically and need
# libcublasLt.so.13, which the CUDA toolkit there has.
#
#   scripts/gpu-prepare.sh
#   run(command="scripts/gpu-bench.sh", carry=[".gpu-pack"])
#
# `scripts/gpu-prepare.sh sparse` builds and copies kvrt-cuda-sparse alone
# (for `scripts/gpu-bench.sh sparse`), with no artifacts to compile.
#
# An A/B of a change against the build before it:
#
#   scripts/gpu-prepare.sh                  # at the base commit
#   KEEP_BASE=1 scripts/gpu-prepare.sh      # with the change
#   run(command="scripts/gpu-bench.sh ab-binary", carry=[".gpu-pack", ".gpu-base"])
#
# and of a sparse kernel change, kvrt-cuda-sparse alone:
#
#   scripts/gpu-prepare.sh sparse
#   KEEP_BASE=1 scripts/gpu-prepare.sh sparse
#   run(command="scripts/gpu-bench.sh ab-sparse", carry=[".gpu-pack", ".gpu-base"])
#
# and of several sparse kernel variants in one call (a GPU start is
# scarce): build each variant's kvrt-cuda-sparse under a name, `base`
# first, then time them all (no .gpu-pack needed):
#
#   scripts/gpu-prepare.sh variant base     # at the base commit
#   scripts/gpu-prepare.sh variant NAME     # with each change
#   run(command="scripts/gpu-bench.sh ab-variants", carry=[".gpu-variants"])
#
# The variants' stripped binaries wait in .gpu-variants-bin/ and travel
# packed in .gpu-variants/variants.tar.xz (about 3.5 MB each);
# `scripts/gpu-prepare.sh variant` with no name empties both.
#
# The artifacts: llama-tiny (2 layers, head dim 64; checked against the
# CPU backend) and llama3-8b with --synthetic-weights generated (timed):
# 2.5 MB each, the runtime makes the 16 GB of weights on the GPU. Besides
# one per encoding (KIVI with its default window of 128 bf16 tokens): exact sinks and windows beside the codes, sparse
# selection (two-level and Quest on llama-tiny, two-level over fp8,
# every layer selecting; two-level on llama3-8b with the pass's defaults
# but its top 128 blocks and 2048 entries), offload (llama-tiny with a
# budget small enough to miss; llama3-8b with 16 GB of device pages, and
# with 32 GB for the largest batch), and
# llama-tiny artifacts the cuda backend must refuse (selection over KIVI
# or over fp8 with exact sinks and window,
# offload with runner-up prefetches, TriAttention over polar keys, low-rank
# keys); llama-tiny with eviction (StreamingLLM, calibrated
# TriAttention, SnapKV and H2O); and llama-tiny with low-rank values (calibrated
# bf16 latents beside bf16 keys).
#
# The GPU binaries come from their own runtime-only build folder, GPU_BUILD
# (default build-gpu, configured here on first use), for sm_90a alone: the
# main build also compiles every kernel for sm_100 (CMakeLists.txt), which
# makes the binaries too large to carry and is never run on the H200.
# BUILD names the main build folder (default build), whose kvopt compiles
# the artifacts; KVOPT a kvopt binary to use instead of building it.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
gpu_build=${GPU_BUILD:-build-gpu}
mkdir -p .gpu-bin
if [ ! -f "$gpu_build/build.ninja" ]; then
  CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(dirname "$PWD")} cmake -S . -B "$gpu_build" \
    -G Ninja -DKVOPT_ENABLE_COMPILER=OFF -DKVOPT_ENABLE_TESTS=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90a-real -DPython3_EXECUTABLE="$(command -v python3)"
fi
# What travels: .gpu-bin packed (about a quarter of its size), which
# scripts/gpu-bench.sh unpacks on the GPU machine.
pack() {
  mkdir -p .gpu-pack
  tar -C .gpu-bin -cJf .gpu-pack/gpu-bin.tar.xz .
  ls -la .gpu-pack
}
# KEEP_BASE=1: first packs the engine, attention and sparse binaries
# .gpu-bin holds (the build before this one; `sparse` alone: that one)
# into .gpu-base/base.tar.xz, for `scripts/gpu-bench.sh ab-binary` and
# `ab-sparse`.
if [ -n "${KEEP_BASE:-}" ]; then
  kept=(kvrt-cuda-sparse)
  [ "${1:-}" = sparse ] || kept+=(kvrt-cuda-engine kvrt-cuda-attention)
  mkdir -p .gpu-base
  tar -C .gpu-bin -cJf .gpu-base/base.tar.xz "${kept[@]}"
  ls -la .gpu-base
fi
if [ "${1:-}" = variant ]; then
  if [ -z "${2:-}" ]; then
    rm -rf .gpu-variants .gpu-variants-bin
    exit 0
  fi
  case $2 in
    *[!A-Za-z0-9_-]*) echo "a variant's name is letters, digits, - and _" >&2; exit 2 ;;
  esac
  nice -n 10 ninja -C "$gpu_build" kvrt-cuda-sparse
  mkdir -p .gpu-variants .gpu-variants-bin
  strip -o ".gpu-variants-bin/$2" "$gpu_build"/test/cuda/kvrt-cuda-sparse
  tar -C .gpu-variants-bin -cJf .gpu-variants/variants.tar.xz .
  ls -la .gpu-variants .gpu-variants-bin
  exit 0
fi
if [ "${1:-}" = sparse ]; then
  nice -n 10 ninja -C "$gpu_build" kvrt-cuda-sparse
  cp "$gpu_build"/test/cuda/kvrt-cuda-sparse .gpu-bin/
  ls -la .gpu-bin
  pack
  exit 0
fi
# kvopt from the runtime-only build: `kvopt serve|run|bench` on the GPU
# (gpu-bench.sh serve); it compiles nothing.
nice -n 10 ninja -C "$gpu_build" kvrt-cuda-attention kvrt-cuda-engine \
  kvrt-cuda-sparse kvopt
[ -z "${KVOPT:-}" ] && nice -n 10 ninja -C "$build" kvopt
cp "$gpu_build"/test/cuda/kvrt-cuda-attention \
  "$gpu_build"/test/cuda/kvrt-cuda-engine \
  "$gpu_build"/test/cuda/kvrt-cuda-sparse "$gpu_build"/bin/kvopt .gpu-bin/
# Without their symbols (4 MB): the device tool carries 64 MiB in all.
strip .gpu-bin/kvrt-cuda-attention .gpu-bin/kvrt-cuda-engine \
  .gpu-bin/kvrt-cuda-sparse .gpu-bin/kvopt
kvopt=${KVOPT:-$build/bin/kvopt}
# The artifacts that need calibration read a fixed text: the README of
# commit 27824ea, with which their checks passed on 2026-12-04.
# Calibrating on the README itself changed those artifacts with each edit
# of it, and the folded low-rank artifact's logit error moved from 1.8e-2
# to 2.2e-2 against its 2e-2 tolerance.
calibration=test/cuda/calibration.txt
encodings=(bf16 fp8 polar4 polar3 polar2 nvfp4 kivi4 kivi2)
passes=("" "kv-quantize{encoding=fp8}" "kv-quantize{encoding=polar bits=4}"
        "kv-quantize{encoding=polar bits=3}" "kv-quantize{encoding=polar bits=2}"
        "kv-quantize{encoding=nvfp4}" "kv-quantize{encoding=int bits=4 group=32}"
        "kv-quantize{encoding=int bits=2 group=64}")
for i in "${!encodings[@]}"; do
  for model in llama-tiny llama3-8b; do
    args=(compile --synthetic "$model" --synthetic-weights generated --target h200
          -o ".gpu-bin/$model-${encodings[$i]}.kvpkg")
    [ -n "${passes[$i]}" ] && args+=(--passes "${passes[$i]}")
    "$kvopt" "${args[@]}"
  done
done
# Exact tokens beside the codes: llama-tiny with 4 sinks and a window of 64
# in each encoding that keeps them (checked against the CPU backend), and
# llama3-8b polar 4-bit with the README's window of 128 (timed).
for e in "polar4 encoding=polar bits=4" "fp8 encoding=fp8" "nvfp4 encoding=nvfp4"; do
  "$kvopt" compile --synthetic llama-tiny --synthetic-weights generated \
    --target h200 -o ".gpu-bin/llama-tiny-${e%% *}-exact.kvpkg" \
    --passes "kv-quantize{${e#* } sinks=4 window=64}"
done
"$kvopt" compile --synthetic llama3-8b --synthetic-weights generated \
  --target h200 -o .gpu-bin/llama3-8b-polar4-w128.kvpkg \
  --passes "kv-quantize{encoding=polar bits=4 window=128}"
select="kv-sparse-select{method=twolevel block=16 top_blocks=4 top_tokens=48 dense_layers=0}"
tiny=(compile --synthetic llama-tiny --synthetic-weights generated --target h200)
"$kvopt" "${tiny[@]}" --passes "$select" -o .gpu-bin/llama-tiny-twolevel.kvpkg
"$kvopt" "${tiny[@]}" -o .gpu-bin/llama-tiny-quest.kvpkg \
  --passes "kv-sparse-select{method=quest block=16 top_blocks=4 dense_layers=0}"
# Selection over fp8 (a scale per slot; checked against the CPU backend),
# also with a budget above every check's length (every row attends to all
# its entries through the sparse kernels), and over nvfp4.
"$kvopt" "${tiny[@]}" --passes "kv-quantize{encoding=fp8},$select" \
  -o .gpu-bin/llama-tiny-fp8-twolevel.kvpkg
all="kv-sparse-select{method=twolevel block=16 top_blocks=256 top_tokens=4096 dense_layers=0}"
"$kvopt" "${tiny[@]}" -o .gpu-bin/llama-tiny-fp8-all.kvpkg --passes \
  "kv-quantize{encoding=fp8},$all"
# Likewise over 4- and 3-bit polar.
for bits in 4 3; do
  "$kvopt" "${tiny[@]}" -o ".gpu-bin/llama-tiny-polar$bits-twolevel.kvpkg" \
    --passes "kv-quantize{encoding=polar bits=$bits},$select"
  "$kvopt" "${tiny[@]}" -o ".gpu-bin/llama-tiny-polar$bits-all.kvpkg" \
    --passes "kv-quantize{encoding=polar bits=$bits},$all"
done
# Every entry of the checks' 316 tokens again, in six splits a row of 64
# (65 above), which merge in their cluster and the last of which is empty.
"$kvopt" "${tiny[@]}" -o .gpu-bin/llama-tiny-polar4-all-320.kvpkg --passes \
  "kv-quantize{encoding=polar bits=4},${all/top_tokens=4096/top_tokens=320}"
"$kvopt" "${tiny[@]}" --passes "kv-quantize{encoding=nvfp4},$select" \
  -o .gpu-bin/llama-tiny-nvfp4-twolevel.kvpkg
"$kvopt" "${tiny[@]}" -o .gpu-bin/llama-tiny-nvfp4-all.kvpkg --passes \
  "kv-quantize{encoding=nvfp4},$all"
# Over KIVI-4 (refused by the cuda backend).
"$kvopt" "${tiny[@]}" -o .gpu-bin/llama-tiny-kivi4-twolevel.kvpkg --passes \
  "kv-quantize{encoding=int bits=4 group=32},$select"
# Over fp8 and 4-bit polar with exact sinks and window beside the codes
# (checked against their dense -exact artifacts), the latter also with a
# budget above every check's length (every coded entry listed, the sinks
# and window read exact); offloaded beside them (refused).
"$kvopt" "${tiny[@]}" -o .gpu-bin/llama-tiny-fp8-exact-twolevel.kvpkg \
  --passes "kv-quantize{encoding=fp8 sinks=4 window=64},$select"
"$kvopt" "${tiny[@]}" -o .gpu-bin/llama-tiny-polar4-exact-twolevel.kvpkg \
  --passes "kv-quantize{encoding=polar bits=4 sinks=4 window=64},$select"
"$kvopt" "${tiny[@]}" -o .gpu-bin/llama-tiny-polar4-exact-all.kvpkg \
  --passes "kv-quantize{encoding=polar bits=4 sinks=4 window=64},$all"
"$kvopt" "${tiny[@]}" -o .gpu-bin/llama-tiny-polar4-exact-offload.kvpkg \
  --passes "kv-quantize{encoding=polar bits=4 sinks=4 window=64},$select,kv-offload{gpu_budget=52224}"
# 24 KV-head pages per layer on the device, 4 KB each: the check's two
# sequences (up to 62 pages per layer) miss often and hit often.
"$kvopt" "${tiny[@]}" --passes "$select,kv-offload{gpu_budget=196608}" \
  -o .gpu-bin/llama-tiny-offload.kvpkg
# The same 24 pages a layer over fp8 (a scale per slot) and 4-bit polar,
# checked against fp8-twolevel and polar4-twolevel.
"$kvopt" "${tiny[@]}" -o .gpu-bin/llama-tiny-fp8-offload.kvpkg --passes \
  "kv-quantize{encoding=fp8},$select,kv-offload{gpu_budget=104448}"
"$kvopt" "${tiny[@]}" -o .gpu-bin/llama-tiny-polar4-offload.kvpkg --passes \
  "kv-quantize{encoding=polar bits=4},$select,kv-offload{gpu_budget=52224}"
"$kvopt" "${tiny[@]}" -o .gpu-bin/llama-tiny-nvfp4-offload.kvpkg --passes \
  "kv-quantize{encoding=nvfp4},$select,kv-offload{gpu_budget=55296}"
"$kvopt" "${tiny[@]}" --passes "$select,kv-offload{ratio=0.5 runners_up=4}" \
  -o .gpu-bin/llama-tiny-offload-runners.kvpkg
# Eviction on llama-tiny, checked against the CPU backend: a budget of 128
# entries compacted every 8 decode steps; StreamingLLM in each encoding
# the GPU compacts, TriAttention (its query centres calibrated on
# test/cuda/calibration.txt through the synthetic model's byte-level
# tokenizer) in bf16, per KV head, fp8 and nvfp4, and with its query
# heads combined by their standardised maximum (combine=zmax, shared and
# per KV head); SnapKV (its 32 observed queries) and H2O in bf16 and per KV
# head over fp8; and TriAttention over polar keys, which the cuda backend
# must refuse.
stream="kv-evict{method=streaming budget=128 interval=8}"
tri="kv-evict{method=triattention budget=128 window=32 sinks=4 interval=8"
for e in "bf16 " "fp8 ,kv-quantize{encoding=fp8}" \
  "nvfp4 ,kv-quantize{encoding=nvfp4}" \
  "polar4 ,kv-quantize{encoding=polar bits=4}"; do
  "$kvopt" "${tiny[@]}" --passes "$stream${e#* }" \
    -o ".gpu-bin/llama-tiny-evict-streaming-${e%% *}.kvpkg"
done
for e in "bf16 }" "each-bf16  heads=each}" "fp8 },kv-quantize{encoding=fp8}" \
  "nvfp4 },kv-quantize{encoding=nvfp4}" \
  "polar4 },kv-quantize{encoding=polar bits=4}" "zmax-bf16  combine=zmax}" \
  "each-zmax-bf16  heads=each combine=zmax}"; do
  "$kvopt" "${tiny[@]}" --calibrate "$calibration" --passes "$tri${e#* }" \
    -o ".gpu-bin/llama-tiny-evict-tri-${e%% *}.kvpkg"
done
snap="kv-evict{method=snapkv budget=128 window=32 sinks=4 interval=8"
for e in "bf16 }" "each-fp8  heads=each},kv-quantize{encoding=fp8}"; do
  "$kvopt" "${tiny[@]}" --passes "$snap${e#* }" \
    -o ".gpu-bin/llama-tiny-evict-snapkv-${e%% *}.kvpkg"
done
h2o="kv-evict{method=h2o budget=128 window=32 sinks=4 interval=8"
for e in "bf16 }" "each-fp8  heads=each},kv-quantize{encoding=fp8}"; do
  "$kvopt" "${tiny[@]}" --passes "$h2o${e#* }" \
    -o ".gpu-bin/llama-tiny-evict-h2o-${e%% *}.kvpkg"
done
# Low-rank values on llama-tiny, calibrated on test/cuda/calibration.txt,
# checked against the CPU backend: ratio 0.5 with the pass's 4 sinks and
# window of 64 kept exact, and an odd rank (27) with 2 sinks and a window
# of 16 (more tokens read as latents); low-rank keys beside bf16 values
# likewise (ratio 0.5, and rank 27 with 2 sinks and a window of 16; both
# centred on the keys' calibrated mean, the pass's default, and ratio 0.5
# without, centre=false), and keys and values both at ratio 0.5; and
# low-rank keys with a polar-4 latent, which the cuda backend must refuse.
"$kvopt" "${tiny[@]}" --calibrate "$calibration" \
  --passes "kv-lowrank{side=value ratio=0.5}" -o .gpu-bin/llama-tiny-lowrank.kvpkg
"$kvopt" "${tiny[@]}" --calibrate "$calibration" \
  --passes "kv-lowrank{side=value rank=27 allocate=uniform sinks=2 window=16}" \
  -o .gpu-bin/llama-tiny-lowrank-odd.kvpkg
"$kvopt" "${tiny[@]}" --calibrate "$calibration" \
  --passes "kv-lowrank{side=key ratio=0.5}" -o .gpu-bin/llama-tiny-lowrank-keys.kvpkg
"$kvopt" "${tiny[@]}" --calibrate "$calibration" \
  --passes "kv-lowrank{side=key rank=27 allocate=uniform sinks=2 window=16}" \
  -o .gpu-bin/llama-tiny-lowrank-keys-odd.kvpkg
"$kvopt" "${tiny[@]}" --calibrate "$calibration" \
  --passes "kv-lowrank{side=key ratio=0.5 centre=false}" \
  -o .gpu-bin/llama-tiny-lowrank-keys-plain.kvpkg
"$kvopt" "${tiny[@]}" --calibrate "$calibration" \
  --passes "kv-lowrank{side=key ratio=0.5},kv-lowrank{side=value ratio=0.5}" \
  -o .gpu-bin/llama-tiny-lowrank-kv.kvpkg
"$kvopt" "${tiny[@]}" --calibrate "$calibration" \
  --passes "kv-lowrank{side=key ratio=0.5},kv-quantize{encoding=polar bits=4}" \
  -o .gpu-bin/llama-tiny-lowrank-keys-polar4.kvpkg
# Folded low-rank values (kv-lowrank{fold=true}) rewrite v_proj and o_proj,
# which needs weights with bytes: a random Llama of llama-tiny's attention
# shape (4/2 heads of 64), written as a Hugging Face folder in f32.
python3 -c "import sys; sys.path.insert(0, 'test/unit/runtime'); import reference_forward as r; r.write_random_model('LlamaForCausalLM', sys.argv[1], sys.argv[2], h=256, heads=4, kv_heads=2, d=64, ffn=512, positions=4096)" \
  "${KVOPT_TEST_MODELS_DIR:-../shared/models}/tinystories-656k" .gpu-bin/random-llama
"$kvopt" compile .gpu-bin/random-llama --target h200 --calibrate "$calibration" \
  --passes "kv-lowrank{side=value ratio=0.5 fold=true}" \
  -o .gpu-bin/llama-tiny-lowrank-folded.kvpkg
rm -r .gpu-bin/random-llama
# Block weights on the GPU: the first two layers and 8192 tokens of the
# default model (its Q4_1 projections, Q8_0 embeddings and LM head, f32
# norms), which the cuda backend uploads through the CPU's decoding. 10 MB:
# the whole model (98 MB, `scripts/gpu-bench.sh default`) is more than the
# run tool carries in one call.
default_gguf=${KVOPT_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/kvopt}/models/SmolLM2-135M-Instruct.Q4_1.gguf
python3 test/cuda/truncate_gguf.py "$default_gguf" .gpu-bin/smollm2-2.gguf \
  --layers 2 --vocab 8192
"$kvopt" compile .gpu-bin/smollm2-2.gguf --target h200 \
  -o .gpu-bin/smollm2-2-blocks.kvpkg
rm .gpu-bin/smollm2-2.gguf
select8b="kv-sparse-select{method=twolevel top_blocks=128 top_tokens=2048}"
"$kvopt" compile --synthetic llama3-8b --synthetic-weights generated \
  --target h200 -o .gpu-bin/llama3-8b-twolevel.kvpkg --passes "$select8b"
for e in "fp8 encoding=fp8" "polar4 encoding=polar bits=4" \
  "polar4-w128 encoding=polar bits=4 window=128"; do
  "$kvopt" compile --synthetic llama3-8b --synthetic-weights generated \
    --target h200 -o ".gpu-bin/llama3-8b-${e%% *}-twolevel.kvpkg" \
    --passes "kv-quantize{${e#* }},$select8b"
done
"$kvopt" compile --synthetic llama3-8b --synthetic-weights generated \
  --target h200 -o .gpu-bin/llama3-8b-offload.kvpkg \
  --passes "$select8b,kv-offload{gpu_budget=${OFFLOAD_BUDGET:-16G}}"
# For the largest batch with offload (`largest`): a step of 26 rows selects
# 26 x 128 blocks of each KV head, more than 16 GB of device pages hold.
"$kvopt" compile --synthetic llama3-8b --synthetic-weights generated \
  --target h200 -o .gpu-bin/llama3-8b-offload-capacity.kvpkg \
  --passes "$select8b,kv-offload{gpu_budget=32G}"
# The same over 4-bit polar: a quarter of the host memory a sequence.
"$kvopt" compile --synthetic llama3-8b --synthetic-weights generated \
  --target h200 -o .gpu-bin/llama3-8b-polar4-offload-capacity.kvpkg \
  --passes "kv-quantize{encoding=polar bits=4},$select8b,kv-offload{gpu_budget=32G}"
ls -la .gpu-bin
pack
