#!/usr/bin/env python3
"""Checks `kvopt calibrate` against a float64 numpy forward pass.

Runs `kvopt calibrate` on a Hugging Face Llama folder and a text, then runs
the same windows of tokens (the text tokenized by the `tokenizers` package,
cut into the windows the statistics file records, each after BOS when the
tokenizer adds one) through reference_forward.py's float64 model, and
requires every layer's per-head absmax of keys (after RoPE) and values to
match within 1e-5 relative, and its pre-RoPE query and key centres and mean
magnitudes per RoPE frequency pair to match within 1e-6 of the head's
largest mean magnitude, its means and covariances of the pre-RoPE keys
and of the values to match within 1e-6 of the head's largest variance, and
its attention-weighted second moment of the values (outside the sinks and
window the file records) within 1e-6 of the head's largest diagonal entry.
Prints the mean resultant length |E q_f| / E|q_f| averaged over heads and
pairs, the concentration TriAttention relies on.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
from tokenizers import Tokenizer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "runtime"))
from reference_forward import Llama  # noqa: E402

TOLERANCE = 1e-5
PRE_ROPE_TOLERANCE = 1e-6
MOMENT_TOLERANCE = 1e-6
PRE_ROPE = ("query_center", "query_magnitude", "key_center", "key_magnitude")


def reference_absmax(model, windows):
    layers = model.config["num_hidden_layers"]
    keys = np.zeros((layers, model.kv_heads))
    values = np.zeros((layers, model.kv_heads))

    def record(layer, k, v):
        keys[layer] = np.maximum(keys[layer], np.abs(k).max(axis=(0, 2)))
        values[layer] = np.maximum(values[layer], np.abs(v).max(axis=(0, 2)))

    for window in windows:
        model.forward(window, on_cache=record)
    return keys, values


def reference_pre_rope(model, windows):
    """Per layer and head, E[x_f] as [heads, d/2, 2] and E|x_f| as
    [heads, d/2] of the queries and keys before RoPE, x_f = x_i + j x_{i+d/2}
    (rotate_half pairs), over every token of every window."""
    layers, half = model.config["num_hidden_layers"], model.head_dim // 2
    sums = {name: [0.0] * layers for name in PRE_ROPE}
    tokens = [0] * layers

    def record(layer, q, k):
        for side, x in (("query", q), ("key", k)):
            z = x[..., :half] + 1j * x[..., half:]
            center = z.sum(axis=0)
            sums[side + "_center"][layer] = sums[side + "_center"][layer] + \
                np.stack([center.real, center.imag], axis=-1)
            sums[side + "_magnitude"][layer] = \
                sums[side + "_magnitude"][layer] + np.abs(z).sum(axis=0)
        tokens[layer] += len(q)

    for window in windows:
        model.forward(window, on_pre_rope=record)
    return {name: np.array([s / n for s, n in zip(sums[name], tokens)])
            for name in PRE_ROPE}


def reference_moments(model, windows):
    """Per layer and KV head, the mean [heads, d] and covariance
    [heads, d, d] of the keys before RoPE and of the values."""
    layers = model.config["num_hidden_layers"]
    sums = {side: [[0.0, 0.0, 0] for _ in range(layers)]
            for side in ("key", "value")}

    def add(side, layer, x):
        s = sums[side][layer]
        s[0] = s[0] + x.sum(axis=0)
        s[1] = s[1] + np.einsum("thi,thj->hij", x, x)
        s[2] += len(x)

    for window in windows:
        model.forward(window, on_pre_rope=lambda l, q, k: add("key", l, k),
                      on_cache=lambda l, k, v: add("value", l, v))
    out = {}
    for side in ("key", "value"):
        means = [s[0] / s[2] for s in sums[side]]
        out[side + "_mean"] = np.array(means)
        out[side + "_covariance"] = np.array(
            [s[1] / s[2] - np.einsum("hi,hj->hij", m, m)
             for s, m in zip(sums[side], means)])
    return out


def reference_attention_moment(model, windows, sinks, window):
    """Per layer and KV head, sum_t a_t v_t v_t^T / sum_t a_t [heads, d, d],
    a_t the attention weight entry t gets from the group's query heads at
    the positions p for which t is neither a sink (t < sinks) nor in the
    window (p - t < window)."""
    layers = model.config["num_hidden_layers"]
    group = model.heads // model.kv_heads
    sums = [[0.0, 0.0] for _ in range(layers)]

    def add(layer, weights, values):
        t = np.arange(len(values))
        outside = (t[:, None] - t[None, :] >= window) & (t[None, :] >= sinks)
        a = (weights * outside).sum(axis=1)  # [heads, keys]
        a = a.reshape(model.kv_heads, group, -1).sum(axis=1)
        sums[layer][0] = sums[layer][0] + np.einsum("ht,thi,thj->hij", a,
                                                    values, values)
        sums[layer][1] = sums[layer][1] + a.sum(axis=1)

    for w in windows:
        model.forward(w, on_attention=add)
    return np.array([m / n[:, None, None] for m, n in sums])


def upper_triangle(packed, d):
    """A file's covariance (per layer and head, the upper triangle row by
    row) as full [layers, heads, d, d] matrices."""
    packed = np.array(packed)
    rows, cols = np.triu_indices(d)
    full = np.zeros(packed.shape[:-1] + (d, d))
    full[..., rows, cols] = packed
    full[..., cols, rows] = packed
    return full


def compare(name, kvopt, reference, scale, tolerance, what):
    """Prints and returns whether kvopt's statistic is within `tolerance` of
    each head's `scale` (the head's largest `what`) of the reference."""
    if kvopt.shape != reference.shape:
        print(f"{name}: kvopt wrote shape {kvopt.shape}, the reference "
              f"has {reference.shape}")
        return False
    difference = np.abs(kvopt - reference).reshape(*scale.shape, -1)
    error = (difference.max(axis=-1) / scale).max()
    print(f"{name}: max error {error:.2e} of the head's largest {what} "
          f"(limit {tolerance:.0e})")
    return error <= tolerance


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kvopt", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--text", required=True)
    parser.add_argument("--tokens", type=int, required=True)
    parser.add_argument("--work", required=True, help="a scratch folder")
    args = parser.parse_args()

    os.makedirs(args.work, exist_ok=True)
    stats_file = os.path.join(args.work, "stats.json")
    subprocess.run([args.kvopt, "calibrate", args.model, "--data", args.text,
                    "--tokens", str(args.tokens), "-o", stats_file],
                   check=True)
    with open(stats_file) as f:
        stats = json.load(f)
    source = stats["source"]

    tokenizer = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    with open(args.text, encoding="utf-8") as f:
        ids = tokenizer.encode(f.read(), add_special_tokens=False).ids
    ids = ids[:args.tokens]
    if source["tokens"] != len(ids):
        print(f"kvopt ran {source['tokens']} tokens, the reference tokenizer "
              f"gives {len(ids)}")
        return 1
    model = Llama(args.model)
    bos = model.config.get("bos_token_id")
    prefix = tokenizer.encode("", add_special_tokens=True).ids
    start = [bos] if bos is not None and prefix[:1] == [bos] else []
    step = source["window"]
    windows = [start + ids[i:i + step] for i in range(0, len(ids), step)]
    keys, values = reference_absmax(model, windows)

    failed = 0
    for name, reference in (("key_absmax", keys), ("value_absmax", values)):
        kvopt = np.array([layer[name] for layer in stats["layers"]])
        error = (np.abs(kvopt - reference) / reference).max()
        ok = kvopt.shape == reference.shape and error <= TOLERANCE
        failed += not ok
        print(f"{name}: {len(windows)} windows of up to {step} tokens, "
              f"max relative error {error:.2e} (limit {TOLERANCE:.0e})")

    pre_rope = reference_pre_rope(model, windows)
    for name in PRE_ROPE:
        kvopt = np.array([layer[name] for layer in stats["layers"]])
        # Relative to each head's largest mean magnitude: a centre
        # coordinate near zero has no meaningful relative error of its own.
        scale = pre_rope[name.split("_")[0] + "_magnitude"].max(axis=-1)
        failed += not compare(name, kvopt, pre_rope[name], scale,
                              PRE_ROPE_TOLERANCE, "mean magnitude")
    moments = reference_moments(model, windows)
    d = model.head_dim
    for side in ("key", "value"):
        variance = np.diagonal(moments[side + "_covariance"], axis1=-2,
                               axis2=-1).max(axis=-1)
        for name, full in ((side + "_mean", False),
                           (side + "_covariance", True)):
            kvopt = [layer[name] for layer in stats["layers"]]
            kvopt = upper_triangle(kvopt, d) if full else np.array(kvopt)
            failed += not compare(name, kvopt, moments[name], variance,
                                  MOMENT_TOLERANCE, "variance")
    attention = reference_attention_moment(model, windows,
                                           source["attention_sinks"],
                                           source["attention_window"])
    kvopt = upper_triangle([layer["value_attention_moment"]
                            for layer in stats["layers"]], d)
    largest = np.diagonal(attention, axis1=-2, axis2=-1).max(axis=-1)
    failed += not compare("value_attention_moment", kvopt, attention, largest,
                          MOMENT_TOLERANCE, "second moment")
    for side in ("query", "key"):
        center = np.array([layer[side + "_center"] for layer in stats["layers"]])
        magnitude = np.array([layer[side + "_magnitude"]
                              for layer in stats["layers"]])
        r = np.hypot(center[..., 0], center[..., 1]) / magnitude
        print(f"{side} mean resultant length |E x_f| / E|x_f|: mean "
              f"{r.mean():.3f}, per layer "
              f"{' '.join(f'{v:.3f}' for v in r.mean(axis=(1, 2)))}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
