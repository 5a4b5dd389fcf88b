"""Time tables with their uncertainty: every cell's spread over repetitions, speed-ups paired round by round,
and scaling slopes fitted per round, each a median with an order-statistic interval (attnzoo.stats)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from attnzoo.stats import Interval, loglog_slope, median_interval, paired_ratios, relative_iqr

NOISY, UNRELIABLE = 0.10, 0.25  # IQR/median over repetitions: marked above the first, flagged above the second

LEGEND = (
    "Time: median over repetitions, each in a fresh worker process with the variants' order shuffled in every "
    "round; ±: IQR/median over the repetitions; † above 10%, ‡ above 25% (unreliable); (once): a single "
    "repetition, spread unknown. A repetition whose contention probe did not run clean is left out of the median "
    "and counted (k contended); *contended*: most of the cell's repetitions were, so another process was taking "
    "CPU and the number is not comparable. Speed-up: median over rounds of (baseline time / variant time) "
    "measured in the same round (with block pairing: over repetitions, each the median ratio of blocks of the two "
    "timed alternately in one worker), with a distribution-free interval for that median from order "
    "statistics{coverage}. Slope: log-log slope of time on n fitted per round, median and interval over rounds "
    "(1 = linear)."
)


def repetitions(row: pd.Series) -> dict[int, float]:
    """round -> seconds of a time row's clean repetitions (all of them when none was clean; rows from before
    repetitions were kept count as one round)."""
    extra = row["extra"] if isinstance(row["extra"], dict) else {}
    values = extra.get("repetitions")
    if not values:
        return {0: row["value"]}
    clean = extra.get("clean") or [True] * len(values)
    keep = [i for i, ok in enumerate(clean) if ok] or list(range(len(values)))
    return {extra["rounds"][i]: values[i] for i in keep}


def _contended(row: pd.Series) -> bool:
    return isinstance(row["extra"], dict) and bool(row["extra"].get("contended"))


def time_text(row: pd.Series) -> str:
    ms = f"{row['value'] * 1e3:.3g}" if row["value"] < 0.1 else f"{row['value'] * 1e3:.0f}"
    if _contended(row):
        return f"{ms} *contended*"
    values = list(repetitions(row).values())
    dropped = (row["extra"].get("clean") or []).count(False) if isinstance(row["extra"], dict) else 0
    note = f" ({dropped} contended)" if dropped else ""
    if len(values) < 2:
        return f"{ms} (once){note}"
    spread = relative_iqr(values)
    mark = "‡" if spread > UNRELIABLE else "†" if spread > NOISY else ""
    return f"{ms} ±{spread:.0%}{mark}{note}"


def interval_text(iv: Interval, fmt: str = "{:.2f}", suffix: str = "") -> str:
    if iv.n == 1:
        return f"{fmt.format(iv.median)}{suffix}"
    return f"{fmt.format(iv.median)}{suffix} ({fmt.format(iv.low)}–{fmt.format(iv.high)})"


def slope_interval(group: pd.DataFrame) -> Interval | None:
    """Per round, the slope over the lengths measured clean in that round; their median and interval."""
    by_round: dict[int, list[tuple[int, float]]] = {}
    for _, row in group[group["status"] == "ok"].iterrows():
        if _contended(row):
            continue
        for r, seconds in repetitions(row).items():
            by_round.setdefault(r, []).append((row["seq_len"], seconds))
    slopes = [s for points in by_round.values() if (s := loglog_slope(*zip(*points, strict=True))) is not None]
    return median_interval(slopes) if slopes else None


def speedup_interval(row: pd.Series, base: pd.Series) -> Interval | None:
    """Over repetitions: the in-process speed-ups (baseline and variant timed in alternating blocks of one worker)
    where the row has them against this baseline; else baseline time / variant time round by round."""
    ratios = in_process_speedups(row, base["label"]) or paired_ratios(repetitions(base), repetitions(row))
    return median_interval(ratios) if ratios else None


def in_process_speedups(row: pd.Series, baseline: str) -> list[float]:
    """A time row's per-repetition in-process speed-ups over `baseline` (clean repetitions; all when none was)."""
    extra = row["extra"] if isinstance(row["extra"], dict) else {}
    paired = extra.get("paired") or []
    if extra.get("paired_with") != baseline or not any(p is not None for p in paired):
        return []
    clean = extra.get("clean") or [True] * len(paired)
    keep = [p for p, ok in zip(paired, clean, strict=True) if ok and p is not None]
    return keep or [p for p in paired if p is not None]


def _status(group: pd.DataFrame, status_text: Callable[[str], str]) -> str:
    return status_text(group.iloc[-1]["status"])


def time_table(part: pd.DataFrame, status_text: Callable[[str], str]) -> str:
    ns = sorted(part["seq_len"].unique())
    header = ["variant", *[f"n={n}" for n in ns], "slope"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, group in part.groupby("label", sort=True, observed=True):
        cells = []
        for n in ns:
            at = group[group["seq_len"] == n]
            if at.empty:
                cells.append("")
            elif at.iloc[-1]["status"] == "ok":
                cells.append(time_text(at.iloc[-1]))
            else:
                cells.append(_status(at, status_text))
        slope = slope_interval(group)
        cells.append(interval_text(slope) if slope else "")
        lines.append("| " + " | ".join([label, *cells]) + " |")
    return "\n".join(lines)


def speedup_table(part: pd.DataFrame, baseline: str, status_text: Callable[[str], str]) -> tuple[str, float] | None:
    """The speed-up table and the lowest coverage of its intervals; None without the baseline."""
    base = {r["seq_len"]: r for _, r in part[(part["label"] == baseline) & (part["status"] == "ok")].iterrows()}
    if not base:
        return None
    ns = sorted(part["seq_len"].unique())
    header = ["variant", *[f"n={n}" for n in ns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    coverage = 1.0
    for label, group in part.groupby("label", sort=True, observed=True):
        if label == baseline:
            continue
        cells = []
        for n in ns:
            at = group[group["seq_len"] == n]
            if at.empty or n not in base:
                cells.append("")
                continue
            row = at.iloc[-1]
            if row["status"] != "ok":
                cells.append(_status(at, status_text))
                continue
            iv = speedup_interval(row, base[n])
            if iv is None:
                cells.append("")
                continue
            if iv.n > 1:
                coverage = min(coverage, iv.coverage)
            text = interval_text(iv, "{:.3g}", "x")
            cells.append(f"{text} *contended*" if _contended(row) or _contended(base[n]) else text)
        lines.append("| " + " | ".join([label, *cells]) + " |")
    return "\n".join(lines), coverage


def legend(coverage: float | None) -> str:
    text = "" if coverage is None or math.isclose(coverage, 1.0) else f" (coverage {coverage:.1%} at the least)"
    return LEGEND.format(coverage=text)
