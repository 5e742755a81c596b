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
onnxruntime on the same prompt, both after the same prefill, median of 3:
kvopt on the float32 weights onnxruntime runs (the Hugging Face folder) and
on the GGUF itself, whose Q4_1 and Q8_0 blocks its artifact keeps;
onnxruntime on the float32 model and with its MatMul weights quantized to
MatMulNBits (4 bits, blocks of 32: the same bytes per weight as Q4_1).
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


def quantize_4bit(onnx_path, work):
    """The ONNX model with every MatMul weight in onnxruntime's MatMulNBits
    (4 bits, blocks of 32 with a scale and a zero point, as Q4_1; f32
    activations), made once: the onnxruntime peer of kvopt's block
    weights."""
    q4_path = os.path.join(work, "matmul-4bit.onnx")
    if not os.path.exists(q4_path):
        import onnx
        from onnxruntime.quantization.matmul_nbits_quantizer import (
            MatMulNBitsQuantizer)
        quantizer = MatMulNBitsQuantizer(onnx.load(onnx_path), block_size=32,
                                         is_symmetric=False)
        quantizer.process()
        quantizer.model.save_model_to_file(q4_path + ".tmp",
                                           use_external_data_format=True)
        os.replace(q4_path + ".tmp", q4_path)
    return q4_path


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
    ids = " ".join(map(str, prompt))

    def kvopt_rate(source, name):
        artifact = os.path.join(args.work, name)
        subprocess.run([args.kvopt, "compile", source, "-o", artifact],
                       check=True)
        runs = []
        for _ in range(3):
            stats = subprocess.run(
                [args.kvopt, "run", artifact, "--tokens", ids, "--max-tokens",
                 str(args.tokens), "--ignore-eos", "--threads",
                 str(args.threads)],
                check=True, capture_output=True, text=True).stderr
            runs.append(float(re.search(r"decode \d+ tokens at ([0-9.]+)",
                                        stats).group(1)))
        return statistics.median(runs)

    ours = kvopt_rate(hf, "f32.kvpkg")
    ours_blocks = kvopt_rate(args.model, "blocks.kvpkg")

    def ort_rate(path):
        ort_model = OrtModel(path, cfg, args.threads)
        rates = []
        for _ in range(3):
            _, seconds = ort_model.greedy(prompt, args.tokens)
            rates.append((args.tokens - 1) / seconds)
        return statistics.median(rates)

    theirs = ort_rate(onnx_path)
    theirs_4bit = ort_rate(quantize_4bit(onnx_path, args.work))
    print(f"SmolLM2-135M, prompt {len(prompt)} tokens, {args.tokens} greedy "
          f"tokens, {args.threads} threads, median of 3")
    print(f"kvopt, f32 weights, bf16 KV cache        decode {ours:7.1f} "
          "tokens/s")
    print(f"onnxruntime, f32 weights, f32 KV cache   decode {theirs:7.1f} "
          "tokens/s")
    print(f"kvopt, the GGUF's Q4_1/Q8_0 blocks       decode "
          f"{ours_blocks:7.1f} tokens/s")
    print(f"onnxruntime, MatMulNBits 4-bit weights   decode "
          f"{theirs_4bit:7.1f} tokens/s")
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
