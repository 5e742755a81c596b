#!/usr/bin/env bash
# The quality table of the README: the default model compiled once per KV
# cache encoding, then ONE `kvopt eval` over all the artifacts (perplexity
# and attention fidelity at a 2048-token context on "Pride and Prejudice",
# the text scripts/setup.sh installs). The table goes to stdout and
# OUT/quality.txt, the results to OUT/quality.json.
#
#   scripts/quality-table.sh [--kvopt PATH] [--out DIR] [--only NAME,...]
#                            [kvopt eval options, e.g. --max-tokens 4096]
#
# --kvopt (or $KVOPT) defaults to build/bin/kvopt, --out to build/quality;
# --only keeps the named rows (bf16 first: it is the reference of the ppl
# change). Artifacts are compiled again only when kvopt is newer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kvopt=${KVOPT:-$root/build/bin/kvopt}
out=$root/build/quality
only=""
eval_options=()
while (($#)); do
  case $1 in
    --kvopt) kvopt=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) eval_options+=("$1"); shift ;;
  esac
done
texts=${KVOPT_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/kvopt}/data
data=$texts/pride-and-prejudice.txt
calibration=$texts/emma.txt

# name and pass pipeline of each row; the first is the reference. The
# scales of fp8 per_head and nvfp4 are calibrated on "Emma" (never on the
# evaluated text); int is KIVI at group 32 and, at bits per coordinate
# closer to polar's, group 64.
encodings=(
  "bf16        kv-quantize{encoding=bf16}"
  "fp8         kv-quantize{encoding=fp8 scale=per_head}"
  "fp8-dynamic kv-quantize{encoding=fp8}"
  "nvfp4       kv-quantize{encoding=nvfp4}"
  "int4        kv-quantize{encoding=int bits=4 group=32}"
  "int4-g64    kv-quantize{encoding=int bits=4 group=64}"
  "int2        kv-quantize{encoding=int bits=2 group=32}"
  "int2-g64    kv-quantize{encoding=int bits=2 group=64}"
  "polar4      kv-quantize{encoding=polar bits=4}"
  "polar3      kv-quantize{encoding=polar bits=3}"
  "polar2      kv-quantize{encoding=polar bits=2}"
  "polar3-qjl  kv-quantize{encoding=polar bits=3},kv-quantize{encoding=polar bits=3 qjl=true side=key}"
)

if [ ! -x "$kvopt" ]; then
  echo "quality-table: $kvopt is not an executable kvopt; build first or give --kvopt" >&2
  exit 1
fi
for text in "$data" "$calibration"; do
  if [ ! -f "$text" ]; then
    echo "quality-table: $text is missing; run scripts/setup.sh" >&2
    exit 1
  fi
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
kvopt=$(cd "$(dirname "$kvopt")" && pwd)/$(basename "$kvopt")
artifacts=()
for row in "${encodings[@]}"; do
  read -r name pipeline <<<"$row"
  if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then
    continue
  fi
  artifact=$out/$name.kvpkg
  if [ ! -f "$artifact" ] || [ "$kvopt" -nt "$artifact" ]; then
    calibrate=()
    if [[ $pipeline == *per_head* || $pipeline == *nvfp4* ]]; then
      calibrate=(--calibrate "$calibration")
    fi
    echo "== kvopt compile default ${calibrate[*]} --passes '$pipeline'" >&2
    "$kvopt" compile default "${calibrate[@]}" --passes "$pipeline" \
      -o "$artifact"
  fi
  artifacts+=("$name.kvpkg")
done
if ((${#artifacts[@]} == 0)); then
  echo "quality-table: --only $only names none of the rows" >&2
  exit 1
fi

echo "== kvopt eval ${artifacts[*]} --task ppl,fidelity --context 2048" >&2
(cd "$out" && "$kvopt" eval "${artifacts[@]}" --task ppl,fidelity \
  --data "$data" --context 2048 --json quality.json "${eval_options[@]}" \
  >quality.txt)
cat "$out/quality.txt"
