#!/usr/bin/env python3
"""Checks `kvopt calibrate` against a float64 numpy forward pass.

Runs `kvopt calibrate` on a Hugging Face Llama folder and a text, then runs
the same windows of tokens (the text tokenized by the `tokenizers` package,
cut into the windows the statistics file records, each after BOS when the
tokenizer adds one) through reference_forward.py's float64 model, and
requires every layer's per-head absmax of keys (after RoPE) and values to
match within 1e-5 relative.
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
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
