#!/usr/bin/env bash
# Runs ON the GPU machine, in one call, after scripts/gpu-prepare.sh here:
#
#   run(command="scripts/gpu-bench.sh [SECTION...]", carry=[".gpu-pack"])
#
# (.gpu-pack holds .gpu-bin packed, which this script unpacks first.)
#
# Sections (default: all but sparse-e2e, which takes about 5 minutes, in
# this order):
#   check      kvrt-cuda-attention --check (decode and prefill attention
#              against cpu::attention, quantize-on-append against the CPU
#              codecs, RMSNorm against cpu::rmsNorm, eviction's scores,
#              selection and compaction against the CPU's on the same
#              cached bytes), then the engine section
#   engine     kvrt-cuda-engine check (the whole decoder against the CPU
#              backend: greedy tokens and logits) on llama-tiny in every
#              encoding the GPU runs and with sparse selection
#              (SELECTIONS, default "twolevel quest fp8-twolevel fp8-all
#              polar4-twolevel polar4-all polar4-all-320 polar3-twolevel
#              polar3-all nvfp4-twolevel nvfp4-all fp8-exact-twolevel
#              polar4-exact-twolevel polar4-exact-all", the last three
#              beside exact sinks and window);
#              the dense artifact of the encoding says how far selection
#              moves the logits), with exact sinks and windows beside the
#              codes (EXACT, default "polar4 fp8 nvfp4"; a
#              chunked prefill), KIVI with its window (KIVI, default
#              "kivi4 kivi2"; a chunked prefill, groups encoded during
#              decode), low-rank values and keys (LOWRANK, default "lowrank
#              lowrank-odd lowrank-folded lowrank-keys lowrank-keys-odd
#              lowrank-keys-plain lowrank-kv": bf16 latents beside bf16
#              keys or values or both, keys centred on their mean or not
#              (-plain), sinks and window exact, and values folded into v_proj
#              and o_proj (a random Llama with real weights: the GPU
#              applies the identity basis); a chunked prefill), and the
#              artifacts it must refuse (selection over KIVI or over
#              fp8 with exact sinks and window, runner-up
#              prefetches, TriAttention over polar keys, a polar-4
#              latent of keys), each with its sentence; the
#              first two layers of the default model (its Q4_1 and Q8_0
#              block weights, uploaded through the CPU's decoding); the
#              offloaded llama-tiny (bf16, fp8, polar-4) against the same
#              artifact resident on the GPU (equal logits, counted misses); eviction (EVICTIONS:
#              StreamingLLM in bf16, fp8, nvfp4 and polar4, TriAttention
#              calibrated in bf16 shared and per KV head, with
#              combine=zmax shared and per KV head, fp8 and nvfp4, SnapKV and H2O in bf16 and per KV head over fp8):
#              the same compactions, the same kept positions per layer and
#              head (KEPT lines name those that differ; TriAttention's,
#              SnapKV's and H2O's may differ in near ties) and logits until a
#              sequence's kept
#              entries first differ; then
#              kvrt-cuda-attention --evict, eviction's kernels timed at
#              B=8, L=32K beside one decode step's attention
#   attention  kvrt-cuda-attention --bench and PyTorch SDPA on the same
#              shapes (test/cuda/sdpa_peer.py)
#   e2e        kvrt-cuda-engine bench of llama3-8b in each encoding at
#              POINTS (default 1x4096 8x32768 32x4096: batch x context)
#   peers      test/cuda/e2e_peer.py: HF transformers and a plain PyTorch
#              decode step in a CUDA graph at the same points
#   sparse     kvrt-cuda-sparse --check (two-level sparse selection and
#              attention against the CPU backend over bf16, fp8 and polar-4
#              caches), then --bench (against dense decode attention on the
#              same cache, each of the three, Llama-3-8B shape, B 1 and 8,
#              L 32K to 128K)
#   sparse-e2e kvrt-cuda-engine bench of llama3-8b dense and two-level
#              sparse on the same cache, for each DENSE:SPARSE pair of
#              artifacts in SPARSE_PAIRS (default "bf16:twolevel
#              fp8:fp8-twolevel polar4:polar4-twolevel") at SPARSE_POINTS
#              (default 1x32768 8x32768 1x131008 8x65536), then a table of
#              the two side by side ("-" where a point does not fit). 131008: the model's
#              131072 positions less the bench's 33 decode steps, rounded
#              down to a page. Not 8 x 131072: its bf16 cache alone (137
#              GB) and the 16 GB of weights pass the H200's 141 GB.
#   offload    kvrt-cuda-engine bench of llama3-8b two-level sparse,
#              resident and offloaded (16 GB of device pages), at
#              OFFLOAD_POINTS (default 8x32768 4x65536 2x131008), each
#              prefilled in one chunk (a chunked prefill of an offloaded
#              layer reads its earlier chunks over the bus), then the two
#              side by side with the offload's hit rate and copies.
#   default    kvrt-cuda-engine check of the default model's artifact
#              (DEFAULT_ARTIFACT, default .gpu-bin/default-blocks.kvpkg:
#              `kvopt compile default --target h200`, not made by
#              scripts/gpu-prepare.sh, 98 MB) against the CPU backend.
#              Not in the default sections.
#   largest    kvrt-cuda-engine bench of llama3-8b at 32K with the largest
#              batch each encoding of LARGEST fits in 80 GB (default
#              "kivi4:44": encoding:batch; "offload-capacity:N" (32 GB
#              of device pages) and "twolevel:N" for the cache in host
#              memory and resident), beside nvidia-smi's device memory
#              every 250 ms and the host's used memory every 500 ms (MiB),
#              for the peaks. Not in the default sections.
#   ab         kvrt-cuda-engine bench of llama3-8b in each encoding at
#              POINTS with the bench flag AB (default --fuse) at 0 and at
#              1, one after the other, twice: an A/B on one machine (they
#              vary 3-7% between calls). With AB_ENV (environment
#              settings, e.g. "KVX_X=0 KVX_X=1": an experiment's switch),
#              each of those instead, in order and then in reverse. Not in
#              the default sections.
#   ab-binary  this build against a base build, one after the other on one
#              machine (base, new, new, base): kvrt-cuda-engine bench of
#              llama3-8b in each encoding at POINTS, then
#              kvrt-cuda-attention --bench --encoding E for each of
#              AB_ATTENTION (default "polar4": its rows at B = 8 or L =
#              32K). The base binaries come from .gpu-base/base.tar.xz
#              (`KEEP_BASE=1 scripts/gpu-prepare.sh` packs those .gpu-bin
#              held before it rebuilds): carry .gpu-base too. Not in the
#              default sections.
#   ab-sparse  this build's kvrt-cuda-sparse against a base build's: --check
#              with this build, then --bench of AB_SPARSE_CACHES (default
#              "polar4,polar3,polar2,nvfp4,fp8,bf16") at AB_SPARSE_POINTS
#              (default 8x131072), base, new, new, base, each two-level
#              row's time and parts labelled. The base binary comes from
#              .gpu-base/base.tar.xz as for ab-binary (`KEEP_BASE=1
#              scripts/gpu-prepare.sh sparse` packs the kvrt-cuda-sparse
#              .gpu-bin held, then builds this one): carry .gpu-base too.
#              Not in the default sections.
#   ab-variants every kvrt-cuda-sparse of .gpu-variants/variants.tar.xz
#              (`scripts/gpu-prepare.sh variant NAME` builds and packs
#              each): --check with each but `base`, then --bench of
#              AB_SPARSE_CACHES at AB_SPARSE_POINTS for each in VARIANTS
#              (default: base, then the others by name) and again in
#              reverse order, each two-level row's time and parts
#              labelled; AB_CHECK=0 skips the checks (a call short of
#              device time: their timings are what it can still give).
#              Carry .gpu-variants. Not in the default sections.
#   sparse-stalls ncu's warp stall samples per SASS instruction of one
#              sparse split kernel (the second launched) of
#              kvrt-cuda-sparse --bench over each of STALLS_CACHES (default
#              "polar4") at STALLS_POINT (default 8x131072), cut at the
#              kernel's barriers by scripts/ncu-phases.py: each part's
#              share of the samples and of the instructions. Not in the
#              default sections.
#   step       ncu over one decode step of llama3-8b at STEP_POINT (BxL,
#              default 1x4096) in each of STEP_ENCODINGS (default "bf16
#              polar4"), without graphs, and the kernel time per kernel
#              name (scripts/ncu-step-breakdown.py); about 40 s each at
#              1x4096. Not in the default sections.
#   serve      kvopt serve --backend cuda (the runtime-only kvopt that
#              gpu-prepare.sh packs): serve_client.py's prefix, resume and
#              preempt scenarios on llama-tiny (bf16), then
#              scripts/serve-bench.py on llama3-8b: SERVE_CLIENTS clients
#              (default 32) sending twice as many requests of 32 tokens, each
#              prompt after a common text of SERVE_PREFIX characters (default
#              8000, a token each for the byte-level tokenizer), with and
#              without --no-prefix-sharing, in each of SERVE_ENCODINGS
#              (default "bf16 polar4"). Not in the default sections.
#   serve-long scripts/serve-bench.py on llama3-8b in each of
#              SERVE_ENCODINGS: SERVE_LONG_CLIENTS clients (default 64),
#              one request each of SERVE_LONG characters (default 8000,
#              no two alike) and SERVE_LONG_TOKENS tokens (default 2048),
#              where the cache's size (--cache-memory's default) decides
#              how many run at once and preemptions make up the rest. Not
#              in the default sections. Both pass SERVE_ARGS (default none)
#              to every kvopt serve they start, e.g. --prefill-chunk=512.
# Outputs go to $OUT (or ./gpu-bench-out). Exits non-zero when a check
# fails.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-bench-out}
mkdir -p "$out"
bin=.gpu-bin
# unpack ARCHIVE DIR: DIR emptied, then ARCHIVE's files in it.
unpack() {
  rm -rf "$2" && mkdir -p "$2" &&
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
      "$1" "$2"
}
if [ -f .gpu-pack/gpu-bin.tar.xz ]; then
  unpack .gpu-pack/gpu-bin.tar.xz "$bin" || exit 1
