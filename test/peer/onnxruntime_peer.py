#!/usr/bin/env python3
"""kvopt against onnxruntime on the same weights: a check and a benchmark.

  onnxruntime_peer.py check --kvopt K --runner R [--model M.gguf] --work DIR
  onnxruntime_peer.py bench --kvopt K [--model M.gguf] --work DIR [--threads N]

Both write the GGUF's weights as a Hugging Face folder (reference_check.py
make-hf) and that folder as the decomposed ONNX form that torch.onnx and
optimum export (make_onnx.py), which onnxruntime runs with its KV cache
(past_key_values / present).

check: kvopt compiles the GGUF itself on the float32 path
(kv-quantize{encoding=f32}); on each prompt the logits of every prompt token
must agree with onnxruntime's to a relative error (max |diff| / max |ref|)
under 1e-3, and 64 greedy tokens must be identical.

bench: greedy decode tokens/s of `kvopt run` (its stats line) and of
onnxruntime on the same prompt, both after the same prefill, median of 3.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "import"))
import make_onnx  # noqa: E402
import reference_check  # noqa: E402

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
    "Once upon a time, in a small village by the sea, there lived",
]
NEW_TOKENS = 64
TOLERANCE = 1e-3


def prepare(model, work):
    """The HF folder and the decomposed ONNX of `model`, made once."""
    hf = os.path.join(work, "hf")
    onnx_path = os.path.join(work, "decomposed.onnx")
    if not os.path.exists(os.path.join(hf, "config.json")):
        reference_check.make_hf(model, hf)
    if not os.path.exists(onnx_path):
        cfg, w, tied = make_onnx.load_hf(hf)
        onnx_model = make_onnx.decomposed(cfg, w, tied)
        import onnx
        onnx.save_model(onnx_model, onnx_path + ".tmp",
                        save_as_external_data=True, all_tensors_to_one_file=True,
                        location="decomposed.onnx.data")
        os.replace(onnx_path + ".tmp", onnx_path)
    return hf, onnx_path


def tokenize(hf, text):
    from tokenizers import Tokenizer
    return Tokenizer.from_file(os.path.join(hf, "tokenizer.json")).encode(
        text).ids


class OrtModel:
    def __init__(self, path, cfg, threads=0):
        import onnxruntime as ort
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            path, options, providers=["CPUExecutionProvider"])
        self.layers = cfg["num_hidden_layers"]
        _, self.kv_heads, self.head_dim = make_onnx.dims(cfg)

    def empty_cache(self):
        shape = (1, self.kv_heads, 0, self.head_dim)
        return {f"past_key_values.{i}.{t}": np.zeros(shape, np.float32)
                for i in range(self.layers) for t in ("key", "value")}

    def forward(self, ids, start, cache):
        """Logits [len(ids), vocab] of ids at positions start..., and the
        cache after them."""
        feed = dict(cache)
        feed["input_ids"] = np.array([ids], np.int64)
        feed["position_ids"] = np.arange(start, start + len(ids))[None]
        names = ["logits"] + [f"present.{i}.{t}" for i in range(self.layers)
                              for t in ("key", "value")]
        out = self.session.run(names, feed)
        cache = {f"past_key_values.{i}.{t}": out[1 + 2 * i + j]
                 for i in range(self.layers)
                 for j, t in enumerate(("key", "value"))}
        return out[0][0], cache

    def greedy(self, prompt, n):
        """n greedy tokens after the prompt; also the seconds the n - 1
        single-token decode steps took."""
        logits, cache = self.forward(prompt, 0, self.empty_cache())
        tokens = [int(np.argmax(logits[-1]))]
        start = time.perf_counter()
        while len(tokens) < n:
            logits, cache = self.forward([tokens[-1]], len(prompt) +
                                         len(tokens) - 1, cache)
            tokens.append(int(np.argmax(logits[-1])))
        return tokens, time.perf_counter() - start


def check(args):
    hf, onnx_path = prepare(args.model, args.work)
    cfg = json.load(open(os.path.join(hf, "config.json")))
    prompts = [tokenize(hf, text) for text in PROMPTS]
    prompts_file = os.path.join(args.work, "prompts.txt")
    with open(prompts_file, "w") as f:
        f.writelines(" ".join(map(str, p)) + "\n" for p in prompts)
    artifact = os.path.join(args.work, "f32.kvpkg")
    subprocess.run([args.kvopt, "compile", args.model, "--passes",
                    "kv-quantize{encoding=f32}", "-o", artifact], check=True)
    subprocess.run([args.runner, "reference", artifact, args.work,
                    prompts_file, str(NEW_TOKENS)], check=True)

    ort_model = OrtModel(onnx_path, cfg)
    vocab = cfg["vocab_size"]
    failed = 0
    for i, prompt in enumerate(prompts):
        reference, _ = ort_model.forward(prompt, 0, ort_model.empty_cache())
        ours = np.fromfile(os.path.join(args.work, f"logits_{i}.f32"),
                           dtype=np.float32).reshape(len(prompt), vocab)
        error = float(np.abs(ours - reference).max() / np.abs(reference).max())
        with open(os.path.join(args.work, f"greedy_{i}.txt")) as f:
            our_tokens = [int(t) for t in f.read().split()]
        their_tokens, _ = ort_model.greedy(prompt, NEW_TOKENS)
        same = our_tokens == their_tokens
        ok = error < TOLERANCE and same
        failed += not ok
        print(f"prompt {i} ({len(prompt)} tokens): max relative logit error "
              f"{error:.2e} (limit {TOLERANCE:.0e}); greedy {NEW_TOKENS} "
              f"tokens {'identical' if same else 'DIFFER'}")
        if not same:
            print(f"  kvopt       {our_tokens}\n  onnxruntime {their_tokens}")
    print(f"{len(prompts) - failed} passed, {failed} failed")
    return 1 if failed else 0


def bench(args):
    hf, onnx_path = prepare(args.model, args.work)
    cfg = json.load(open(os.path.join(hf, "config.json")))
    text = PROMPTS[2]
    prompt = tokenize(hf, text)
    artifact = os.path.join(args.work, "default.kvpkg")
    subprocess.run([args.kvopt, "compile", args.model, "-o", artifact],
                   check=True)
    ids = " ".join(map(str, prompt))
    runs = []
    for _ in range(3):
        stats = subprocess.run(
            [args.kvopt, "run", artifact, "--tokens", ids, "--max-tokens",
             str(args.tokens), "--ignore-eos", "--threads", str(args.threads)],
            check=True, capture_output=True, text=True).stderr
        runs.append(float(re.search(r"decode \d+ tokens at ([0-9.]+)",
                                    stats).group(1)))
    ours = statistics.median(runs)
    ort_model = OrtModel(onnx_path, cfg, args.threads)
    rates = []
    for _ in range(3):
        _, seconds = ort_model.greedy(prompt, args.tokens)
        rates.append((args.tokens - 1) / seconds)
    theirs = statistics.median(rates)
    print(f"SmolLM2-135M (float32 weights), prompt {len(prompt)} tokens, "
          f"{args.tokens} greedy tokens, {args.threads} threads, median of 3")
    print(f"kvopt (bf16 KV cache)     decode {ours:7.1f} tokens/s")
    print(f"onnxruntime (f32 cache)   decode {theirs:7.1f} tokens/s")
    return 0


def default_model():
    """Where scripts/fetch-default-model.sh installs the default model."""
    data = os.environ.get("KVOPT_DATA_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or
        os.path.join(os.path.expanduser("~"), ".local", "share"), "kvopt")
    return os.path.join(data, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["check", "bench"])
    parser.add_argument("--kvopt", required=True)
    parser.add_argument("--runner", help="kvrt-runtime-dump (check)")
    parser.add_argument("--model", default="default",
                        help="a Llama GGUF; `default` is the default model")
    parser.add_argument("--work", required=True)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    if args.model == "default":
        args.model = default_model()
    os.makedirs(args.work, exist_ok=True)
    return check(args) if args.mode == "check" else bench(args)


if __name__ == "__main__":
    sys.exit(main())
