"""The headline table: one row per variant setting and, from every benchmark, the numbers people quote (speed and
memory relative to the baseline, how far it scales, how close it gets to softmax attention, its accuracy), each
benchmark's values drawn from one run, never mixed across runs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from attnzoo.leaderboards.sources import sizes


@dataclass
class Headline:
    setting: str
    variant: str
    sizes: str
    values: dict[str, Any] = field(default_factory=dict)  # benchmark -> its headline values
    runs: dict[str, int] = field(default_factory=dict)  # benchmark -> index of the run its values came from

    def record(self, board: Any) -> dict:
        """Flat values for CSV/JSON; `runs` names the runs the row's numbers come from."""
        out: dict[str, Any] = {"setting": self.setting, "variant": self.variant, "sizes": self.sizes}
        for name, benchmark in board.benchmarks.items():
            if name in self.values:
                out.update(benchmark.record(self.values[name]))
        out["runs"] = "; ".join(f"{name}: {board.runs[i].name}" for name, i in self.runs.items())
        return out


def build(df: pd.DataFrame, board: Any) -> list[Headline]:
    """Headline rows in the order settings first appear; every benchmark with rows fills in its values."""
    rows = [
        Headline(setting, group["variant"].iloc[0], sizes(group["variant"].iloc[0], group["parameters"].iloc[0]))
        for setting, group in df.groupby("setting", sort=False)
    ]
    for name, benchmark in board.benchmarks.items():
        everything = df[df["benchmark"] == name]
        if everything.empty:
            continue
        for row in rows:
            values = benchmark.headline(
                row.setting, everything[everything["setting"] == row.setting], everything, board
            )
            if values is None:
                continue
            row.values[name] = values
            if (run := benchmark.headline_run(values)) is not None:
                row.runs[name] = run
    return rows


def best_of(values: dict[str, float | None], higher: bool) -> set[str]:
    """The keys holding the best value (ties included); none when fewer than two have a value."""
    present = {k: v for k, v in values.items() if v is not None and not math.isnan(v)}
    if len(present) < 2:
        return set()
    target = max(present.values()) if higher else min(present.values())
    return {k for k, v in present.items() if math.isclose(v, target)}


def table(rows: list[Headline], board: Any, run_names: list[str] | None = None) -> list[str]:
    """The markdown table (each benchmark's columns, best in bold) and the lines that say what each column means;
    with `run_names` (merged runs), a last column names the runs each row's numbers come from. Empty when no
    benchmark has a column to show."""
    columns = [c for b in board.benchmarks.values() for c in b.headline_columns(rows, board)]
    if not any(text for _, cells, _ in columns for text in cells.values()):
        return []
    header = ["variant", "sizes", *(title for title, _, _ in columns)] + (["from"] if run_names else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in sorted(rows, key=lambda r: _order(r, board)):
        cells = [r.setting, r.sizes, *(values.get(r.setting, "") for _, values, _ in columns)]
        if run_names:
            cells.append(", ".join(run_names[i] for i in sorted(set(r.runs.values()))))
        lines.append("| " + " | ".join(cells) + " |")
    notes = ["Sizes: the parameters that size each variant, defaults included."]
    notes += [note for _, _, note in columns if note]
    notes.append("Bold: the best in its column.")
    return [*lines, "", " ".join(notes)]


def _order(r: Headline, board: Any) -> tuple:
    key: tuple = ()
    for name, benchmark in board.benchmarks.items():
        key += benchmark.headline_order(r.values.get(name), r.setting, board)
    return (*key, r.setting)
