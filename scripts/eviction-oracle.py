#!/usr/bin/env python3
"""What eviction could keep at best on the default model, in numpy.

The runtime's rule (kv-evict, docs/eviction.md) replayed on a teacher-forced
window of *Pride and Prejudice*: every `interval` tokens a layer's cache is
cut to `fraction` of the tokens seen so far, keeping the `recent` newest
(at most half the budget) and the best of the rest by a score; the tokens
that arrive between two cuts are all kept. Each query then sees what its
layer kept at the last cut before it, plus everything since. Scores:

  oracle           the attention each entry gets from every later query of
                   the full cache, summed over the layer's query heads: an
                   entry the model will attend to is kept, whatever a
                   scorer could know when it cuts;
  oracle-per-head  the same with a selection per KV head (kv-evict{...
                   heads=each}), from its own query heads' attention;
  triattention-per-head
                   TriAttention's score (docs/eviction.md: the centred
                   queries' logit averaged over the distances 1, 2, 4, ...,
                   65536 ahead, plus the magnitude term; the group's query
                   heads averaged), one selection per KV head, the centres
                   from --calibrate, the keys the full cache's;
  triattention, triattention-zmax
                   the same two (group mean, standardised maximum) with one
                   selection per layer, its KV heads' scores standardised
                   and averaged (kv-evict's default, heads=shared);
  triattention-max-per-head, triattention-zmax-per-head
                   the same with the group's query heads combined by their
                   maximum, or by the maximum of each head's scores
                   standardised over the candidates (the reference vLLM
                   runtime's default);
  triattention-online-zmax-per-head, triattention-online-zmax
                   the zmax scores (per KV head, and shared) with each
                   cut's centres taken from the sequence's own last
                   --online-window pre-RoPE queries instead of --calibrate;
  expected-per-head, expected
                   the attention weight a key can expect rather than its
                   expected logit: each calibrated query head as a circular
                   Gaussian per RoPE pair (centre E[q_f], variance E|q_f|^2
                   - |E q_f|^2), so the logit at distance D is normal and
                   E[exp(logit)] = exp(mean_D + variance / 2); averaged over
                   TriAttention's distances and summed over the group's
                   query heads (Expected Attention's idea on TriAttention's
                   grid), per KV head or shared as above;
  past             the attention each entry got from the queries before the
                   cut (what H2O sums);
  observed-per-head
                   the attention each entry got from the --online-window
                   queries before the cut, per KV head (a ring of recent
                   queries, SnapKV's observation window at decode time);
  hybrid-per-head  triattention-zmax-per-head's score and the log of
                   observed-per-head's, each standardised over the
                   candidates, summed;
  near-oracle-per-head
                   the attention each entry gets from the --online-window
                   queries after the cut, per KV head: what an exact
                   prediction of the near future would keep;
  streaming        the newest, with 4 sinks (StreamingLLM).

`past` and `streaming` are there to check the replay against the runtime's
table (README, KV-cache eviction). --layer-fractions L:F,... gives layer
L its own fraction (per-head scores); --per-layer evicts one layer at a
time, the others full, and prints each layer's perplexity change. The oracles bound what any scorer can
reach under the same rule, TriAttention included: their attention comes
from the full cache, not the evicted one, so they are a bound by
construction only up to that approximation.

  scripts/eviction-oracle.py --fractions 0.5,0.25,0.1

prints the perplexity change against the full cache for each score and
fraction. A design tool, not a test.
"""
import argparse
import os
import time

import numpy as np

from numpy_model import Model, data_dir


