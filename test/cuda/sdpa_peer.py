"""PyTorch's scaled_dot_product_attention on kvrt-cuda-attention's shapes.

Decode at the Llama-3-8B attention shape: q [B, 32, 1, 128], k and v
[B, 8, L, 128], bf16, contiguous, enable_gqa=True (query head h reads KV
head h // 4 without k and v being expanded), for B in {1, 8, 32} and L in
{8K, 32K, 128K}. Timed like the kvrt benchmark: each rep alone between CUDA
events after a 256 MB write that evicts the L2, median of the reps. Bytes
are the K and V tensors (what the kernel must read); the floor is those
bytes over the bandwidth of a 1 GiB device-to-device copy (read + write)
measured here. Each SDPA backend is timed where it accepts the inputs; the
row 'auto' is PyTorch's own choice.

Runs on the GPU machine (scripts/gpu-bench.sh); prints the table last.
"""

import argparse
import statistics

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

Q_HEADS, KV_HEADS, HEAD_DIM = 32, 8, 128
FLUSH_BYTES = 256 << 20


def median_ms(fn, reps, flush):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(reps):
        flush.zero_()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def copy_bandwidth(flush):
    n = 1 << 30
    src = torch.ones(n, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src), 20, flush)
    del src, dst
    return 2 * n / (ms * 1e-3) / 1e9


def auto_kernels(q, k, v):
    """The names of the GPU kernels PyTorch's own choice runs."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
        torch.cuda.synchronize()
    return sorted({e.key[:80] for e in prof.key_averages()
                   if e.device_type == torch.autograd.DeviceType.CUDA})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=100)
    args = parser.parse_args()

    torch.manual_seed(0)
    props = torch.cuda.get_device_properties(0)
    print(f"torch {torch.__version__}, {props.name}, "
          f"{props.multi_processor_count} SMs")
    flush = torch.empty(FLUSH_BYTES, dtype=torch.uint8, device="cuda")
    bandwidth = copy_bandwidth(flush)
    print(f"device-to-device copy: {bandwidth:.0f} GB/s (read + write)")

    backends = [("auto", None),
                ("flash", SDPBackend.FLASH_ATTENTION),
                ("efficient", SDPBackend.EFFICIENT_ATTENTION),
                ("cudnn", SDPBackend.CUDNN_ATTENTION)]
    rows = []
    for batch in (1, 8, 32):
        for length in (8192, 32768, 131072):
            q = torch.randn(batch, Q_HEADS, 1, HEAD_DIM, dtype=torch.bfloat16,
                            device="cuda")
            k = torch.randn(batch, KV_HEADS, length, HEAD_DIM,
                            dtype=torch.bfloat16, device="cuda")
            v = torch.randn_like(k)
            nbytes = k.numel() * k.element_size() * 2
            floor = nbytes / (bandwidth * 1e9)
            # float64 reference for one query head of sequence 0.
            ref = torch.softmax(
                (q[0, 0, 0].double() @ k[0, 0].double().T) / HEAD_DIM**0.5,
                dim=-1) @ v[0, 0].double()
            if batch == 8 and length == 32768:
                print("auto runs:", ", ".join(auto_kernels(q, k, v)))
            for name, backend in backends:
                def run():
                    return F.scaled_dot_product_attention(q, k, v,
                                                          enable_gqa=True)
                try:
                    if backend is None:
                        out = run()
                        ms = median_ms(run, args.reps, flush)
                    else:
                        with sdpa_kernel(backend):
                            out = run()
                            ms = median_ms(run, args.reps, flush)
                except RuntimeError as error:
                    line = (f"sdpa   {name:<9} {batch:3d} {length:6d}  "
                            f"unsupported: {str(error).splitlines()[0][:60]}")
                    print(line, flush=True)
                    rows.append(line)
                    continue
                err = ((out[0, 0, 0].double() - ref).norm() / ref.norm()).item()
                seconds = ms * 1e-3
                line = (f"sdpa   {name:<9} {batch:3d} {length:6d} "
                        f"{seconds * 1e6:9.1f} {nbytes / 1e6:9.1f} "
                        f"{nbytes / seconds / 1e9:7.0f} {floor * 1e6:9.1f} "
                        f"{100 * floor / seconds:6.0f}%  (vs float64: {err:.1e})")
                print(line, flush=True)
                rows.append(line)
            del q, k, v, out
            torch.cuda.empty_cache()

    print("\nimpl   backend     B      L   time_us  bytes_MB    GB/s  "
          "floor_us  floor/time")
    for line in rows:
        print(line)
    print(f"floor = bytes / {bandwidth:.0f} GB/s (1 GiB device-to-device "
          "copy, read + write); bf16 q/k/v, enable_gqa=True")


if __name__ == "__main__":
    main()
