#!/usr/bin/env python3
"""A Hugging Face model whose weights were never written, and how much of a
file has been read.

  sparse_model.py write DIR TOKENIZER_JSON
      DIR/config.json and DIR/model.safetensors (bf16, ~170 MB): the header
      is written, the data region is a hole made by truncation, so no page
      of it is in the page cache until something reads it.
  sparse_model.py resident FILE
      prints the percentage of FILE's pages that are in the page cache
      (mincore over a mapping that touches nothing).
"""
import ctypes
import json
import mmap
import os
import shutil
import struct
import sys

CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 4,
    "num_attention_heads": 8, "num_key_value_heads": 8, "vocab_size": 32000,
    "max_position_embeddings": 2048, "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0, "tie_word_embeddings": True,
    "bos_token_id": 1, "eos_token_id": 2,
}


def tensors(c):
    h, f, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    yield "model.embed_tokens.weight", [v, h]
    yield "model.norm.weight", [h]
    for i in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % i
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            yield p + "self_attn.%s.weight" % name, [h, h]
        yield p + "mlp.gate_proj.weight", [f, h]
        yield p + "mlp.up_proj.weight", [f, h]
        yield p + "mlp.down_proj.weight", [h, f]
        yield p + "input_layernorm.weight", [h]
        yield p + "post_attention_layernorm.weight", [h]


def write(folder, tokenizer_json):
    os.makedirs(folder, exist_ok=True)
    header, offset = {}, 0
    for name, shape in tensors(CONFIG):
        size = 2 * shape[0] * (shape[1] if len(shape) > 1 else 1)
        header[name] = {"dtype": "BF16", "shape": shape,
                        "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path = os.path.join(folder, "model.safetensors")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        f.truncate(8 + len(text) + offset)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(CONFIG, f)
    shutil.copyfile(tokenizer_json, os.path.join(folder, "tokenizer.json"))


def resident(path):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                          ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = os.path.getsize(path)
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        vector = ctypes.create_string_buffer(pages)
        if libc.mincore(address, size, vector) != 0:
            raise OSError(ctypes.get_errno(), "mincore failed")
        libc.munmap(address, size)
    finally:
        os.close(fd)
    return 100.0 * sum(b & 1 for b in vector.raw) / pages


def main():
    if sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "resident":
        print("%.1f%% resident" % resident(sys.argv[2]))
    else:
        sys.exit("usage: sparse_model.py write DIR TOKENIZER_JSON | resident FILE")


if __name__ == "__main__":
    main()
