#!/usr/bin/env python3
"""Would centred key latents want centred axes? An estimate from the moments.

kv-lowrank{side=key} takes a key latent around the keys' calibrated mean
(centre=true) but keeps the axes of their uncentred query-weighted second
moment, W E[k k^T] W (docs/lowrank.md). This prints, per rank, the share of
E|W (k - mu)|^2 those axes leave out, beside what the best axes for a
centred latent (the eigenvectors of the weighted covariance W Cov W) would
leave out: their discarded eigenvalues. W are calibration's query weights
(compiler/calibrate/Statistics.cpp, keyAxes), the moments the statistics
file's joint moment of the layer's KV heads (one group of all of them).

    scripts/centred-key-axes.py stats.json [--ranks 96,48]
"""
import argparse
import json

import numpy as np


def symmetric(upper, n):
    """The n x n symmetric matrix whose upper triangle, row by row, is given."""
    m = np.zeros((n, n))
    m[np.triu_indices(n)] = upper
    return m + m.T - np.diag(np.diag(m))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stats", help="kvopt calibrate's statistics JSON")
    parser.add_argument("--ranks", default="96,48",
                        help="latent sizes of the layer's joint latent")
    args = parser.parse_args()
    stats = json.load(open(args.stats))
    model = stats["model"]
    kv, d, heads = model["kv_heads"], model["head_dim"], model["heads"]
    half, per_kv, size = d // 2, heads // kv, kv * d
    ranks = [int(r) for r in args.ranks.split(",")]
    lost = {r: [] for r in ranks}
    for layer in stats["layers"]:
        joint = np.asarray(layer["key_joint_moment"], dtype=float).reshape(-1)
        moment = symmetric(joint, size)
        mean = np.asarray(layer["key_mean"], dtype=float).reshape(-1)
        magnitude = np.asarray(layer["query_magnitude"], dtype=float)
        magnitude = magnitude.reshape(heads, half)
        weight = np.zeros(size)
        for h in range(kv):
            w = np.sqrt((magnitude[h * per_kv:(h + 1) * per_kv] ** 2).mean(0))
            # Half-split RoPE pairs (the default model's); the pair's two
            # coordinates share the weight.
            weight[h * d:h * d + half] = w
            weight[h * d + half:(h + 1) * d] = w
        weight = np.maximum(weight, 1e-6 * weight.max())
        uncentred = weight[:, None] * moment * weight[None, :]
        covariance = uncentred - np.outer(weight * mean, weight * mean)
        axes = np.linalg.eigh(uncentred)[1][:, ::-1]
        spectrum = np.linalg.eigh(covariance)[0][::-1]
        total = np.trace(covariance)
        for r in ranks:
            kept = axes[:, :r]
            # E|P (W (k - mu))|^2 with P the projection off the kept axes.
            left = total - np.trace(kept.T @ covariance @ kept)
            lost[r].append((left / total, spectrum[r:].sum() / total))
    for r in ranks:
        v = np.asarray(lost[r])
        print(f"rank {r}: share of E|W(k - mu)|^2 left out, mean (worst) over "
              f"{len(v)} layers: uncentred axes {v[:, 0].mean():.4f} "
              f"({v[:, 0].max():.4f}), centred axes {v[:, 1].mean():.4f} "
              f"({v[:, 1].max():.4f})")


if __name__ == "__main__":
    main()
