#!/usr/bin/env python3
"""`kvopt eval --task ppl` against a float64 numpy perplexity.

Compiles the tinystories model twice (float32 and bf16 cache), runs
`kvopt eval` on a short story, and recomputes the perplexity with the numpy
Llama of test/unit/runtime/reference_forward.py over the same sliding
windows: each window [begin, begin + context) is one forward pass, scoring
the tokens no earlier window scored. Checks:
  * float32 cache: ppl within 1e-5 relative of the reference, at batch 1
    and at a batch that mixes one window's prefill with others' steps, at
    the default stride and at another one; the same number of tokens;
  * bf16 cache: ppl within 1% of the reference;
  * fidelity: a bf16 cache matches the bf16 comparison copy exactly
    (error 0, top-k overlap 1); a float32 cache differs from it a little.
"""
import argparse
import json
import math
import os
import subprocess
import sys

import numpy as np
from tokenizers import Tokenizer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "unit", "runtime"))
from reference_forward import Llama  # noqa: E402

STORY = """Once upon a time, there was a little girl named Lily. She lived in a
small house near a big forest with her mom, her dad and an old brown dog
named Max. Every morning Lily and Max walked to the edge of the forest to
look at the tall trees and listen to the birds.

One day Lily saw a red ball under a bush. "Look, Max!" she said. "A ball!"
Max wagged his tail and ran to the bush. He pushed the ball with his nose
and it rolled down the hill. Lily laughed and ran after it. The ball rolled
and rolled until it stopped by a small pond.

At the pond there was a frog. The frog looked at Lily and said, "Is this
your ball?" Lily was surprised. She had never met a frog that could talk.
"Yes," she said, "but you can play with it too." The frog was very happy.
Lily, Max and the frog played with the ball all day, and when the sun went
down, Lily went home and told her mom about her new friend.
"""
CONTEXT = 64
TOLERANCE = 1e-5
BF16_TOLERANCE = 1e-2


def windows(n, context, stride):
    """(begin, first scored, end) of each window, every token after the
    first scored once, in the last window that holds it."""
    out, scored_up_to, begin = [], 1, 0
    while scored_up_to < n:
        end = min(begin + context, n)
        out.append((begin, scored_up_to, end))
        scored_up_to, begin = end, begin + stride
    return out


def reference_ppl(model, ids, context, stride):
    nll, count = 0.0, 0
    for begin, first, end in windows(len(ids), context, stride):
        logits = model.forward(ids[begin:end])
        for t in range(first, end):
            row = logits[t - begin - 1]
            top = row.max()
            log_p = row[ids[t]] - top - math.log(np.exp(row - top).sum())
            nll -= log_p
            count += 1
    return math.exp(nll / count), count


def run_eval(kvopt, artifacts, text, out, *options):
    subprocess.run([kvopt, "eval", *artifacts, "--task", "ppl,fidelity",
                    "--data", text, "--context", str(CONTEXT), "--json", out,
                    *options], check=True)
    with open(out) as f:
        return json.load(f)["results"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kvopt", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    text = os.path.join(args.work, "story.txt")
    with open(text, "w") as f:
        f.write(STORY)
    f32 = os.path.join(args.work, "f32.kvpkg")
    bf16 = os.path.join(args.work, "bf16.kvpkg")
    subprocess.run([args.kvopt, "compile", args.model, "--passes",
                    "kv-quantize{encoding=f32}", "-o", f32], check=True)
    subprocess.run([args.kvopt, "compile", args.model, "--passes",
                    "kv-quantize{encoding=bf16}", "-o", bf16], check=True)

    ids = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json")) \
        .encode(STORY).ids
    model = Llama(args.model)
    failures = []

    def check(what, ok):
        print(("ok      " if ok else "FAILED  ") + what)
        if not ok:
            failures.append(what)

    # The default stride (context / 2) at batch 3, then another stride at
    # batch 1: neither may change what is scored.
    runs = [(CONTEXT // 2, ["--batch", "3"]),
            (24, ["--batch", "1", "--stride", "24"])]
    for stride, options in runs:
        expected, count = reference_ppl(model, ids, CONTEXT, stride)
        out = os.path.join(args.work, f"eval-{stride}.json")
        f32_result, bf16_result = run_eval(args.kvopt, [f32, bf16], text, out,
                                           *options)
        error = abs(f32_result["ppl"] / expected - 1)
        check(f"stride {stride} {' '.join(options)}: float32 cache ppl "
              f"{f32_result['ppl']:.8f}, reference {expected:.8f} over "
              f"{count} tokens, relative error {error:.1e} (limit "
              f"{TOLERANCE:.0e})",
              error < TOLERANCE and f32_result["tokens"] == count)
        error = abs(bf16_result["ppl"] / expected - 1)
        check(f"stride {stride}: bf16 cache ppl {bf16_result['ppl']:.6f}, "
              f"relative error {error:.1e} (limit {BF16_TOLERANCE:.0e})",
              error < BF16_TOLERANCE and bf16_result["tokens"] == count)
        same = bf16_result["fidelity"]
        differs = f32_result["fidelity"]
        check(f"stride {stride}: bf16 cache against its bf16 copy: error "
              f"{same['output_relative_error']:.1e}, top-k overlap "
              f"{same['top_k_overlap']:.4f}",
              same["output_relative_error"] == 0
              and same["top_k_overlap"] == 1
              and len(same["layers"]) == model.config["num_hidden_layers"])
        check(f"stride {stride}: float32 cache against the bf16 copy: error "
              f"{differs['output_relative_error']:.1e}",
              0 < differs["output_relative_error"] < 1e-2
              and differs["top_k_overlap"] > 0.9)
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
