#!/usr/bin/env python3
"""End-to-end decode peers for kvopt's CUDA benchmark, Llama-3.1-8B shapes.

Two PyTorch peers of a kvopt decode step, on random bf16 weights made on
the GPU (no download; the same shapes as `kvopt compile --synthetic
llama3-8b`: 32 layers, hidden 4096, 32 query / 8 KV heads of 128, ffn
14336, vocab 128256, plain RoPE theta 500000, untied embeddings; weights
normal with std 0.02, norms 1), at each (batch, context) point:

- hf: Hugging Face transformers' LlamaForCausalLM (attn_implementation
  "sdpa", bf16), once per cache kind of --hf-cache: "dynamic" (DynamicCache,
  which concatenates each step's keys and values onto the cache, copying
  it) and "static" (StaticCache, preallocated, attention over its whole
  length under a mask). Time to first token: one forward over `context`
  random tokens per sequence (only the last position's logits) and the
  argmax, after a short warm-up prefill. Decode: one new token per
  sequence per step (forward + argmax), --warmup untimed steps, then the
  median of --reps steps, each between CUDA events. Eager, no CUDA graph.
- plain: the decode step written as plain torch ops (RMSNorm in float32,
  fused q/k/v and gate/up projections, half-split RoPE, the new key and
  value written with index_copy_ at the position into a static bf16 cache
  [layers][B][8][context + 1][128] filled with random values (no prefill),
  F.scaled_dot_product_attention(enable_gqa=True) over all context + 1
  positions, o_proj, SwiGLU, lm_head, argmax), captured once in a CUDA graph
  (torch.cuda.CUDAGraph) and replayed: median of --reps replays.

The floor of a point is the bytes one decode step must read (every weight
but the embedding table, B embedding rows, and the K and V of context + 1
positions in every layer) over the bandwidth of a 1 GiB device-to-device
copy (bytes read + written) measured in the same run; each peer's
"of floor" is floor / its step time. Out-of-memory is reported as OOM and
the run goes on. Prints a markdown table last; --json FILE writes all of it.

Runs on the GPU machine (PyTorch 2.11, transformers), e.g.
  python3 test/cuda/e2e_peer.py --points 1x4096,8x32768,32x4096 --json e2e.json
"""

import argparse
import gc
import inspect
import json
import statistics
import time

import torch
import torch.nn.functional as F

LAYERS, HIDDEN, HEADS, KV_HEADS, HEAD_DIM = 32, 4096, 32, 8, 128
FFN, VOCAB, MAX_POSITIONS = 14336, 128256, 131072
ROPE_THETA, RMS_EPS, INIT_STD = 500000.0, 1e-5, 0.02
BF16 = torch.bfloat16
Q_DIM, KV_DIM = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM


def parse_points(text):
    points = []
    for item in text.split(","):
        batch, _, context = item.strip().partition("x")
        if not batch.isdigit() or not context.isdigit():
            raise argparse.ArgumentTypeError(
                f"'{item}' is not BATCHxCONTEXT, e.g. 8x32768")
        points.append((int(batch), int(context)))
    return points


def free_memory():
    gc.collect()
    torch.cuda.empty_cache()


def event_ms(fn):
    """fn()'s device time between CUDA events, and its result."""
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    start.record()
    result = fn()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop), result


