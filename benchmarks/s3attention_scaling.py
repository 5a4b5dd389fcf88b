"""S3Attention vs exact attention on this machine: forward+backward time and peak memory over sequence length.

The LRA-sized layer (dim 64, 2 heads, r = s1 = s2 = 8), batch 1, float32. Each (variant, n) cell runs in a fresh
process so that one cell's allocations cannot flatter another's peak memory. Prints a markdown table, the speed-up
and memory ratio of s3attention over sdpa at n = 16384, and the fitted log-log slopes between 4096 and 65536.

    python benchmarks/s3attention_scaling.py [--official PATH_TO_AUTHORS_LRA_DIR] [--out results.json]

With --official, the authors' released layer (lra/attention1.py of github wxie9/S3Attention, checked out by the
user; nothing of it is part of attnzoo) is timed side by side with our `official` preset at identical settings.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from types import SimpleNamespace

import torch

DIM, HEADS, SAMPLES = 64, 2, 8
LENGTHS = [1024, 2048, 4096, 8192, 16384, 32768, 65536]
MAX_N = {"vanilla": 16384}  # beyond this its n x n matrices need more than this 24 GiB machine has


def authors_layer(path: str, n: int) -> torch.nn.Module:
    sys.path.insert(0, path)
    from attention1 import Attention  # the released layer, from the user's checkout

    config = SimpleNamespace(
        attention_grad_checkpointing=False,
        transformer_dim=DIM,
        head_dim=DIM // HEADS,
        num_head=HEADS,
        max_seq_len=n,
        attn_type="attention_SKT",
        num_landmarks=SAMPLES,
        rnn_dropout=0.0,
        attention_dropout=0.0,
        pooling_mode="MEAN",
        cls_token=False,
    )
    return Attention(config)


def measure_cell(variant: str, n: int, threads: int, official_path: str | None) -> dict:
    import attnzoo
    from attnzoo.harness.measure import layer_call, peak_memory, time_call

    torch.manual_seed(0)
    x = torch.randn(1, n, DIM)
    if variant == "authors":
        layer = authors_layer(official_path, n)
        mask = torch.ones(1, n)

        def call() -> None:
            layer.zero_grad(set_to_none=True)
            layer(x, mask).sum().backward()
    else:
        params = {"official": {"preset": "official", "s1": SAMPLES}, "s3attention": {"r": 8, "s1": 8, "s2": 8}}
        name = "s3attention" if variant == "official" else variant
        layer = attnzoo.create_attention(name, DIM, HEADS, max_seq_len=n, **params.get(variant, {}))
        call = layer_call(layer, x, None, backward=True)
    timing = time_call(call, threads, min_run_time=1.0)
    return {
        "variant": variant,
        "n": n,
        "time_s": timing.median_s,
        "iqr_s": timing.iqr_s,
        "peak_bytes": peak_memory(call, x.device),
    }


def run_isolated(variant: str, n: int, threads: int, official_path: str | None) -> dict:
    code = (
        "import json, sys; sys.path.insert(0, 'benchmarks'); import torch; "
        f"torch.set_num_threads({threads}); from s3attention_scaling import measure_cell; "
        f"print(json.dumps(measure_cell({variant!r}, {n}, {threads}, {official_path!r})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        return {"variant": variant, "n": n, "error": done.stderr.strip().splitlines()[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def slope(rows: list[dict], variant: str, key: str, lo: int = 4096, hi: int = 65536) -> float | None:
    points = [
        (math.log(r["n"]), math.log(r[key]))
        for r in rows
        if r["variant"] == variant and lo <= r["n"] <= hi and key in r
    ]
    if len(points) < 2:
        return None
    mx = sum(p[0] for p in points) / len(points)
    my = sum(p[1] for p in points) / len(points)
    return sum((a - mx) * (b - my) for a, b in points) / sum((a - mx) ** 2 for a, _ in points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", help="path to the authors' lra/ directory, for the side-by-side timing")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--lengths", type=int, nargs="+", default=LENGTHS)
    parser.add_argument("--out", help="also write the rows as JSON here")
    args = parser.parse_args()

    rows = []
    variants = ["s3attention", "sdpa", "vanilla"]
    for n in args.lengths:
        for variant in variants:
            if n <= MAX_N.get(variant, n):
                rows.append(run_isolated(variant, n, args.threads, None))
                print(rows[-1], flush=True)
    if args.official:
        for n in (4096, 16384):
            for variant in ("official", "authors"):
                rows.append(run_isolated(variant, n, args.threads, args.official))
                print(rows[-1], flush=True)

    print(
        f"\nCPU, {args.threads} threads, torch {torch.__version__}, batch 1, dim {DIM}, {HEADS} heads, forward+backward"
    )
    print("\n| n | variant | time (ms) | IQR (ms) | peak memory (MiB) |\n|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['n']} | {r['variant']} | {r['error']} | | |")
        else:
            print(
                f"| {r['n']} | {r['variant']} | {r['time_s'] * 1e3:.1f} | {r['iqr_s'] * 1e3:.1f} | "
                f"{r['peak_bytes'] / 2**20:.1f} |"
            )
    by = {(r["variant"], r["n"]): r for r in rows if "error" not in r}
    if ("s3attention", 16384) in by and ("sdpa", 16384) in by:
        s3, sdpa = by["s3attention", 16384], by["sdpa", 16384]
        print(
            f"\nn=16384: s3attention is {sdpa['time_s'] / s3['time_s']:.1f}x faster than sdpa, "
            f"memory ratio sdpa/s3attention = {sdpa['peak_bytes'] / s3['peak_bytes']:.2f}"
        )
    for key in ("time_s", "peak_bytes"):
        print(f"log-log slope of s3attention {key} over n in [4096, 65536]: {slope(rows, 's3attention', key)}")
    for n in (4096, 16384):
        if ("official", n) in by and ("authors", n) in by:
            ratio = by["authors", n]["time_s"] / by["official", n]["time_s"]
            print(f"n={n}: preset 'official' is {ratio:.2f}x the speed of the authors' layer")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
