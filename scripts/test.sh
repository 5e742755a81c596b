#!/usr/bin/env bash
# Does all setup (idempotent), builds everything and runs every test
# (lit, GoogleTest, reference checks against peers, fuzzing, formatting,
# the runtime-only build) through one ctest invocation.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
build=${KVOPT_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -G Ninja \
  -DPython3_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build "$build"
cd "$build"
ctest --output-on-failure --timeout 1200 -j "$(nproc)"