def copy_bandwidth_gbps(reps=20):
    n = 1 << 30
    src = torch.randint(0, 255, (n,), dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    times = [event_ms(lambda: dst.copy_(src))[0] for _ in range(reps)]
    del src, dst
    free_memory()
    return 2 * n / (statistics.median(times) * 1e-3) / 1e9


def step_bytes(batch, context):
    """Bytes one decode step reads: weights, embedding rows, K and V."""
    per_layer = (Q_DIM + 2 * KV_DIM) * HIDDEN + HIDDEN * Q_DIM \
        + 3 * FFN * HIDDEN + 2 * HIDDEN
    weights = (LAYERS * per_layer + VOCAB * HIDDEN + HIDDEN) * 2 \
        + batch * HIDDEN * 2
    kv = LAYERS * 2 * batch * KV_HEADS * (context + 1) * HEAD_DIM * 2
    return weights, kv


def run_guarded(fn):
    """fn(), or "OOM" when the GPU runs out of memory."""
    try:
        return fn()
    except torch.cuda.OutOfMemoryError:
        pass
    free_memory()
    return "OOM"


# --- Hugging Face transformers ---------------------------------------------

def hf_model():
    from transformers import LlamaConfig, LlamaForCausalLM
    kwargs = dict(vocab_size=VOCAB, hidden_size=HIDDEN,
                  intermediate_size=FFN, num_hidden_layers=LAYERS,
                  num_attention_heads=HEADS, num_key_value_heads=KV_HEADS,
                  head_dim=HEAD_DIM, max_position_embeddings=MAX_POSITIONS,
                  rms_norm_eps=RMS_EPS, tie_word_embeddings=False,
                  attention_bias=False, mlp_bias=False,
                  initializer_range=INIT_STD, attn_implementation="sdpa")
    # transformers 5 moved rope_theta into rope_parameters.
    if "rope_parameters" in inspect.signature(LlamaConfig.__init__).parameters:
        kwargs["rope_parameters"] = {"rope_type": "default",
                                     "rope_theta": ROPE_THETA}
    else:
        kwargs["rope_theta"] = ROPE_THETA
    config = LlamaConfig(**kwargs)
    torch.set_default_dtype(BF16)
    try:
        with torch.device("cuda"):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(torch.float32)
    model.eval().requires_grad_(False)
    # The same initialisation as the plain peer, whatever transformers did.
    generator = torch.Generator(device="cuda").manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.fill_(1.0)
            else:
                p.normal_(0.0, INIT_STD, generator=generator)
    return model, config


def hf_cache(kind, config, batch, length):
    if kind == "dynamic":
        return None  # the model makes its DynamicCache
    from transformers import StaticCache
    params = inspect.signature(StaticCache.__init__).parameters
    kwargs = {"config": config, "max_cache_len": length}
    for name, value in (("max_batch_size", batch), ("batch_size", batch),
                        ("device", "cuda"), ("dtype", BF16)):
        if name in params:
            kwargs[name] = value
    return StaticCache(**kwargs)


def hf_point(model, config, kind, batch, context, args):
    # Only the last position's logits (transformers < 4.50 spelt it
    # num_logits_to_keep).
    keep = ("num_logits_to_keep"
            if "num_logits_to_keep" in inspect.signature(
                model.forward).parameters else "logits_to_keep")
    steps = args.warmup + args.reps

    def prefill(length):
        cache = hf_cache(kind, config, batch, length + steps + 1)
        ids = torch.randint(0, VOCAB, (batch, length), device="cuda")
        positions = torch.arange(length, device="cuda")

        def run():
            out = model(input_ids=ids, past_key_values=cache, use_cache=True,
                        cache_position=positions, **{keep: 1})
            return out, out.logits[:, -1].argmax(-1, keepdim=True)
        return event_ms(run)

    with torch.no_grad():
        prefill(min(context, 128))  # warm-up: kernels, cuBLAS handles
        free_memory()
        ttft, (out, token) = prefill(context)
        finite = bool(torch.isfinite(out.logits).all())
        cache = out.past_key_values
        del out
        times = []
        for i in range(steps):
            position = torch.tensor([context + i], device="cuda")

            def run():
                out = model(input_ids=token, past_key_values=cache,
                            use_cache=True, cache_position=position)
                return out.logits[:, -1].argmax(-1, keepdim=True)
            ms, token = event_ms(run)
            if i >= args.warmup:
                times.append(ms)
    del cache, token
    free_memory()
    return {"ttft_ms": ttft, "decode_ms": statistics.median(times),
            "decode_ms_all": times, "logits_finite": finite}


# --- plain PyTorch, CUDA graph ---------------------------------------------

def rms_norm(x, weight):
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + RMS_EPS)
    return xf.to(BF16) * weight


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class PlainLlama:
    def __init__(self):
        generator = torch.Generator(device="cuda").manual_seed(1)

        def weight(*shape):
            return torch.empty(*shape, dtype=BF16, device="cuda").normal_(
                0.0, INIT_STD, generator=generator)

        def ones(n):
            return torch.ones(n, dtype=BF16, device="cuda")
        self.layers = [dict(attn_norm=ones(HIDDEN),
                            wqkv=weight(Q_DIM + 2 * KV_DIM, HIDDEN),
                            wo=weight(HIDDEN, Q_DIM),
                            mlp_norm=ones(HIDDEN),
                            wgate_up=weight(2 * FFN, HIDDEN),
                            wdown=weight(HIDDEN, FFN))
                       for _ in range(LAYERS)]
        self.embed = weight(VOCAB, HIDDEN)
        self.norm = ones(HIDDEN)
        self.lm_head = weight(VOCAB, HIDDEN)
        self.inv_freq = 1.0 / ROPE_THETA ** (
            torch.arange(0, HEAD_DIM, 2, device="cuda").float() / HEAD_DIM)

    def step(self, tokens, position, k_cache, v_cache):
        """Logits and next token of one decode step; tokens [B], position
        [1] (where the new keys and values go), caches [B, 8, L, 128]."""
        batch = tokens.shape[0]
        x = self.embed[tokens]
        angles = position.float()[:, None] * self.inv_freq
        cos = torch.cat([angles.cos(), angles.cos()], -1).to(BF16)
        sin = torch.cat([angles.sin(), angles.sin()], -1).to(BF16)
        for layer, w in enumerate(self.layers):
            h = rms_norm(x, w["attn_norm"])
            q, k, v = F.linear(h, w["wqkv"]).split([Q_DIM, KV_DIM, KV_DIM], -1)
            q = rope(q.view(batch, HEADS, 1, HEAD_DIM), cos, sin)
            k = rope(k.view(batch, KV_HEADS, 1, HEAD_DIM), cos, sin)
            k_cache[layer].index_copy_(2, position, k)
            v_cache[layer].index_copy_(
                2, position, v.view(batch, KV_HEADS, 1, HEAD_DIM))
            o = F.scaled_dot_product_attention(q, k_cache[layer],
                                               v_cache[layer], enable_gqa=True)
            x = x + F.linear(o.reshape(batch, Q_DIM), w["wo"])
            h = rms_norm(x, w["mlp_norm"])
            gate, up = F.linear(h, w["wgate_up"]).chunk(2, -1)
            x = x + F.linear(F.silu(gate) * up, w["wdown"])
        logits = F.linear(rms_norm(x, self.norm), self.lm_head)
        return logits, logits.argmax(-1)


