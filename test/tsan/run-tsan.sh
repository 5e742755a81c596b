#!/usr/bin/env bash
# Usage: run-tsan.sh <source dir> <build dir> <kvopt with the compiler> <models dir>
#
# The serving path is the project's threaded code: the scheduler's thread,
# one thread per HTTP connection, the engine's pool. This configures
# <build dir> as a runtime-only tree built by clang-22 with
# ThreadSanitizer, builds kvopt and the runtime's unit tests there, and runs
# under it the scheduler's unit tests and kvopt serve's socket scenario
# (test/tools/serve_client.py: concurrent clients, one leaving mid-stream,
# hostile HTTP, SIGTERM) on tinystories, compiled by the given kvopt (the
# runtime-only one cannot compile). Any report fails the run.
set -euo pipefail
if (($# != 4)); then
  echo "usage: $0 <source dir> <build dir> <kvopt> <models dir>" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
build=$2
kvopt=$3
models=$4

cmake -S "$src" -B "$build" -G Ninja \
  -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS=-fsanitize=thread \
  -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread \
  -DKVOPT_ENABLE_COMPILER=OFF -DKVOPT_ENABLE_CUDA=OFF -DKVOPT_ENABLE_TESTS=ON \
  -DPython3_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build "$build" --target kvopt kvrt-runtime-tests

work=$build/tsan-work
rm -rf "$work"
mkdir -p "$work"
export TSAN_OPTIONS="halt_on_error=0 log_path=$work/report"
"$build/test/unit/runtime/kvrt-runtime-tests" --gtest_filter='Scheduler*' \
  >"$work/scheduler.log" 2>&1 || { tail -n 40 "$work/scheduler.log"; exit 1; }
"$kvopt" compile "$models/tinystories-656k" -o "$work/tiny.kvpkg"
python3 "$src/test/tools/serve_client.py" "$build/bin/kvopt" \
  "$work/tiny.kvpkg" tiny >"$work/serve.log" 2>&1 ||
  { tail -n 40 "$work/serve.log"; exit 1; }
grep -q "^exit: 0$" "$work/serve.log" ||
  { tail -n 40 "$work/serve.log"; exit 1; }
if compgen -G "$work/report*" >/dev/null; then
  grep -h -A30 "WARNING: ThreadSanitizer" "$work"/report* | head -n 120
  echo "tsan: reports above (all in $work)" >&2
  exit 1
fi
echo "tsan: the scheduler's tests and the serve scenario ran clean"
