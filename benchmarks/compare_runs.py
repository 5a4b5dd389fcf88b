"""Do two runs agree? Speed-ups over the baseline (paired per round, so they should travel between runs), and
time medians, cell by cell: how many agree within 10% and 25%, the worst, and which cells were contended.

    python benchmarks/compare_runs.py RUN_DIR_A RUN_DIR_B [--baseline sdpa]
"""

from __future__ import annotations

import argparse

import pandas as pd

from attnzoo.harness.rundir import RunStore
from attnzoo.leaderboards.timing import speedup_interval


def time_rows(run_dir: str) -> dict[tuple, pd.Series]:
    rows = [r for r in RunStore(run_dir).rows() if r["metric"] == "time" and r["status"] == "ok"]
    return {(r["label"], r["seq_len"], r["pass"]): pd.Series(r) for r in rows}


def speedups(rows: dict[tuple, pd.Series], baseline: str) -> dict[tuple, tuple[float, bool]]:
    out = {}
    for (label, n, pass_), row in rows.items():
        base = rows.get((baseline, n, pass_))
        if label == baseline or base is None:
            continue
        iv = speedup_interval(row, base)
        contended = bool(row["extra"].get("contended") or base["extra"].get("contended"))
        out[(label, n, pass_)] = (iv.median, contended)
    return out


def report(name: str, a: dict, b: dict) -> None:
    keys = sorted(a.keys() & b.keys())
    ratios = {k: max(a[k][0], b[k][0]) / min(a[k][0], b[k][0]) for k in keys}
    marked = {k for k in keys if a[k][1] or b[k][1]}
    within10 = sum(r <= 1.10 for r in ratios.values())
    within25 = sum(r <= 1.25 for r in ratios.values())
    worst = max(ratios, key=ratios.get)
    print(
        f"{name}: {len(keys)} cells; {within10} ({within10 / len(keys):.0%}) within 10%, {within25} within 25%; "
        f"worst {ratios[worst]:.2f}x at {worst}; {len(marked)} marked contended"
    )
    beyond = [k for k in keys if ratios[k] > 1.25 and k not in marked]
    print(f"  beyond 25% and not marked contended: {len(beyond)}")
    for k in sorted(keys, key=lambda k: -ratios[k])[:5]:
        print(f"  {ratios[k]:.3f}  {k}{'  (contended)' if k in marked else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    parser.add_argument("--baseline", default="sdpa")
    args = parser.parse_args()
    a, b = time_rows(args.run_a), time_rows(args.run_b)
    report("speed-ups", speedups(a, args.baseline), speedups(b, args.baseline))
    contended = lambda rows: {k: (r["value"], bool(r["extra"].get("contended"))) for k, r in rows.items()}  # noqa: E731
    report("times", contended(a), contended(b))


if __name__ == "__main__":
    main()
