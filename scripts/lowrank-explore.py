#!/usr/bin/env python3
"""Explores low-rank KV designs on the default model in numpy, fast.

A float32 forward pass of SmolLM2-135M-Instruct (the GGUF that setup
installs, dequantized with the `gguf` package) over one window of text,
teacher-forced, with each layer's keys (before RoPE) and values replaced by
their rank-r reconstructions before attention reads them: the perplexity a
design would give, in about 15 s a variant instead of the minutes a full
`kvopt eval` takes. Every token is reconstructed except each sequence's
first `sinks` and, for each query, the `window` keys and values just before
it (read exact, as the runtime's sinks and tail are). Bases come from
calibration text run through the same model:

  vpca  values on the eigenvectors of their uncentred second moment E[v v^T]
        (what kv-lowrank{method=pca} stores);
  kpca  keys before RoPE, likewise;
  kq    keys before RoPE, the eigenvectors of S E[k k^T] S, where S weighs
        each coordinate by the root of the mean squared magnitude of its
        RoPE pair in the group's queries: the basis that minimises the
        error of q . k rather than of k;
  vo    values on the eigenvectors of M^1/2 E[v v^T] M^1/2, where
        M = sum over the group's query heads g of W_o_g^T W_o_g (W_o_g:
        o_proj's columns that read head g), reconstructed as
        M^-1/2 U_r U_r^T M^1/2 v: the basis that minimises the error of
        the attention output after o_proj rather than of v. M's
        eigenvalues below --clamp times its largest are raised to it;
  von   like vo with M = sum_g W_o_g^T N^2 W_o_g, N the next RMS norm's
        weights (ffn_norm), which scale o_proj's output where it is read;
  va    values on the eigenvectors of their attention-weighted second
        moment sum_i a_i v_i v_i^T / sum_i a_i, a_i the attention weight
        token i gets from the group's queries for which it is neither a sink
        nor in the window (what the latent actually serves);
  vao   va's moment in vo's metric;
  vpcac, voc, vonc  the same on the centred moment (the covariance), each
        head's mean kept: mu + P (v - mu).

With --group G (kpca and vpca; uniform ranks), each group of G adjacent
KV heads shares one latent of G x RANK coordinates on the eigenvectors of
the joint second moment of their concatenated coordinates: Palu's
group-head decomposition at the same cache size (its whitened SVD is PCA
of that moment, docs/lowrank.md). --group-diagonal leaves out the moment's
cross-head blocks: each head keeps its own axes, and the group's G x RANK
coordinates go to the heads' largest eigenvalues, which separates what the
cross-head correlation buys from what moving rank between heads buys.

With --allocate, RANK is a mean over the layers: each side's ranks go, 8
at a time from 8, to the layer whose next 8 eigenvalues hold the largest
share of its spectrum (the calibration reconstruction error, greedily);
with --group, G x 8 at a time from the groups' joint spectra, as the pass
allocates them.

With --latent (kpca and vpca), the latent itself is quantized before it is
mapped back, 4 bits a coordinate either way:
  polar4  as kv-quantize{encoding=polar bits=4} on the latent: each head's
          part (RANK coordinates, G RANK / G with --group) scaled by its
          f16 norm, rotated by a random-sign Hadamard transform and coded
          with the 16-level Lloyd-Max codebook of a unit vector's
          coordinate (a part that is not a power of two, as --allocate
          makes them, as power-of-two blocks, each with its own norm);
  bits4   no norm and no rotation: coordinate i of the latent scaled by the
          root of its calibrated eigenvalue and coded with the Lloyd-Max
          quantizer of a standard normal at b_i bits, the b_i (0 to 8,
          averaging 4) given one at a time to the coordinate whose
          eigenvalue times the next bit's distortion reduction is largest
          (reverse water-filling, as KVTC allocates bits per component).

  scripts/lowrank-explore.py vpca:32 kq:32 "kq:32+vpca:32" --sinks 4 --window 64

prints the perplexity and its change against the uncompressed cache for
each variant ('+' combines sides). docs/lowrank.md records what it found.
It is a design tool, not a test: the runtime's own numbers come from
`kvopt eval`.
"""
import argparse
import os
import time

