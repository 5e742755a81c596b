#!/usr/bin/env python3
"""A float64 numpy Llama forward pass, and the check that libkvrt matches it.

Reads a Hugging Face Llama folder (config.json, model.safetensors), runs
kvrt-runtime-dump on a few prompts given as token ids, and compares:
  * the logits of every prompt token: max |runtime - reference| divided by
    max |reference| per prompt must stay below 1e-4;
  * 32 greedy tokens after each prompt must be identical.
The model follows transformers' LlamaForCausalLM: RMSNorm, rotate_half RoPE,
grouped-query attention, SwiGLU MLP, tied embeddings when configured; and
the variants of Qwen2 (q/k/v biases), Qwen3 (RMSNorm of each query and key
head before RoPE) and Mistral (sliding-window attention). With --random
ARCH, a small random model of that architecture is written first (with the
tokenizer of --model) and checked instead.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
from safetensors.numpy import load_file

# Story openings as token ids (BOS first); the tokenizer is tested elsewhere.
PROMPTS = [
    [1, 80, 147, 201, 282, 215, 286, 598, 1662, 887, 610, 57],
    [1, 80, 388, 1174, 1714, 84, 235],
    [1, 80, 247, 476],
    [1],
]
NEW_TOKENS = 32
TOLERANCE = 1e-4


class Llama:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            self.config = json.load(f)
        raw = load_file(os.path.join(model_dir, "model.safetensors"))
        self.w = {name: t.astype(np.float64) for name, t in raw.items()}
        c = self.config
        self.heads = c["num_attention_heads"]
        self.kv_heads = c.get("num_key_value_heads", self.heads)
        self.head_dim = c.get("head_dim", c["hidden_size"] // self.heads)
        self.eps = c["rms_norm_eps"]
        # Tied checkpoints may store the shared matrix under one name only.
        embed = self.w.get("model.embed_tokens.weight")
        head = self.w.get("lm_head.weight")
        tied = c.get("tie_word_embeddings", False)
        self.embed = embed if embed is not None else head
        self.lm_head = self.embed if tied or head is None else head
        arch = c["architectures"][0]
        windowed = arch == "MistralForCausalLM" or c.get("use_sliding_window")
        self.window = c.get("sliding_window") if windowed else None

    def rms_norm(self, x, weight):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * weight

    def project(self, x, name):
        y = x @ self.w[name + ".weight"].T
        return y + self.w[name + ".bias"] if name + ".bias" in self.w else y

    def rope(self, x, positions):
        d = self.head_dim
        inv_freq = 1.0 / (self.config["rope_theta"] ** (np.arange(0, d, 2) / d))
        freqs = np.outer(positions, inv_freq)
        emb = np.concatenate([freqs, freqs], axis=-1)[:, None, :]
        rotated = np.concatenate([-x[..., d // 2:], x[..., : d // 2]], axis=-1)
        return x * np.cos(emb) + rotated * np.sin(emb)

    def forward(self, ids, on_cache=None, on_pre_rope=None, on_attention=None):
        """Logits [tokens, vocab] of a whole sequence, without a cache.
        on_cache(layer, keys, values), when given, sees what each layer's
        cache receives: [tokens, kv_heads, head_dim], keys after RoPE.
        on_pre_rope(layer, queries, keys), when given, sees each layer's
        queries [tokens, heads, head_dim] and keys [tokens, kv_heads,
        head_dim] before RoPE (rotate_half pairs: (i, i + head_dim / 2)).
        on_attention(layer, weights, values), when given, sees each layer's
        attention weights [heads, queries, keys] and values [tokens,
        kv_heads, head_dim]."""
        w, t, d = self.w, len(ids), self.head_dim
        positions = np.arange(t)
        x = self.embed[np.array(ids)]
        mask = np.triu(np.full((t, t), -np.inf), k=1)
        if self.window:
            mask += np.tril(np.full((t, t), -np.inf), k=-self.window)
        group = self.heads // self.kv_heads
        for layer in range(self.config["num_hidden_layers"]):
            p = f"model.layers.{layer}."
            h = self.rms_norm(x, w[p + "input_layernorm.weight"])
            q, k, v = (self.project(h, p + "self_attn." + n).reshape(t, -1, d)
                       for n in ("q_proj", "k_proj", "v_proj"))
            if p + "self_attn.q_norm.weight" in w:
                q = self.rms_norm(q, w[p + "self_attn.q_norm.weight"])
                k = self.rms_norm(k, w[p + "self_attn.k_norm.weight"])
            if on_pre_rope:
                on_pre_rope(layer, q, k)
            q, k = self.rope(q, positions), self.rope(k, positions)
            if on_cache:
                on_cache(layer, k, v)
            cached = v
            k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
            scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(d) + mask
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            if on_attention:
                on_attention(layer, scores, cached)
            o = np.einsum("hqk,khd->qhd", scores, v).reshape(t, self.heads * d)
            x = x + o @ w[p + "self_attn.o_proj.weight"].T
            h = self.rms_norm(x, w[p + "post_attention_layernorm.weight"])
            gate = h @ w[p + "mlp.gate_proj.weight"].T
            up = h @ w[p + "mlp.up_proj.weight"].T
            x = x + (gate / (1 + np.exp(-gate)) * up) @ w[p + "mlp.down_proj.weight"].T
        return self.rms_norm(x, w["model.norm.weight"]) @ self.lm_head.T

    def greedy(self, ids, n):
        ids, out = list(ids), []
        for _ in range(n):
            token = int(np.argmax(self.forward(ids)[-1]))
            out.append(token)
            ids.append(token)
        return out


def write_random_model(arch, tokenizer_dir, folder, h=64, heads=4, kv_heads=2,
                       d=16, ffn=96, positions=128):
    """A small random model of `arch` in Hugging Face layout (f32), with
    the vocabulary of the tokenizer in `tokenizer_dir`."""
    import shutil
    from safetensors.numpy import save_file
    rng = np.random.default_rng(11)
    vocab = 2048
    config = {"architectures": [arch], "hidden_size": h,
              "intermediate_size": ffn, "num_hidden_layers": 2,
              "num_attention_heads": heads, "num_key_value_heads": kv_heads,
              "head_dim": d, "vocab_size": vocab, "rms_norm_eps": 1e-6,
              "rope_theta": 10000.0, "max_position_embeddings": positions,
              "tie_word_embeddings": False, "bos_token_id": 1,
              "eos_token_id": 2}
    if arch == "MistralForCausalLM":
        config["sliding_window"] = 8
    w = {"model.embed_tokens.weight": (vocab, h), "lm_head.weight": (vocab, h)}
    for i in range(2):
        p = f"model.layers.{i}."
        w.update({p + "self_attn.q_proj.weight": (heads * d, h),
                  p + "self_attn.k_proj.weight": (kv_heads * d, h),
                  p + "self_attn.v_proj.weight": (kv_heads * d, h),
                  p + "self_attn.o_proj.weight": (h, heads * d),
                  p + "mlp.gate_proj.weight": (ffn, h),
                  p + "mlp.up_proj.weight": (ffn, h),
                  p + "mlp.down_proj.weight": (h, ffn)})
        if arch == "Qwen2ForCausalLM":
            w.update({p + "self_attn.q_proj.bias": (heads * d,),
                      p + "self_attn.k_proj.bias": (kv_heads * d,),
                      p + "self_attn.v_proj.bias": (kv_heads * d,)})
    tensors = {n: (rng.standard_normal(s) / np.sqrt(s[-1])).astype(np.float32)
               for n, s in w.items()}
    norms = ["model.norm.weight"] + [
        f"model.layers.{i}.{n}.weight" for i in range(2)
        for n in ("input_layernorm", "post_attention_layernorm")]
    tensors.update({n: (1 + 0.1 * rng.standard_normal(h)).astype(np.float32)
                    for n in norms})
    if arch == "Qwen3ForCausalLM":
        tensors.update({f"model.layers.{i}.self_attn.{n}.weight":
                        (1 + 0.1 * rng.standard_normal(d)).astype(np.float32)
                        for i in range(2) for n in ("q_norm", "k_norm")})
    os.makedirs(folder, exist_ok=True)
    save_file(tensors, os.path.join(folder, "model.safetensors"))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    shutil.copy(os.path.join(tokenizer_dir, "tokenizer.json"), folder)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--runner", required=True, help="kvrt-runtime-dump")
    parser.add_argument("--work", required=True, help="a scratch folder")
    parser.add_argument("--kvopt",
                        help="compile the model with this kvopt (float32 "
                             "cache) and run its artifact instead of the "
                             "test's own plan")
    parser.add_argument("--random", choices=["Qwen2ForCausalLM",
                                             "Qwen3ForCausalLM",
                                             "MistralForCausalLM"],
                        help="check a random model of this architecture")
    args = parser.parse_args()
    if args.random:
        folder = os.path.join(args.work, "model")
        write_random_model(args.random, args.model, folder)
        args.model = folder

    os.makedirs(args.work, exist_ok=True)
    prompts_file = os.path.join(args.work, "prompts.txt")
    with open(prompts_file, "w") as f:
        f.writelines(" ".join(map(str, p)) + "\n" for p in PROMPTS)
    runnable = args.model
    if args.kvopt:
        runnable = os.path.join(args.work, "compiled.kvpkg")
        subprocess.run([args.kvopt, "compile", args.model, "--passes",
                        "kv-quantize{encoding=f32}", "-o", runnable],
                       check=True)
    subprocess.run([args.runner, "reference", runnable, args.work,
                    prompts_file, str(NEW_TOKENS)], check=True)

    model = Llama(args.model)
    vocab = model.config["vocab_size"]
    passed = failed = 0
    for i, prompt in enumerate(PROMPTS):
        reference = model.forward(prompt)
        runtime = np.fromfile(os.path.join(args.work, f"logits_{i}.f32"),
                              dtype=np.float32).reshape(len(prompt), vocab)
        error = np.abs(runtime - reference).max() / np.abs(reference).max()
        with open(os.path.join(args.work, f"greedy_{i}.txt")) as f:
            runtime_tokens = [int(t) for t in f.read().split()]
        reference_tokens = model.greedy(prompt, NEW_TOKENS)
        ok = error < TOLERANCE and runtime_tokens == reference_tokens
        passed, failed = passed + ok, failed + (not ok)
        print(f"prompt {i} ({len(prompt)} tokens): max relative logit error "
              f"{error:.2e} (limit {TOLERANCE:.0e}); greedy {NEW_TOKENS} tokens "
              f"{'identical' if runtime_tokens == reference_tokens else 'DIFFER'}")
        if runtime_tokens != reference_tokens:
            print(f"  runtime   {runtime_tokens}\n  reference {reference_tokens}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
