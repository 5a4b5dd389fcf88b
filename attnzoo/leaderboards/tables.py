"""Pieces every benchmark's tables are made of: a variant x n table of one metric, and a figure's markdown."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from attnzoo.harness.rundir import status_text
from attnzoo.stats import loglog_slope

FIGURE_ALT = {
    "time": "time vs n",
    "memory": "peak memory vs n",
    "speedup": "speed-up over the baseline vs n",
    "roofline": "roofline efficiency vs n",
    "approximation": "approximation error vs sample size",
    "bubble": "speed-up, accuracy and memory",
    "accuracy_by_length": "accuracy vs n",
}


def plural(count: int, word: str) -> str:
    """'1 layer', '2 layers'."""
    return f"{count} {word}{'s' * (count != 1)}"


def _cell_text(group: pd.DataFrame, fmt: Callable[[float], str]) -> str:
    row = group.iloc[-1]
    return fmt(row["value"]) if row["status"] == "ok" else status_text(row["status"])


def variant_table(df: pd.DataFrame, fmt: Callable[[float], str], slope: bool) -> str:
    """One row per variant setting, one column per length (a failed cell shows its status), and optionally the
    log-log slope over the lengths that ran."""
    ns = sorted(df["seq_len"].unique())
    header = ["variant", *[f"n={n}" for n in ns]] + (["slope"] if slope else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, group in df.groupby("label", sort=True, observed=True):
        cells = [_cell_text(group[group["seq_len"] == n], fmt) if (group["seq_len"] == n).any() else "" for n in ns]
        if slope:
            ok = group[group["status"] == "ok"]
            s = loglog_slope(list(ok["seq_len"]), list(ok["value"]))
            cells.append("" if s is None else f"{s:.2f}")
        lines.append("| " + " | ".join([label, *cells]) + " |")
    return "\n".join(lines)


def image_lines(name: str) -> list[str]:
    kind = name.removesuffix(".png").rsplit("-", 1)[-1]
    return ["", f"![{FIGURE_ALT.get(kind, kind)}]({name})"]
