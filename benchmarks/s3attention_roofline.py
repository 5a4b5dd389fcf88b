"""How close S3Attention's forward+backward comes to this machine's matmul rate, over sequence length.

For each n: the algorithm's FLOPs (FlopCounterMode with attnzoo's formulas, less the zero blocks the branches
multiply to batch their heads, see `useful_flops`), its time (torch.utils.benchmark, forward, then backward through
the parameters and to the input), and the achieved GFLOP/s as a fraction of the rate of a square float32 matmul
measured in the same process with the same thread count. Beside it, the rate of the layer's dominant product
shape, (n, 2D) @ (2D, D) of the stem, which bounds what a layer of such skinny products can reach. Writes a
markdown table and, with --plot, the roofline-style figure (achieved / matmul GFLOP/s vs n). --compile times
torch.compile(layer) instead and reports the compile time. Run it alone on the machine.

    python benchmarks/s3attention_roofline.py [--n 4096 16384 65536] [--threads 2] [--plot roofline.png] [--compile]
"""

from __future__ import annotations

import argparse
import time
from statistics import median

import torch
from torch.utils.benchmark import Timer

import attnzoo
from attnzoo.harness.flops import count_flops
from attnzoo.harness.measure import keep_freed_memory, layer_call


def seconds(fn, threads: int, min_run_time: float = 1.0) -> float:
    return Timer("f()", globals={"f": fn}, num_threads=threads).blocked_autorange(min_run_time=min_run_time).median


def matmul_rate(threads: int, size: int = 1024) -> float:
    """FLOP/s of a float32 (size x size) @ (size x size) product: the machine's practical peak for this dtype."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / seconds(lambda: a @ b, threads)


def stem_shape_rate(n: int, dim: int, threads: int) -> float:
    """FLOP/s of the stem's product shape (n, 2D) @ (2D, D)."""
    a, b = torch.randn(n, 2 * dim), torch.randn(2 * dim, dim)
    return 2 * n * 2 * dim * dim / seconds(lambda: a @ b, threads)


def useful_flops(counted: int, layer: torch.nn.Module, n: int) -> int:
    """The count less the products with zero blocks: each branch batches its H heads' (p x s) factors on the
    diagonal of one (H·p x H·s) matrix, so its four products (token logits and output, feature cross product and
    output), forward and both backward products, are counted H times over: 6·n·p·H·(H-1)·2·(s1+s2) FLOPs that the
    algorithm does not need."""
    heads, p = layer.heads, layer.dim_head
    return counted - 6 * n * p * heads * (heads - 1) * 2 * (layer.s1 + layer.s2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[4096, 16384, 65536])
    parser.add_argument("--dim", type=int, default=64, help="model width D (the suites use 64)")
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the table gives medians")
    parser.add_argument("--plot", help="write the figure to this PNG file")
    parser.add_argument("--compile", action="store_true", help="time torch.compile(layer) (compile time reported)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the harness's timing workers do: time compute, not the kernel zeroing pages

    steps, flops = {}, {}
    for n in args.n:
        torch.manual_seed(0)
        layer = attnzoo.create_attention("s3attention", args.dim, args.heads, max_seq_len=n, seed=0).train()
        x = torch.randn(1, n, args.dim)
        flops[n] = useful_flops(count_flops(layer_call(layer, x, None, backward=True)), layer, n)
        if args.compile:
            layer = torch.compile(layer)
            start = time.perf_counter()
            layer_call(layer, x, None, backward=True)()
            print(f"n={n}: torch.compile took {time.perf_counter() - start:.1f} s", flush=True)
        steps[n] = layer_call(layer, x, None, backward=True)

    # Each round measures the matmul rate next to every length, so a fraction never divides by a rate measured
    # under other conditions; the machine's drift shows as the spread over rounds.
    peaks, times, shape_rates = [], {n: [] for n in args.n}, {n: [] for n in args.n}
    for _ in range(args.rounds):
        peaks.append(matmul_rate(args.threads))
        for n in args.n:
            times[n].append(seconds(steps[n], args.threads))
            shape_rates[n].append(stem_shape_rate(n, args.dim, args.threads))
    peak_fractions = {n: [flops[n] / t / p for t, p in zip(times[n], peaks, strict=True)] for n in args.n}

    print(
        f"matmul rate: {median(peaks) / 1e9:.1f} GFLOP/s, median of {args.rounds} rounds (range "
        f"{min(peaks) / 1e9:.0f}-{max(peaks) / 1e9:.0f}; {args.threads} threads, float32 1024x1024)\n"
    )
    print(
        "| n | GFLOP (fwd+bwd) | ms | GFLOP/s | fraction of matmul rate (range over rounds) "
        "| stem-shape product, GFLOP/s |\n|---|---|---|---|---|---|"
    )
    for n in args.n:
        t, f = median(times[n]), peak_fractions[n]
        cells = [n, f"{flops[n] / 1e9:.2f}", f"{t * 1e3:.1f}", f"{flops[n] / t / 1e9:.1f}"]
        cells += [f"{median(f):.0%} ({min(f):.0%}-{max(f):.0%})", f"{median(shape_rates[n]) / 1e9:.0f}"]
        print("| " + " | ".join(map(str, cells)) + " |")

    if args.plot:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5.6, 3.6))
        ax = fig.subplots()
        ax.plot(args.n, [median(peak_fractions[n]) for n in args.n], marker="o", label="S3Attention fwd+bwd")
        shape = [median(shape_rates[n]) / median(peaks) for n in args.n]
        ax.plot(args.n, shape, marker="s", linestyle=":", label="the stem's (n, 2D) @ (2D, D) product alone")
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_xscale("log", base=2)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("sequence length n")
        ax.set_ylabel("achieved / square-matmul GFLOP/s")
        compiled = ", compiled" if args.compile else ""
        ax.set_title(f"S3Attention, D={args.dim}, {args.heads} heads, {args.threads} threads, CPU{compiled}")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=130, facecolor="white")


if __name__ == "__main__":
    main()
