"""The headline table: one row per variant and, from every benchmark, the numbers people quote (speed and memory
relative to the baseline, how far it scales, how close it gets to softmax attention, its accuracy), each
benchmark's values drawn from one run, never mixed across runs. A variant measured at several settings shows, in
its row, each benchmark's numbers at its default setting (else the first) with the sizes behind each column; its
other settings are folded under it."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from attnzoo.leaderboards.sources import is_default, sizes


@dataclass
class Headline:
    setting: str
    variant: str
    sizes: str
    values: dict[str, Any] = field(default_factory=dict)  # benchmark -> its headline values
    runs: dict[str, int] = field(default_factory=dict)  # benchmark -> index of the run its values came from
    default: bool = False  # the variant at its default parameters
    under: str | None = None  # a setting folded under its variant's row: that row's name
    sizes_by: dict[str, str] = field(default_factory=dict)  # benchmark -> the sizes behind its values

    def record(self, board: Any) -> dict:
        """Flat values for CSV/JSON; `runs` names the runs the row's numbers come from."""
        out: dict[str, Any] = {"setting": self.setting, "variant": self.variant, "sizes": self.sizes}
        out["folded_under"] = self.under
        for name, benchmark in board.benchmarks.items():
            if name in self.values:
                out.update(benchmark.record(self.values[name]))
        out["runs"] = "; ".join(f"{name}: {board.runs[i].name}" for name, i in self.runs.items())
        return out


PER_COLUMN = " (where a variant's columns come from different settings, the sizes of each, with the benchmarks)"


def build(df: pd.DataFrame, board: Any) -> list[Headline]:
    """Headline rows in the order settings first appear; every benchmark with rows fills in its values."""
    rows = []
    for setting, group in df.groupby("setting", sort=False):
        variant, params = group["variant"].iloc[0], group["parameters"].iloc[0]
        rows.append(Headline(setting, variant, sizes(variant, params), default=is_default(variant, params)))
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
            row.sizes_by[name] = benchmark.headline_sizes(values, row.sizes)
            if (run := benchmark.headline_run(values)) is not None:
                row.runs[name] = run
    for row in rows:
        row.sizes = _sizes_text(row.sizes_by, row.sizes)
    return [folded for variant in dict.fromkeys(r.variant for r in rows) for folded in _fold(variant, rows)]


def _fold(variant: str, rows: list[Headline]) -> list[Headline]:
    """One variant's settings as its row (each benchmark's values from its default setting where it has them,
    else from the first setting that has them) and the settings that row did not use, folded under it."""
    mine = [r for r in rows if r.variant == variant]
    if len(mine) == 1:
        return mine
    default = next((r for r in mine if r.default), None)
    chosen: dict[str, Headline] = {}
    for r in mine:
        for name in r.values:
            if name not in chosen or r is default:
                chosen[name] = r
    if not chosen:  # nothing of it reaches the headline (errors only, say): nothing to fold
        return mine
    used = list({id(r): r for r in chosen.values()}.values())
    sizes_by = {name: r.sizes_by[name] for name, r in chosen.items()}
    row = Headline(
        variant,
        variant,
        _sizes_text(sizes_by, used[0].sizes),
        {name: r.values[name] for name, r in chosen.items()},
        {name: r.runs[name] for name, r in chosen.items() if name in r.runs},
        sizes_by=sizes_by,
    )
    return [row, *(replace(r, under=row.setting) for r in mine if not any(r is u for u in used))]


def _sizes_text(sizes_by: dict[str, str], fallback: str) -> str:
    """One sizes text where every benchmark's values come from the same sizes, else each with its benchmarks."""
    texts = list(dict.fromkeys(sizes_by.values()))
    if len(texts) <= 1:
        return texts[0] if texts else fallback
    return "; ".join(f"{text} ({', '.join(n for n, s in sizes_by.items() if s == text)})" for text in texts)


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
    order = functools.partial(_order, board=board)
    ordered = sorted((r for r in rows if r.under is None), key=order)
    ordered = [x for r in ordered for x in [r, *sorted((f for f in rows if f.under == r.setting), key=order)]]
    for r in ordered:
        if not any(values.get(r.setting) for _, values, _ in columns):
            continue  # nothing to show (e.g. a forecasting baseline, which no headline column covers)
        name = f"↳ {r.setting}" if r.under else r.setting
        cells = [name, r.sizes, *(values.get(r.setting, "") for _, values, _ in columns)]
        if run_names:
            cells.append(", ".join(run_names[i] for i in sorted(set(r.runs.values()))))
        lines.append("| " + " | ".join(cells) + " |")
    per_column = any(len(set(r.sizes_by.values())) > 1 for r in rows)
    notes = [f"Sizes: the parameters that size each variant, defaults included{PER_COLUMN * per_column}."]
    if any(r.under for r in rows):
        notes.append("↳: the variant's other settings, folded under its row (their values are not in the row).")
    notes += [note for _, _, note in columns if note]
    notes.append("Bold: the best in its column.")
    return [*lines, "", " ".join(notes)]


def _order(r: Headline, board: Any) -> tuple:
    key: tuple = ()
    for name, benchmark in board.benchmarks.items():
        key += benchmark.headline_order(r.values.get(name), r.setting, board)
    return (*key, r.setting)
