#!/usr/bin/env python3
"""Times `kvopt import` of an 8B-Llama-shaped safetensors folder.

Writes a Llama-3-8B-shaped checkpoint (bf16, 4 shards with an index, as
Hugging Face ships it) whose tensor data is left as holes in sparse files:
the importer maps the files and builds the module without reading weight
bytes, so holes and random bytes cost the same. Prints wall time and peak
resident memory of the import, measured with /usr/bin/time.

  scripts/bench-import.py [--build build] [--dir /tmp/kvopt-8b]
"""
import argparse
import json
import os
import re
import struct
import subprocess

HIDDEN, LAYERS, HEADS, KV_HEADS, FFN, VOCAB = 4096, 32, 32, 8, 14336, 128256
HEAD_DIM = HIDDEN // HEADS


def tensors():
    yield "model.embed_tokens.weight", [VOCAB, HIDDEN]
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        yield p + "input_layernorm.weight", [HIDDEN]
        yield p + "self_attn.q_proj.weight", [HEADS * HEAD_DIM, HIDDEN]
        yield p + "self_attn.k_proj.weight", [KV_HEADS * HEAD_DIM, HIDDEN]
        yield p + "self_attn.v_proj.weight", [KV_HEADS * HEAD_DIM, HIDDEN]
        yield p + "self_attn.o_proj.weight", [HIDDEN, HEADS * HEAD_DIM]
        yield p + "post_attention_layernorm.weight", [HIDDEN]
        yield p + "mlp.gate_proj.weight", [FFN, HIDDEN]
        yield p + "mlp.up_proj.weight", [FFN, HIDDEN]
        yield p + "mlp.down_proj.weight", [HIDDEN, FFN]
    yield "model.norm.weight", [HIDDEN]
    yield "lm_head.weight", [VOCAB, HIDDEN]


def write_shard(path, entries):
    header, offset = {}, 0
    for name, shape in entries:
        size = 2
        for d in shape:
            size *= d
        header[name] = {"dtype": "BF16", "shape": shape,
                        "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        f.truncate(8 + len(text) + offset)
    return offset


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--dir", default="/tmp/kvopt-8b")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    all_tensors = list(tensors())
    shards = [all_tensors[i::4] for i in range(4)]
    weight_map, total = {}, 0
    for i, entries in enumerate(shards):
        name = f"model-{i + 1:05d}-of-00004.safetensors"
        total += write_shard(os.path.join(args.dir, name), entries)
        weight_map.update({n: name for n, _ in entries})
    json.dump({"weight_map": weight_map},
              open(os.path.join(args.dir, "model.safetensors.index.json"), "w"))
    json.dump({"architectures": ["LlamaForCausalLM"], "vocab_size": VOCAB,
               "hidden_size": HIDDEN, "intermediate_size": FFN,
               "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
               "num_key_value_heads": KV_HEADS, "rope_theta": 500000.0,
               "max_position_embeddings": 8192, "rms_norm_eps": 1e-5,
               "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 8192}},
              open(os.path.join(args.dir, "config.json"), "w"))
    open(os.path.join(args.dir, "tokenizer.json"), "w").write("{}")
    result = subprocess.run(
        ["/usr/bin/time", "-v", os.path.join(args.build, "bin", "kvopt"),
         "import", args.dir, "--elide-weights", "-o", "/dev/null"],
        capture_output=True, text=True, check=True)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", result.stderr)[1]
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)",
                        result.stderr)[1])
    print(f"8B-shaped import: {len(all_tensors)} tensors, {total / 2**30:.1f} "
          f"GiB of bf16 weights in 4 shards: wall {wall}, peak RSS "
          f"{rss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
