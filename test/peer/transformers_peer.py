#!/usr/bin/env python3
"""kvopt against Hugging Face transformers on the default model, once, on the
GPU machine (which has transformers and PyTorch but not kvopt's build).

  transformers_peer.py dump --kvopt K --runner R --work DIR [--model M.gguf]
  transformers_peer.py check --gguf M.gguf --kvopt-out DIR

dump (here): kvopt compiles the GGUF on the float32 path
(kv-quantize{encoding=f32}) and kvrt-runtime-dump writes, for each prompt
of onnxruntime_peer.py, the logits of every prompt token and 64 greedy
tokens into DIR/out; the GGUF is split into DIR/part-0 and DIR/part-1 so
each half fits the GPU machine's transfer limit.

check (there): the GGUF's weights become a Hugging Face folder of float32
safetensors (reference_check.make_hf, the same conversion every peer check
uses), transformers loads that folder (LlamaForCausalLM, eager attention,
float32 on the GPU with TF32 off), and for each prompt the logits must agree
with kvopt's to a relative error (max |diff| / max |ref|) under 1e-3 and the
64 greedy tokens (with transformers' own KV cache) must be identical.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "import"))
import onnxruntime_peer  # noqa: E402
import reference_check  # noqa: E402


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dump(args):
    out = os.path.join(args.work, "out")
    os.makedirs(out, exist_ok=True)
    hf = os.path.join(args.work, "hf")
    if not os.path.exists(os.path.join(hf, "config.json")):
        reference_check.make_hf(args.model, hf)
    prompts = [onnxruntime_peer.tokenize(hf, text)
               for text in onnxruntime_peer.PROMPTS]
    prompts_file = os.path.join(out, "prompts.txt")
    with open(prompts_file, "w") as f:
        f.writelines(" ".join(map(str, p)) + "\n" for p in prompts)
    artifact = os.path.join(args.work, "f32.kvpkg")
    subprocess.run([args.kvopt, "compile", args.model, "--passes",
                    "kv-quantize{encoding=f32}", "-o", artifact], check=True)
    subprocess.run([args.runner, "reference", artifact, out, prompts_file,
                    str(onnxruntime_peer.NEW_TOKENS)], check=True)
    data = open(args.model, "rb").read()
    half = len(data) // 2
    for i, part in enumerate((data[:half], data[half:])):
        with open(os.path.join(args.work, f"part-{i}"), "wb") as f:
            f.write(part)
    with open(os.path.join(out, "model.json"), "w") as f:
        json.dump({"sha256": sha256(args.model), "bytes": len(data)}, f)
    return 0


def greedy(model, ids, n):
    """n greedy tokens through transformers' own KV cache; EOS does not stop
    it (generate()'s min_new_tokens would mask EOS instead)."""
    out = model(ids, use_cache=True)
    tokens = [int(out.logits[0, -1].argmax())]
    while len(tokens) < n:
        step = ids.new_tensor([[tokens[-1]]])
        out = model(step, past_key_values=out.past_key_values, use_cache=True)
        tokens.append(int(out.logits[0, -1].argmax()))
    return tokens


def check(args):
    import torch
    from transformers import AutoModelForCausalLM

    out = args.kvopt_out
    expected = json.load(open(os.path.join(out, "model.json")))
    if sha256(args.gguf) != expected["sha256"]:
        print(f"{args.gguf}: not the GGUF kvopt's logits came from")
        return 1
    hf = os.path.join(os.path.dirname(os.path.abspath(args.gguf)), "hf")
    if not os.path.exists(os.path.join(hf, "config.json")):
        reference_check.make_hf(args.gguf, hf)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = AutoModelForCausalLM.from_pretrained(
        hf, dtype=torch.float32, attn_implementation="eager").cuda()
    model.eval()
    vocab = model.config.vocab_size
    with open(os.path.join(out, "prompts.txt")) as f:
        prompts = [[int(t) for t in line.split()] for line in f]
    failed = 0
    n = onnxruntime_peer.NEW_TOKENS
    for i, prompt in enumerate(prompts):
        ids = torch.tensor([prompt], device="cuda")
        with torch.no_grad():
            reference = model(ids).logits[0].double().cpu().numpy()
            their_tokens = greedy(model, ids, n)
        ours = np.fromfile(os.path.join(out, f"logits_{i}.f32"),
                           dtype=np.float32).reshape(len(prompt), vocab)
        error = float(np.abs(ours - reference).max() /
                      np.abs(reference).max())
        with open(os.path.join(out, f"greedy_{i}.txt")) as f:
            our_tokens = [int(t) for t in f.read().split()]
        same = our_tokens == their_tokens
        ok = error < onnxruntime_peer.TOLERANCE and same
        failed += not ok
        print(f"prompt {i} ({len(prompt)} tokens): max relative logit error "
              f"{error:.2e} (limit {onnxruntime_peer.TOLERANCE:.0e}); greedy "
              f"{n} tokens {'identical' if same else 'DIFFER'}")
        if not same:
            print(f"  kvopt        {our_tokens}\n  transformers {their_tokens}")
    import transformers
    print(f"transformers {transformers.__version__}, torch {torch.__version__}"
          f", {torch.cuda.get_device_name()}: {len(prompts) - failed} passed, "
          f"{failed} failed")
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--kvopt", required=True)
    d.add_argument("--runner", required=True, help="kvrt-runtime-dump")
    d.add_argument("--work", required=True)
    d.add_argument("--model", default=onnxruntime_peer.default_model())
    c = sub.add_parser("check")
    c.add_argument("--gguf", required=True)
    c.add_argument("--kvopt-out", required=True)
    args = parser.parse_args()
    return dump(args) if args.mode == "dump" else check(args)


if __name__ == "__main__":
    sys.exit(main())
