#!/usr/bin/env python3
"""Writes a Llama-family decoder as ONNX, in the two forms kvopt imports.

  make_onnx.py <hf-folder> <out-dir> [--check]
  make_onnx.py --random <out-dir> [--check]
  make_onnx.py --bad <out-dir>

From the weights of a Hugging Face folder (config.json + model.safetensors),
or, with --random, of a small random model with an untied lm_head (its
Hugging Face folder is written to <out-dir>/hf for comparison), writes:

  opset23.onnx      opset-23 Attention (past_key/past_value inputs, present
                    outputs), RotaryEmbedding, RMSNormalization; weights
                    stored [out, in] behind Transpose nodes, lm_head tied
                    through Transpose(embedding) when the model ties it
  decomposed.onnx   what torch.onnx / optimum emit: MatMul / Softmax /
                    MatMul with past_key_values.N.key/value inputs and
                    present.N.key/value outputs, Pow/ReduceMean/Sqrt/Div (or
                    Reciprocal and Mul) RMSNorm, rotate-half RoPE from a
                    cos/sin cache, Sigmoid * x SiLU, repeat_kv by Expand;
                    weights stored [in, out] for MatMul, a tied lm_head as a
                    transposed copy of the embedding
  *-ext.onnx        the same with every initializer over 128 bytes in
                    *-ext.onnx.data (shape constants stay inline)

--bad writes small invalid models (bad-*.onnx) for the error tests, each a
mutation of the random model's opset-23 form.

--check runs both forms with onnxruntime (CPU) on a short prompt and
compares the logits with a NumPy implementation of the Hugging Face model.
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 23


def load_hf(folder):
    from safetensors.numpy import load_file
    cfg = json.load(open(os.path.join(folder, "config.json")))
    w = load_file(os.path.join(folder, "model.safetensors"))
    if "model.embed_tokens.weight" not in w:
        w["model.embed_tokens.weight"] = w["lm_head.weight"]
    tied = cfg.get("tie_word_embeddings", False) or "lm_head.weight" not in w
    return cfg, {k: v.astype(np.float32) for k, v in w.items()}, tied


def random_model(folder):
    """A small untied model, also saved as a Hugging Face folder."""
    from safetensors.numpy import save_file
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
           "hidden_size": 64, "intermediate_size": 96,
           "num_hidden_layers": 2, "num_attention_heads": 4,
           "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 96,
           "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
           "rope_theta": 500000.0, "tie_word_embeddings": False,
           "bos_token_id": 1, "eos_token_id": 2}
    rng = np.random.default_rng(7)
    h, f, d = cfg["hidden_size"], cfg["intermediate_size"], cfg["head_dim"]
    q, kv = cfg["num_attention_heads"] * d, cfg["num_key_value_heads"] * d
    shapes = {"model.embed_tokens.weight": (cfg["vocab_size"], h),
              "model.norm.weight": (h,),
              "lm_head.weight": (cfg["vocab_size"], h)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes.update({p + "input_layernorm.weight": (h,),
                       p + "post_attention_layernorm.weight": (h,),
                       p + "self_attn.q_proj.weight": (q, h),
                       p + "self_attn.k_proj.weight": (kv, h),
                       p + "self_attn.v_proj.weight": (kv, h),
                       p + "self_attn.o_proj.weight": (h, q),
                       p + "mlp.gate_proj.weight": (f, h),
                       p + "mlp.up_proj.weight": (f, h),
                       p + "mlp.down_proj.weight": (h, f)})
    w = {}
    for name, shape in shapes.items():
        if len(shape) == 1:
            w[name] = (1 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            w[name] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
    hf = os.path.join(folder, "hf")
    os.makedirs(hf, exist_ok=True)
    save_file(w, os.path.join(hf, "model.safetensors"))
    json.dump(cfg, open(os.path.join(hf, "config.json"), "w"), indent=1)
    from tokenizers import Tokenizer, models
    vocab = {f"t{i}": i for i in range(cfg["vocab_size"])}
    Tokenizer(models.WordLevel(vocab, unk_token="t0")).save(
        os.path.join(hf, "tokenizer.json"))
    return cfg, w, False


def dims(cfg):
    heads = cfg["num_attention_heads"]
    d = cfg.get("head_dim") or cfg["hidden_size"] // heads
    return heads, cfg.get("num_key_value_heads", heads), d


def rope_tables(cfg):
    _, _, d = dims(cfg)
    inv = 1.0 / (cfg.get("rope_theta", 10000.0) **
                 (np.arange(0, d, 2, dtype=np.int64).astype(np.float32) / d))
    t = np.arange(cfg["max_position_embeddings"], dtype=np.float32)
    freqs = np.outer(t, inv.astype(np.float32))
    return np.cos(freqs).astype(np.float32), np.sin(freqs).astype(np.float32)


class Graph:
    def __init__(self, cfg, w):
        self.cfg, self.w = cfg, w
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []
        self.count = 0

    def init(self, name, array):
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def const(self, array):
        self.count += 1
        return self.init(f"const_{self.count}", np.asarray(array))

    def op(self, op, inputs, outputs=1, name=None, **attrs):
        self.count += 1
        name = name or f"/{op.lower()}_{self.count}"
        outs = ([f"{name}/out{i}" for i in range(outputs)]
                if isinstance(outputs, int) else outputs)
        self.nodes.append(helper.make_node(op, inputs, outs, name=name,
                                           **attrs))
        return outs[0] if len(outs) == 1 else outs

    def matmul(self, x, name, transposed_store, prefix):
        """x @ W^T for the Hugging Face weight `name` ([out, in])."""
        if transposed_store:
            # Stored [out, in] as in Hugging Face; a Transpose feeds MatMul.
            wt = self.op("Transpose", [self.init(name, self.w[name])],
                         perm=[1, 0], name=f"{prefix}/transpose")
        else:
            wt = self.init(f"onnx::MatMul_{name}",
                           np.ascontiguousarray(self.w[name].T))
        return self.op("MatMul", [x, wt], name=f"{prefix}/MatMul")

    def model(self, name):
        g = helper.make_graph(self.nodes, name, self.inputs, self.outputs,
                              self.inits)
        return helper.make_model(g, opset_imports=[
            helper.make_opsetid("", OPSET)], producer_name="make_onnx.py")


def io(g, cfg):
    heads, kvh, d = dims(cfg)
    g.inputs += [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64,
                                      [1, "seq"]),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64,
                                      [1, "seq"])]
    g.outputs.append(helper.make_tensor_value_info(
        "logits", TensorProto.FLOAT, [1, "seq", cfg["vocab_size"]]))


def cache_io(g, cfg, past, present):
    _, kvh, d = dims(cfg)
    for name in past:
        g.inputs.append(helper.make_tensor_value_info(
            name, TensorProto.FLOAT, [1, kvh, "past", d]))
    for name in present:
        g.outputs.append(helper.make_tensor_value_info(
            name, TensorProto.FLOAT, [1, kvh, "total", d]))


def opset23(cfg, w, tied):
    """Attention / RotaryEmbedding / RMSNormalization (opset 23)."""
    g = Graph(cfg, w)
    heads, kvh, d = dims(cfg)
    eps = cfg.get("rms_norm_eps", 1e-6)
    io(g, cfg)
    cos, sin = rope_tables(cfg)
    g.init("cos_cache", cos)
    g.init("sin_cache", sin)
    embed = g.init("model.embed_tokens.weight",
                   w["model.embed_tokens.weight"])
    h = g.op("Gather", [embed, "input_ids"], name="/model/embed_tokens")

    def norm(x, name, prefix):
        return g.op("RMSNormalization", [x, g.init(name, w[name])],
                    epsilon=eps, axis=-1, name=prefix)

    for i in range(cfg["num_hidden_layers"]):
        p, n = f"model.layers.{i}.", f"/model/layers.{i}"
        x = norm(h, p + "input_layernorm.weight", n + "/input_layernorm")
        q, k, v = (g.matmul(x, p + f"self_attn.{t}_proj.weight", True,
                            f"{n}/self_attn/{t}_proj") for t in "qkv")
        q = g.op("RotaryEmbedding", [q, "cos_cache", "sin_cache",
                                     "position_ids"], num_heads=heads,
                 name=f"{n}/self_attn/rotary_q")
        k = g.op("RotaryEmbedding", [k, "cos_cache", "sin_cache",
                                     "position_ids"], num_heads=kvh,
                 name=f"{n}/self_attn/rotary_k")
        past = [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
        present = [f"present.{i}.key", f"present.{i}.value"]
        cache_io(g, cfg, past, present)
        y = g.op("Attention", [q, k, v, "", *past],
                 [f"{n}/self_attn/attn_out", *present],
                 q_num_heads=heads, kv_num_heads=kvh, is_causal=1,
                 name=f"{n}/self_attn/Attention")[0]
        o = g.matmul(y, p + "self_attn.o_proj.weight", True,
                     f"{n}/self_attn/o_proj")
        h = g.op("Add", [h, o], name=f"{n}/residual_attn")
        h = mlp(g, h, norm(h, p + "post_attention_layernorm.weight",
                           n + "/post_attention_layernorm"), p, n, True)
    x = norm(h, "model.norm.weight", "/model/norm")
    if tied:
        wt = g.op("Transpose", [embed], perm=[1, 0], name="/lm_head/transpose")
        g.op("MatMul", [x, wt], ["logits"], name="/lm_head/MatMul")
    else:
        g.nodes.append(helper.make_node(
            "MatMul", [x, g.op("Transpose", [g.init("lm_head.weight",
                                                     w["lm_head.weight"])],
                               perm=[1, 0])], ["logits"],
            name="/lm_head/MatMul"))
    return g.model("llama-opset23")


def mlp(g, h, x, p, n, transposed_store):
    gate = g.matmul(x, p + "mlp.gate_proj.weight", transposed_store,
                    f"{n}/mlp/gate_proj")
    up = g.matmul(x, p + "mlp.up_proj.weight", transposed_store,
                  f"{n}/mlp/up_proj")
    act = g.op("Mul", [gate, g.op("Sigmoid", [gate])], name=f"{n}/mlp/silu")
    down = g.matmul(g.op("Mul", [act, up]), p + "mlp.down_proj.weight",
                    transposed_store, f"{n}/mlp/down_proj")
    return g.op("Add", [h, down], name=f"{n}/residual_mlp")


def decomposed(cfg, w, tied):
    """The decomposed pattern of torch.onnx / optimum exports."""
    g = Graph(cfg, w)
    heads, kvh, d = dims(cfg)
    eps = np.float32(cfg.get("rms_norm_eps", 1e-6))
    io(g, cfg)
    cos, sin = rope_tables(cfg)
    embed = g.init("model.embed_tokens.weight",
                   w["model.embed_tokens.weight"])
    h = g.op("Gather", [embed, "input_ids"], name="/model/embed_tokens")
    # cos/sin [1, 1, seq, d] gathered from the caches by position.
    rope = []
    for name, table in (("cos_cached", cos), ("sin_cached", sin)):
        full = g.init(name, np.concatenate([table, table], axis=-1))
        rope.append(g.op("Unsqueeze", [g.op("Gather", [full, "position_ids"]),
                                       g.const(np.array([1], np.int64))]))
    # mask[q, k] = -inf where key position k > query position q.
    total = g.op("Add", [
        g.op("Gather", [g.op("Shape", ["past_key_values.0.key"]),
                        g.const(np.array(2, np.int64))]),
        g.op("Gather", [g.op("Shape", ["input_ids"]),
                        g.const(np.array(1, np.int64))])])
    kpos = g.op("Range", [g.const(np.array(0, np.int64)), total,
                          g.const(np.array(1, np.int64))])
    future = g.op("Greater", [
        g.op("Unsqueeze", [kpos, g.const(np.array([0], np.int64))]),
        g.op("Unsqueeze", ["position_ids", g.const(np.array([2], np.int64))])])
    mask = g.op("Unsqueeze", [
        g.op("Where", [future, g.const(np.array(-np.inf, np.float32)),
                       g.const(np.array(0, np.float32))]),
        g.const(np.array([1], np.int64))])

    def norm(x, name, prefix, reciprocal):
        sq = g.op("Pow", [x, g.const(np.array(2, np.float32))],
                  name=prefix + "/Pow")
        mean = g.op("ReduceMean", [sq, g.const(np.array([-1], np.int64))],
                    keepdims=1, name=prefix + "/ReduceMean")
        root = g.op("Sqrt", [g.op("Add", [mean, g.const(eps)])],
                    name=prefix + "/Sqrt")
        if reciprocal:
            y = g.op("Mul", [x, g.op("Reciprocal", [root])])
        else:
            y = g.op("Div", [x, root], name=prefix + "/Div")
        return g.op("Mul", [g.init(name, w[name]), y], name=prefix + "/Mul")

    def heads_first(x, n_heads, prefix):
        x = g.op("Reshape", [x, g.const(np.array([1, -1, n_heads, d],
                                                  np.int64))],
                 name=prefix + "/Reshape")
        return g.op("Transpose", [x], perm=[0, 2, 1, 3],
                    name=prefix + "/Transpose")

    def rotate(x, prefix):
        half = d // 2
        axis = g.const(np.array([3], np.int64))
        x1 = g.op("Slice", [x, g.const(np.array([0], np.int64)),
                            g.const(np.array([half], np.int64)), axis])
        x2 = g.op("Slice", [x, g.const(np.array([half], np.int64)),
                            g.const(np.array([d], np.int64)), axis])
        rot = g.op("Concat", [g.op("Neg", [x2]), x1], axis=-1)
        return g.op("Add", [g.op("Mul", [x, rope[0]]),
                            g.op("Mul", [rot, rope[1]])],
                    name=prefix + "/rope")

    def repeat(x):
        if heads == kvh:
            return x
        x = g.op("Unsqueeze", [x, g.const(np.array([2], np.int64))])
        x = g.op("Expand", [x, g.const(np.array([1, 1, heads // kvh, 1, 1],
                                                 np.int64))])
        return g.op("Reshape", [x, g.const(np.array([1, heads, -1, d],
                                                     np.int64))])

    for i in range(cfg["num_hidden_layers"]):
        p, n = f"model.layers.{i}.", f"/model/layers.{i}"
        a = f"{n}/self_attn"
        x = norm(h, p + "input_layernorm.weight", n + "/input_layernorm",
                 False)
        q, k, v = (g.matmul(x, p + f"self_attn.{t}_proj.weight", False,
                            f"{a}/{t}_proj") for t in "qkv")
        q = rotate(heads_first(q, heads, a + "/q"), a + "/q")
        k = rotate(heads_first(k, kvh, a + "/k"), a + "/k")
        v = heads_first(v, kvh, a + "/v")
        past = [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
        present = [f"present.{i}.key", f"present.{i}.value"]
        cache_io(g, cfg, past, present)
        k = g.op("Concat", [past[0], k], [present[0]], axis=2,
                 name=a + "/concat_k")
        v = g.op("Concat", [past[1], v], [present[1]], axis=2,
                 name=a + "/concat_v")
        kt = g.op("Transpose", [repeat(k)], perm=[0, 1, 3, 2])
        scores = g.op("MatMul", [q, kt], name=a + "/MatMul_qk")
        scores = g.op("Mul", [scores, g.const(np.array(1 / np.sqrt(d),
                                                        np.float32))])
        probs = g.op("Softmax", [g.op("Add", [scores, mask])], axis=-1,
                     name=a + "/Softmax")
        y = g.op("MatMul", [probs, repeat(v)], name=a + "/MatMul_pv")
        y = g.op("Transpose", [y], perm=[0, 2, 1, 3])
        y = g.op("Reshape", [y, g.const(np.array([1, -1, heads * d],
                                                  np.int64))])
        o = g.matmul(y, p + "self_attn.o_proj.weight", False, a + "/o_proj")
        h = g.op("Add", [h, o], name=f"{n}/residual_attn")
        h = mlp(g, h, norm(h, p + "post_attention_layernorm.weight",
                           n + "/post_attention_layernorm", True), p, n,
                False)
    x = norm(h, "model.norm.weight", "/model/norm", False)
    head = "model.embed_tokens.weight" if tied else "lm_head.weight"
    wt = g.init("onnx::MatMul_lm_head", np.ascontiguousarray(w[head].T))
    g.nodes.append(helper.make_node("MatMul", [x, wt], ["logits"],
                                    name="/lm_head/MatMul"))
    return g.model("llama-decomposed")


def reference(cfg, w, tied, ids):
    """Logits of the Hugging Face Llama forward, in NumPy."""
    heads, kvh, d = dims(cfg)
    eps = cfg.get("rms_norm_eps", 1e-6)
    cos, sin = rope_tables(cfg)
    n = len(ids)
    cos = np.concatenate([cos[:n], cos[:n]], -1)[None]
    sin = np.concatenate([sin[:n], sin[:n]], -1)[None]

    def rms(x, g):
        return g * (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps))

    def rot(x):
        return np.concatenate([-x[..., d // 2:], x[..., :d // 2]], -1)
    h = w["model.embed_tokens.weight"][ids]
    mask = np.triu(np.full((n, n), -np.inf, np.float32), 1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = rms(h, w[p + "input_layernorm.weight"])
        q, k, v = ((x @ w[p + f"self_attn.{t}_proj.weight"].T)
                   .reshape(n, -1, d).transpose(1, 0, 2) for t in "qkv")
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        k, v = (np.repeat(t, heads // kvh, axis=0) for t in (k, v))
        s = q @ k.transpose(0, 2, 1) / np.sqrt(d) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        y = (s / s.sum(-1, keepdims=True)) @ v
        h = h + y.transpose(1, 0, 2).reshape(n, -1) @ \
            w[p + "self_attn.o_proj.weight"].T
        x = rms(h, w[p + "post_attention_layernorm.weight"])
        gate = x @ w[p + "mlp.gate_proj.weight"].T
        up = x @ w[p + "mlp.up_proj.weight"].T
        h = h + (gate / (1 + np.exp(-gate)) * up) @ \
            w[p + "mlp.down_proj.weight"].T
    head = w["model.embed_tokens.weight" if tied else "lm_head.weight"]
    return rms(h, w["model.norm.weight"]) @ head.T


def check(path, cfg, w, tied):
    import onnxruntime as ort
    _, kvh, d = dims(cfg)
    ids = np.arange(7, dtype=np.int64) * 5 % cfg["vocab_size"]
    feed = {"input_ids": ids[None], "position_ids": np.arange(7)[None]}
    for i in range(cfg["num_hidden_layers"]):
        for t in ("key", "value"):
            feed[f"past_key_values.{i}.{t}"] = np.zeros((1, kvh, 0, d),
                                                        np.float32)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], feed)[0][0]
    err = float(np.abs(logits - reference(cfg, w, tied, ids)).max())
    name = os.path.basename(path)
    print(f"{name}: onnxruntime logits within {err:.1e} of the reference")
    return err < 1e-3


def bad_models(out):
    """Invalid models: one defect each."""
    import copy
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        cfg, w, tied = random_model(tmp)
    base = opset23(cfg, w, tied)

    def save(name, mutate):
        m = copy.deepcopy(base)
        mutate(m.graph)
        with open(os.path.join(out, name), "wb") as f:
            f.write(m.SerializeToString())

    def node(g, name):
        return next(n for n in g.node if n.name == name)

    def init(g, name):
        return next(t for t in g.initializer if t.name == name)

    def dangle(g):
        node(g, "/model/layers.1/residual_attn").input[1] = "nowhere"

    def cycle(g):
        a = node(g, "/model/layers.0/residual_attn")
        b = node(g, "/model/layers.0/mlp/silu")
        a.input[0] = b.output[0]

    def duplicate(g):
        node(g, "/model/layers.0/mlp/silu").output[0] = \
            node(g, "/model/layers.0/residual_attn").output[0]

    def unsupported(g):
        n = node(g, "/model/layers.1/input_layernorm")
        n.op_type = "LayerNormalization"

    def external(location, offset=0, length=None):
        def mutate(g):
            t = init(g, "model.layers.0.self_attn.q_proj.weight")
            size = len(t.raw_data)
            t.ClearField("raw_data")
            t.data_location = TensorProto.EXTERNAL
            entries = {"location": location, "offset": str(offset),
                       "length": str(size if length is None else length)}
            for k, v in entries.items():
                t.external_data.add(key=k, value=v)
        return mutate

    def raw_size(g):
        t = init(g, "model.norm.weight")
        t.raw_data = t.raw_data[:-4]

    def dims(values):
        def mutate(g):
            t = init(g, "model.layers.0.self_attn.k_proj.weight")
            del t.dims[:]
            t.dims.extend(values)
            if 0 in values:
                t.raw_data = b""
        return mutate

    save("bad-dangling.onnx", dangle)
    save("bad-cycle.onnx", cycle)
    save("bad-duplicate.onnx", duplicate)
    save("bad-unsupported.onnx", unsupported)
    save("bad-ext-dotdot.onnx", external("../weights.bin"))
    save("bad-ext-absolute.onnx", external("/etc/hostname"))
    save("bad-ext-symlink.onnx", external("link.bin"))
    # weights.bin holds the q_proj weight's 16384 bytes and 16 more: it
    # does not fit from offset 100.
    save("bad-ext-offset.onnx", external("weights.bin", offset=100))
    save("bad-ext-length.onnx", external("weights.bin", length=1 << 62))
    with open(os.path.join(out, "weights.bin"), "wb") as f:
        f.write(bytes(16384 + 16))
    save("bad-raw-size.onnx", raw_size)
    save("bad-dims-overflow.onnx", dims([1 << 40, 1 << 40]))
    save("bad-dims-negative.onnx", dims([-4, 64]))
    save("bad-dims-zero.onnx", dims([0, 64]))
    return 0


def main(argv):
    do_check = "--check" in argv
    argv = [a for a in argv if a != "--check"]
    if len(argv) != 2:
        sys.exit(__doc__)
    source, out = argv
    os.makedirs(out, exist_ok=True)
    if source == "--bad":
        return bad_models(out)
    cfg, w, tied = (random_model(out) if source == "--random"
                    else load_hf(source))
    ok = True
    for form, build in (("opset23", opset23), ("decomposed", decomposed)):
        model = build(cfg, w, tied)
        onnx.checker.check_model(model)
        path = os.path.join(out, form + ".onnx")
        onnx.save_model(model, path)
        ext = os.path.join(out, form + "-ext.onnx")
        onnx.save_model(model, ext, save_as_external_data=True,
                        all_tensors_to_one_file=True,
                        location=form + "-ext.onnx.data", size_threshold=128)
        if do_check:
            ok = check(path, cfg, w, tied) and check(ext, cfg, w, tied) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