import numpy as np

from numpy_model import Model, data_dir


class Moments:
    """Calibration: per layer and KV head E[k k^T], E[v v^T] before RoPE,
    and the mean squared magnitude of each RoPE pair in the group's queries;
    the values' mean and attention-weighted second moment; and o_proj's
    metric M per KV head."""

    def __init__(self, model, ids, sinks, window):
        L, H, d = model.layers, model.kv_heads, model.d
        self.model, self.group = model, model.heads // H
        self.kk, self.vv = np.zeros((L, H, d, d)), np.zeros((L, H, d, d))
        self.vva, self.mass = np.zeros((L, H, d, d)), np.zeros((L, H))
        # Across the layer's KV heads, for --group.
        self.kkj, self.vvj = np.zeros((L, H * d, H * d)), np.zeros((L, H * d, H * d))
        t = np.arange(len(ids))
        self.outside = ((t[:, None] - t[None, :] >= window) &
                        (t[None, :] >= sinks)).astype(np.float32)
        self.vmean = np.zeros((L, H, d))
        self.pair = np.zeros((L, H, d))
        model.forward(ids, observe=self.observe)
        n = len(ids)
        self.kk /= n
        self.vv /= n
        self.kkj /= n
        self.vvj /= n
        self.vmean /= n
        self.vva /= self.mass[..., None, None]
        self.pair /= n * self.group
        self.out = np.zeros((L, H, d, d))
        self.normed = np.zeros((L, H, d, d))
        for layer in range(L):
            wo = model.w[f"blk.{layer}.attn_output.weight"].astype(np.float64)
            norm = model.w[f"blk.{layer}.ffn_norm.weight"].astype(np.float64)
            for g in range(model.heads):
                block = wo[:, g * d:(g + 1) * d]
                self.out[layer, g // self.group] += block.T @ block
                self.normed[layer, g // self.group] += (block.T * norm ** 2) @ block

    def observe(self, layer, q, k, v):
        g, model = self.group, self.model
        positions = np.arange(len(q))
        qr, kr = model.rope(q, positions), model.rope(k, positions)
        causal = np.triu(np.full((len(q), len(q)), -np.inf, np.float32), 1)
        for head in range(q.shape[1]):
            s = qr[:, head] @ kr[:, head // g].T / np.float32(np.sqrt(model.d)) + causal
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            a = (s * self.outside).sum(0).astype(np.float64)
            vh = v[:, head // g].astype(np.float64)
            self.vva[layer, head // g] += (vh * a[:, None]).T @ vh
            self.mass[layer, head // g] += a.sum()
        kj = k.reshape(len(k), -1).astype(np.float64)
        vj = v.reshape(len(v), -1).astype(np.float64)
        self.kkj[layer] += kj.T @ kj
        self.vvj[layer] += vj.T @ vj
        for h in range(k.shape[1]):
            kh, vh = k[:, h].astype(np.float64), v[:, h].astype(np.float64)
            self.kk[layer, h] += kh.T @ kh
            self.vv[layer, h] += vh.T @ vh
            self.vmean[layer, h] += vh.sum(0)
            qg = q[:, h * g:(h + 1) * g].astype(np.float64)
            self.pair[layer, h] += np.repeat(
                (qg[..., 0::2] ** 2 + qg[..., 1::2] ** 2).sum((0, 1)), 2) / 2


def metric_roots(weight, size, clamp):
    """W = weight^1/2 and W^-1: identity for None, diagonal for a vector,
    the symmetric root of a PSD matrix whose eigenvalues below `clamp`
    times the largest are raised to it."""
    if weight is None:
        return np.eye(size), np.eye(size)
    if weight.ndim == 1:
        return np.diag(np.sqrt(weight)), np.diag(1 / np.sqrt(weight))
    m, q = np.linalg.eigh(weight)
    m = np.maximum(m, clamp * m.max())
    return (q * np.sqrt(m)) @ q.T, (q / np.sqrt(m)) @ q.T


def projector(moment, rank, weight=None, clamp=0.0):
    """The rank-r reconstruction matrix minimising E|W (x - P x)|^2 for
    W = weight^1/2 (identity when None): P = W^-1 U_r U_r^T W, U the
    eigenvectors of W E[x x^T] W."""
    root, inverse = metric_roots(weight, len(moment), clamp)
    _, u = np.linalg.eigh(root @ moment @ root)
    u = u[:, ::-1][:, :rank]
    return inverse @ u @ u.T @ root


def spectrum(moment, weight=None, clamp=0.0):
    """The eigenvalues projector() ranks, largest first."""
    root, _ = metric_roots(weight, len(moment), clamp)
    return np.sort(np.linalg.eigvalsh(root @ moment @ root))[::-1]


def allocate(spectra, mean, step=8):
    """Per-layer ranks averaging `mean`: greedy on each layer's spectrum
    (its heads' eigenvalues summed) as shares of its total."""
    spectra = [sp / sp.sum() for sp in spectra]
    ranks = [step] * len(spectra)
    while sum(ranks) + step <= mean * len(spectra):
        gains = [sp[r:r + step].sum() if r + step < len(sp) else -1
                 for sp, r in zip(spectra, ranks)]
        ranks[int(np.argmax(gains))] += step
    return ranks


def projection(proj, mean):
    """x -> mean + P (x - mean)."""
    proj = proj.astype(np.float32)
    mean = np.float32(mean) if np.isscalar(mean) else mean.astype(np.float32)
    return lambda x: (x - mean) @ proj.T + mean


def lloyd_max(points, weights, levels, iterations=300):
    """The Lloyd-Max quantizer of `levels` levels for the density sampled at
    `points` with `weights`: its levels and mean squared error."""
    cdf = np.cumsum(weights) / weights.sum()
    level = np.interp((np.arange(levels) + 0.5) / levels, cdf, points)
    for _ in range(iterations):
        cell = np.searchsorted((level[1:] + level[:-1]) / 2, points)
        mass = np.bincount(cell, weights, levels)
        level = np.where(mass > 0, np.bincount(cell, weights * points, levels) /
                         np.maximum(mass, 1e-300), level)
    cell = np.searchsorted((level[1:] + level[:-1]) / 2, points)
    return level, (weights * (points - level[cell]) ** 2).sum() / weights.sum()


def nearest(x, level):
    return level[np.searchsorted((level[1:] + level[:-1]) / 2, x)]


def power_blocks(part):
    """A part's polar blocks: its binary decomposition, largest first."""
    return [1 << b for b in range(part.bit_length() - 1, -1, -1) if part >> b & 1]


class LatentCodes:
    """--latent's quantizers (see the module's docstring)."""

    def __init__(self, part):
        self.part = part
        normal = np.linspace(-8, 8, 200001)
        self.gauss = [None] + [lloyd_max(normal, np.exp(-normal ** 2 / 2), 2 ** b)
                               for b in range(1, 9)]
        unit = np.linspace(-1, 1, 400001)[1:-1]
        # Per block of the part: its codebook and rotation.
        self.blocks = []
        for size in power_blocks(part):
            levels, _ = lloyd_max(unit, (1 - unit ** 2) ** ((size - 3) / 2), 16)
            h = np.array([[1.0]])
            while len(h) < size:
                h = np.block([[h, h], [h, -h]])
            signs = np.random.default_rng(7).choice([-1.0, 1.0], size)
            self.blocks.append((size, levels, h / np.sqrt(size) * signs[None, :]))

    def polar4(self, z):
        out = np.empty_like(z)
        for j in range(0, z.shape[1], self.part):
            at = j
            for size, levels, rotation in self.blocks:
                p = z[:, at:at + size]
                norm = np.linalg.norm(p, axis=1, keepdims=True)
                unit = p / np.maximum(norm, 1e-30) @ rotation.T
                out[:, at:at + size] = (nearest(unit, levels) @ rotation) * \
                    norm.astype(np.float16).astype(np.float64)
                at += size
        return out

    def allocate(self, eigenvalues, total):
        bits = np.zeros(len(eigenvalues), int)
        loss = [1.0] + [g[1] for g in self.gauss[1:]] + [0.0]
        for _ in range(total):
            gain = eigenvalues * np.array([loss[b] - loss[b + 1] if b < 8 else -1
                                           for b in bits])
            bits[int(np.argmax(gain))] += 1
        return bits

    def bits4(self, z, eigenvalues, bits):
        out = np.zeros_like(z)
        scale = np.sqrt(np.maximum(eigenvalues, 1e-30))
        for i, b in enumerate(bits):
            if b:
                out[:, i] = nearest(z[:, i] / scale[i], self.gauss[b][0]) * scale[i]
        return out


def latent_coder(moment, rank, kind, codes):
    """x -> its rank-`rank` reconstruction on the moment's leading axes,
    the latent quantized by `kind` (polar4 or bits4)."""
    eigenvalues, axes = np.linalg.eigh(moment)
    eigenvalues, axes = eigenvalues[::-1][:rank], axes[:, ::-1][:, :rank]
    bits = codes.allocate(eigenvalues, 4 * rank) if kind == "bits4" else None

    def code(x):
        z = x.astype(np.float64) @ axes
        z = codes.polar4(z) if kind == "polar4" else codes.bits4(z, eigenvalues, bits)
        return (z @ axes.T).astype(np.float32)
    return code


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+",
                        help="KIND:RANK[+KIND:RANK], KIND one of vpca, vo, von, va, vao (c: centred), kpca, kq")
    parser.add_argument("--sinks", type=int, default=4)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--offset", type=int, default=0,
                        help="characters of --data to skip before the window")
    parser.add_argument("--mass-sinks", type=int,
                        help="va: the sinks its attention weights leave out (default --sinks)")
    parser.add_argument("--mass-window", type=int,
                        help="va: the window its attention weights leave out (default --window)")
    parser.add_argument("--clamp", type=float, default=1e-3,
                        help="vo: smallest eigenvalue of M, as a share of its largest")
    parser.add_argument("--group", type=int, default=1,
                        help="kpca, vpca: KV heads sharing one latent of group x RANK")
    parser.add_argument("--group-diagonal", action="store_true",
                        help="--group without the cross-head blocks of the moment")
    parser.add_argument("--allocate", action="store_true",
                        help="per-layer ranks from the spectra, RANK their mean")
    parser.add_argument("--latent", choices=["polar4", "bits4"],
                        help="kpca, vpca: quantize the latent, 4 bits a coordinate")
    parser.add_argument("--data", default=os.path.join(data_dir(), "data", "pride-and-prejudice.txt"))
    parser.add_argument("--calibrate", default=os.path.join(data_dir(), "data", "emma.txt"))
    args = parser.parse_args()
    if args.latent and args.allocate and args.group == 1:
        parser.error("--latent takes uniform ranks per head; leave out "
                     "--allocate or give --group")

    model = Model(os.path.join(data_dir(), "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ids = model.ids(args.data, args.tokens, args.offset)
    moments = Moments(model, model.ids(args.calibrate, args.tokens),
                      args.sinks if args.mass_sinks is None else args.mass_sinks,
                      args.window if args.mass_window is None else args.mass_window)
    codes = {}

    def coder(moment, rank):
        """Rebuilds x from the moment's rank-r latent, quantized or not."""
        if not args.latent:
            return projection(projector(moment, rank), 0.0)
        part = rank // args.group
        if args.latent == "polar4" and part % 8:
            raise SystemExit(f"--latent polar4 rotates blocks of at least 8 "
                             f"coordinates, not a part of {part}")
        if part not in codes:
            codes[part] = LatentCodes(part)
        return latent_coder(moment, rank, args.latent, codes[part])

    base = model.nll(ids)
    print(f"uncompressed: ppl {np.exp(base):.4f} over {len(ids)} tokens "
          f"(sinks {args.sinks}, window {args.window})", flush=True)
    for variant in args.variants:
        sides = {}
        for part in variant.split("+"):
            kind, rank = part.split(":")
            side = "value" if kind[0] == "v" else "key"
            centred = kind in ("vpcac", "voc", "vonc")
            basis = kind[:-1] if centred else kind

            def moment(l, h):
                if side == "key":
                    return moments.kk[l, h]
                if basis in ("va", "vao"):
                    return moments.vva[l, h]
                mu = moments.vmean[l, h]
                return moments.vv[l, h] - np.outer(mu, mu) if centred else moments.vv[l, h]

            metric = {"kq": moments.pair, "vo": moments.out, "vao": moments.out,
                      "von": moments.normed}.get(basis)
            weight = lambda l, h: None if metric is None else metric[l, h]
            ranks = [int(rank)] * model.layers
            G, d = args.group, model.d
            if G > 1 and kind in ("kpca", "vpca"):
                if model.kv_heads % G:
                    raise SystemExit(f"--group {G} does not divide the "
                                     f"{model.kv_heads} KV heads")
                joint = moments.kkj if side == "key" else moments.vvj
                within = np.kron(np.eye(G), np.ones((d, d))) if args.group_diagonal else 1
                block = lambda l, h: joint[l][h * d:(h + G) * d, h * d:(h + G) * d] * within
                if args.allocate:
                    # As the pass: steps of G d / 8 from the groups' spectra.
                    ranks = [r // G for r in allocate(
                        [sum(spectrum(block(l, h))
                             for h in range(0, model.kv_heads, G))
                         for l in range(model.layers)], G * int(rank), G * d // 8)]
                    print(f"{kind} ranks per head: {' '.join(map(str, ranks))}")
                sides[side] = [[(coder(block(l, h), G * ranks[l]), h, G)
                                for h in range(0, model.kv_heads, G)]
                               for l in range(model.layers)]
                continue
            if args.latent and kind in ("kpca", "vpca"):
                sides[side] = [[(coder(moment(l, h), ranks[l]), h, 1)
                                for h in range(model.kv_heads)]
                               for l in range(model.layers)]
                continue
            if args.allocate:
                ranks = allocate([sum(spectrum(moment(l, h), weight(l, h), args.clamp)
                                      for h in range(model.kv_heads))
                                  for l in range(model.layers)], int(rank))
                print(f"{kind} ranks: {' '.join(map(str, ranks))}")
            sides[side] = [[(projection(projector(moment(l, h), ranks[l], weight(l, h),
                                                  args.clamp),
                                        moments.vmean[l, h] if centred else 0.0), h, 1)
                            for h in range(model.kv_heads)] for l in range(model.layers)]

        def replace(layer, k, v):
            out = {"key": k.copy(), "value": v.copy()}
            for side, heads in sides.items():
                x = out[side]
                for rebuild, h, g in heads[layer]:
                    part = x[args.sinks:, h:h + g].reshape(len(x) - args.sinks, -1)
                    x[args.sinks:, h:h + g] = rebuild(part).reshape(
                        len(x) - args.sinks, g, -1)
            return out["key"], out["value"]

        start = time.time()
        nll = model.nll(ids, replace=replace, window=args.window)
        print(f"{variant:<24} ppl {np.exp(nll):.4f}  {100 * (np.exp(nll - base) - 1):+.2f}%"
              f"  ({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
