#!/usr/bin/env bash
# Builds the runtime-only configuration (KVOPT_ENABLE_COMPILER=OFF) and fails
# if anything on its link lines or in its binaries' dependencies is LLVM/MLIR.
set -euo pipefail
src=$1 build=$2
cmake -S "$src" -B "$build" -G Ninja -DKVOPT_ENABLE_COMPILER=OFF \
  -DKVOPT_ENABLE_TESTS=OFF -DKVOPT_ENABLE_CUDA=OFF >/dev/null
cmake --build "$build" >/dev/null
bad=$(grep -rlE 'libMLIR|libLLVM|llvm-22' --include=link.txt "$build" || true)
if [ -z "$bad" ] && [ -f "$build/build.ninja" ]; then
  bad=$(grep -E '^ *LINK_LIBRARIES = .*(MLIR|LLVM|llvm-22)' "$build/build.ninja" || true)
fi
if [ -n "$bad" ]; then
  echo "runtime-only build links LLVM/MLIR:"; echo "$bad"; exit 1
fi
for f in $(find "$build" -maxdepth 3 -type f -executable -o -name '*.so' -type f); do
  if file "$f" | grep -q ELF && ldd "$f" 2>/dev/null | grep -qiE 'LLVM|MLIR'; then
    echo "$f depends on LLVM/MLIR:"; ldd "$f"; exit 1
  fi
done
echo "runtime-only build: $(find "$build" -name '*.a' -o -name '*.so' | wc -l) libraries, no LLVM/MLIR on any link line"
