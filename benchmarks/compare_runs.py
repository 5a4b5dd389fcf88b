"""Do two runs agree? Speed-ups over the baseline (attnzoo.leaderboards.agreement: within 10% and 20%, the worst,
interval widths, and whether each run's interval holds the other's median), and time medians, cell by cell.

    python benchmarks/compare_runs.py RUN_DIR_A RUN_DIR_B [--baseline sdpa]
"""

from __future__ import annotations

import argparse

from attnzoo.harness.rundir import RunStore
from attnzoo.leaderboards.agreement import agreement, speedups


def times(rows: list[dict]) -> dict[tuple, float]:
    return {
        (r["label"], r["seq_len"], r["pass"]): r["value"] for r in rows if r["metric"] == "time" and r["status"] == "ok"
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    parser.add_argument("--baseline", default="sdpa")
    args = parser.parse_args()
    a, b = RunStore(args.run_a).rows(), RunStore(args.run_b).rows()
    found = agreement(speedups(a, args.baseline), speedups(b, args.baseline))
    print("\n".join(["speed-ups:", *(f"  {line}" for line in found.lines())]) if found else "no common speed-ups")
    ta, tb = times(a), times(b)
    ratios = {k: max(ta[k], tb[k]) / min(ta[k], tb[k]) for k in ta.keys() & tb.keys()}
    if ratios:
        worst = max(ratios, key=ratios.get)
        within = sum(r <= 1.10 for r in ratios.values())
        share = within / len(ratios)
        print(f"times: {len(ratios)} cells; {within} ({share:.0%}) within 10%; worst {ratios[worst]:.2f}x {worst}")


if __name__ == "__main__":
    main()
