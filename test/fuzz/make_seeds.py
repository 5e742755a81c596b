#!/usr/bin/env python3
"""Writes the seed corpora under test/fuzz/corpus/<fuzzer>/.

Usage: make_seeds.py [corpus dir]   (default: corpus/ beside this script)

Small valid files (written with the safetensors and gguf packages, and
SentencePiece models from test/import/make_sentencepiece.py) and a few
invalid ones, each under 64 KB. The output is deterministic; the files are
committed, so run this only to change the seeds.
"""
import json
import os
import struct
import sys

import numpy as np


def write(folder, name, data):
    assert len(data) < 64 * 1024, name
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def json_seeds(folder):
    docs = {
        "config.json": json.dumps({
            "architectures": ["LlamaForCausalLM"], "hidden_size": 576,
            "num_attention_heads": 9, "rms_norm_eps": 1e-05,
            "rope_theta": 100000.0, "tie_word_embeddings": True,
            "rope_scaling": None, "eos_token_id": [2, 0]}, indent=2),
        "tokenizer.json": json.dumps({
            "model": {"type": "BPE", "vocab": {"a": 0, "\u0120b": 1},
                      "merges": ["a b", "\u0120 b"]},
            "added_tokens": [{"id": 0, "content": "<|endoftext|>",
                              "special": True}]}),
        "escapes.json": r'["\"\\\/\b\f\n\r\t", "\u00e9\ud83d\ude00", "\u0000"]',
        "numbers.json": "[0, -0, 1e308, -1.5E-3, 9223372036854775807, "
                        "-9223372036854775808, 18446744073709551616]",
        "nested.json": "[" * 64 + "{}" + "]" * 64,
        "bad-truncated.json": '{"a": [1, 2',
        "bad-utf8.json": b'{"\xc3\x28": 1}',
        "bad-surrogate.json": r'"\ud800\u0041"',
        "bad-duplicate.json": '{"a": 1, "a": 2}',
        "bad-trailing.json": "{} []",
    }
    for name, text in docs.items():
        write(folder, name, text if isinstance(text, bytes) else
              text.encode("utf-8"))


def safetensors_seeds(folder):
    from safetensors.numpy import save

    rng = np.random.default_rng(0)
    valid = save({
        "model.embed_tokens.weight": rng.standard_normal((8, 4))
                                       .astype(np.float32),
        "model.norm.weight": np.ones(4, np.float16),
        "ids": np.arange(3, dtype=np.int64),
        "mask": np.array([True, False]),
        "empty": np.zeros((0, 2), np.float32),
        "scalar": np.array(1.0, np.float64),
    }, metadata={"format": "pt"})
    write(folder, "valid.safetensors", valid)
    write(folder, "empty.safetensors", save({}))
    write(folder, "bad-truncated.safetensors", valid[:len(valid) - 5])
    write(folder, "bad-header-length.safetensors",
          struct.pack("<Q", 1 << 40) + valid[8:])

    def raw(header, data_bytes):
        text = json.dumps(header).encode()
        return struct.pack("<Q", len(text)) + text + bytes(data_bytes)
    t = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    write(folder, "bad-overlap.safetensors",
          raw({"a": t, "b": dict(t, data_offsets=[4, 12])}, 12))
    write(folder, "bad-gap.safetensors",
          raw({"a": t, "b": dict(t, data_offsets=[12, 20])}, 20))
    write(folder, "bad-dtype.safetensors",
          raw({"a": dict(t, dtype="F8_E4M3")}, 8))
    write(folder, "bad-overflow.safetensors",
          raw({"a": dict(t, shape=[1 << 32, 1 << 32])}, 8))


def gguf_bytes(w, path):
    """The bytes of the file GGUFWriter `w` writes at `path`."""
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(path, "rb") as f:
        return f.read()


