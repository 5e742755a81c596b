#!/usr/bin/env python3
"""Where one decode step's GPU time goes, kernel by kernel.

Reads the CSV of an ncu run over `kvrt-cuda-engine bench --graphs 0` (each
kernel's gpu__time_duration.sum), cuts out the last whole decode step (from
one embedding kernel to the next) and prints the time per kernel name,
largest first, with the step's total kernel time. The GPU machine runs:

  ncu --csv --clock-control none --cache-control none \\
      --metrics gpu__time_duration.sum \\
      .gpu-bin/kvrt-cuda-engine bench ART --batch 1 --context 4096 \\
      --steps 3 --graphs 0 > step.csv
  python3 scripts/ncu-step-breakdown.py step.csv

cuBLAS's kernels are told apart by their grids (one shape each, mostly).
Kernel time only: the gaps between kernels (launches, which CUDA graphs
shrink) are the difference from the bench's step time. `--cache-control
none` keeps ncu from flushing the L2 before each kernel, which would
inflate the small ones.
"""
import collections
import csv
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: ncu-step-breakdown.py NCU_CSV")
    kernels = []  # (id, name, microseconds)
    with open(sys.argv[1], newline="") as f:
        lines = [l for l in f if l.startswith('"')]
    for row in csv.DictReader(lines):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        value = float(row["Metric Value"].replace(",", ""))
        unit = row["Metric Unit"]
        scale = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0,
                 "ms": 1e3, "msecond": 1e3}.get(unit)
        if scale is None:
            sys.exit(f"{sys.argv[1]}: unknown time unit '{unit}'")
        kernels.append((int(row["ID"]), row["Kernel Name"], value * scale,
                        row.get("Grid Size", "")))
    kernels.sort()
    starts = [i for i, (_, name, _, _) in enumerate(kernels) if "embedding" in name]
    if len(starts) < 2:
        sys.exit(f"{sys.argv[1]}: fewer than two embedding kernels, no whole step")
    step = kernels[starts[-2]:starts[-1]]
    by_name = collections.defaultdict(lambda: [0, 0.0])
    for _, name, us, grid in step:
        short = name.replace("void ", "")
        for anonymous in ("(anonymous namespace)::", "<unnamed>::"):
            short = short.replace(anonymous, "")
        short = short.split("(")[0].split("<")[0].strip()
        # cuBLAS's kernels serve several shapes: their grids tell them apart.
        if grid and not short.startswith("kvrt::"):
            short += f" grid {grid}"
        by_name[short][0] += 1
        by_name[short][1] += us
    total = sum(us for _, _, us, _ in step)
    print(f"{len(step)} kernels, {total:.1f} us of kernel time in the step")
    print("| kernel | launches | us | share |")
    print("| --- | --- | --- | --- |")
    for short, (count, us) in sorted(by_name.items(), key=lambda kv: -kv[1][1]):
        print(f"| {short[:90]} | {count} | {us:.1f} | {100 * us / total:.1f}% |")


if __name__ == "__main__":
    main()