def visibility(scores, length, fraction, interval, recent, sinks):
    """[t][t] additive mask of what each query sees under the rule above;
    scores(cut, candidates) ranks the candidates at a cut (higher kept)."""
    mask = np.zeros((length, length), np.float32)
    kept = np.arange(0)
    for cut in range(0, length, interval):
        if cut:
            candidates = np.concatenate([kept, np.arange(cut - interval, cut)])
            # A fraction of the tokens seen, or (above 1) a token count.
            budget = int(fraction * cut) if fraction <= 1 else int(fraction)
            if len(candidates) > budget:
                newest = min(recent, budget // 2)
                rest = candidates[:len(candidates) - newest]
                pinned = rest[rest < sinks]
                rest = rest[rest >= sinks]
                best = rest[np.argsort(-scores(cut, rest), kind="stable")]
                kept = np.sort(np.concatenate([
                    pinned, best[:budget - newest - len(pinned)],
                    candidates[len(candidates) - newest:]]))
            else:
                kept = candidates
        row = np.full(length, -np.inf, np.float32)
        row[kept] = 0
        row[cut:] = 0
        mask[cut:cut + interval] = row
    return mask


def centres(model, ids):
    """Per layer, query head and RoPE pair: the mean pre-RoPE query as a
    complex number, the mean magnitude and the mean squared magnitude."""
    sums = {}

    def observe(layer, q, k, v):
        pairs = q[..., 0::2].astype(np.float64) + 1j * q[..., 1::2]
        sums[layer] = (pairs.mean(0), np.abs(pairs).mean(0),
                       (np.abs(pairs) ** 2).mean(0))
    model.forward(ids, observe=observe)
    return [sums[layer] for layer in range(model.layers)]


def triattention(model, stats, keys, horizon=65536, combine="mean",
                 queries=None, window=0):
    """scores(layer, head)(cut, candidates): TriAttention's score (its closed
    form, docs/eviction.md) combined over the KV head's query heads: their
    mean ("mean", the runtime's default), their maximum ("max"), or the
    maximum of each head's scores standardised over the candidates ("zmax",
    the reference vLLM runtime's default: sparse_normalize_scores,
    layer_perhead_aggregation=max). With `queries` (per layer, [t][heads][d]
    before RoPE), each cut's centres come from the `window` queries before
    it instead of `stats`."""
    d, group = model.d, model.heads // model.kv_heads
    frequencies = 1.0 / model.theta ** (np.arange(0, d, 2) / d)
    distances = 2.0 ** np.arange(int(np.log2(horizon)) + 1)
    z = np.exp(1j * np.outer(distances, frequencies)).mean(0)

    def score(layer, head):
        centre, magnitude = stats[layer][:2]
        heads = slice(head * group, (head + 1) * group)
        c, m = centre[heads], magnitude[heads] - np.abs(centre[heads])
        if combine == "mean":
            c, m = c.mean(0, keepdims=True), m.mean(0, keepdims=True)
        k = keys[layer][:, head, 0::2].astype(np.float64) + 1j * keys[layer][:, head, 1::2]

        def at(cut, candidates):
            nonlocal c, m
            if queries is not None:
                q = queries[layer][max(0, cut - window):cut, heads]
                pairs = q[..., 0::2].astype(np.float64) + 1j * q[..., 1::2]
                c, m = pairs.mean(0), np.abs(pairs).mean(0) - np.abs(pairs.mean(0))
                if combine == "mean":
                    c, m = c.mean(0, keepdims=True), m.mean(0, keepdims=True)
            turn = np.exp(1j * np.outer(cut - 1 - candidates, frequencies))
            kc = k[candidates]
            # [heads][candidates]
            s = (np.real((c * z)[:, None, :] * (np.conj(kc) * turn)[None]).sum(2) +
                 (m[:, None, :] * np.abs(kc)[None]).sum(2))
            if combine == "zmax":
                s = (s - s.mean(1, keepdims=True)) / np.maximum(s.std(1, keepdims=True), 1e-6)
            return s.max(0)
        return at
    return score


def expected_attention(model, stats, keys, horizon=65536):
    """scores(layer, head)(cut, candidates): log of the attention weight a
    key can expect from the KV head's query heads, each a circular
    Gaussian per RoPE pair around its calibrated centre, averaged over
    TriAttention's distances 1, 2, 4, ..., horizon ahead of the cut and
    summed over the heads (the softmax's denominator left out: common to
    the candidates of one query)."""
    d, group = model.d, model.heads // model.kv_heads
    frequencies = 1.0 / model.theta ** (np.arange(0, d, 2) / d)
    distances = 2.0 ** np.arange(int(np.log2(horizon)) + 1)

    def score(layer, head):
        centre, _, square = stats[layer]
        heads = slice(head * group, (head + 1) * group)
        c = centre[heads]
        variance = np.maximum(square[heads] - np.abs(c) ** 2, 0)
        k = keys[layer][:, head, 0::2].astype(np.float64) + 1j * keys[layer][:, head, 1::2]

        def at(cut, candidates):
            kc = k[candidates]
            # [D][candidates][pairs]: each pair's rotation from the key to
            # the query D ahead of the cut.
            turn = np.exp(1j * np.multiply.outer(
                cut - 1 - candidates[None, :] + distances[:, None], frequencies))
            # [heads][D][candidates] mean logits, [heads][candidates] their
            # variance (Re of circular noise: half its power).
            mean = np.real(np.einsum("hf,dcf->hdc", c, np.conj(kc) * turn)) / np.sqrt(d)
            spread = (variance[:, None, :] * np.abs(kc)[None] ** 2).sum(2) / (2 * d)
            logs = mean + spread[:, None, :] / 2
            top = logs.max(axis=(0, 1), keepdims=True)
            return np.log(np.exp(logs - top).mean(1).sum(0)) + top[0, 0]
        return at
    return score


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fractions", default="0.5,0.25,0.1",
                        help="budgets: fractions of the tokens seen, or (above 1) token counts")
    parser.add_argument("--interval", type=int, default=128)
    parser.add_argument("--recent", type=int, default=128)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--offset", type=int, default=0,
                        help="characters of --data to skip before the window")
    parser.add_argument("--data", default=os.path.join(data_dir(), "data", "pride-and-prejudice.txt"))
    parser.add_argument("--calibrate", default=os.path.join(data_dir(), "data", "emma.txt"),
                        help="text for TriAttention's query centres")
    parser.add_argument("--horizon", type=int, default=65536,
                        help="TriAttention's farthest distance, a power of two")
    parser.add_argument("--online-window", type=int, default=512,
                        help="the -online scores: queries a cut's centres come from")
    parser.add_argument("--scores", help="the scores to run, comma-separated (default: all)")
    parser.add_argument("--layer-fractions", default="",
                        help="L:F,...: layer L keeps fraction F (per-head scores)")
    parser.add_argument("--per-layer", action="store_true",
                        help="evict one layer at a time (the first of --scores and --fractions)")
    args = parser.parse_args()

    model = Model(os.path.join(data_dir(), "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ids = model.ids(args.data, args.tokens, args.offset)
    length, group = len(ids), model.heads // model.kv_heads
    # Per layer and KV head, the attention each key gets from each query of
    # the full cache, summed over the head's query heads: [kv][t][t].
    received, keys, queries = [], [], []
    base = model.nll(ids, observe=lambda layer, q, k, v: (keys.append(k), queries.append(q)),
                     attention=lambda layer, p: received.append(
                         p.reshape(model.kv_heads, group, length, length).sum(1)))
    stats = centres(model, model.ids(args.calibrate, args.tokens))
    tri = {combine: triattention(model, stats, keys, args.horizon, combine)
           for combine in ("mean", "max", "zmax")}
    tri["online-zmax"] = triattention(model, stats, keys, args.horizon, "zmax",
                                      queries, args.online_window)
    expected = expected_attention(model, stats, keys, args.horizon)
    # Per layer and KV head, [t + 1][t]: the attention each key got from
    # the queries before row t; every score of received attention is a
    # difference of two rows.
    sums = [np.concatenate([np.zeros((model.kv_heads, 1, length)), np.cumsum(r, 1)], 1)
            for r in received]
    window = args.online_window
    print(f"full cache: ppl {np.exp(base):.4f} over {length} tokens "
          f"(every {args.interval} tokens, {args.recent} newest kept)", flush=True)

    def shared(table, sinks=0):
        # table(layer) -> [t][t] cumulative attention over the layer's heads
        return lambda fraction: [visibility(
            lambda cut, c, t=table(layer): t[cut, c], length, fraction,
            args.interval, args.recent, sinks) for layer in range(model.layers)]

    own = {int(layer): float(f) for layer, f in
           (item.split(":") for item in args.layer_fractions.split(",") if item)}

    def per_head(scores):
        # scores(layer, head) -> (cut, candidates) -> their scores
        return lambda fraction: [np.stack([
            visibility(scores(layer, h), length, own.get(layer, fraction),
                       args.interval, args.recent, 0)
            for h in range(model.kv_heads)]) for layer in range(model.layers)]

    def standardised(x):
        return (x - x.mean()) / max(x.std(), 1e-6)

    def shared_scores(scores):
        # One selection per layer: each KV head's scores standardised over
        # the candidates, then averaged over the heads (as selectKept does).
        return lambda fraction: [visibility(
            lambda cut, c, layer=layer: np.mean(
                [standardised(scores(layer, h)(cut, c)) for h in range(model.kv_heads)], 0),
            length, fraction, args.interval, args.recent, 0) for layer in range(model.layers)]

    newest = np.arange(length, dtype=np.float64)[None, :].repeat(length, 0)
    observed = lambda layer, h: lambda cut, c: (
        sums[layer][h, cut, c] - sums[layer][h, max(0, cut - window), c])
    near = lambda layer, h: lambda cut, c: (
        sums[layer][h, min(length, cut + window), c] - sums[layer][h, cut, c])

    def hybrid(layer, h):
        t, o = tri["zmax"](layer, h), observed(layer, h)
        return lambda cut, c: standardised(t(cut, c)) + standardised(np.log(o(cut, c) + 1e-6))
    scores = {
        "oracle": shared(lambda layer: (sums[layer][:, length:] - sums[layer][:, :length]).sum(0)),
        "oracle-per-head": per_head(lambda layer, h: lambda cut, c: (
            sums[layer][h, length, c] - sums[layer][h, cut, c])),
        "triattention": shared_scores(tri["mean"]),
        "triattention-zmax": shared_scores(tri["zmax"]),
        "triattention-per-head": per_head(tri["mean"]),
        "triattention-max-per-head": per_head(tri["max"]),
        "triattention-zmax-per-head": per_head(tri["zmax"]),
        "triattention-online-zmax-per-head": per_head(tri["online-zmax"]),
        "triattention-online-zmax": shared_scores(tri["online-zmax"]),
        "observed-per-head": per_head(observed),
        "observed": shared_scores(lambda layer, h: lambda cut, c: np.log(observed(layer, h)(cut, c) + 1e-6)),
        "hybrid-per-head": per_head(hybrid),
        "hybrid": shared_scores(hybrid),
        "near-oracle-per-head": per_head(near),
        "expected-per-head": per_head(expected),
        "expected": shared_scores(expected),
        "past": shared(lambda layer: sums[layer].sum(0)[:length]),
        "streaming": shared(lambda layer: newest, sinks=4),
    }
    chosen = args.scores.split(",") if args.scores else list(scores)
    for name in chosen:
        if name not in scores:
            parser.error(f"--scores: no score '{name}'; the scores are {', '.join(scores)}")
    if args.per_layer:
        masks = scores[chosen[0]](float(args.fractions.split(",")[0]))
        for layer in range(model.layers):
            nll = model.nll(ids, masks=[m if i == layer else np.zeros_like(m)
                                        for i, m in enumerate(masks)])
            print(f"layer {layer:2d} {chosen[0]} {100 * (np.exp(nll - base) - 1):+.2f}%",
                  flush=True)
        return
    for fraction in [float(f) for f in args.fractions.split(",")]:
        for name in chosen:
            masks = scores[name]
            start = time.time()
            nll = model.nll(ids, masks=masks(fraction))
            print(f"{fraction:<5} {name:<22} ppl {np.exp(nll):.4f}  "
                  f"{100 * (np.exp(nll - base) - 1):+.2f}%  ({time.time() - start:.0f} s)",
                  flush=True)


if __name__ == "__main__":
    main()
