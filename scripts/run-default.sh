#!/usr/bin/env bash
# The main job: all setup (idempotent), a build, then the embedded default
# model compiled to a .kvpkg artifact, inspected, and asked the bundled
# prompt (examples/prompts/default.txt) through its chat template. The
# answer streams to stdout, the stats line follows on stderr.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
build=${KVOPT_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -G Ninja \
  -DPython3_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build "$build"
kvopt=$build/bin/kvopt
artifact=$build/default.kvpkg

echo "== kvopt compile default -o $artifact"
"$kvopt" compile default -o "$artifact"
echo "== kvopt inspect $artifact"
"$kvopt" inspect "$artifact"
prompt=$(cat "$root/examples/prompts/default.txt")
echo "== kvopt run --chat: $prompt"
"$kvopt" run "$artifact" --chat --prompt "$prompt" --max-tokens 160
