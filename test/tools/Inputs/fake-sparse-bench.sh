#!/usr/bin/env bash
# Stands in for kvrt-cuda-sparse in gpu-bench-ab.test: --check says which
# binary ran; --bench prints one two-level row whose time tells the
# binaries apart (base 110.0 us, any other 109.0).
name=$(basename "$0")
[ "$name" = kvrt-cuda-sparse ] && name=$(basename "$(dirname "$0")")
if [ "$1" = --check ]; then
  echo "device: none"
  echo "sparse checks: 0 of 1 failed ($name)"
  exit 0
fi
# Anything else is the script calling it wrongly: fail as the real one
# would, so that the test does.
if [ "$1" != --bench ]; then
  echo "fake-sparse-bench: --check or --bench, not '$1'" >&2
  exit 2
fi
time=109.0
case $name in base | *base-bin) time=110.0 ;; esac
echo "policy cache B L dense_us sparse_us speedup level1 level2 attend"
echo "twolevel polar3 8 131072 542.0 $time 4.9x 34.0 51.0 26.0"
