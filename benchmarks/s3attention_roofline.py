"""How close S3Attention's forward+backward comes to this machine's matmul rate, over sequence length.

For each n: the layer's FLOPs (FlopCounterMode with attnzoo's FFT and SDPA formulas), its time (torch.utils.benchmark,
forward, then backward through the parameters and to the input), and the achieved GFLOP/s as a fraction of the
rate of a square float32 matmul measured in the same process with the same thread count. Writes a markdown table
and, with --plot, the roofline-style figure (achieved / matmul GFLOP/s vs n). Run it alone on the machine.

    python benchmarks/s3attention_roofline.py [--n 4096 16384 65536] [--threads 2] [--plot roofline.png]
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.benchmark import Timer

import attnzoo
from attnzoo.harness.flops import count_flops
from attnzoo.harness.measure import layer_call

DIM, HEADS = 64, 2


def seconds(fn, threads: int, min_run_time: float = 1.0) -> float:
    return Timer("f()", globals={"f": fn}, num_threads=threads).blocked_autorange(min_run_time=min_run_time).median


def matmul_rate(threads: int, size: int = 1024) -> float:
    """FLOP/s of a float32 (size x size) @ (size x size) product: the machine's practical peak for this dtype."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / seconds(lambda: a @ b, threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[4096, 16384, 65536])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--plot", help="write the figure to this PNG file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    peak = matmul_rate(args.threads)
    print(f"matmul rate: {peak / 1e9:.1f} GFLOP/s ({args.threads} threads, float32 1024x1024)\n")
    print("| n | GFLOP (fwd+bwd) | ms | GFLOP/s | fraction of matmul rate |\n|---|---|---|---|---|")
    points = []
    for n in args.n:
        torch.manual_seed(0)
        layer = attnzoo.create_attention("s3attention", DIM, HEADS, max_seq_len=n, seed=0).train()
        step = layer_call(layer, torch.randn(1, n, DIM), None, backward=True)
        flops = count_flops(step)
        t = seconds(step, args.threads)
        rate = flops / t
        points.append((n, rate / peak))
        print(f"| {n} | {flops / 1e9:.2f} | {t * 1e3:.1f} | {rate / 1e9:.1f} | {rate / peak:.0%} |", flush=True)
    peak_after = matmul_rate(args.threads)
    print(f"\nmatmul rate measured again after the layers: {peak_after / 1e9:.1f} GFLOP/s (a drift check)")

    if args.plot:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5.6, 3.6))
        ax = fig.subplots()
        ax.plot([n for n, _ in points], [f for _, f in points], marker="o")
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_xscale("log", base=2)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("sequence length n")
        ax.set_ylabel("achieved / matmul GFLOP/s")
        ax.set_title(f"S3Attention forward+backward, {args.threads} threads")
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=130, facecolor="white")


if __name__ == "__main__":
    main()
