"""The accuracy benchmark: the matched model trained with each variant's attention on each task and seed, and
its table with the uncertainty: per task and on average, each variant's mean over seeds with a 95% Student-t
interval, the best mean in bold, and the variants a Welch t-test over seeds cannot tell apart from the best marked
≈. With a handful of seeds the test is weak; the text under the table says how weak."""

from __future__ import annotations

import collections
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field
from scipy import stats

from attnzoo.harness.benchmark import Benchmark, Progress, SeededSection, register_benchmark
from attnzoo.harness.records import Cell, Measurement
from attnzoo.harness.rundir import status_text
from attnzoo.leaderboards.headline import best_of
from attnzoo.leaderboards.tables import plural
from attnzoo.tasks import build_task, check_options, declared_length, missing_files
from attnzoo.tasks.base import TaskData
from attnzoo.tasks.train import Recipe, TrainResult, train

CONFIDENCE, ALPHA, POWER = 0.95, 0.05, 0.8


def mean_interval(values: list[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high) of accuracies in %: mean ± t(confidence, k-1) · s / sqrt(k), clipped to [0, 100] (with
    three seeds the symmetric interval can reach past what an accuracy can be); a single value has no interval."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1)) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, max(mean - half, 0.0), min(mean + half, 100.0)


def accuracy_text(values: list[float]) -> str:
    """'mean (low–high)' of accuracies in %, or the mean alone for one value."""
    mean, low, high = mean_interval(values)
    return f"{mean:.1f}" if math.isnan(low) else f"{mean:.1f} ({low:.1f}–{high:.1f})"


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
    text = accuracy_text(values)
    text = f"**{text}**" if best else f"{text} ≈" if tie else text
    return text + (f" ({len(values)}/{runs} seeds)" if len(values) < runs else "")


def _marks(samples: dict[str, list[float]]) -> dict[str, tuple[bool, bool]]:
    """label -> (best, indistinguishable from the best); nothing from single seeds, which support no ordering."""
    if all(len(v) < 2 for v in samples.values()):
        return {}
    best = max(samples, key=lambda label: statistics.fmean(samples[label]))
    return {label: (label == best, indistinguishable(samples[best], v)) for label, v in samples.items()}


class Accuracy(SeededSection):
    tasks: dict[str, dict[str, Any]] = Field(min_length=1, description="task -> options of its builder")
    recipe: Recipe = Field(default_factory=Recipe)


def train_cell(
    cell: Cell,
    task_name: str,
    options: dict[str, Any],
    recipe: dict[str, Any],
    params: dict[str, Any],
    workdir: Path | None,
    progress: Progress | None,
    start_from: Path | None = None,
    keep_best: Path | None = None,
) -> tuple[TaskData, TrainResult]:
    """A training cell's task and result, checkpointed under the run's workdir so that a killed run resumes it
    (`start_from`, `keep_best`: see `train`)."""
    task = build_task(task_name, options, cell.import_path)
    checkpoint = None
    if workdir is not None:
        (workdir / "checkpoints").mkdir(parents=True, exist_ok=True)
        checkpoint = workdir / "checkpoints" / f"{cell.key}.pt"
    report = (lambda message: progress({**message, "val_metric": "val acc"})) if progress else None
    result = train(
        task,
        cell.variant,
        params,
        Recipe(**recipe),
        cell.seed,
        checkpoint,
        report,
        cell.layer["device"],
        start_from,
        keep_best,
    )
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return task, result


def result_extra(task: TaskData, result: TrainResult) -> dict[str, Any]:
    """What every training cell records beside its test accuracy."""
    return {
        "best_val_accuracy": result.best_val_accuracy,
        "best_step": result.best_step,
        "steps": result.steps,
        "train_seconds": result.seconds,
        "step_seconds": result.step_seconds,
        "chance": task.chance(),
        "data": task.note,
    }


@dataclass(frozen=True)
class TaskCell:
    """One training run's task: its name, the options of its builder, and the recipe (a task may train longer)."""

    task: str
    options: dict[str, Any]
    recipe: dict[str, Any]

    def identity(self) -> dict[str, Any]:
        return {"config": {"task_options": self.options, "recipe": self.recipe}, "task": self.task}

    def row(self) -> dict[str, Any]:
        return {"task": self.task}


@dataclass
class Score:
    run: int
    accuracy: list[float] = field(default_factory=list)  # per-seed averages over tasks (%)
    tasks: tuple[str, ...] = ()  # the tasks averaged over


@register_benchmark("accuracy")
class AccuracyBenchmark(Benchmark):
    section = Accuracy
    columns = ("task",)
    lower_is_better = {"accuracy": False}
    tested = {"accuracy": "linear"}  # Welch's t over seeds

    def plan(self, suite, section: Accuracy, threads: int | None) -> list[Cell]:
        """Per task, per variant setting, per seed; n is the task's sequence length."""
        cells = []
        recipe = section.recipe.model_dump()
        layer = suite.trained_layer(section.recipe)
        for task, options in section.tasks.items():
            options = dict(options)
            task_recipe = {**recipe, **options.pop("recipe", {})}  # a task may train longer; never per variant
            config = TaskCell(task, options, task_recipe)
            n = declared_length(task, options)
            for variant, setting, label in suite.settings():
                for seed in section.seed_list():
                    cells.append(
                        suite.cell(self, variant, label, setting, n, config, layer, threads, seed, f"{task}/{label}")
                    )
        return cells

    def problems(self, suite, section: Accuracy) -> list[tuple[tuple, str]]:
        return [
            (("benchmarks", "accuracy", "tasks", task), problem)
            for task, options in section.tasks.items()
            for problem in check_options(task, options or {}) or missing_files(task, options or {}, suite.import_dir)
        ]

    def shapes(self, suite, section: Accuracy) -> list[tuple[int, int, int]]:
        """The model's attention at every task's length."""
        found = []
        for task, options in section.tasks.items():
            try:
                found.append((section.recipe.dim, section.recipe.heads, declared_length(task, options or {})))
            except (KeyError, TypeError, ValueError):
                continue  # reported by the task checks
        return found

    def describe(self, cell: Cell) -> str:
        return f"{cell.config.task} {cell.label} seed {cell.seed}"

    def setup(self, suite, section: Accuracy) -> str:
        r = section.recipe
        text = (
            f"Recipe, identical for every variant: encoder dim {r.dim}, {plural(r.depth, 'layer')}, "
            f"{plural(r.heads, 'head')}, FFN {r.ffn_dim}, dropout {r.dropout}; AdamW lr {r.lr:g}, weight decay "
            f"{r.weight_decay:g}, "
            f"{r.warmup_steps} warm-up steps then linear decay, clip {r.clip_norm:g}, batch {r.batch_size}, "
            f"{r.steps} steps, validation every {r.eval_every}; seeds {section.seed_list()}."
        )
        overrides = {t: o["recipe"] for t, o in section.tasks.items() if "recipe" in o}
        if overrides:
            text += (
                " Per-task schedule (all variants alike): "
                + "; ".join(f"{t}: {', '.join(f'{k} {v}' for k, v in o.items())}" for t, o in overrides.items())
                + "."
            )
        return text

    def run(
        self, cell: Cell, *, workdir: Path | None = None, progress: Progress | None = None, **_: Any
    ) -> list[Measurement]:
        config: TaskCell = cell.config
        task, result = train_cell(cell, config.task, config.options, config.recipe, cell.params, workdir, progress)
        extra = {**result_extra(task, result), "sizes": [len(task.train), len(task.val), len(task.test)]}
        return [Measurement("accuracy", result.test_accuracy, "fraction", extra=extra)]

    def format(self, metric: str, value: float) -> str:
        return f"{value * 100:.1f}%"

    def tables(self, df: pd.DataFrame, view) -> list[str]:
        lines = table(df)
        return ["", lines[0].replace("## ", f"{view.h} ", 1), *lines[1:]]

    def headline(self, setting: str, mine: pd.DataFrame, everything: pd.DataFrame, board) -> Score | None:
        """The average over the tasks of the last run given that trained this setting; a run that has not
        finished every task its suite declares has no average yet."""
        if mine.empty:
            return None
        run = int(mine["run"].max())
        acc = mine[mine["run"] == run]
        suite = board.runs[run].suite
        declared = list(suite.benchmarks.accuracy.tasks) if suite is not None else []
        declared = declared or everything[everything["run"] == run]["task"]
        if not set(acc["task"]) >= set(declared):
            return None
        values = averages(acc, by="setting").get(setting, [])
        return Score(run, values, tuple(sorted(set(acc["task"])))) if values else None

    def headline_columns(self, rows: list, board) -> list[tuple[str, dict[str, str], str]]:
        """Averages over one task set, the one most rows have; a row averaged over other tasks (merged runs of
        different suites) says which, and is not compared with the others."""
        scores = {r.setting: r.values[self.name] for r in rows if self.name in r.values}
        if not scores:
            return []
        common = collections.Counter(s.tasks for s in scores.values()).most_common(1)[0][0]
        alike = {k: s for k, s in scores.items() if s.tasks == common}
        seeded = {k: statistics.fmean(s.accuracy) for k, s in alike.items() if len(s.accuracy) > 1}
        best = best_of(seeded, higher=True)  # one seed supports no ordering
        cells = {}
        for k, score in scores.items():
            text = accuracy_text(score.accuracy)
            cells[k] = f"**{text}**" if k in best else text if k in alike else f"{text} over {', '.join(score.tasks)}"
        note = (
            f"Accuracy: average over the tasks {', '.join(common)}, mean over seeds with a 95% t-interval "
            "(clipped to 0–100)"
        )
        mixed = len(alike) < len(scores)
        note += "; a value followed by other tasks averages over those, and is not comparable." if mixed else "."
        return [("accuracy (avg %)", cells, note)]

    def headline_order(self, values: Score | None, setting: str, board) -> tuple:
        return (-(sum(values.accuracy) / len(values.accuracy)) if values else math.inf,)

    def quality(self, values: Score) -> float | None:
        return sum(values.accuracy) / len(values.accuracy)

    def record(self, values: Score) -> dict:
        return {"accuracy": sum(values.accuracy) / len(values.accuracy)}


def table(acc: pd.DataFrame) -> list[str]:
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
                cells.append(status_text(failed) if failed else failed)
                continue
            cells.append(_cell(list(percent[label, t].values()), len(runs), *marks[t].get(label, (False, False))))
        avg = (
            _cell(average[label], len(seeds), *marks["average"].get(label, (False, False))) if label in average else ""
        )
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
    if len(seeds) < 2:
        return [
            "One seed per variant: no interval and no ordering. A single training run per variant says nothing about "
            "how far another seed would move it (a few points on small tasks), so no variant is marked best and none "
            "is compared with another; run `seeds: 3` or more for that."
        ]
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
