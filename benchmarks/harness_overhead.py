"""Harness overhead: the time `attnzoo run` reports for a cell vs a bare measurement of the same call in this
process (same threads, same allocator setting).

    python benchmarks/harness_overhead.py [--variant s3attention] [--n 4096] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch
import yaml

import attnzoo
from attnzoo.harness.measure import keep_freed_memory, layer_call, time_call
from attnzoo.harness.runner import run_suite
from attnzoo.harness.suite import load_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="s3attention")
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    threads = torch.get_num_threads()
    keep_freed_memory()  # as the harness's workers do
    suite = {
        "name": "overhead",
        "variants": [args.variant],
        "layer": {"dim": 64, "heads": 2},
        "seq_lens": [args.n],
        "benchmarks": {
            "efficiency": {"metrics": ["time"], "passes": ["forward_backward"], "repetitions": 3, "min_run_time": 1.0}
        },
        "execution": {"threads": threads},
    }
    harness, bare = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "suite.yaml"
            path.write_text(yaml.safe_dump(suite))
            rows = run_suite(load_suite(path), path.read_text(), Path(tmp) / "run").rows
            harness.append(rows[0]["value"])
        torch.manual_seed(0)
        layer = attnzoo.create_attention(args.variant, 64, 2, max_seq_len=args.n).train()
        call = layer_call(layer, torch.randn(1, args.n, 64), None, backward=True)
        bare.append(time_call(call, threads, min_run_time=1.0).median_s)
    h, b = statistics.median(harness), statistics.median(bare)
    print(
        f"{args.variant} n={args.n} forward+backward, {threads} threads: harness {h * 1e3:.2f} ms, "
        f"bare Timer {b * 1e3:.2f} ms, ratio {h / b:.3f}"
    )


if __name__ == "__main__":
    main()
