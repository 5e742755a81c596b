#!/usr/bin/env python3
"""How far bf16 rounding alone moves the default model's logits.

The CUDA backend runs the default model's projections as bf16 GEMMs (its
Q4_1 and Q8_0 blocks decoded to float32 by the CPU's code, then rounded to
bf16) on bf16 inputs, over a bf16 cache; the CPU backend keeps all of it in
float32. This runs scripts/numpy_model.py twice over the same 300 tokens,
once in float32 and once with the weights (not the embedding table, which
the GPU gathers in float32), the norms' outputs (the GEMMs' inputs) and
the keys and values rounded to bf16, and prints the relative error per row
that `kvrt-cuda-engine check` computes (max |a - b| / max |a|): what the
check's tolerance must allow on this model (scripts/gpu-bench.sh default).

  python3 scripts/bf16-rounding.py
"""
import os

import numpy as np

import numpy_model
from numpy_model import bf16


def main():
    data = numpy_model.data_dir()
    model = numpy_model.Model(
        os.path.join(data, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    weights, norm, head = dict(model.w), model.norm, model.lm_head

    def logits(ids, rounded):
        model.w = {name: bf16(w) if rounded and w.ndim == 2 and
                   name != "token_embd.weight" else w
                   for name, w in weights.items()}
        model.lm_head = bf16(head) if rounded else head
        model.norm = (lambda x, w: bf16(norm(x, w))) if rounded else norm
        replace = (lambda layer, k, v: (bf16(k), bf16(v))) if rounded else None
        return model.forward(ids, replace=replace)

    vocab = weights["token_embd.weight"].shape[0]
    prompts = {
        "random tokens": [int(t) for t in
                          np.random.default_rng(1).integers(0, vocab, 300)],
        "text": model.ids(os.path.join(data, "data", "pride-and-prejudice.txt"),
                          300),
    }
    for name, ids in prompts.items():
        exact, rounded = logits(ids, False), logits(ids, True)
        error = np.abs(exact - rounded).max(-1) / np.abs(exact).max(-1)
        print(f"{name}: relative logit error per row, largest {error.max():.3e}, "
              f"median {np.median(error):.3e}, 99th percentile "
              f"{np.quantile(error, 0.99):.3e}")


if __name__ == "__main__":
    main()
