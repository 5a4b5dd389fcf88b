"""Stability: the worst ratio between two runs' time medians, cell by cell.

python benchmarks/compare_runs.py RUN_DIR_A RUN_DIR_B
"""

from __future__ import annotations

import sys

from attnzoo.harness.results import RunStore


def times(run_dir: str) -> dict[tuple, float]:
    return {
        (r["label"], r["seq_len"], r["pass"]): r["value"]
        for r in RunStore(run_dir).rows()
        if r["metric"] == "time" and r["status"] == "ok"
    }


def main() -> None:
    a, b = times(sys.argv[1]), times(sys.argv[2])
    ratios = {k: max(a[k], b[k]) / min(a[k], b[k]) for k in a.keys() & b.keys()}
    worst = max(ratios, key=ratios.get)
    within = sum(r <= 1.10 for r in ratios.values())
    print(f"{len(ratios)} time cells compared; {within} agree within 10%; worst ratio {ratios[worst]:.3f} at {worst}")
    for key, ratio in sorted(ratios.items(), key=lambda kv: -kv[1])[:5]:
        print(f"  {ratio:.3f}  {key}")


if __name__ == "__main__":
    main()
