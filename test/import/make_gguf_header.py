#!/usr/bin/env python3
"""Writes a GGUF file with a Llama header and only an embedding table, for
the importer's checks of its metadata (test/import/errors.test).

Usage: make_gguf_header.py OUT [--bos ID] [--eos ID]
"""
import argparse

import gguf
import numpy as np


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--bos", type=int)
    parser.add_argument("--eos", type=int)
    args = parser.parse_args()
    w = gguf.GGUFWriter(args.out, "llama")
    w.add_embedding_length(8)
    w.add_feed_forward_length(16)
    w.add_block_count(1)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_context_length(64)
    w.add_layer_norm_rms_eps(1e-5)
    if args.bos is not None:
        w.add_bos_token_id(args.bos)
    if args.eos is not None:
        w.add_eos_token_id(args.eos)
    w.add_tensor("token_embd.weight", np.zeros((16, 8), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
