"""The statistics every timing table uses: medians with distribution-free intervals, paired ratios, spread.

Repetitions of a timing are few (5-10) and skewed (a slow outlier is common, a fast one is not), so nothing here
assumes normality: the interval for a median comes from order statistics (the binomial argument behind the sign
test), which holds for any continuous distribution.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Interval:
    median: float
    low: float
    high: float
    coverage: float  # probability that [low, high] holds the true median; below the asked level when n is small
    n: int


def median_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """The median of values and the narrowest order-statistic interval [x(j), x(n+1-j)] whose coverage of the
    true median, P(j <= Binomial(n, 1/2) <= n - j), is at least `confidence`; with too few values for that,
    [min, max] and the coverage it has (e.g. 5 values: 93.8%)."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        raise ValueError("no values")
    best_j, coverage = 1, 1 - 2 * 0.5**n if n > 1 else 0.0
    for j in range(1, n // 2 + 1):
        below = sum(math.comb(n, i) for i in range(j)) / 2**n  # P(Binomial(n, 1/2) <= j - 1)
        if 1 - 2 * below >= confidence:
            best_j, coverage = j, 1 - 2 * below
        else:
            break
    return Interval(statistics.median(xs), xs[best_j - 1], xs[n - best_j], coverage, n)


def relative_iqr(values: Sequence[float]) -> float:
    """Interquartile range over the median (0 for fewer than two values)."""
    if len(values) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return (q3 - q1) / statistics.median(values)


def paired_ratios(baseline: dict[int, float], other: dict[int, float]) -> list[float]:
    """baseline[r] / other[r] for every round r both were measured in: a speed-up (> 1: other is faster),
    each from two measurements taken back to back in the same round."""
    return [baseline[r] / other[r] for r in sorted(baseline.keys() & other.keys()) if other[r] > 0]


def loglog_slope(ns: Sequence[float], values: Sequence[float]) -> float | None:
    """Least-squares slope of log(value) against log(n): 1 is linear, 2 quadratic."""
    points = [(math.log(n), math.log(v)) for n, v in zip(ns, values, strict=True) if v > 0]
    if len({x for x, _ in points}) < 2:
        return None
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx
