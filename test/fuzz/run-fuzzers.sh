#!/usr/bin/env bash
# Usage: run-fuzzers.sh <source dir> <build dir> <seconds per fuzzer>
#
# Configures <build dir> with clang-22 and KVOPT_ENABLE_FUZZERS=ON, builds
# the libFuzzer targets only (ASan + UBSan, -O1 with line tables: quick to
# build, enough for symbolized reports), replays every seed corpus
# (corpus/<fuzzer>/) as a regression test, then fuzzes each target for the
# given number of seconds. New inputs go to <build dir>/test/fuzz/work, never
# into the source tree; a crashing input is saved under
# <build dir>/test/fuzz/artifacts and makes the script fail.
set -euo pipefail
if (($# != 3)); then
  echo "usage: $0 <source dir> <build dir> <seconds per fuzzer>" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
build=$2
seconds=$3

cmake -S "$src" -B "$build" -G Ninja \
  -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
  -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -gline-tables-only" \
  -DKVOPT_ENABLE_FUZZERS=ON -DKVOPT_ENABLE_TESTS=OFF -DKVOPT_ENABLE_CUDA=OFF \
  -DPython3_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build "$build" --target kvopt-fuzzers

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fuzz_dir=$build/test/fuzz
mkdir -p "$fuzz_dir/artifacts"
common=(-rss_limit_mb=2048 -max_len=65536 -timeout=10
        -artifact_prefix="$fuzz_dir/artifacts/")

mapfile -t fuzzers <"$fuzz_dir/fuzzers.txt"
for line in "${fuzzers[@]}"; do
  read -r name binary <<<"$line"
  corpus=$src/test/fuzz/corpus/$name
  [[ -d $corpus ]] || { echo "fuzz: no seed corpus $corpus" >&2; exit 1; }
  echo "fuzz: $name: replaying $(ls "$corpus" | wc -l) seeds"
  "$binary" "${common[@]}" -runs=0 "$corpus" 2>"$fuzz_dir/$name.replay.log" ||
    { tail -n 40 "$fuzz_dir/$name.replay.log"; exit 1; }
done

# The fuzzers run side by side, each for the full time.
declare -A pids
for line in "${fuzzers[@]}"; do
  read -r name binary <<<"$line"
  work=$fuzz_dir/work/$name
  rm -rf "$work"
  mkdir -p "$work"
  echo "fuzz: $name: fuzzing for ${seconds}s"
  "$binary" "${common[@]}" -max_total_time="$seconds" -print_final_stats=1 \
    "$work" "$src/test/fuzz/corpus/$name" 2>"$fuzz_dir/$name.log" &
  pids[$name]=$!
done
failed=0
for name in "${!pids[@]}"; do
  if wait "${pids[$name]}"; then
    echo "fuzz: $name: $(grep -E '^stat::number_of_executed_units' \
      "$fuzz_dir/$name.log" | awk '{print $2}') runs, clean"
  else
    tail -n 60 "$fuzz_dir/$name.log"
    echo "fuzz: $name FAILED (log: $fuzz_dir/$name.log)" >&2
    failed=1
  fi
done
((failed == 0)) || exit 1
echo "fuzz: all fuzzers ran clean"
