#!/usr/bin/env python3
"""Instructions a kernel's innermost loops issue per iteration, from its SASS.

GPU time is scarce and a kernel bound by its instructions (the split
kernels over quantized caches: docs/benchmarks.md) gets faster roughly as
its loops get shorter, so comparing the loops of two builds on the build
machine says which change deserves a run on the GPU:

  cuobjdump -sass build-gpu/test/cuda/kvrt-cuda-attention > a.sass
  scripts/sass-loops.py a.sass 'PolarGroupILi128ELi4EEELi128ELb1'

cuobjdump comes with the CUDA toolkit; where the toolkit lacks it, pip's
wheel has it (`pip download --no-deps nvidia-cuda-cuobjdump`, then unzip:
nvidia/cu13/bin/cuobjdump). For each kernel whose mangled name matches the
regular expression, each innermost loop (a backward branch whose range holds
no other one) that does arithmetic (HMMA or FFMA) is printed with its
instruction count and those of the opcodes that dominate decoding. A count
is static: a loop's branches out (a barrier's wait) are not in it.
"""
import collections
import re
import sys

FUNCTION = re.compile(r"\s*Function : (\S+)")
INSTRUCTION = re.compile(r"\s*/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)([^;]*);")
BRANCH_TARGET = re.compile(r"(0x[0-9a-f]+)")
SHOWN = ["LDS", "LDG", "HMMA", "FFMA", "LOP3", "SHF", "PRMT", "IMAD", "BRA"]


def functions(path):
    """{mangled name: [(address, opcode, operands)]} of a cuobjdump -sass listing."""
    listing, current = {}, None
    with open(path) as f:
        for line in f:
            m = FUNCTION.match(line)
            if m:
                current = listing.setdefault(m.group(1), [])
                continue
            m = INSTRUCTION.match(line)
            if m and current is not None:
                current.append((int(m.group(1), 16), m.group(2), m.group(3)))
    return listing


def innermost_loops(code):
    """(first, last) addresses of the loops that hold no other loop."""
    loops = []
    for address, opcode, operands in code:
        if opcode.startswith("BRA"):
            target = BRANCH_TARGET.search(operands)
            if target and int(target.group(1), 16) < address:
                loops.append((int(target.group(1), 16), address))
    return [(a, b) for a, b in loops
            if not any((c, d) != (a, b) and a <= c and d <= b for c, d in loops)]


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: sass-loops.py LISTING.sass KERNEL_REGEX")
    pattern = re.compile(sys.argv[2])
    matched = False
    for name, code in functions(sys.argv[1]).items():
        if not pattern.search(name):
            continue
        matched = True
        print(name)
        for first, last in innermost_loops(code):
            body = [op.split(".")[0] for address, op, _ in code
                    if first <= address <= last]
            counts = collections.Counter(body)
            if not counts["HMMA"] and not counts["FFMA"]:
                continue
            shown = " ".join(f"{op} {counts[op]}" for op in SHOWN if counts[op])
            print(f"  loop {first:#x}-{last:#x}: {len(body)} instructions ({shown})")
    if not matched:
        sys.exit(f"no kernel of {sys.argv[1]} matches {sys.argv[2]}")


if __name__ == "__main__":
    main()
