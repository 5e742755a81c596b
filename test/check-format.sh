#!/usr/bin/env bash
# Fails when a tracked C++ file is not formatted as .clang-format says.
set -euo pipefail
cd "$1"
clang_format=$(command -v clang-format-22 || command -v /usr/lib/llvm-22/bin/clang-format)
mapfile -t files < <(git ls-files '*.h' '*.cpp' '*.cu' '*.cuh')
((${#files[@]})) || exit 0
"$clang_format" --dry-run -Werror "${files[@]}"
echo "format: ${#files[@]} files checked"
