#!/usr/bin/env python3
"""Where a kernel's warps wait, phase by phase between its barriers.

Reads ncu's source page of one profiled kernel as CSV, one row per SASS
instruction (address, source, warp stall samples, instructions executed),
cuts the kernel at each barrier and exit, and prints for each part with any
samples or instructions its share of the stall samples and of the warp
instructions, and its most sampled instructions. A part with a large share
of the samples and a small share of the instructions waits on latency (a
chain of loads, a barrier); the reverse is bound by its instructions. The
GPU machine runs (scripts/gpu-bench.sh sparse-stalls does):

  ncu --section SourceCounters --import-source no -k regex:KERNEL \\
      --launch-skip 1 --launch-count 1 -o r BINARY ARGS...
  ncu --import r.ncu-rep --page source --csv --print-source sass > src.csv
  python3 scripts/ncu-phases.py src.csv [TOP]

TOP (default 3) instructions are named per part. Addresses are printed
from the kernel's first instruction, as cuobjdump -sass numbers them.
"""
import csv
import sys

ADDRESS = "Address"
SOURCE = "Source"
SAMPLES = "Warp Stall Sampling (All Samples)"
EXECUTED = "Instructions Executed"


def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return 0.0


def read(path):
    """The kernel's name and its instructions as (offset, source, samples,
    executed)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    name = next((r[1] for r in rows if len(r) > 1 and r[0] == "Kernel Name"),
                "?")
    header = next((i for i, r in enumerate(rows) if ADDRESS in r and SAMPLES in r),
                  None)
    if header is None:
        sys.exit(f"{path}: no header row with '{ADDRESS}' and '{SAMPLES}' "
                 "(ncu --page source --csv --print-source sass)")
    columns = {c: rows[header].index(c)
               for c in (ADDRESS, SOURCE, SAMPLES, EXECUTED)
               if c in rows[header]}
    if len(columns) != 4:
        sys.exit(f"{path}: the header lacks '{EXECUTED}' or '{SOURCE}'")
    instructions = []
    for r in rows[header + 1:]:
        if len(r) <= max(columns.values()) or not r[columns[ADDRESS]].startswith("0x"):
            continue
        instructions.append((int(r[columns[ADDRESS]], 16),
                             r[columns[SOURCE]].strip(),
                             number(r[columns[SAMPLES]]),
                             number(r[columns[EXECUTED]])))
    if not instructions:
        sys.exit(f"{path}: no instruction rows")
    first = instructions[0][0]
    return name, [(a - first, s, n, e) for a, s, n, e in instructions]


def opcode(source):
    """The opcode of a SASS line, past its predicate."""
    words = [w for w in source.split() if not w.startswith("@")]
    return words[0] if words else ""


def parts(instructions):
    """Runs of instructions, each ending at a barrier or an exit."""
    run = []
    for instruction in instructions:
        run.append(instruction)
        if opcode(instruction[1]).startswith(("BAR.SYNC", "EXIT")):
            yield run
            run = []
    if run:
        yield run


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: ncu-phases.py SOURCE_CSV [TOP]")
    top = int(sys.argv[2]) if len(sys.argv) == 3 else 3
    name, instructions = read(sys.argv[1])
    samples = sum(i[2] for i in instructions)
    executed = sum(i[3] for i in instructions)
    print(name)
    print(f"{samples:.0f} stall samples, {executed:.0f} warp instructions")
    for run in parts(instructions):
        s = sum(i[2] for i in run)
        e = sum(i[3] for i in run)
        if s == 0 and e == 0:
            continue
        print(f"0x{run[0][0]:x}-0x{run[-1][0]:x}: samples {100 * s / max(samples, 1):.1f}%, "
              f"instructions {100 * e / max(executed, 1):.1f}% ({e:.0f}), "
              f"ends with {run[-1][1].split(';')[0].strip()}")
        for offset, source, n, _ in sorted(run, key=lambda i: -i[2])[:top]:
            if n > 0:
                print(f"    0x{offset:x} {100 * n / max(samples, 1):.1f}%  "
                      f"{source.split(';')[0].strip()}")


if __name__ == "__main__":
    main()