fi
reps=${REPS:-100}
points=${POINTS:-"1x4096 8x32768 32x4096"}
encodings=${ENCODINGS:-"bf16 fp8 polar4 polar3 polar2 nvfp4"}
selections=${SELECTIONS:-"twolevel quest fp8-twolevel fp8-all polar4-twolevel polar4-all polar4-all-320 polar3-twolevel polar3-all nvfp4-twolevel nvfp4-all fp8-exact-twolevel polar4-exact-twolevel polar4-exact-all"}
exact=${EXACT:-"polar4 fp8 nvfp4"}
kivi=${KIVI:-"kivi4 kivi2"}
lowrank=${LOWRANK:-"lowrank lowrank-odd lowrank-folded lowrank-keys lowrank-keys-odd lowrank-keys-plain lowrank-kv"}
evictions=${EVICTIONS:-"streaming-bf16 streaming-fp8 streaming-nvfp4 streaming-polar4 tri-bf16 tri-each-bf16 tri-zmax-bf16 tri-each-zmax-bf16 tri-fp8 tri-nvfp4 snapkv-bf16 snapkv-each-fp8 h2o-bf16 h2o-each-fp8"}
sparse_points=${SPARSE_POINTS:-"1x32768 8x32768 1x131008 8x65536"}
sparse_pairs=${SPARSE_PAIRS:-"bf16:twolevel fp8:fp8-twolevel polar4:polar4-twolevel"}
offload_points=${OFFLOAD_POINTS:-"8x32768 4x65536 2x131008"}
step_encodings=${STEP_ENCODINGS:-"bf16 polar4"}
step_point=${STEP_POINT:-1x4096}
step_batch=${step_point%x*} step_context=${step_point#*x}
ab_attention=${AB_ATTENTION:-"polar4"}
ab_sparse_caches=${AB_SPARSE_CACHES:-"polar4,polar3,polar2,nvfp4,fp8,bf16"}
ab_sparse_points=${AB_SPARSE_POINTS:-8x131072}
stalls_caches=${STALLS_CACHES:-"polar4"}
stalls_point=${STALLS_POINT:-8x131072}
largest=${LARGEST:-"kivi4:44"}
default_artifact=${DEFAULT_ARTIFACT:-$bin/default-blocks.kvpkg}
serve_clients=${SERVE_CLIENTS:-32}
serve_prefix=${SERVE_PREFIX:-8000}
serve_encodings=${SERVE_ENCODINGS:-"bf16 polar4"}
serve_long=${SERVE_LONG:-8000}
serve_long_clients=${SERVE_LONG_CLIENTS:-64}
serve_long_tokens=${SERVE_LONG_TOKENS:-2048}
serve_args=${SERVE_ARGS:-}
sections=("$@")
[ ${#sections[@]} -eq 0 ] && sections=(check attention e2e peers sparse)
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
status=0

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu \
  --format=csv | tee "$out/gpu.txt"

# time_sparse_variants LABEL NAME:BINARY...: kvrt-cuda-sparse --bench of
# AB_SPARSE_CACHES at AB_SPARSE_POINTS with each binary in turn, each
# two-level row's time and parts labelled with the run's name.
time_sparse_variants() {
  local label=$1 run name binary i=0 failed=0
  shift
  for run in "$@"; do
    name=${run%%:*} binary=${run#*:} i=$((i + 1))
    timeout 300 "$binary" --bench --reps "$reps" --caches "$ab_sparse_caches" \
      --points "$ab_sparse_points" > "$out/$label-$i-$name.txt" 2>&1 || failed=1
    # policy cache B L dense_us sparse_us speedup level1 level2 attend
    sed -n '/^policy/,$p' "$out/$label-$i-$name.txt" | awk -v l="$label" -v v="$name" \
      '$1 == "twolevel" { print l, $2, "B=" $3, "L=" $4, v ":", $6, "us (" $8, $9, $10 "), dense", $5 }'
  done
  return $failed
}

# The engine section, also the end of the check section.
engine_checks() {
  for e in $encodings $selections; do
    extra=()
    # A selecting artifact against the dense one of its encoding (the
    # prefix of its name, or bf16).
    dense=bf16
    [[ $e == *-* ]] && dense=${e%%-*}
    [[ $e == *-exact-* ]] && dense=${e%%-exact-*}-exact
    [[ " $selections " == *" $e "* ]] &&
      extra=(--dense "$bin/llama-tiny-$dense.kvpkg")
    # Polar 4-bit: the GPU reads a decode step's own token encoded, the CPU
    # from its bf16 tail (CudaBackend.cpp); its rows differ by 1e-2 to 2e-2
    # (largest 2.05e-2 of 53 rows, 2026-12-02).
    # 2-bit codes are coarser: 3.06e-2 on 2026-12-06 (polar-3 2.79e-2),
    # the same with the kernels before the byte table.
    if [ "$e" = polar2 ]; then
      extra+=(--tolerance 0.04)
    elif [[ $e == polar* ]]; then
      extra+=(--tolerance 0.03)
    fi
    # fp8 and polar: the GPU's keys come from bf16 projections, and a code
    # one step away from the CPU's moves q.k far more than bf16 rounding
    # does, so far more near ties flip (fp8: 32 of 55 rows on 2026-12-06;
    # kvrt-cuda-sparse checks the kernels on the same codes). The -all
    # artifacts keep every entry: there every row must be within the
    # tolerance.
    # 3-bit polar and nvfp4 codes are coarser still: 48 and 47 of 55 rows
    # of polar3-twolevel and nvfp4-twolevel on 2026-12-06, while
    # polar3-all and nvfp4-all put every row within 2.97e-2 and 1.63e-2.
    # Block summaries in fp8 (2026-12-07) round each bound outward to 3
    # bits, so a key a bf16 ulp away can move its block's bound a whole
    # step: bf16 two-level 19 of 55 rows (5 with bf16 summaries), fp8 42,
    # polar-4 43, polar-3 48, nvfp4 46 on an H100.
    [[ $e == twolevel ]] && extra+=(--flips 0.4)
    [[ $e == *-twolevel ]] && extra+=(--flips 0.9)
    [[ $e == *-all || $e == *-all-* ]] && extra+=(--flips 0)
    timeout 120 "$bin/kvrt-cuda-engine" check "$bin/llama-tiny-$e.kvpkg" \
      --prompt 300 --steps 16 "${extra[@]}" > "$out/engine-check-$e.txt" \
      2>&1 || status=1
    grep -E '^(selection moved|[0-9]+ of [0-9]+ rows)' \
      "$out/engine-check-$e.txt"
    echo "engine $e: $(tail -1 "$out/engine-check-$e.txt")"
  done
  # A chunked prefill of fp8, nvfp4 and polar caches: the chunks after the
  # first read the earlier tokens decoded to bf16 pages (PrefillDecode.h),
  # the CPU their codes.
  for e in fp8 nvfp4 polar4; do
    extra=()
    [ "$e" = polar4 ] && extra+=(--tolerance 0.03)
    timeout 120 "$bin/kvrt-cuda-engine" check "$bin/llama-tiny-$e.kvpkg" \
      --prompt 300 --steps 16 --chunk 128 "${extra[@]}" \
      > "$out/engine-check-$e-chunked.txt" 2>&1 || status=1
    echo "engine $e chunked: $(tail -1 "$out/engine-check-$e-chunked.txt")"
  done
  # Exact sinks and window beside the codes: the GPU reads what the CPU
  # reads, the first prompt's leading chunks prefilled alone (rows after
  # stored tokens read the store and their own chunk).
  for e in $exact; do
    timeout 120 "$bin/kvrt-cuda-engine" check "$bin/llama-tiny-$e-exact.kvpkg" \
      --prompt 300 --steps 16 --chunk 128 > "$out/engine-check-$e-exact.txt" \
      2>&1 || status=1
    echo "engine $e-exact: $(tail -1 "$out/engine-check-$e-exact.txt")"
  done
  # KIVI: its window of 128 tokens in bf16 and groups encoded as they leave
  # it, after a chunked prefill (the chunks after the first reading the
  # earlier groups decoded to bf16 pages, the window from its store) and
  # during decode (the GPU reads what the CPU reads). Low-rank values
  # likewise: latents summed and each row mapped back once, the sinks and
  # window read exact, tokens leaving the window read as latents during
  # decode; low-rank keys rebuilt and rotated in the split kernel.
  for e in $kivi $lowrank; do
    timeout 120 "$bin/kvrt-cuda-engine" check "$bin/llama-tiny-$e.kvpkg" \
      --prompt 300 --steps 60 --chunk 128 > "$out/engine-check-$e.txt" \
      2>&1 || status=1
    echo "engine $e: $(tail -1 "$out/engine-check-$e.txt")"
  done
  # Block weights (Q4_1, Q8_0) uploaded as bf16 through the CPU's decoding:
  # two layers and 8192 tokens of the default model.
  timeout 120 "$bin/kvrt-cuda-engine" check "$bin/smollm2-2-blocks.kvpkg" \
    --prompt 300 --steps 16 > "$out/engine-check-blocks.txt" 2>&1 || status=1
  grep -E '^[0-9]+ of [0-9]+ rows' "$out/engine-check-blocks.txt"
  echo "engine blocks: $(tail -1 "$out/engine-check-blocks.txt")"
  # Offload: the same logits as the resident cache, bit for bit (bf16,
  # fp8 and 4-bit polar).
  for e in offload fp8-offload polar4-offload nvfp4-offload; do
    resident=twolevel
    [[ $e == *-offload ]] && resident=${e%-offload}-twolevel
    # As their resident artifacts' checks above (offloaded polar-4: 43 of
    # 53 rows beyond the tolerance on 2026-12-07).
    extra=(--flips 0.4)
    [[ $e == polar4-* ]] && extra+=(--tolerance 0.03)
    [[ $e != offload ]] && extra+=(--flips 0.9)
    timeout 120 "$bin/kvrt-cuda-engine" check "$bin/llama-tiny-$e.kvpkg" \
      --prompt 300 --steps 16 --resident "$bin/llama-tiny-$resident.kvpkg" \
      "${extra[@]}" > "$out/engine-check-$e.txt" 2>&1 || status=1
    grep -E '^(offload|FAIL)' "$out/engine-check-$e.txt"
    echo "engine $e: $(tail -1 "$out/engine-check-$e.txt")"
  done
  # Eviction: a prompt of 300 (and 151) tokens compacted to the budget of
  # 128 entries after the prefill, then every 8 decode steps; the kept
  # positions of every layer and head compared after each call.
  for e in $evictions; do
    extra=()
    # Polar 4-bit: the tolerance of the plain polar4 check (above).
    [ "$e" = streaming-polar4 ] && extra+=(--tolerance 0.03)
    # fp8 and nvfp4 keys: a projection rounded otherwise (bf16 against
    # fp32) moves a code by a whole step, not by a bf16 ulp, so more near
    # ties flip at the budget's edge (2.3% and 3.1% on 2026-12-03).
    [[ "$e" == tri-fp8 || "$e" == tri-nvfp4 ]] && extra+=(--kept-flips 0.05)
    # SnapKV's and H2O's scores are made from the queries themselves, which
    # the two backends' projections round otherwise (SnapKV: 2.3% flipped
    # on 2026-12-03); H2O's GPU sums also add in no fixed order.
    [[ "$e" == snapkv-* || "$e" == h2o-* ]] && extra+=(--kept-flips 0.05)
    timeout 120 "$bin/kvrt-cuda-engine" check "$bin/llama-tiny-evict-$e.kvpkg" \
      --prompt 300 --steps 16 "${extra[@]}" \
      > "$out/engine-check-evict-$e.txt" 2>&1 || status=1
    grep -E '^(eviction|FAIL)' "$out/engine-check-evict-$e.txt"
    grep -m 5 '^KEPT' "$out/engine-check-evict-$e.txt"
    echo "engine evict-$e: $(tail -1 "$out/engine-check-evict-$e.txt")"
  done
  timeout 120 "$bin/kvrt-cuda-attention" --evict --reps "$reps" \
    > "$out/evict-bench.txt" 2>&1 || status=1
  grep -vE '^device' "$out/evict-bench.txt"
  # Refused when the engine is created, with one sentence (exit 2).
  for r in kivi4-twolevel polar4-exact-offload offload-runners \
    evict-tri-polar4 lowrank-keys-polar4; do
    timeout 60 "$bin/kvrt-cuda-engine" check "$bin/llama-tiny-$r.kvpkg" \
      > "$out/engine-refuse-$r.txt" 2>&1
    code=$?
    [ $code -eq 2 ] || status=1
    echo "engine $r (exit $code): $(tail -1 "$out/engine-refuse-$r.txt")"
  done
}

# The decode step's ms of a kvrt-cuda-engine bench on stdin.
stepMs() { awk -F'|' '/^\| llama/ { gsub(/ /, "", $7); print $7 }'; }

# benchStep DIR E BxL [FLAG...]: DIR's kvrt-cuda-engine bench of llama3-8b
# in encoding E at B rows of L tokens (prefilled in one chunk), 30 decode
# steps; its output.
benchStep() {
  local dir=$1 e=$2 b=${3%x*} l=${3#*x}
  shift 3
  timeout 300 "$dir/kvrt-cuda-engine" bench "$bin/llama3-8b-$e.kvpkg" \
    --batch "$b" --context "$l" --chunk "$l" --steps 30 "$@" 2>&1
}

for section in "${sections[@]}"; do
  case $section in
  check)
    # A hang (a kernel waiting on a barrier nothing completes) ends here.
    timeout 300 "$bin/kvrt-cuda-attention" --check > "$out/check.txt" 2>&1 ||
      status=1
    grep -E '^(FAIL|checks:|prefill checks:|append checks:|argmax checks:|norm checks:|evict checks:)' \
      "$out/check.txt"
    engine_checks
    ;;
  engine)
    engine_checks
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
    timeout 300 "$bin/kvrt-cuda-sparse" --check > "$out/sparse-check.txt" 2>&1 ||
      status=1
    grep -vE '^device' "$out/sparse-check.txt"
    timeout 420 "$bin/kvrt-cuda-sparse" --bench --reps "$reps" \
      > "$out/sparse-bench.txt" 2>&1 || status=1
    sed -n '/^policy/,$p' "$out/sparse-bench.txt"
    ;;
  sparse-e2e)
    # A bench's line for llama3-8b: | artifact | graphs | batch | context
    # | TTFT s | step ms ($7) | tokens/s ($8) | cache GB read ($9) | ...
    field() { awk -F'|' -v f="$1" '/^\| llama3-8b-/ { gsub(/ /, "", $f); print $f; exit }' "$2"; }
    rows=()
    for pair in $sparse_pairs; do
      for p in $sparse_points; do
        b=${p%x*} l=${p#*x}
        for a in "${pair%%:*}" "${pair#*:}"; do
          timeout "${BENCH_TIMEOUT:-280}" "$bin/kvrt-cuda-engine" bench \
            "$bin/llama3-8b-$a.kvpkg" \
            --batch "$b" --context "$l" --chunk 32768 --steps 30 \
            > "$out/sparse-e2e-$a-$p.txt" 2>&1
          cat "$out/sparse-e2e-$a-$p.txt" >> "$out/sparse-e2e.txt"
        done
        dense="$out/sparse-e2e-${pair%%:*}-$p.txt"
        sparse="$out/sparse-e2e-${pair#*:}-$p.txt"
        dm=$(field 7 "$dense") sm=$(field 7 "$sparse")
        rows+=("$(printf '| %s | %s | %s | %s | %s | %s | %s | %s |' \
          "${pair#*:}" "$p" "${dm:--}" "${sm:--}" \
          "$([ -n "$dm" ] && [ -n "$sm" ] && awk -v d="$dm" -v s="$sm" 'BEGIN { printf "%.2fx", d / s }' || echo -)" \
          "$(field 8 "$sparse")" "$(field 9 "$dense")" "$(field 9 "$sparse")")")
        rm -f "$dense" "$sparse"
      done
    done
    grep -E '^(copy|\| llama|\| artifact|\| ---)' "$out/sparse-e2e.txt" |
      awk '!/^\| (artifact|---)/ || !seen[$0]++'
    echo "| selection | B x L | dense step ms | sparse step ms | speedup | sparse tokens/s | cache GB read dense | sparse |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    printf '%s\n' "${rows[@]}"
    ;;
  offload)
    for p in $offload_points; do
      b=${p%x*} l=${p#*x}
      for a in twolevel offload; do
        timeout "${BENCH_TIMEOUT:-280}" "$bin/kvrt-cuda-engine" bench \
          "$bin/llama3-8b-$a.kvpkg" \
          --batch "$b" --context "$l" --chunk "$l" --steps 30 \
          >> "$out/offload.txt" 2>&1 || status=1
      done
    done
    grep -E '^(copy|\| llama|offload|\| artifact|\| ---)' "$out/offload.txt" |
      awk '!/^\| (artifact|---)/ || !seen[$0]++'
    ;;
  default)
    # The whole default model (its blocks) against the CPU backend. Its 30
    # layers of bf16 weights, GEMM inputs and cache move the logits by up to
    # 1.7e-2 (300 random tokens) and 2.4e-2 (text) against float32 in numpy
    # (scripts/bf16-rounding.py); an H100 gave 2.15e-2 (2026-12-05).
    timeout 300 "$bin/kvrt-cuda-engine" check "$default_artifact" \
      --prompt 300 --steps 32 --tolerance 0.03 \
      > "$out/engine-check-default.txt" 2>&1 ||
      status=1
    grep -E '^[0-9]+ of [0-9]+ rows' "$out/engine-check-default.txt"
    echo "engine default: $(tail -1 "$out/engine-check-default.txt")"
    ;;
  largest)
    # The largest batch at 32K in 80 GB, with the peak device memory and
    # the host's (an offloaded cache lives in pinned host memory).
    for point in $largest; do
      e=${point%:*} b=${point#*:}
      nvidia-smi --query-gpu=memory.used --format=csv,noheader -lms 250 \
        > "$out/largest-$e-$b-memory.txt" &
      sampler=$!
      while sleep 0.5; do free -m | awk '/^Mem:/ { print $3 }'; done \
        > "$out/largest-$e-$b-host.txt" &
      host_sampler=$!
      # An offloaded layer's chunked prefill reads its earlier chunks over
      # the bus, once per block of query rows (22 x 32K in chunks of 8192
      # ran past 200 s on an H100): one chunk a sequence.
      chunk=()
      [[ $e == *offload* ]] && chunk=(--chunk 32768)
      timeout 400 "$bin/kvrt-cuda-engine" bench "$bin/llama3-8b-$e.kvpkg" \
        --batch "$b" --context 32768 --steps 10 "${chunk[@]}" \
        > "$out/largest-$e-$b.txt" 2>&1 || status=1
      kill $sampler $host_sampler
      grep -E '^(prefill|offload|\| llama)' "$out/largest-$e-$b.txt"
      echo "largest $e x $b: device peak $(sort -n "$out/largest-$e-$b-memory.txt" |
        tail -1), host peak $(sort -n "$out/largest-$e-$b-host.txt" | tail -1) MiB used"
    done
    ;;
  ab)
    flag=${AB:-"--fuse"}
    if [ -n "${AB_ENV:-}" ]; then
      read -r -a settings <<<"$AB_ENV"
      order=("${settings[@]}")
      for ((i = ${#settings[@]} - 1; i >= 0; i--)); do
        order+=("${settings[i]}")
      done
      for e in $encodings; do
        for p in $points; do
          for setting in "${order[@]}"; do
            # The substitution's subshell keeps the setting to this run.
            step=$(export "$setting" && benchStep "$bin" "$e" "$p" | stepMs)
            [ -n "$step" ] || status=1
            echo "ab $e $p $setting: ${step:-failed} ms"
          done
        done
      done
      continue
    fi
    for e in $encodings; do
      for p in $points; do
        for round in 1 2; do
          for v in 0 1; do
            step=$(benchStep "$bin" "$e" "$p" "$flag" "$v" | stepMs)
            [ -n "$step" ] || status=1
            echo "ab $e $p round $round $flag $v: ${step:-failed} ms"
          done
        done
      done
    done
    ;;
  ab-binary)
    base=.gpu-base-bin
    unpack .gpu-base/base.tar.xz "$base" || {
      status=1
      continue
    }
    for e in $encodings; do
      for p in $points; do
        for v in base new new base; do
          dir=$bin
          [ $v = base ] && dir=$base
          step=$(benchStep "$dir" "$e" "$p" |
            tee -a "$out/ab-binary-e2e-$v.txt" | stepMs)
          [ -n "$step" ] || status=1
          echo "ab-binary e2e $e $p $v: ${step:-failed} ms"
        done
      done
    done
    for e in $ab_attention; do
      for v in base new new base; do
        dir=$bin
        [ $v = base ] && dir=$base
        timeout 120 "$dir/kvrt-cuda-attention" --bench --reps "$reps" \
          --encoding "$e" > "$out/ab-binary-attention-$e-$v.txt" 2>&1 ||
          status=1
        sed -n '/^kernel/,$p' "$out/ab-binary-attention-$e-$v.txt" |
          awk -v v="$v" '$3 == "8" || $4 == "32768" {
            print "ab-binary attention", $2, "B=" $3, "L=" $4, v ":", $5, "us" }'
      done
    done
    ;;
  ab-sparse)
    base=.gpu-base-bin
    unpack .gpu-base/base.tar.xz "$base" || {
      status=1
      continue
    }
    timeout 300 "$bin/kvrt-cuda-sparse" --check > "$out/ab-sparse-check.txt" 2>&1 ||
      status=1
    grep -vE '^device' "$out/ab-sparse-check.txt" | tail -5
    time_sparse_variants ab-sparse base:$base/kvrt-cuda-sparse \
      new:$bin/kvrt-cuda-sparse new:$bin/kvrt-cuda-sparse \
      base:$base/kvrt-cuda-sparse || status=1
    ;;
  ab-variants)
    variants_bin=.gpu-variants-bin
    unpack .gpu-variants/variants.tar.xz "$variants_bin" || {
      status=1
      continue
    }
    names=${VARIANTS:-$( (cd "$variants_bin" && ls | grep -x base; ls | grep -vx base))}
    runs=()
    for v in $names; do
      runs+=("$v:$variants_bin/$v")
      [ "$v" = base ] || [ "${AB_CHECK:-1}" = 0 ] && continue
      timeout 300 "$variants_bin/$v" --check > "$out/ab-variants-check-$v.txt" 2>&1 ||
        status=1
      echo "check $v: $(grep -E '^sparse checks' "$out/ab-variants-check-$v.txt")"
    done
    for ((i = ${#runs[@]} - 1; i >= 0; --i)); do runs+=("${runs[i]}"); done
    time_sparse_variants ab-variants "${runs[@]}" || status=1
    ;;
  sparse-stalls)
    report=$(mktemp -d)
    for c in $stalls_caches; do
      timeout 180 ncu --clock-control none --section SourceCounters \
        --import-source no -k regex:sparseSplit --launch-skip 1 \
        --launch-count 1 -f -o "$report/$c" "$bin/kvrt-cuda-sparse" --bench \
        --reps 2 --caches "$c" --points "$stalls_point" \
        > "$out/stalls-$c.txt" 2>&1 || status=1
      ncu --import "$report/$c.ncu-rep" --page source --csv \
        --print-source sass > "$out/stalls-$c.csv" 2>&1 || status=1
      echo "the sparse split kernel over $c at $stalls_point:"
      python3 scripts/ncu-phases.py "$out/stalls-$c.csv" || status=1
    done
    rm -rf "$report"
    ;;
  step)
    for e in $step_encodings; do
      ncu --csv --clock-control none --cache-control none \
        --metrics gpu__time_duration.sum "$bin/kvrt-cuda-engine" bench \
        "$bin/llama3-8b-$e.kvpkg" --batch "$step_batch" \
        --context "$step_context" --chunk "$step_context" --steps 3 \
        --graphs 0 > "$out/step-$e.csv" 2>&1 || status=1
      echo "llama3-8b-$e, batch $step_batch, context $step_context:"
      python3 scripts/ncu-step-breakdown.py "$out/step-$e.csv" || status=1
    done
    ;;
  serve)
    for scenario in prefix resume preempt; do
      echo "serve_client.py $scenario (llama-tiny, bf16):"
      KVOPT_BACKEND=cuda timeout 300 python3 test/tools/serve_client.py \
        "$bin/kvopt" "$bin/llama-tiny-bf16.kvpkg" "$scenario" 2>&1 ||
        status=1
    done
    for e in $serve_encodings; do
      for sharing in "" "--no-prefix-sharing"; do
        echo "serve-bench llama3-8b-$e, a common prefix of $serve_prefix" \
          "characters ${sharing:-shared}:"
        timeout 300 python3 scripts/serve-bench.py "$bin/llama3-8b-$e.kvpkg" \
          --kvopt "$bin/kvopt" --backend cuda --clients "$serve_clients" \
          --requests $((2 * serve_clients)) --max-tokens 32 \
          --shared-prefix-chars "$serve_prefix" \
          --serve-args="$sharing $serve_args" 2>&1 ||
          status=1
      done
    done
    ;;
  serve-long)
    for e in $serve_encodings; do
      echo "serve-bench llama3-8b-$e, prompts of $serve_long characters:"
      timeout 300 python3 scripts/serve-bench.py "$bin/llama3-8b-$e.kvpkg" \
        --kvopt "$bin/kvopt" --backend cuda --clients "$serve_long_clients" \
        --requests "$serve_long_clients" --max-tokens "$serve_long_tokens" \
        --prompt-chars "$serve_long" --serve-args="$serve_args" 2>&1 ||
        status=1
    done
    ;;
  *)
    echo "gpu-bench: unknown section $section" >&2
    exit 2
    ;;
  esac
done
exit $status
