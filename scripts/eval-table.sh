#!/usr/bin/env bash
# A README table: the default model compiled once per row of
# scripts/tables/NAME.table, then ONE `kvopt eval` over all the artifacts
# with the table's `eval:` options ("--flag value" pairs) (on "Pride and Prejudice", the text
# scripts/setup.sh installs). Calibration statistics, for rows whose passes
# need them, come from one `kvopt calibrate` on "Emma". The table goes to
# stdout and OUT/NAME.txt, the results to OUT/NAME.json.
#
#   scripts/eval-table.sh NAME [--kvopt PATH] [--out DIR] [--only ROW,...]
#                              [more kvopt eval options, e.g. --max-tokens 4095]
#
# NAME is quality, eviction, lowrank, lowrank-summary or sparse. --kvopt
# (or $KVOPT) defaults to build/bin/kvopt, --out to build/NAME; --only
# keeps the named rows (keep the first: it is the reference of the ppl
# change). Artifacts are compiled again only when kvopt is newer; later
# options override the table's.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if (($# == 0)) || [[ $1 == -* ]]; then
  echo "usage: scripts/eval-table.sh quality|eviction|lowrank|lowrank-summary|sparse [options]" >&2
  exit 1
fi
table=$1
shift
rows_file=$root/scripts/tables/$table.table
if [ ! -f "$rows_file" ]; then
  echo "eval-table: there is no table \"$table\" ($rows_file)" >&2
  exit 1
fi
kvopt=${KVOPT:-$root/build/bin/kvopt}
out=$root/build/$table
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

if [ ! -x "$kvopt" ]; then
  echo "eval-table: $kvopt is not an executable kvopt; build first or give --kvopt" >&2
  exit 1
fi
for text in "$data" "$calibration"; do
  if [ ! -f "$text" ]; then
    echo "eval-table: $text is missing; run scripts/setup.sh" >&2
    exit 1
  fi
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
kvopt=$(cd "$(dirname "$kvopt")" && pwd)/$(basename "$kvopt")

read -r -a table_options <<<"$(sed -n 's/^eval: //p' "$rows_file")"
artifacts=()
while read -r name pipeline; do
  if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then
    continue
  fi
  artifact=$out/$name.kvpkg
  if [ ! -f "$artifact" ] || [ "$kvopt" -nt "$artifact" ]; then
    calibrate=()
    if [[ $pipeline == *per_head* || $pipeline == *nvfp4* ||
          $pipeline == *triattention* || $pipeline == *lowrank* ||
          $pipeline == *allocate=attention* ]]; then
      stats=$out/calibration.json
      if [ ! -f "$stats" ] || [ "$kvopt" -nt "$stats" ]; then
        echo "== kvopt calibrate default --data $calibration" >&2
        "$kvopt" calibrate default --data "$calibration" -o "$stats"
      fi
      calibrate=(--calibration "$stats")
    fi
    echo "== kvopt compile default ${calibrate[*]} --passes '$pipeline'" >&2
    "$kvopt" compile default "${calibrate[@]}" --passes "$pipeline" \
      -o "$artifact"
  fi
  artifacts+=("$name.kvpkg")
done < <(grep -v -e '^#' -e '^eval:' -e '^[[:space:]]*$' "$rows_file")
if ((${#artifacts[@]} == 0)); then
  echo "eval-table: --only $only names none of the rows of $table" >&2
  exit 1
fi

# The table's options are "--flag value" pairs; a flag given on the command
# line replaces the table's (kvopt takes each option once).
options=()
for ((i = 0; i < ${#table_options[@]}; i += 2)); do
  flag=${table_options[i]}
  if [[ " ${eval_options[*]} " != *" $flag "* ]]; then
    options+=("$flag" "${table_options[i + 1]}")
  fi
done
options+=("${eval_options[@]}")
echo "== kvopt eval ${artifacts[*]} --data $data ${options[*]}" >&2
(cd "$out" && "$kvopt" eval "${artifacts[@]}" --data "$data" \
  --json "$table.json" "${options[@]}" >"$table.txt")
cat "$out/$table.txt"