def plain_point(model, batch, context, args):
    length = context + 1
    k_cache = [torch.randn(batch, KV_HEADS, length, HEAD_DIM, dtype=BF16,
                           device="cuda") for _ in range(LAYERS)]
    v_cache = [torch.randn_like(k) for k in k_cache]
    tokens = torch.randint(0, VOCAB, (batch,), device="cuda")
    position = torch.tensor([context], device="cuda")
    result = {}
    with torch.no_grad():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                logits, _ = model.step(tokens, position, k_cache, v_cache)
        torch.cuda.current_stream().wait_stream(side)
        result["logits_finite"] = bool(torch.isfinite(logits).all())
        del logits
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                model.step(tokens, position, k_cache, v_cache)
            run, result["graph"] = graph.replay, True
        except RuntimeError as error:
            # Timed eagerly instead, and said so.
            print(f"plain {batch}x{context}: CUDA graph capture failed: "
                  f"{str(error).splitlines()[0][:120]}; timing eagerly")
            graph = None
            free_memory()
            run, result["graph"] = (
                lambda: model.step(tokens, position, k_cache, v_cache), False)
        for _ in range(args.warmup):
            run()
        times = [event_ms(run)[0] for _ in range(args.reps)]
    del graph, k_cache, v_cache
    free_memory()
    result.update(decode_ms=statistics.median(times), decode_ms_all=times)
    return result


# --- report ----------------------------------------------------------------

def fmt_ms(value, key):
    if value == "OOM":
        return "OOM"
    if value is None or key not in value:
        return ""
    return f"{value[key]:.2f}"


