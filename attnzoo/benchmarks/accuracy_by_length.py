"""Accuracy over sequence length: a task that scales with n (associative recall by default) trained at every length
of the suite with each variant's attention, so that a table says what a variant gives up for its speed where
efficient attention matters, not only at the short lengths of the accuracy benchmark.

One training run per variant setting, length and seed; a setting's lengths form a chain, so a length that runs out
of memory or time skips the longer ones. The task's options may scale with n (`scale`, `at`), and so may a
variant's sizes (`sizes`: a fraction of n with a floor), recorded per cell. Each cell records the accuracy at the
best validation step and the mean time of a training step, so that at each n the speed-quality frontier can be
read from the run itself: a setting is on it when no other is both more accurate and faster.
"""

from __future__ import annotations

import hashlib
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from attnzoo.benchmarks.accuracy import accuracy_text, result_extra, train_cell
from attnzoo.harness.benchmark import Benchmark, Progress, SeededSection, register_benchmark
from attnzoo.harness.records import Cell, Measurement
from attnzoo.harness.rundir import status_text
from attnzoo.leaderboards import plots
from attnzoo.leaderboards.headline import best_of
from attnzoo.leaderboards.tables import image_lines, plural
from attnzoo.tasks import TASKS, check_options
from attnzoo.tasks.train import Recipe
from attnzoo.zoo import variant_info


