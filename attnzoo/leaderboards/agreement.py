"""Do two runs agree? Speed-ups over the baseline cell by cell: how many agree within 10% and 20%, the worst, how
wide the intervals are, and whether each run's interval holds the other run's median (honest intervals do, at
about their coverage)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import pandas as pd

from attnzoo.leaderboards.timing import speedup_interval
from attnzoo.stats import Interval

Key = tuple[str, int, str]  # label, n, pass


def speedups(rows: list[dict], baseline: str) -> dict[Key, tuple[Interval, bool]]:
    """(interval, contended) of every time cell's speed-up over the baseline measured at its length and pass."""
    timed = {(r["label"], r["seq_len"], r["pass"]): pd.Series(r) for r in rows if r["metric"] == "time"}
    timed = {k: r for k, r in timed.items() if r["status"] == "ok"}
    out = {}
    for (label, n, pass_), row in timed.items():
        base = timed.get((baseline, n, pass_))
        if label == baseline or base is None or (iv := speedup_interval(row, base)) is None:
            continue
        out[(label, n, pass_)] = (iv, bool(row["extra"].get("contended") or base["extra"].get("contended")))
    return out


@dataclass(frozen=True)
class Agreement:
    cells: int
    within_10: int
    within_20: int
    worst: float  # the largest ratio of the two runs' medians, >= 1
    worst_cell: Key | None
    median_half_width: float  # half the interval's width over its median, median over both runs' cells
    held: int  # intervals (of 2 per cell) that hold the other run's median
    contended: int

    def lines(self) -> list[str]:
        n = self.cells
        return [
            f"{n} cells: {self.within_10} ({self.within_10 / n:.0%}) within 10%, {self.within_20} within 20%; worst "
            f"{self.worst:.2f}x ({' '.join(map(str, self.worst_cell or ()))}); {self.contended} marked contended",
            f"intervals: median half-width {self.median_half_width:.1%} of the speed-up; {self.held} of {2 * n} "
            f"({self.held / (2 * n):.0%}) hold the other run's median",
        ]


def agreement(a: dict[Key, tuple[Interval, bool]], b: dict[Key, tuple[Interval, bool]]) -> Agreement | None:
    keys = sorted(a.keys() & b.keys())
    if not keys:
        return None
    ratios = {k: max(a[k][0].median, b[k][0].median) / min(a[k][0].median, b[k][0].median) for k in keys}
    worst = max(ratios, key=ratios.get)
    widths = [(iv.high - iv.low) / 2 / iv.median for run in (a, b) for iv, _ in (run[k] for k in keys)]
    pairs = ((a, b), (b, a))
    held = sum(mine[k][0].low <= other[k][0].median <= mine[k][0].high for k in keys for mine, other in pairs)
    return Agreement(
        cells=len(keys),
        within_10=sum(r <= 1.10 for r in ratios.values()),
        within_20=sum(r <= 1.20 for r in ratios.values()),
        worst=ratios[worst],
        worst_cell=worst,
        median_half_width=statistics.median(widths),
        held=held,
        contended=sum(a[k][1] or b[k][1] for k in keys),
    )
