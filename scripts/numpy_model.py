"""SmolLM2-135M-Instruct (the default model) as a float32 numpy forward pass.

The GGUF that scripts/setup.sh installs, dequantized by the `gguf` package,
teacher-forced over a window of text, with hooks that let a design tool
change the keys and values attention reads (scripts/lowrank-explore.py) or
which entries each query sees (scripts/eviction-oracle.py). Its numbers are
for comparing designs; the runtime's own come from `kvopt eval`.
"""
import os

import numpy as np


def data_dir():
    return os.environ.get("KVOPT_DATA_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"),
        "kvopt")


def bf16(a):
    """a rounded to the nearest bf16 (ties to even), as float32: how the
    bf16 cache and the GPU's bf16 operands hold values."""
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7fff + ((bits >> 16) & 1)) >> 16 << 16
    return bits.astype(np.uint32).view(np.float32)


def tokenizer(reader):
    """SmolLM2's byte-level BPE from the GGUF's vocabulary."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    field = lambda k: reader.fields[k].contents()
    tokens, merges = field("tokenizer.ggml.tokens"), field("tokenizer.ggml.merges")
    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)},
                               [tuple(m.split(" ", 1)) for m in merges]))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, kind in zip(tokens, field("tokenizer.ggml.token_type"))
                            if kind == 3])
    return tok, field("tokenizer.ggml.bos_token_id")


class Model:
    def __init__(self, path):
        import gguf
        reader = gguf.GGUFReader(path)
        self.w = {t.name: gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
                  for t in reader.tensors}
        field = lambda k: reader.fields[k].contents()
        self.layers = field("llama.block_count")
        self.heads = field("llama.attention.head_count")
        self.kv_heads = field("llama.attention.head_count_kv")
        self.d = field("llama.embedding_length") // self.heads
        self.eps = field("llama.attention.layer_norm_rms_epsilon")
        self.theta = field("llama.rope.freq_base")
        self.tok, self.bos = tokenizer(reader)
        self.lm_head = self.w.get("output.weight", self.w["token_embd.weight"])

    def ids(self, path, tokens, offset=0):
        text = open(path, encoding="utf-8").read()[offset:offset + tokens * 8]
        return [self.bos] + self.tok.encode(text).ids[:tokens - 1]

    def norm(self, x, weight):
        return x / np.sqrt(np.mean(x * x, -1, keepdims=True) + self.eps) * weight

    def rope(self, x, positions):
        # GGUF Llama weights are permuted for interleaved pairs (2i, 2i + 1).
        inv = 1.0 / (self.theta ** (np.arange(0, self.d, 2) / self.d))
        angle = np.outer(positions, inv)[:, None, :]
        c, s = np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)
        y = np.empty_like(x)
        y[..., 0::2] = x[..., 0::2] * c - x[..., 1::2] * s
        y[..., 1::2] = x[..., 0::2] * s + x[..., 1::2] * c
        return y

    def forward(self, ids, replace=None, observe=None, window=0, masks=None,
                attention=None):
        """Logits of `ids`. replace(layer, k, v) gives the keys (before
        RoPE) and values attention reads outside `window`; observe(layer, q,
        k, v) sees them all before RoPE; masks[layer], [t][t] or [kv
        heads][t][t], is added to the scores (-inf: a key the query does
        not see); attention(layer, p) sees the weights, [heads][t][t]."""
        t, d, w = len(ids), self.d, self.w
        positions = np.arange(t)
        group = self.heads // self.kv_heads
        mask = np.triu(np.full((t, t), -np.inf, np.float32), 1)
        ones = np.ones((t, t), np.float32)
        band = np.tril(ones) - np.tril(ones, -window) if window else None
        scale = np.float32(1 / np.sqrt(d))
        x = w["token_embd.weight"][np.array(ids)]
        for layer in range(self.layers):
            p = f"blk.{layer}."
            h = self.norm(x, w[p + "attn_norm.weight"])
            q = (h @ w[p + "attn_q.weight"].T).reshape(t, self.heads, d)
            k = (h @ w[p + "attn_k.weight"].T).reshape(t, self.kv_heads, d)
            v = (h @ w[p + "attn_v.weight"].T).reshape(t, self.kv_heads, d)
            if observe:
                observe(layer, q, k, v)
            kr, vr = replace(layer, k, v) if replace else (k, v)
            q = self.rope(q, positions).transpose(1, 0, 2)
            expand = lambda a: np.repeat(a, group, 1).transpose(1, 0, 2)
            keys = expand(self.rope(kr, positions))
            s = np.matmul(q, keys.transpose(0, 2, 1)) * scale + mask
            if band is not None:
                exact = expand(self.rope(k, positions)) - keys
                s += band * np.matmul(q, exact.transpose(0, 2, 1)) * scale
            if masks is not None:
                m = masks[layer]
                s += np.repeat(m, group, 0) if m.ndim == 3 else m
            s -= s.max(-1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(-1, keepdims=True)
            if attention:
                attention(layer, s)
            o = np.matmul(s, expand(vr))
            if band is not None:
                o += np.matmul(s * band, expand(v) - expand(vr))
            x = x + o.transpose(1, 0, 2).reshape(t, -1) @ w[p + "attn_output.weight"].T
            h = self.norm(x, w[p + "ffn_norm.weight"])
            gate = h @ w[p + "ffn_gate.weight"].T
            up = h @ w[p + "ffn_up.weight"].T
            x = x + (gate / (1 + np.exp(-gate)) * up) @ w[p + "ffn_down.weight"].T
        return self.norm(x, w["output_norm.weight"]) @ self.lm_head.T

    def nll(self, ids, **kw):
        logits = self.forward(ids, **kw)[:-1]
        logits -= logits.max(-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        return -logp[np.arange(len(ids) - 1), np.array(ids[1:])].mean()
