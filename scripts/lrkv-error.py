#!/usr/bin/env python3
"""What kv-lowrank{method=lrkv}'s shared basis costs, on calibration moments.

Reads a statistics file (`kvopt calibrate ... -o stats.json`) and fits, per
layer and side, what the pass fits at a uniform rank r = round(ratio x
head_dim) for each fraction `shared` of it: U, the first round(shared x r)
eigenvectors of the sum of the KV heads' moments, and per head the first
r - round(shared x r) eigenvectors of its moment on U's complement. Prints,
per side and fraction, the share of the heads' summed moment the latents
lose (their discarded spectrum over the trace), mean and worst over the
layers. shared=0 is method=pca's loss (each head its own principal axes),
shared=1 one basis for the whole layer. The moments are the ones the pass
takes by default: values' attention-weighted (`value_attention_moment`),
keys' before RoPE weighted by the group's query magnitudes per RoPE pair
(the pass's query-weighted keys; `--rope` says how RoPE pairs coordinates:
half, Hugging Face order, as the default model is imported, or
interleaved).

  scripts/lrkv-error.py stats.json [--ratio 0.5] [--shared 0,0.25,0.5,0.75,1]
"""
import argparse
import json

import numpy as np


def square(upper, d):
    m = np.zeros((d, d))
    m[np.triu_indices(d)] = upper
    return m + np.triu(m, 1).T


def key_moments(layer, heads, query_heads, d, rope):
    group, half = query_heads // heads, d // 2
    magnitude = np.array(layer["query_magnitude"])  # [query heads][half]
    out = []
    for h in range(heads):
        per_pair = np.sqrt((magnitude[h * group:(h + 1) * group] ** 2).mean(0))
        w = np.empty(d)
        if rope == "half":
            w[:half], w[half:] = per_pair, per_pair
        else:
            w[0::2], w[1::2] = per_pair, per_pair
        w = np.maximum(w, 1e-6 * w.max() if w.max() > 0 else 1.0)
        mu = np.array(layer["key_mean"][h])
        moment = square(layer["key_covariance"][h], d) + np.outer(mu, mu)
        out.append(w[:, None] * moment * w[None, :])
    return out


def loss(moments, r, shared):
    """The heads' discarded spectrum over their summed trace."""
    s = min(r, int(np.floor(shared * r + 0.5)))
    _, e = np.linalg.eigh(sum(moments))
    q = e[:, ::-1][:, s:]  # U's complement, U the first s axes
    lost = 0.0
    for m in moments:
        w = np.linalg.eigvalsh(q.T @ m @ q)[::-1]
        lost += w[r - s:].sum()
    return lost / sum(np.trace(m) for m in moments)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stats")
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--shared", default="0,0.25,0.5,0.75,1")
    parser.add_argument("--rope", choices=("half", "interleaved"), default="half")
    args = parser.parse_args()
    stats = json.load(open(args.stats))
    model = stats["model"]
    heads, d = model["kv_heads"], model["head_dim"]
    r = int(np.floor(args.ratio * d + 0.5))
    fractions = [float(f) for f in args.shared.split(",")]
    print(f"rank {r} of {d}, {heads} KV heads, {model['layers']} layers")
    print("side    shared  loss mean  loss worst")
    for side in ("key", "value"):
        per_layer = []
        for layer in stats["layers"]:
            if side == "key":
                moments = key_moments(layer, heads, model["heads"], d, args.rope)
            else:
                moments = [square(u, d) for u in layer["value_attention_moment"]]
            per_layer.append([loss(moments, r, f) for f in fractions])
        per_layer = np.array(per_layer)
        for i, f in enumerate(fractions):
            print(f"{side:6}  {f:6.2f}  {per_layer[:, i].mean():9.4f}  "
                  f"{per_layer[:, i].max():10.4f}")


if __name__ == "__main__":
    main()
