#!/usr/bin/env python3
"""Writes the first layers of a llama GGUF, and optionally the first tokens
of its vocabulary, as a GGUF of its own.

    truncate_gguf.py IN.gguf OUT.gguf --layers N [--vocab N]

Every other metadata field is copied as it is, and every tensor of the kept
layers and of the model around them byte for byte in its own type; with
--vocab, the embedding (and output) rows, tokens and token types of the
first N tokens, and the BPE merges whose parts and result all remain.
scripts/gpu-prepare.sh keeps two layers and 8192 tokens of the default
model (Q4_1 projections, Q8_0 embeddings, f32 norms), so that the GPU
checks run the CUDA backend's upload of block weights on a real model
small enough to carry to the GPU machine.
"""
import argparse
import re
import sys

import gguf


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--layers", type=int, required=True)
    parser.add_argument("--vocab", type=int)
    args = parser.parse_args()
    reader = gguf.GGUFReader(args.source)
    fields = reader.fields
    arch = fields["general.architecture"].contents()
    count_key = f"{arch}.block_count"
    tokens = fields["tokenizer.ggml.tokens"].contents()
    if not 1 <= args.layers <= fields[count_key].contents():
        sys.exit(f"{args.source}: {count_key} is "
                 f"{fields[count_key].contents()}, cannot keep {args.layers}")
    vocab = args.vocab or len(tokens)
    if not 1 <= vocab <= len(tokens):
        sys.exit(f"{args.source}: tokenizer.ggml.tokens has {len(tokens)} "
                 f"tokens, cannot keep {vocab}")
    for key in ("bos", "eos", "unknown", "padding"):
        field = fields.get(f"tokenizer.ggml.{key}_token_id")
        if field and field.contents() >= vocab:
            sys.exit(f"{args.source}: tokenizer.ggml.{key}_token_id is "
                     f"{field.contents()}, not among the first {vocab}")
    kept = set(tokens[:vocab])

    def value(key, field):
        if key == count_key:
            return args.layers
        if key == f"{arch}.vocab_size":
            return vocab
        if key in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                   "tokenizer.ggml.scores"):
            return field.contents()[:vocab]
        if key == "tokenizer.ggml.merges":
            return [m for m in field.contents()
                    if all(p in kept for p in m.split(" "))
                    and m.replace(" ", "") in kept]
        return field.contents()

    writer = gguf.GGUFWriter(args.target, arch)
    for key, field in fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        sub_type = field.types[1] if len(field.types) > 1 else None
        writer.add_key_value(key, value(key, field), field.types[0], sub_type)
    for tensor in reader.tensors:
        layer = re.match(r"blk\.(\d+)\.", tensor.name)
        if layer and int(layer.group(1)) >= args.layers:
            continue
        data = tensor.data
        # Rows of the vocabulary: the embeddings and an untied output.
        if tensor.name in ("token_embd.weight", "output.weight"):
            data = data[:vocab]
        # Block types' data are rows of bytes, from which the writer
        # derives the shape.
        writer.add_tensor(tensor.name, data, raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
