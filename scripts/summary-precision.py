#!/usr/bin/env python3
"""Two-level selection with its block summaries in bf16 or in fp8, in numpy.

Level 1 of the GPU's two-level selection reads every block's per-channel
key bounds (bf16 minima and maxima rounded outward: 4 d bytes a block and
KV head); at B = 8, L = 128K that read is about a quarter of a selecting
step (docs/benchmarks.md). Stored as fp8 e4m3, still rounded outward, with
a power-of-two scale per block and KV head, the bounds would take half the
bytes and still bound every key, only more loosely. This replays the rule
of docs/sparse-selection.md on a teacher-forced window of the default
model, a bf16 cache, once with each kind of summary, and prints per run:

  blocks moved   the share of (row, KV head) selections whose kept blocks
                 fp8 summaries would change, on the bf16 run's queries and
                 keys (the runs' inputs differ from the first selected
                 layer on);
  entries moved  the share of the bf16 summaries' kept entries that fp8
                 summaries would drop, likewise;
  mass kept      the full attention's weight on the kept entries (and the
                 row's newest token), averaged over rows and query heads;
  ppl            the window's perplexity with every selected layer
                 attending to its selection alone.

Rows with at most top_tokens encoded entries attend to all of them, as the
runtime does; the first dense_layers layers attend densely. Its numbers
compare designs; the runtime's own come from `kvopt eval`.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from numpy_model import Model, bf16, data_dir  # noqa: E402


def e4m3_grid():
    """Every finite e4m3 (fn) value, sorted."""
    values = [m / 8 * 2.0 ** -6 for m in range(8)]
    values += [(1 + m / 8) * 2.0 ** (e - 7) for e in range(1, 16) for m in range(8)
               if not (e == 15 and m == 7)]
    positive = np.array(sorted(set(values)))
    return np.concatenate([-positive[::-1][:-1], positive])


E4M3 = e4m3_grid()


def e4m3_outward(x, up):
    """x rounded to e4m3 toward +inf (up) or -inf; |x| <= 448."""
    if up:
        return E4M3[np.searchsorted(E4M3, x, "left")]
    return E4M3[np.searchsorted(E4M3, x, "right") - 1]


def bf16_outward(x, up):
    """x (float32) rounded to bf16 toward +inf (up) or -inf."""
    x = np.asarray(x, np.float32)
    bits = x.view(np.uint32)
    truncated = (bits & np.uint32(0xFFFF0000)).view(np.float32)
    inexact = truncated != x
    # Truncation goes toward zero: away from it where that is the way asked.
    away = inexact & ((x > 0) == up)
    return np.where(away, ((bits & np.uint32(0xFFFF0000)) + np.uint32(0x10000)).view(np.float32),
                    truncated)


def summaries(keys, block, kind):
    """Per complete block of `keys` [T, d]: (lo, hi), [blocks, d]."""
    blocks = len(keys) // block
    k = keys[:blocks * block].reshape(blocks, block, -1)
    lo, hi = k.min(1), k.max(1)
    if kind == "bf16":
        low, high = bf16_outward(lo, False), bf16_outward(hi, True)
    else:
        # A power of two per block that puts its largest magnitude in
        # (128, 256].
        most = np.maximum(np.abs(lo).max(1), np.abs(hi).max(1))
        scale = 2.0 ** (np.ceil(np.log2(np.maximum(most, 1e-30))) - 8)
        scale = scale[:, None]
        low = (e4m3_outward(lo / scale, False) * scale).astype(np.float32)
        high = (e4m3_outward(hi / scale, True) * scale).astype(np.float32)
    # Rounded outward, the summaries still bound every key.
    assert (low <= lo).all() and (high >= hi).all(), kind
    return low, high


def select(q, keys, args, kind):
    """The kept mask [T, T] (True: row t attends to entry e) of one KV head:
    q [G, T, d] and keys [T, d] after RoPE, keys as the cache holds them."""
    t_count, block = keys.shape[0], args.block
    lo, hi = summaries(keys, block, kind)
    rows = np.arange(t_count)
    # Quest's bound of every complete block for every row and head.
    bound = np.maximum(q, 0) @ hi.T + np.minimum(q, 0) @ lo.T  # [G, T, blocks]
    blocks = np.arange(lo.shape[0] + 1)
    newest = np.maximum(rows - 1, 0) // block  # the block of entry t - 1
    visible = blocks[None, :] <= newest[:, None]  # [T, blocks + 1]
    pad = np.full(bound.shape[:2] + (1,), -np.inf, np.float32)
    bound = np.concatenate([bound, pad], 2)
    bound = np.where(visible[None], bound, -np.inf)
    rank = (bound - bound.max(2, keepdims=True)).max(0)  # [T, blocks + 1]
    rank[:, 0] = np.inf
    rank[rows, newest] = np.inf
    rank = np.where(visible, rank, -np.inf)
    # The top_blocks best (ties to the older block: a stable sort).
    order = np.argsort(-rank, 1, kind="stable")[:, :args.top_blocks]
    kept_blocks = np.zeros_like(visible)
    np.put_along_axis(kept_blocks, order, True, 1)
    kept_blocks &= visible
    entry_block = np.arange(t_count) // block
    candidate = kept_blocks[:, entry_block] & (np.arange(t_count)[None, :] < rows[:, None])
    scores = q @ keys.T  # [G, T, T]
    masked = np.where(candidate[None], scores, -np.inf)
    with np.errstate(invalid="ignore"):  # rows with no candidate yet
        rank = (masked - masked.max(2, keepdims=True)).max(0)
    rank = np.where(candidate, rank, -np.inf)
    order = np.argsort(-rank, 1, kind="stable")[:, :args.top_tokens]
    kept = np.zeros_like(candidate)
    np.put_along_axis(kept, order, True, 1)
    kept &= candidate
    # Short rows attend to every encoded entry; every row to its own token.
    short = rows <= args.top_tokens
    kept[short] = np.arange(t_count)[None, :] < rows[short, None]
    kept[rows, rows] = True
    return kept, kept_blocks


class Selections:
    """masks= for Model.forward(): each selected layer's [KV heads, T, T]
    additive mask from the queries and keys observe() saw, with the
    statistics against a reference run's choices."""

    def __init__(self, model, args, kind, compare=None):
        self.model, self.args, self.kind, self.compare = model, args, kind, compare
        self.stats = {"rows": 0, "blocks moved": 0, "entries": 0, "entries moved": 0,
                      "mass": 0.0, "mass rows": 0}

    def observe(self, layer, q, k, v):
        self.q, self.k = q, k

    def __getitem__(self, layer):
        m, args = self.model, self.args
        t = self.q.shape[0]
        if layer < args.dense_layers:
            return np.zeros((t, t), np.float32)
        positions = np.arange(t)
        q = m.rope(self.q, positions).transpose(1, 0, 2)  # [H, T, d]
        keys = bf16(m.rope(self.k, positions)).transpose(1, 0, 2)  # [KV, T, d]
        group = m.heads // m.kv_heads
        masks = np.empty((m.kv_heads, t, t), np.float32)
        causal = np.tril(np.ones((t, t), bool))
        for h in range(m.kv_heads):
            qh = q[h * group:(h + 1) * group]
            kept, blocks = select(qh, keys[h], args, self.kind)
            masks[h] = np.where(kept, 0.0, -np.inf)
            decode = np.arange(t) > args.top_tokens
            s = qh @ keys[h].T / np.sqrt(m.d)
            s = np.where(causal[None], s, -np.inf)
            s -= s.max(2, keepdims=True)
            p = np.exp(s)
            p /= p.sum(2, keepdims=True)
            self.stats["mass"] += float((p * kept[None])[:, decode].sum())
            self.stats["mass rows"] += int(decode.sum()) * group
            if self.compare:
                other, other_blocks = select(qh, keys[h], args, self.compare)
                self.stats["rows"] += int(decode.sum())
                self.stats["blocks moved"] += int(
                    (other_blocks[decode] != blocks[decode]).any(1).sum())
                self.stats["entries"] += int(kept[decode].sum())
                self.stats["entries moved"] += int((kept[decode] & ~other[decode]).sum())
        return masks


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--offset", type=int, default=0, help="characters into the text")
    parser.add_argument("--block", type=int, default=64)
    parser.add_argument("--top-blocks", type=int, default=32)
    parser.add_argument("--top-tokens", type=int, default=1024)
    parser.add_argument("--dense-layers", type=int, default=2)
    parser.add_argument("--data", default=os.path.join(data_dir(), "data", "pride-and-prejudice.txt"))
    args = parser.parse_args()
    model = Model(os.path.join(data_dir(), "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ids = model.ids(args.data, args.tokens, args.offset)
    dense = model.nll(ids)
    print(f"{len(ids)} tokens, block {args.block}, top_blocks {args.top_blocks}, "
          f"top_tokens {args.top_tokens}; dense ppl {np.exp(dense):.4f}", flush=True)
    for kind, compare in (("bf16", "fp8"), ("fp8", None)):
        sel = Selections(model, args, kind, compare)
        nll = model.nll(ids, observe=sel.observe, masks=sel)
        s = sel.stats
        print(f"{kind} summaries: mass kept {s['mass'] / s['mass rows']:.4f}, "
              f"ppl {np.exp(nll):.4f} ({np.exp(nll - dense) - 1:+.2%} against dense)",
              flush=True)
        if compare:
            print(f"  {compare} summaries on the same queries and keys: blocks moved in "
                  f"{s['blocks moved'] / s['rows']:.2%} of the selections, "
                  f"{s['entries moved'] / s['entries']:.3%} of the kept entries moved",
                  flush=True)


if __name__ == "__main__":
    main()