def gguf_seeds(folder, tmp):
    import gguf
    from gguf import GGMLQuantizationType as Q, GGUFValueType as V

    path = os.path.join(tmp, "seed.gguf")
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(1)
    w.add_embedding_length(32)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_key_value("test.u8", 7, V.UINT8)
    w.add_key_value("test.i8", -7, V.INT8)
    w.add_key_value("test.u16", 700, V.UINT16)
    w.add_key_value("test.i16", -700, V.INT16)
    w.add_key_value("test.i32", -70000, V.INT32)
    w.add_key_value("test.u64", 2**40, V.UINT64)
    w.add_key_value("test.i64", -2**40, V.INT64)
    w.add_key_value("test.f64", 0.1, V.FLOAT64)
    w.add_key_value("test.bool", True, V.BOOL)
    w.add_key_value("tokenizer.ggml.tokens", ["<s>", "a", "\u0120b"], V.ARRAY,
                    V.STRING)
    w.add_key_value("tokenizer.ggml.token_type", [3, 1, 1], V.ARRAY, V.INT32)
    w.add_key_value("tokenizer.ggml.scores", [0.0, -1.0, -2.0], V.ARRAY,
                    V.FLOAT32)
    w.add_key_value("test.nested", [[1, 2], [3]], V.ARRAY, V.ARRAY)
    data = rng.standard_normal((2, 32)).astype(np.float32)
    for qtype in (Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1):
        w.add_tensor(f"t.{qtype.name.lower()}",
                     gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    valid = gguf_bytes(w, path)
    write(folder, "valid.gguf", valid)

    w = gguf.GGUFWriter(path, "llama")
    w.add_custom_alignment(64)
    w.add_tensor("scalar", np.array(1.5, np.float32))
    w.add_tensor("row", np.arange(3, dtype=np.float32))
    write(folder, "aligned64.gguf", gguf_bytes(w, path))

    # Tokenizers as llama.cpp stores them: a byte-level BPE (gpt2) and a
    # SentencePiece-style one with byte pieces (llama).
    from tokenizers.pre_tokenizers import ByteLevel
    symbols = sorted(ByteLevel.alphabet())
    merges = ["\u0120 t", "h e", "\u0120t he"]
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(["<|endoftext|>"] + symbols + ["\u0120t", "he",
                                                     "\u0120the"])
    w.add_token_types([3] + [1] * (len(symbols) + 3))
    w.add_token_merges(merges)
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    w.add_chat_template("{% for message in messages %}{{'<|im_start|>' + "
                        "message['role'] + '\\n' + message['content'] + "
                        "'<|im_end|>' + '\\n'}}{% endfor %}")
    write(folder, "tokenizer-gpt2.gguf", gguf_bytes(w, path))
    pieces = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    pieces += ["\u2581", "a", "b", "\u2581a", "ab"]
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(pieces)
    w.add_token_scores([0.0] * 259 + [-1.0, -2.0, -3.0, -4.0, -5.0])
    w.add_token_types([2, 3, 3] + [6] * 256 + [1] * 5)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    write(folder, "tokenizer-llama.gguf", gguf_bytes(w, path))

    write(folder, "bad-magic.gguf", b"GGUX" + valid[4:])
    write(folder, "bad-version.gguf", valid[:4] + struct.pack("<I", 1)
          + valid[8:])
    write(folder, "bad-truncated.gguf", valid[:len(valid) // 2])
    write(folder, "bad-count.gguf", valid[:16] + struct.pack("<Q", 1 << 60)
          + valid[24:])


def onnx_seeds(folder, tmp):
    """A tiny decoder in both forms, and some broken variants."""
    import onnx
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(
        __file__)), "..", "import"))
    import make_onnx

    cfg, w, _ = make_onnx.random_model(tmp)
    cfg.update(hidden_size=8, intermediate_size=12, num_attention_heads=2,
               num_key_value_heads=1, head_dim=4, vocab_size=16,
               max_position_embeddings=8, num_hidden_layers=1)
    rng = np.random.default_rng(0)
    small = {}
    for name in w:
        if ".layers." in name and ".layers.0." not in name:
            continue
        shape = {"model.embed_tokens.weight": (16, 8),
                 "lm_head.weight": (16, 8), "self_attn.q_proj": (8, 8),
                 "self_attn.k_proj": (4, 8), "self_attn.v_proj": (4, 8),
                 "self_attn.o_proj": (8, 8), "mlp.gate_proj": (12, 8),
                 "mlp.up_proj": (12, 8), "mlp.down_proj": (8, 12)}
        key = next((k for k in shape if k in name), None)
        small[name] = rng.standard_normal(shape[key] if key else (8,)) \
            .astype(np.float32)
    for tied in (False, True):
        for form in ("opset23", "decomposed"):
            model = getattr(make_onnx, form)(cfg, small, tied)
            data = model.SerializeToString()
            tag = "tied" if tied else "untied"
            write(folder, f"{form}-{tag}.onnx", data)
    data = make_onnx.decomposed(cfg, small, False).SerializeToString()
    write(folder, "bad-truncated.onnx", data[:len(data) // 2])
    model = make_onnx.opset23(cfg, small, True)
    model.graph.node[3].op_type = "LayerNormalization"
    write(folder, "bad-unsupported.onnx", model.SerializeToString())
    model = make_onnx.opset23(cfg, small, True)
    model.graph.node[1].input[0] = model.graph.node[5].output[0]
    write(folder, "bad-cycle.onnx", model.SerializeToString())


def sentencepiece_seeds(folder):
    """A valid tokenizer.model and some the reader refuses."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(
        __file__)), "..", "import"))
    import make_sentencepiece

    for name, (data, _) in make_sentencepiece.cases().items():
        if len(data) < 64 * 1024 and name in (
                "valid", "unigram", "no-byte-fallback", "charsmap",
                "bad-utf8", "type-9", "nan-score", "duplicate",
                "reachable-byte", "reachable-control", "no-bos"):
            write(folder, name + ".model", data)


def policy_seeds(folder):
    """The example policies and hostile YAML the policy reader refuses."""
    examples = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "..", "..", "examples", "policies")
    for name in sorted(os.listdir(examples)):
        with open(os.path.join(examples, name), "rb") as f:
            write(folder, name, f.read())
    docs = {
        "every-key.yaml": "---\nquantize:\n  encoding: \"polar\"\n"
                          "  bits: 4\n  seed: 7\n  qjl: true\n"
                          "  side: key\n  layers:\n  - 0\n  - '-2--1'\n"
                          "  overrides:\n    - encoding: int\n"
                          "      group: 64\n      residual: 128\n"
                          "      side: value\n    - encoding: fp8\n"
                          "      scale: per_head\n      layers: 4-11\n",
        "crlf-bom.yaml": "\ufeffquantize:\r\n  encoding: bf16\r\n",
        "bad-tab.yaml": "quantize:\n\tencoding: polar\n",
        "bad-duplicate.yaml": "quantize:\n  bits: 3\n  bits: 4\n",
        "bad-unknown.yaml": "quantize:\n  encoding: polar\nevict: {}\n",
        "bad-type.yaml": "quantize:\n  encoding: polar\n  bits: [3]\n",
        "bad-layers.yaml": "quantize:\n  encoding: polar\n"
                           "  layers: [0, 99999999, 3-1]\n",
        "bad-anchor.yaml": "quantize: &q\n  encoding: polar\nx: *q\n",
        "bad-deep.yaml": "- " * 40 + "x\n",
        "bad-deep-flow.yaml": "quantize: " + "[" * 40 + "\n",
        "bad-huge-scalar.yaml": "quantize:\n  encoding: " + "x" * 2000 + "\n",
        "bad-quote.yaml": "quantize:\n  encoding: 'polar\n",
        "bad-indent.yaml": "quantize:\n    encoding: polar\n  bits: 3\n",
        # Exponents: written to the pipeline with a lowercase 'e' and no
        # '+' (the fuzzer found 3666E-33 copied as it was).
        "exponent-ratio.yaml": "lowrank:\n  ratio: 3666E-33\n",
        "exponent-budget.yaml": "evict:\n  method: h2o\n  budget: 1E+0\n",
    }
    for name, text in docs.items():
        write(folder, name, text.encode("utf-8"))


def http_seeds(folder):
    """Requests to kvopt serve: the API's bodies and hostile framing."""
    def request(body, path=b"/v1/completions", headers=b""):
        body = json.dumps(body).encode()
        return (b"POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d"
                b"\r\n\r\n" % (path, headers, len(body)) + body)
    docs = {
        "completion": request({"model": "m", "prompt": "Once upon a time",
                               "max_tokens": 16, "temperature": 0.7,
                               "top_p": 0.9, "top_k": 40, "seed": 3,
                               "stop": ["\n", "END"], "stream": True,
                               "stream_options": {"include_usage": True}}),
        "completion-ids": request({"prompt": [1, 80, 147], "n": 3,
                                   "logprobs": None, "echo": False}),
        "completion-batch": request({"prompt": [[1, 80], [1, 147, 201]],
                                     "n": 2, "stop_token_ids": [2, 7],
                                     "min_tokens": 3, "max_tokens": 8,
                                     "presence_penalty": 0.5,
                                     "frequency_penalty": -0.5}),
        "completion-logprobs": request({"prompt": [[1, 80, 147]],
                                        "max_tokens": 0, "logprobs": 5,
                                        "echo": True}),
        "chat-logprobs": request(
            {"messages": [{"role": "user", "content": "Hi"}],
             "logprobs": True, "top_logprobs": 2},
            b"/v1/chat/completions"),
        "tokenize": request({"prompt": "Once", "add_special_tokens": False},
                            b"/tokenize"),
        "detokenize": request({"model": "m", "tokens": [1, 80, 147]},
                              b"/detokenize"),
        "chat": request(
            {"messages": [{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": [
                              {"type": "text", "text": "Hi"}]}],
             "max_completion_tokens": 4, "logit_bias": {}},
            b"/v1/chat/completions", b"Connection: keep-alive, close\r\n"),
        "get-pipelined": b"\r\nGET /health HTTP/1.0\r\n\r\n"
                         b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n",
        "bad-chunked": b"POST / HTTP/1.1\r\nHost: x\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "bad-two-lengths": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1"
                           b"\r\nContent-Length: 2\r\n\r\nab",
        "bad-wrapping-length": b"POST / HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Length: 18446744073709551617\r\n"
                               b"\r\nx",
        "bad-folded": b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        "bad-newline-key": request({"prompt": "x", "a\nb": 1, "messages": [
            {"role": "user", "cont\nent": "y"}]}),
        "bad-fields": request({"prompt": [1, -1], "max_tokens": 0,
                               "temperature": 9, "messages": [],
                               "unknown": {"deep": [[[]]]}}),
    }
    for name, data in docs.items():
        write(folder, name, data)


def tokenizer_seeds(folder):
    """tokenizer.json files written by the `tokenizers` package (a
    byte-level BPE as GPT-2 and SmolLM2 have, a Metaspace BPE with byte
    fallback as Llama 2 and TinyStories have), each alone and followed by a
    NUL and a tokenizer_config.json, and hand-broken ones."""
    from tokenizers import Tokenizer, decoders, models, normalizers
    from tokenizers import pre_tokenizers, processors
    from tokenizers.pre_tokenizers import ByteLevel

    # Byte-level: the 256 byte symbols, a few merges, ChatML's tokens.
    alphabet = ByteLevel.alphabet()
    vocab = {c: i for i, c in enumerate(sorted(alphabet))}
    merges = [("\u0120", "t"), ("h", "e"), ("\u0120t", "he"), ("a", "b")]
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    byte_level = Tokenizer(models.BPE(vocab, merges))
    byte_level.pre_tokenizer = pre_tokenizers.ByteLevel(
        add_prefix_space=False)
    byte_level.decoder = decoders.ByteLevel()
    byte_level.post_processor = processors.ByteLevel(trim_offsets=False)
    byte_level.add_special_tokens(["<|endoftext|>", "<|im_start|>",
                                   "<|im_end|>"])
    chatml = ("{% for message in messages %}{{'<|im_start|>' + "
              "message['role'] + '\\n' + message['content'] + "
              "'<|im_end|>' + '\\n'}}{% endfor %}{% if "
              "add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
              "{% endif %}")
    byte_config = json.dumps({"bos_token": "<|im_start|>",
                              "eos_token": "<|im_end|>",
                              "chat_template": chatml})

    # Metaspace with byte fallback: <unk>, BOS, EOS, the <0xNN> tokens.
    pieces = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    pieces += ["\u2581", "a", "b", "h", "e", "t", "\u2581t", "he",
               "\u2581the", "ab"]
    meta_vocab = {p: i for i, p in enumerate(pieces)}
    meta_merges = [("\u2581", "t"), ("h", "e"), ("\u2581t", "he"),
                   ("a", "b")]
    metaspace = Tokenizer(models.BPE(meta_vocab, meta_merges,
                                     unk_token="<unk>", byte_fallback=True,
                                     fuse_unk=True))
    metaspace.normalizer = normalizers.Sequence([
        normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    metaspace.decoder = decoders.Sequence([
        decoders.Replace("\u2581", " "), decoders.ByteFallback(),
        decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    metaspace.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    metaspace.add_special_tokens(["<unk>", "<s>", "</s>"])
    meta_config = json.dumps({"bos_token": "<s>", "eos_token": "</s>",
                              "unk_token": "<unk>", "add_bos_token": True})

    byte_json = byte_level.to_str()
    meta_json = metaspace.to_str()
    docs = {
        "byte-level": byte_json,
        "byte-level-chatml": byte_json + "\0" + byte_config,
        "metaspace": meta_json,
        "metaspace-config": meta_json + "\0" + meta_config,
        "byte-level-text": byte_json + "\0\0" + "the\u00e9 <|im_end|>\n",
        "metaspace-text": meta_json + "\0" + meta_config + "\0" +
                          " the  ab\tz\u2581\U0001f642",
        "bad-unknown-template": byte_json + "\0" + json.dumps(
            {"chat_template": "{{ raise_exception('no') }}"}),
    }
    # Broken by hand: a merge of unknown pieces, ids with a gap or out of
    # range, an unk_token outside the vocabulary, a special token that is
    # not added.
    broken = json.loads(byte_json)
    broken["model"]["merges"] = broken["model"]["merges"] + ["zz qq"]
    docs["bad-merge"] = json.dumps(broken)
    broken = json.loads(byte_json)
    broken["model"]["vocab"]["gap"] = 100000
    docs["bad-gap"] = json.dumps(broken)
    broken = json.loads(byte_json)
    broken["added_tokens"][0]["id"] = 2 ** 40
    docs["bad-added-id"] = json.dumps(broken)
    broken = json.loads(meta_json)
    broken["model"]["unk_token"] = "<nope>"
    docs["bad-unk"] = json.dumps(broken)
    docs["bad-special"] = byte_json + "\0" + json.dumps(
        {"bos_token": "<|not-a-token|>"})
    # Component types with control characters: the refusal quotes them on
    # one line (the fuzzer found a post-processor's type copied raw).
    broken = json.loads(meta_json)
    broken["post_processor"]["type"] = "Templat\te\nProcessing"
    docs["bad-post-processor-control-chars"] = json.dumps(broken)
    broken = json.loads(byte_json)
    broken["pre_tokenizer"]["type"] = "Byte\nLevel\x7f"
    docs["bad-pre-tokenizer-control-chars"] = json.dumps(broken)
    for name, text in docs.items():
        write(folder, name, text.encode("utf-8"))
    # Malformed UTF-8 to encode: a lone continuation byte, a truncated
    # sequence, an overlong one, a surrogate.
    write(folder, "byte-level-malformed", byte_json.encode("utf-8") +
          b"\0\0a\x80b\xe2\x82 \xc0\xaf \xed\xa0\x80 <|im_start|>\xff")
    write(folder, "metaspace-malformed", meta_json.encode("utf-8") +
          b"\0\0\xf0\x9f\x99 the \xc3")


def hf_config_seeds(folder):
    """config.json files of each architecture the importer reads, with
    each RoPE scaling it reads, and broken ones."""
    llama = {
        "architectures": ["LlamaForCausalLM"], "vocab_size": 2048,
        "hidden_size": 128, "intermediate_size": 384,
        "num_hidden_layers": 2, "num_attention_heads": 8,
        "num_key_value_heads": 4, "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2}
    docs = {
        "llama": llama,
        "llama3-scaling": dict(llama, rope_scaling={
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 1024},
            eos_token_id=[2, 0]),
        "yarn": dict(llama, rope_scaling={"type": "yarn", "factor": 4.0,
                                          "beta_fast": 32, "beta_slow": 1}),
        "mistral": dict(llama, architectures=["MistralForCausalLM"],
                        sliding_window=512),
        "qwen2": dict(llama, architectures=["Qwen2ForCausalLM"],
                      use_sliding_window=True, sliding_window=256),
        "qwen3": dict(llama, architectures=["Qwen3ForCausalLM"],
                      head_dim=64, attention_bias=False),
        "bad-heads": dict(llama, num_key_value_heads=3),
        "bad-odd-head-dim": dict(llama, head_dim=15),
        "bad-huge": dict(llama, vocab_size=2 ** 41),
        "bad-eps": dict(llama, rms_norm_eps=-1),
        "bad-eos": dict(llama, eos_token_id=[2, 4096]),
        "bad-scaling": dict(llama, rope_scaling={"rope_type": "dynamic"}),
        "bad-arch": dict(llama, architectures=["GPT2LMHeadModel"]),
    }
    for name, doc in docs.items():
        write(folder, name + ".json", json.dumps(doc).encode("utf-8"))


def calibration_seeds(folder):
    """Statistics files (docs/calibration.md) of a small model, with each
    optional group of members, and broken ones."""
    def upper(d, scale):
        return [scale * (1.0 if i == j else 0.25) for i in range(d)
                for j in range(i, d)]

    heads, kv, d = 4, 2, 4
    base = {"format": "kvopt-calibration", "version": 1,
            "source": {"file": "text.txt", "xxh64": "2fb5ce3850f6954a",
                       "tokens": 64, "window": 32},
            "model": {"layers": 2, "kv_heads": kv, "head_dim": d},
            "layers": [{"key_absmax": [6.8, 10.6],
                        "value_absmax": [0.6, 0.38]} for _ in range(2)]}
    full = json.loads(json.dumps(base))
    full["model"]["heads"] = heads
    full["source"].update(attention_sinks=4, attention_window=16)
    for layer in full["layers"]:
        layer.update(
            query_center=[[[0.03, -0.1], [1.2, 0.04]]] * heads,
            query_magnitude=[[0.5, 1.9]] * heads,
            key_center=[[[0.2, 0.1], [-0.3, 0.0]]] * kv,
            key_magnitude=[[0.7, 0.4]] * kv,
            key_mean=[[0.1, -0.2, 0.0, 0.3]] * kv,
            value_mean=[[0.0, 0.1, 0.2, -0.1]] * kv,
            key_covariance=[upper(d, 1.5)] * kv,
            value_covariance=[upper(d, 0.5)] * kv,
            value_attention_moment=[upper(d, 0.4)] * kv,
            key_joint_moment=[upper(kv * d, 1.0)],
            value_joint_moment=[upper(kv * d, 0.5)],
            value_attention_joint_moment=[upper(kv * d, 0.3)],
            evict_loss=[0.6, 0.3, 0.1, 0.0])
    docs = {"absmax": base, "full": full}

    def broken(name, change, doc=base):
        doc = json.loads(json.dumps(doc))
        change(doc)
        docs[name] = doc

    broken("bad-version", lambda f: f.update(version=2))
    broken("bad-layer-count",
           lambda f: f["model"].update(layers=3))
    broken("bad-negative", lambda f: f["layers"][0].update(
        key_absmax=[-1.0, 2.0]))
    broken("bad-beyond-f32", lambda f: f["layers"][1].update(
        value_absmax=[1e39, 2.0]))
    broken("bad-window", lambda f: f["source"].update(window=65))
    broken("bad-hash", lambda f: f["source"].update(xxh64="xyz"))
    broken("bad-odd-heads", lambda f: f["model"].update(heads=3), full)
    broken("bad-covariance", lambda f: f["layers"][0].update(
        key_covariance=[upper(d, -1.0)] * kv), full)
    broken("bad-loss-lengths", lambda f: f["layers"][1].update(
        evict_loss=[0.0]), full)
    for name, doc in docs.items():
        write(folder, name + ".json", json.dumps(doc).encode("utf-8"))


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus")
    folders = {}
    for fuzzer in ("fuzz-json", "fuzz-safetensors", "fuzz-gguf", "fuzz-onnx",
                   "fuzz-sentencepiece", "fuzz-policy", "fuzz-http",
                   "fuzz-tokenizer-json", "fuzz-hf-config",
                   "fuzz-calibration"):
        folders[fuzzer] = os.path.join(root, fuzzer)
        os.makedirs(folders[fuzzer], exist_ok=True)
    json_seeds(folders["fuzz-json"])
    safetensors_seeds(folders["fuzz-safetensors"])
    sentencepiece_seeds(folders["fuzz-sentencepiece"])
    policy_seeds(folders["fuzz-policy"])
    http_seeds(folders["fuzz-http"])
    tokenizer_seeds(folders["fuzz-tokenizer-json"])
    hf_config_seeds(folders["fuzz-hf-config"])
    calibration_seeds(folders["fuzz-calibration"])
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        gguf_seeds(folders["fuzz-gguf"], tmp)
        onnx_seeds(folders["fuzz-onnx"], tmp)


if __name__ == "__main__":
    main()
