#!/usr/bin/env python3
"""Checks kvopt's imported weights against the reference Python readers.

  reference_check.py hf   <hf-folder> <weights.txt>
  reference_check.py gguf <model.gguf> <weights.txt>
  reference_check.py make-hf <model.gguf> <out-folder>
  reference_check.py onnx <model.onnx> <weights.txt>

weights.txt is the output of `kvopt-opt --kv-print-weights`: one line per
weight, `<name> <type> crc32=<hex>` over the raw bytes. `hf` compares with the
`safetensors` package, `gguf` with the `gguf` package's dequantization (q/k
rows put back in Hugging Face order, as kvopt does). `make-hf` writes the
GGUF model as a Hugging Face folder (f32 safetensors, config.json,
tokenizer.json) so the two importers can be compared. `onnx` reads the
initializers (inline or external) with the `onnx` package and checks that
each imported weight is one of them, as stored or transposed from MatMul's
[in, out]; the weight names are checked by comparing with the Hugging Face
import of the same model.
"""
import json
import re
import sys
import zlib

import numpy as np

LAYER_NAMES = {
    "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
    "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}
GLOBAL_NAMES = {"model.embed_tokens.weight": "token_embd.weight",
                "model.norm.weight": "output_norm.weight",
                "lm_head.weight": "output.weight"}
DTYPES = {"f32": np.float32, "f16": np.float16}


def gguf_name(hf):
    if hf in GLOBAL_NAMES:
        return GLOBAL_NAMES[hf]
    m = re.fullmatch(r"model\.layers\.(\d+)\.(.+)\.(weight|bias)", hf)
    return f"blk.{m.group(1)}.{LAYER_NAMES[m.group(2)]}.{m.group(3)}"


def read_weights(path):
    rows = []
    for line in open(path):
        name, type_, crc = line.split()
        dims = type_[len("tensor<"):-1].split("x")
        rows.append((name, tuple(int(d) for d in dims[:-1]), dims[-1],
                     int(crc[len("crc32="):], 16)))
    return rows


def unpermute(w, heads):
    """Undo llama.cpp's permutation of q/k rows (interleaved RoPE pairs)."""
    rows, cols = w.shape
    d = rows // heads
    return (w.reshape(heads, d // 2, 2, cols).swapaxes(1, 2)
            .reshape(rows, cols))


def compare(rows, lookup):
    bad = 0
    for name, shape, dtype, crc in rows:
        ref = lookup(name)
        if ref is None:
            print(f"MISMATCH {name}: not in the reference file")
            bad += 1
            continue
        ref = np.ascontiguousarray(ref.astype(DTYPES.get(dtype, ref.dtype)))
        if tuple(ref.shape) != shape:
            print(f"MISMATCH {name}: shape {shape}, reference {ref.shape}")
            bad += 1
        elif zlib.crc32(ref.tobytes()) != crc:
            print(f"MISMATCH {name}: values differ from the reference")
            bad += 1
    print(f"{len(rows) - bad} of {len(rows)} weights identical to the "
          "reference reader")
    return 1 if bad else 0


def check_hf(folder, weights):
    from safetensors.numpy import load_file
    tensors = load_file(f"{folder}/model.safetensors")
    if "model.embed_tokens.weight" not in tensors:  # tied checkpoints
        tensors["model.embed_tokens.weight"] = tensors["lm_head.weight"]
    rows = read_weights(weights)
    imported = {r[0] for r in rows}
    missed = [n for n in tensors if n not in imported and n != "lm_head.weight"]
    if missed:
        print(f"MISMATCH: not imported: {missed}")
        return 1
    return compare(rows, tensors.get)


def gguf_tensors(path):
    import gguf
    reader = gguf.GGUFReader(path)
    field = reader.fields["llama.attention.head_count"]
    heads = int(field.parts[field.data[0]][0])
    field = reader.fields.get("llama.attention.head_count_kv")
    kv_heads = int(field.parts[field.data[0]][0]) if field else heads
    out = {}
    for t in reader.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        w = w.reshape([int(d) for d in reversed(t.shape.tolist())])
        if t.name.endswith("attn_q.weight"):
            w = unpermute(w, heads)
        elif t.name.endswith("attn_k.weight"):
            w = unpermute(w, kv_heads)
        out[t.name] = w
    return reader, out


def check_gguf(path, weights):
    _, tensors = gguf_tensors(path)
    rows = read_weights(weights)
    imported = {gguf_name(r[0]) for r in rows}
    missed = [n for n in tensors if n not in imported]
    if missed:
        print(f"MISMATCH: not imported: {missed}")
        return 1
    return compare(rows, lambda n: tensors.get(gguf_name(n)))


def field_value(reader, key):
    f = reader.fields[key]
    part = f.parts[f.data[0]]
    return part.tobytes().decode() if f.types[0].name == "STRING" else part[0]


def make_hf(path, folder):
    import os
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    reader, tensors = gguf_tensors(path)
    inverse = {}
    layers = int(field_value(reader, "llama.block_count"))
    for hf in list(GLOBAL_NAMES):
        inverse[GLOBAL_NAMES[hf]] = hf
    for i in range(layers):
        for hf, g in LAYER_NAMES.items():
            for kind in ("weight", "bias"):
                inverse[f"blk.{i}.{g}.{kind}"] = f"model.layers.{i}.{hf}.{kind}"
    os.makedirs(folder, exist_ok=True)
    save_file({inverse[n]: w for n, w in tensors.items()},
              f"{folder}/model.safetensors")
    heads = int(field_value(reader, "llama.attention.head_count"))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": int(tensors["token_embd.weight"].shape[0]),
        "hidden_size": int(field_value(reader, "llama.embedding_length")),
        "intermediate_size": int(field_value(reader, "llama.feed_forward_length")),
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": int(field_value(reader, "llama.attention.head_count_kv")),
        "max_position_embeddings": int(field_value(reader, "llama.context_length")),
        # float32 in GGUF; the shortest decimal is what config.json holds.
        "rms_norm_eps": float(str(np.float32(field_value(reader, "llama.attention.layer_norm_rms_epsilon")))),
        "rope_theta": float(str(np.float32(field_value(reader, "llama.rope.freq_base")))),
        "tie_word_embeddings": "output.weight" not in tensors,
        "bos_token_id": int(field_value(reader, "tokenizer.ggml.bos_token_id")),
        "eos_token_id": int(field_value(reader, "tokenizer.ggml.eos_token_id")),
    }
    json.dump(config, open(f"{folder}/config.json", "w"), indent=1)
    f = reader.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(f.parts[i]).decode() for i in f.data]
    f = reader.fields["tokenizer.ggml.merges"]
    merges = [tuple(bytes(f.parts[i]).decode().split(" ", 1)) for i in f.data]
    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.save(f"{folder}/tokenizer.json")
    return 0


def check_onnx(path, weights):
    import onnx
    from onnx import numpy_helper
    model = onnx.load(path)  # Loads external data from the model's folder.
    by_crc = {}
    for t in model.graph.initializer:
        a = numpy_helper.to_array(t)
        if a.dtype not in (np.float32, np.float16) or a.ndim not in (1, 2):
            continue
        for v in (a, a.T) if a.ndim == 2 else (a,):
            v = np.ascontiguousarray(v)
            by_crc[(zlib.crc32(v.tobytes()), v.shape)] = v
    rows = read_weights(weights)
    return compare(rows, lambda n: next(
        (by_crc[(crc, shape)] for name, shape, _, crc in rows
         if name == n and (crc, shape) in by_crc), None))


if __name__ == "__main__":
    mode, a, b = sys.argv[1:4]
    sys.exit({"hf": check_hf, "gguf": check_gguf, "make-hf": make_hf,
              "onnx": check_onnx}[mode](a, b))
