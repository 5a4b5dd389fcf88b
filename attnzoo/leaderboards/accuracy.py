"""The accuracy table with its uncertainty: per task and on average, each variant's mean over seeds with a 95%
Student-t interval, the best mean in bold, and the variants a Welch t-test over seeds cannot tell apart from the
best marked ≈. With a handful of seeds the test is weak; the text under the table says how weak."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE, ALPHA, POWER = 0.95, 0.05, 0.8


def mean_interval(values: list[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high): mean ± t(confidence, k-1) · s / sqrt(k); a single value has no interval."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def indistinguishable(best: list[float], other: list[float], alpha: float = ALPHA) -> bool:
    """True when a two-sided Welch t-test over seeds does not reject equal means at level alpha."""
    if len(best) < 2 or len(other) < 2:
        return statistics.fmean(best) == statistics.fmean(other)
    sd_best, sd_other = statistics.stdev(best), statistics.stdev(other)
    if sd_best == sd_other == 0:
        return statistics.fmean(best) == statistics.fmean(other)
    welch = stats.ttest_ind_from_stats(
        statistics.fmean(best), sd_best, len(best), statistics.fmean(other), sd_other, len(other), equal_var=False
    )
    return bool(welch.pvalue >= alpha)


def detectable_difference(std: float, seeds: int) -> float:
    """The smallest difference of two means of `seeds` values each, with seed-to-seed std `std`, that a two-sided
    t-test at ALPHA detects with probability POWER."""
    df = 2 * (seeds - 1)
    return (stats.t.ppf(1 - ALPHA / 2, df) + stats.t.ppf(POWER, df)) * std * math.sqrt(2 / seeds)


def _cell(values: list[float], runs: int, best: bool, tie: bool) -> str:
    mean, low, high = mean_interval(values)
    text = f"{mean:.1f}" if math.isnan(low) else f"{mean:.1f} ({low:.1f}–{high:.1f})"
    text = f"**{text}**" if best else f"{text} ≈" if tie else text
    return text + (f" ({len(values)}/{runs} seeds)" if len(values) < runs else "")


def _marks(samples: dict[str, list[float]]) -> dict[str, tuple[bool, bool]]:
    """label -> (best, indistinguishable from the best)."""
    if not samples:
        return {}
    best = max(samples, key=lambda label: statistics.fmean(samples[label]))
    return {label: (label == best, indistinguishable(samples[best], v)) for label, v in samples.items()}


def section(acc: pd.DataFrame, status_text: dict[str, str]) -> list[str]:
    """Test accuracy (%) at the best validation step, per task and averaged over tasks, and a chance row."""
    tasks = list(dict.fromkeys(acc["task"]))
    ok = acc[acc["status"] == "ok"]
    percent = {
        (label, task): dict(zip(g["seed"], g["value"] * 100, strict=True))
        for (label, task), g in ok.groupby(["label", "task"], observed=True)
    }
    labels = [label for label in acc["label"].cat.categories if (acc["label"] == label).any()]
    seeds = sorted(acc["seed"].dropna().unique())
    average = averages(acc)
    marks = {t: _marks({lb: list(percent[lb, t].values()) for lb in labels if (lb, t) in percent}) for t in tasks}
    marks["average"] = _marks(average)

    header = ["variant", *tasks, "average"]
    lines = [
        f"## Accuracy (%, test set at the best validation step; mean over seeds, {CONFIDENCE:.0%} interval)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    chance = {t: ok[ok["task"] == t]["extra"].iloc[0]["chance"] * 100 for t in tasks if (ok["task"] == t).any()}
    lines.append(
        "| chance (majority class) | "
        + " | ".join(f"{chance[t]:.1f}" if t in chance else "" for t in tasks)
        + (f" | {np.mean(list(chance.values())):.1f} |" if len(chance) == len(tasks) else " |  |")
    )
    for label in labels:
        cells = []
        for t in tasks:
            runs = acc[(acc["label"] == label) & (acc["task"] == t)]
            if (label, t) not in percent:
                failed = runs["status"].iloc[0] if len(runs) else ""
                cells.append(status_text.get(failed, failed))
                continue
            cells.append(_cell(list(percent[label, t].values()), len(runs), *marks[t][label]))
        avg = _cell(average[label], len(seeds), *marks["average"][label]) if label in average else ""
        lines.append("| " + " | ".join([label, *cells, avg]) + " |")
    return lines + ["", *_method(percent, seeds), *_data_notes(ok)]


def averages(acc: pd.DataFrame, by: str = "label") -> dict[str, list[float]]:
    """Per variant, the accuracy (%) averaged over tasks seed by seed, for the seeds that finished every task; a
    variant with a failed task has none."""
    tasks = list(dict.fromkeys(acc["task"]))
    ok = acc[acc["status"] == "ok"]
    percent = {
        (label, task): dict(zip(g["seed"], g["value"] * 100, strict=True))
        for (label, task), g in ok.groupby([by, "task"], observed=True)
    }
    seeds = sorted(acc["seed"].dropna().unique())
    found = {
        label: [
            statistics.fmean(percent[label, t][s] for t in tasks) for s in seeds if _complete(percent, label, tasks, s)
        ]
        for label in dict.fromkeys(acc[by])
    }
    return {label: v for label, v in found.items() if v}


def _complete(percent: dict, label: str, tasks: list[str], seed) -> bool:
    return all((label, t) in percent and seed in percent[label, t] for t in tasks)


def _method(percent: dict, seeds: list) -> list[str]:
    stds = [statistics.stdev(v.values()) for v in percent.values() if len(v) > 1]
    text = (
        f"Mean over seeds with a {CONFIDENCE:.0%} Student-t interval (mean ± t·s/√k over k seeds). **Bold**: the best "
        f"mean; ≈: a two-sided Welch t-test over seeds does not tell it apart from the best at the "
        f"{ALPHA:.0%} level. The average is taken over tasks seed by seed (only seeds that finished every task), "
        "then treated the same way; a variant with a failed task has no average."
    )
    if stds and len(seeds) > 1:
        typical = statistics.median(stds)
        text += (
            f" With {len(seeds)} seeds the test is weak: at the median seed-to-seed spread of this table "
            f"({typical:.1f} points) it detects a difference of {detectable_difference(typical, len(seeds)):.1f} "
            f"points only {POWER:.0%} of the time: orderings of means closer than that are not established, and "
            "≈ does not mean equal. A seed can move by several points between machines whose CPU kernels differ."
        )
    return [text]


def _data_notes(ok: pd.DataFrame) -> list[str]:
    first = ok.drop_duplicates("task")
    notes = [
        f"{r.task}: {r.extra['data']}, n={r.seq_len}, train/val/test {'/'.join(map(str, r.extra['sizes']))}"
        for r in first.itertuples()
    ]
    return ["", "Data: " + "; ".join(notes) + "."] if notes else []