def table(results, bandwidth):
    lines = ["| B x context | peer | TTFT ms | decode ms | floor ms "
             "| of floor |", "| --- | --- | --- | --- | --- | --- |"]
    for point in results["points"]:
        name = f"{point['batch']} x {point['context']}"
        floor = point["floor_ms"]
        gb = (point["weight_bytes"] + point["kv_bytes"]) / 1e9
        lines.append(f"| {name} | floor: {gb:.2f} GB / {bandwidth:.0f} GB/s "
                     f"| | | {floor:.2f} | |")
        for peer, value in point["peers"].items():
            share = ("" if not isinstance(value, dict)
                     else f"{100 * floor / value['decode_ms']:.0f}%")
            lines.append(f"| {name} | {peer} | {fmt_ms(value, 'ttft_ms')} "
                         f"| {fmt_ms(value, 'decode_ms')} | {floor:.2f} "
                         f"| {share} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=parse_points,
                        default=parse_points("1x4096,8x32768,32x4096"),
                        help="BATCHxCONTEXT,... (default 1x4096,8x32768,"
                             "32x4096)")
    parser.add_argument("--reps", type=int, default=20,
                        help="timed decode steps per point (median)")
    parser.add_argument("--warmup", type=int, default=5,
                        help="untimed decode steps before them")
    parser.add_argument("--peers", default="hf,plain",
                        help="hf, plain or both (default hf,plain)")
    parser.add_argument("--hf-cache", default="dynamic,static",
                        help="transformers cache kinds: dynamic, static or "
                             "both (default both)")
    parser.add_argument("--json", help="write every number to this file")
    args = parser.parse_args()
    peers = args.peers.split(",")
    kinds = args.hf_cache.split(",")

    props = torch.cuda.get_device_properties(0)
    results = {"device": props.name, "torch": torch.__version__,
               "points": []}
    print(f"torch {torch.__version__}, {props.name}, "
          f"{props.total_memory / 2**30:.0f} GiB", flush=True)
    bandwidth = copy_bandwidth_gbps()
    results["copy_gbps"] = bandwidth
    print(f"device-to-device copy: {bandwidth:.0f} GB/s (read + write)",
          flush=True)
    for batch, context in args.points:
        weights, kv = step_bytes(batch, context)
        results["points"].append({
            "batch": batch, "context": context, "weight_bytes": weights,
            "kv_bytes": kv,
            "floor_ms": (weights + kv) / (bandwidth * 1e9) * 1e3,
            "peers": {}})

    def record(point, peer, value):
        point["peers"][peer] = value
        shown = value if value == "OOM" else {
            k: round(v, 3) if isinstance(v, float) else v
            for k, v in value.items() if k != "decode_ms_all"}
        print(f"{point['batch']}x{point['context']} {peer}: {shown}",
              flush=True)

    if "hf" in peers:
        import transformers
        results["transformers"] = transformers.__version__
        began = time.time()
        model, config = hf_model()
        print(f"transformers {transformers.__version__}: model made in "
              f"{time.time() - began:.1f} s, attention "
              f"{model.config._attn_implementation}", flush=True)
        for kind in kinds:
            for point in results["points"]:
                record(point, f"hf sdpa {kind}", run_guarded(
                    lambda: hf_point(model, config, kind, point["batch"],
                                     point["context"], args)))
        del model
        free_memory()
    if "plain" in peers:
        began = time.time()
        model = PlainLlama()
        torch.cuda.synchronize()
        print(f"plain: weights made in {time.time() - began:.1f} s",
              flush=True)
        for point in results["points"]:
            record(point, "plain torch, CUDA graph", run_guarded(
                lambda: plain_point(model, point["batch"], point["context"],
                                    args)))
        del model
        free_memory()

    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print()
    print(table(results, bandwidth))
    print(f"\nfloor = (weights + embedding rows + K/V of context + 1 "
          f"positions, bf16) / {bandwidth:.0f} GB/s (1 GiB device-to-device "
          "copy, read + write); decode = median of "
          f"{args.reps} steps after {args.warmup} warm-up steps")


if __name__ == "__main__":
    main()