class Scaled(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fraction: float = Field(gt=0, description="the size as a fraction of n")
    floor: int = Field(1, ge=1, description="never below this")

    def at(self, n: int) -> int:
        return max(self.floor, round(self.fraction * n))


class AccuracyByLength(SeededSection):
    task: str = Field("recall", description="a task whose length is its seq_len option")
    options: dict[str, Any] = Field(default_factory=dict, description="the task's options at every length")
    scale: dict[str, Scaled] = Field(default_factory=dict, description="task option -> its size as a fraction of n")
    at: dict[int, dict[str, Any]] = Field(default_factory=dict, description="n -> the task's options at that n")
    sizes: dict[str, dict[str, Scaled]] = Field(
        default_factory=dict, description="variant -> parameter -> its size as a fraction of n (the rest: fixed)"
    )
    recipe: Recipe = Field(default_factory=Recipe)
    causal: bool = Field(False, description="train the variants that can mask future keys causally")
    baseline: str = Field("sdpa", description="the setting whose accuracy at each n the others are held to")
    fraction: float = Field(0.9, gt=0, le=1, description="'holds' while accuracy >= fraction x the baseline's")
    warm_steps: int | None = Field(
        None,
        ge=1,
        description="a length curriculum: each length after the first trains this many steps, starting from the "
        "model the same setting and seed reached at the previous length; None: every length from scratch",
    )

    def task_options(self, n: int) -> dict[str, Any]:
        scaled = {name: size.at(n) for name, size in self.scale.items()}
        return {**self.options, **scaled, **self.at.get(n, {}), "seq_len": n}

    def variant_sizes(self, variant: str, n: int) -> dict[str, int]:
        return {name: size.at(n) for name, size in self.sizes.get(variant, {}).items()}

    def previous_length(self, n: int, seq_lens: list[int]) -> int | None:
        """The length whose model a warm-started length starts from."""
        return max((m for m in seq_lens if m < n), default=None) if self.warm_steps else None


@dataclass(frozen=True)
class LengthCell:
    """One training run's task at one length, the variant's sizes there, and the recipe."""

    task: str
    options: dict[str, Any]
    sizes: dict[str, int]
    recipe: dict[str, Any]
    causal: bool = False
    start_from: int | None = None  # the length whose model this one starts from (a length curriculum)

    def identity(self) -> dict[str, Any]:
        config = {"task_options": self.options, "sizes": self.sizes, "recipe": self.recipe, "causal": self.causal}
        if self.start_from is not None:
            config["start_from"] = self.start_from
        return {"config": config, "task": self.task}

    def row(self) -> dict[str, Any]:
        return {"task": self.task}


@dataclass
class Held:
    run: int
    n: int | None = None  # the longest n both this setting and the baseline trained at
    accuracy: list[float] | None = None  # per seed, at n (%)
    holds_to: int | None = None  # the longest n up to which it stays within the fraction of the baseline
    scaled: dict[str, Scaled] | None = None  # its sizes that scale with n


@register_benchmark("accuracy_by_length")
class AccuracyByLengthBenchmark(Benchmark):
    section = AccuracyByLength
    per_length, uses_layer = True, False  # the suite's lengths, the recipe's model
    columns = ("task",)
    lower_is_better = {"accuracy": False}
    tested = {"accuracy": "linear"}

    def plan(self, suite, section: AccuracyByLength, threads: int | None) -> list[Cell]:
        """Per variant setting, every length in order, every seed; one chain per setting."""
        layer = suite.trained_layer(section.recipe)
        recipe = section.recipe.model_dump()
        warm = {**recipe, "steps": section.warm_steps}
        start = {n: section.previous_length(n, suite.seq_lens) for n in suite.seq_lens}
        return [
            suite.cell(
                self,
                variant,
                label,
                setting,
                n,
                LengthCell(
                    section.task,
                    section.task_options(n),
                    section.variant_sizes(variant, n),
                    warm if start[n] else recipe,
                    section.causal and variant_info(variant).capabilities.causal,
                    start[n],
                ),
                layer,
                threads,
                seed,
                f"{section.task}/{label}",
            )
            for variant, setting, label in suite.settings()
            for n in suite.seq_lens
            for seed in section.seed_list()
        ]

    def problems(self, suite, section: AccuracyByLength) -> list[tuple[tuple, str]]:
        where = ("benchmarks", self.name)
        if section.task not in TASKS:
            return [(where + ("task",), check_options(section.task, {})[0])]
        found = [
            (where + ("options",), p)
            for n in suite.seq_lens
            for p in check_options(section.task, section.task_options(n))
        ]
        return list(dict.fromkeys(found))

    def shapes(self, suite, section: AccuracyByLength) -> list[tuple[int, int, int]]:
        return [(section.recipe.dim, section.recipe.heads, n) for n in suite.seq_lens]

    def describe(self, cell: Cell) -> str:
        return f"{cell.config.task} {cell.label} n={cell.seq_len} seed {cell.seed}"

    def setup(self, suite, section: AccuracyByLength) -> str:
        r = section.recipe
        scaled = [f"{k} = max({s.floor}, {s.fraction:g}·n)" for k, s in section.scale.items()]
        sizes = [f"{v} {k} = max({s.floor}, {s.fraction:g}·n)" for v, p in section.sizes.items() for k, s in p.items()]
        causal = [v for v, _, _ in suite.settings() if variant_info(v).capabilities.causal] if section.causal else []
        return (
            f"Accuracy by length: task {section.task} at n = {', '.join(map(str, suite.seq_lens))}"
            + (f"; trained causally: {', '.join(dict.fromkeys(causal)) or 'none of them'}" if section.causal else "")
            + (f" ({'; '.join(scaled)})" if scaled else "")
            + (f"; sizes that scale with n: {'; '.join(sizes)}, every other size fixed" if sizes else "")
            + f"; encoder dim {r.dim}, {plural(r.depth, 'layer')}, {plural(r.heads, 'head')}"
            + (f", a short convolution of width {r.short_conv}" if r.short_conv > 1 else "")
            + f", AdamW lr {r.lr:g}, batch {r.batch_size}, "
            + (
                f"{r.steps} steps at n = {min(suite.seq_lens)}, then {section.warm_steps} at each longer n starting "
                "from the model of the length before (a length curriculum)"
                if section.warm_steps
                else f"{r.steps} steps"
            )
            + f"; seeds {section.seed_list()}."
        )

    # --- the worker ------------------------------------------------------------------------------------------

    def run(
        self, cell: Cell, *, workdir: Path | None = None, progress: Progress | None = None, **_: Any
    ) -> list[Measurement]:
        config: LengthCell = cell.config
        params = {**cell.params, **config.sizes, **({"causal": True} if config.causal else {})}
        start_from = keep_best = None
        if workdir is not None:
            keep_best = _model_path(workdir, cell, cell.seq_len)
        if config.start_from is not None:
            if workdir is None:
                raise ValueError("a length curriculum (warm_steps) needs a run directory to keep its models in")
            start_from = _model_path(workdir, cell, config.start_from)
            if not start_from.exists():
                raise FileNotFoundError(
                    f"{start_from.name}: the model this setting and seed reached at n={config.start_from} is gone; "
                    f"rerun that length with `attnzoo run --resume --force`"
                )
        task, result = train_cell(
            cell, config.task, config.options, config.recipe, params, workdir, progress, start_from, keep_best
        )
        extra = {**result_extra(task, result), "sizes": config.sizes, "causal": config.causal}
        if config.start_from is not None:
            extra["start_from"] = config.start_from
        return [Measurement("accuracy", result.test_accuracy, "fraction", extra=extra)]

    def format(self, metric: str, value: float) -> str:
        return f"{value * 100:.1f}%"

    # --- the run's tables and figure -------------------------------------------------------------------------

    def tables(self, df: pd.DataFrame, view) -> list[str]:
        section = _section(view.run)
        fraction = section.fraction if section else 0.9
        baseline = section.baseline if section else "sdpa"
        out = []
        for task, rows in df.groupby("task", sort=False):
            acc, ns = _accuracy(rows), sorted(rows["seq_len"].unique())
            base = {n: statistics.fmean(v) for (s, n), v in acc.items() if s == baseline}
            header = ["variant", *[f"n={n}" for n in ns], f"holds ≥ {fraction:.0%} of {baseline} to"]
            lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for setting, group in rows.groupby("label", sort=True, observed=True):
                cells = [_accuracy_text(group[group["seq_len"] == n], acc.get((setting, n))) for n in ns]
                lines.append("| " + " | ".join([str(setting), *cells, _holds(acc, setting, base, fraction, ns)]) + " |")
            out += ["", f"{view.h} Accuracy (%) by sequence length: {task}", "", *lines, ""]
            out.append(
                "Test accuracy at the best validation step, mean over seeds with a 95% t-interval "
                "(clipped to 0–100). Holds: the longest "
                f"n up to which its mean stays at or above {fraction:.0%} of {baseline}'s at every length."
            )
            out += _frontier(rows, acc, ns, view.h, _layer_times(view.board))
            out += [line for name in view.figures for line in image_lines(name)]
        return out

    def figures(self, df: pd.DataFrame, run, out: Path, stem: str) -> list[str]:
        ok = df[df["status"] == "ok"]
        if ok.empty or ok["seq_len"].nunique() < 2:
            return []
        name = plots.accuracy_by_length(ok, out, stem)
        return [name] if name else []

    # --- the headline ----------------------------------------------------------------------------------------

    def headline(self, setting: str, mine: pd.DataFrame, everything: pd.DataFrame, board) -> Held | None:
        """From the last run that trained it: its accuracy at the longest n the baseline also trained at, and
        the longest n to which it holds."""
        if mine.empty:
            return None
        run = int(mine["run"].max())
        rows = everything[everything["run"] == run]
        section = _section(board.runs[run])
        baseline, fraction = (section.baseline, section.fraction) if section else ("sdpa", 0.9)
        acc, ns = _accuracy(rows, by="setting"), sorted(rows["seq_len"].unique())
        base = {n: statistics.fmean(v) for (s, n), v in acc.items() if s == baseline}
        both = [n for n in ns if (setting, n) in acc and n in base]
        if not both:
            return Held(run)
        holds = _holds_to(acc, setting, base, fraction, ns)
        variant = str(mine["variant"].iloc[0])
        scaled = section.sizes.get(variant) if section else None
        return Held(run, both[-1], acc[setting, both[-1]], holds, scaled)

    def headline_sizes(self, values: Held, sizes: str) -> str:
        """The setting's sizes with those that scale with n written as such."""
        if not values.scaled:
            return sizes
        fixed = [part for part in sizes.split(", ") if part and part.split("=")[0] not in values.scaled]
        scaled = [f"{k}=max({s.floor}, {s.fraction:g}·n)" for k, s in values.scaled.items()]
        return ", ".join(scaled + fixed)

    def headline_columns(self, rows: list, board) -> list[tuple[str, dict[str, str], str]]:
        held = {r.setting: r.values[self.name] for r in rows if self.name in r.values}
        held = {k: h for k, h in held.items() if h.accuracy}
        if not held:
            return []
        longest = max(h.n for h in held.values())
        at_longest = {k: statistics.fmean(h.accuracy) for k, h in held.items() if h.n == longest}
        best = best_of({k: v for k, v in at_longest.items() if len(held[k].accuracy) > 1}, higher=True)
        cells = {}
        for k, h in held.items():
            text = accuracy_text(h.accuracy)
            text = f"**{text}**" if k in best else text
            cells[k] = f"{text} at {h.n}, " + (f"holds to {h.holds_to}" if h.holds_to else "holds at no n")
        note = (
            "Accuracy by length: mean test accuracy (%) at the longest n it trained at beside the baseline, and the "
            "longest n to which it stays within the stated fraction of the baseline's accuracy (at no n: below it "
            "already at the shortest)."
        )
        return [("accuracy by length", cells, note)]

    def quality(self, values: Held) -> float | None:
        return statistics.fmean(values.accuracy) if values.accuracy else None

    def record(self, values: Held) -> dict:
        return {
            "length_accuracy": self.quality(values),
            "length_accuracy_n": values.n,
            "holds_to": values.holds_to,
        }


def _model_path(workdir: Path, cell: Cell, n: int) -> Path:
    """Where the model a setting and seed reached at length n is kept, for the next length to start from."""
    chain = hashlib.sha256(f"{cell.chain}|{cell.seed}".encode()).hexdigest()[:16]
    folder = workdir / "models"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{chain}-n{n}.pt"


def _section(run) -> AccuracyByLength | None:
    return run.suite.benchmarks.enabled().get("accuracy_by_length") if run.suite is not None else None


def _accuracy(rows: pd.DataFrame, by: str = "label") -> dict[tuple[str, int], list[float]]:
    """(setting, n) -> accuracy (%) per seed that finished."""
    ok = rows[rows["status"] == "ok"]
    return {(str(s), int(n)): list(g["value"] * 100) for (s, n), g in ok.groupby([by, "seq_len"], observed=True)}


def _accuracy_text(rows: pd.DataFrame, values: list[float] | None) -> str:
    if values:
        return accuracy_text(values) + (f" ({len(values)}/{len(rows)} seeds)" if len(values) < len(rows) else "")
    failed = rows[rows["status"] != "ok"]
    return status_text(failed["status"].iloc[0]) if not failed.empty else ""


def _holds_to(acc: dict, setting: str, base: dict[int, float], fraction: float, ns: list[int]) -> int | None:
    longest = None
    for n in ns:
        if n not in base:
            continue
        if (setting, n) not in acc or statistics.fmean(acc[setting, n]) < fraction * base[n]:
            break
        longest = n
    return longest


def _holds(acc: dict, setting: str, base: dict[int, float], fraction: float, ns: list[int]) -> str:
    held = _holds_to(acc, setting, base, fraction, ns)
    return "" if not base else str(held) if held else "none"


def _layer_times(board) -> tuple[dict[tuple[str, int], float], str] | None:
    """(setting, n) -> median forward+backward time of one attention layer, from an efficiency run merged into
    the board (timed alone, unlike training cells), with the run's name; None when the board has none."""
    if board is None:
        return None
    timed = board.df[
        (board.df["benchmark"] == "efficiency")
        & (board.df["metric"] == "time")
        & (board.df["pass"] == "forward_backward")
        & (board.df["status"] == "ok")
    ]
    if timed.empty:
        return None
    times = {(str(s), int(n)): float(g["value"].median()) for (s, n), g in timed.groupby(["setting", "seq_len"])}
    runs = ", ".join(board.runs[i].name for i in sorted(timed["run"].unique()))
    return times, runs


def _frontier(rows: pd.DataFrame, acc: dict, ns: list[int], h: str, layer_times=None) -> list[str]:
    """Per n: each setting's mean accuracy and time, ★ on those no other beats on both. The time is one attention
    layer's forward+backward from a merged efficiency run where the board has one for every setting and n, else
    the training cells' own time per step."""
    ok = rows[rows["status"] == "ok"]
    step = {
        (str(s), int(n)): statistics.median(e["step_seconds"] for e in g["extra"])
        for (s, n), g in ok.groupby(["label", "seq_len"], observed=True)
    }
    if not step:
        return []
    merged = layer_times is not None and all(key in layer_times[0] for key in step)
    if merged:
        step = {key: layer_times[0][key] for key in step}
    header = ["variant", *[f"n={n}" for n in ns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    on = {n: _pareto({s: (statistics.fmean(acc[s, n]), step[s, n]) for s, m in step if m == n}) for n in ns}
    for setting in dict.fromkeys(s for s, _ in step):
        cells = []
        for n in ns:
            if (setting, n) not in step:
                cells.append("")
                continue
            mark = " ★" if setting in on[n] else ""
            cells.append(f"{statistics.fmean(acc[setting, n]):.1f}% @ {_duration(step[setting, n])}{mark}")
        lines.append("| " + " | ".join([setting, *cells]) + " |")
    source = (
        f"Time: one attention layer's forward+backward (median, timed alone) from the efficiency run "
        f"{layer_times[1]} merged into this board, at the same setting and n."
        if merged
        else "Time per training step: the mean wall time of forward, backward and update in the cell's own "
        "training run (cells trained side by side share the machine, so these are not timing-grade; merge an "
        "efficiency run of the same settings and lengths to use its times instead)."
    )
    title = "accuracy and attention time" if merged else "accuracy and time per training step"
    return [
        "",
        f"{h}# Speed-quality frontier: {title}",
        "",
        *lines,
        "",
        source + " ★: on the frontier at that n (no other setting is both at least as accurate and at least as "
        "fast, and better in one).",
    ]


def _duration(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def _pareto(points: dict[str, tuple[float, float]]) -> set[str]:
    """Settings not dominated: no other with accuracy >= and time <=, one of them strictly."""
    return {
        s
        for s, (a, t) in points.items()
        if not any((a2 >= a and t2 <= t) and (a2 > a or t2 < t) for s2, (a2, t2) in points.items() if s2 != s)
    }
