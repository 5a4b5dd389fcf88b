"""Runs -> a markdown leaderboard: the headline table first, then each run's detailed tables with the run they came
from."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from attnzoo.leaderboards import accuracy as accuracy_table
from attnzoo.leaderboards import forecasting as forecasting_table
from attnzoo.leaderboards import timing
from attnzoo.leaderboards.headline import Headline, timing_pass
from attnzoo.leaderboards.headline import build as build_headline
from attnzoo.leaderboards.headline import table as headline_table
from attnzoo.leaderboards.sources import Prefer, Run, frame, name_apart
from attnzoo.stats import loglog_slope

EXACT = {"vanilla", "sdpa", "xformers"}  # compute softmax attention exactly: no approximation error

STATUS_TEXT = {
    "oom": "OOM",
    "timeout": "timeout",
    "skipped": "skipped (OOM/timeout below)",
    "unsupported": "unsupported",
    "unavailable": "unavailable",
    "error": "error",
}
PASS_TITLE = {"forward": "forward", "forward_backward": "forward+backward"}


def _cell_text(group: pd.DataFrame, fmt: Callable[[float], str]) -> str:
    row = group.iloc[-1]
    return fmt(row["value"]) if row["status"] == "ok" else STATUS_TEXT.get(row["status"], row["status"])


def _table(df: pd.DataFrame, fmt: Callable[[float], str], slope: bool) -> str:
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


STATUS_LEGEND = (
    "Status: OOM — ran out of memory (the suite's memory limit or the device's); timeout — ran past the suite's "
    "timeout_s; skipped (OOM/timeout below) — not run because a shorter length already ran out of memory or time; "
    "unsupported — the variant cannot run this cell (why: under the table); error — the cell crashed (listed at the "
    "end)."
)


@dataclass
class Board:
    """Everything a leaderboard shows, computed once: rendered as markdown, CSV or JSON."""

    runs: list[Run]
    df: pd.DataFrame
    baseline: str
    pass_name: str | None
    headline: list[Headline]
    unavailable: dict[str, str]  # setting -> why it could not run on this machine
    figures: dict[str, list[str]] = field(default_factory=dict)  # "headline" or a run's index -> image files

    @property
    def title(self) -> str:
        return " + ".join(dict.fromkeys(run.title for run in self.runs))


def build(runs: list[Run], prefer: Prefer = "error") -> Board:
    name_apart(runs)
    df = frame(runs, prefer)
    suites = [run.suite for run in runs if run.suite is not None and run.suite.benchmarks.efficiency]
    baseline = suites[0].benchmarks.efficiency.baseline if suites else "sdpa"
    unavailable = {}
    if len(df):
        by_setting = df.groupby("setting", sort=False)["status"].agg(lambda s: set(s) == {"unavailable"})
        for setting in by_setting[by_setting].index:
            unavailable[setting] = str(df[df["setting"] == setting]["error"].iloc[0])
        df = df[~df["setting"].isin(unavailable)].reset_index(drop=True)
    if len(df):  # tables list variants in the suites' order (rows arrive interleaved)
        order = [label for run in runs for label in run.order()]
        order += [label for label in dict.fromkeys(df["label"]) if label not in order]
        df["label"] = pd.Categorical(df["label"], categories=list(dict.fromkeys(order)))
    tasks = {i: list(run.suite.benchmarks.accuracy.tasks) for i, run in enumerate(runs) if _trains(run)}
    headline = build_headline(df, baseline, EXACT, tasks) if len(df) else []
    return Board(runs, df, baseline, timing_pass(df) if len(df) else None, headline, unavailable)


def _trains(run: Run) -> bool:
    return run.suite is not None and run.suite.benchmarks.accuracy is not None


def render(rows: list[dict], manifest: dict, suite: Any = None) -> str:
    """One run's rows as a leaderboard (no figures)."""
    return markdown(build([Run(Path("."), rows, manifest, suite)]))


def markdown(board: Board) -> str:
    runs, df = board.runs, board.df
    single = len(runs) == 1
    out = [f"# attnzoo leaderboard: {board.title}", ""]
    if single:
        out += [_run_header(runs[0], df)]
    else:
        kinds = {"CPU" if str(r.manifest.get("device", "cpu")).startswith("cpu") else "GPU" for r in runs}
        out += [
            f"**{' and '.join(sorted(kinds))} results**, merged from {len(runs)} runs; every number comes from one "
            "run, named in the section that shows it (runs are listed below)."
        ]
    if df.empty:
        return "\n".join(out + ["", "No results."]) + "\n"
    if any(_has_content(r) for r in board.headline):
        pass_title = PASS_TITLE.get(board.pass_name or "", "")
        names = None if single else [run.name for run in runs]
        out += ["", "## Headline", "", *headline_table(board.headline, board.baseline, pass_title, names)]
        out += _mixed_speed_sources(board)
        for name in board.figures.get("headline", []):
            out += [
                *_image(name),
                "",
                f"Bubbles: speed-up over {board.baseline} and memory from the speed columns above, accuracy from the "
                "accuracy column; where a variant was trained at other sizes than it was timed at (e.g. sample "
                "sizes scaled to shorter sequences), its bubble joins the two.",
            ]
    if board.unavailable:
        out += ["", "Not run on this machine: " + "; ".join(f"{k} ({v})" for k, v in board.unavailable.items()) + "."]
    if not single:
        out += ["", "## Runs", "", "| run | suite | measured on | cells |", "|---|---|---|---|"]
        out += [
            f"| {run.name} | {run.title} | {run.cite()} | {df[df['run'] == i]['key'].nunique()} |"
            for i, run in enumerate(runs)
        ]
    for i, run in enumerate(runs):
        part = df[df["run"] == i]
        if part.empty:
            continue
        level = "##" if single else "###"
        if not single:
            out += ["", f"## {run.title} ({run.name})", "", _run_header(run, part)]
        out += _sections(part, run, board, level, board.figures.get(str(i), []))
    out += ["", STATUS_LEGEND]
    errors = df[df["status"] == "error"]
    if not errors.empty:
        out += ["", "## Cells that errored", ""]
        out += [f"- {r.benchmark} {r.label} n={r.seq_len}: {str(r.error).splitlines()[0]}" for r in errors.itertuples()]
    return "\n".join(out) + "\n"


def _mixed_speed_sources(board: Board) -> list[str]:
    """A warning when the speed columns of different rows come from runs on different machines or layers."""
    used = sorted({r.runs["efficiency"] for r in board.headline if "efficiency" in r.runs})

    def setup(i: int) -> tuple:
        m, suite = board.runs[i].manifest, board.runs[i].suite
        layer = suite.layer.model_dump() if suite is not None else None
        return (m.get("device_name"), m.get("threads"), m.get("torch"), json.dumps(layer, sort_keys=True))

    if len({setup(i) for i in used}) < 2:
        return []
    return [
        "",
        "**The speed columns come from runs on different machines, thread counts, torch versions or layer shapes** "
        f"({', '.join(board.runs[i].name for i in used)}): each ratio is sound within its run, but rows are not "
        "comparable to one another.",
    ]


def _has_content(r: Headline) -> bool:
    return bool(r.speedup or r.longest_n or r.error is not None or r.accuracy)


def _run_header(run: Run, df: pd.DataFrame) -> str:
    m = run.manifest
    kind = "CPU results" if str(m.get("device", "cpu")).startswith("cpu") else "GPU results"
    threads = m.get("threads")
    lines = [
        f"**{kind}.** Measured on {m.get('device_name')} with {threads} thread{'s' * (threads != 1)}, "
        f"torch {m.get('torch')}, {m.get('date')}, attnzoo git {m.get('git')}."
    ]
    lines += _provenance(m, df)
    if run.suite is not None:
        lines += _setup_lines(run.suite)
    return " ".join(lines)


def _sections(df: pd.DataFrame, run: Run, board: Board, h: str, figures: list[str]) -> list[str]:
    """One run's detailed tables: time and speed-up with their intervals, faults, memory, FLOPs, approximation
    error, accuracy."""
    out: list[str] = []
    suite = run.suite
    eff = df[df["benchmark"] == "efficiency"]
    baseline = suite.benchmarks.efficiency.baseline if suite is not None and suite.benchmarks.efficiency else "sdpa"
    coverage = None
    for pass_name, title_pass in PASS_TITLE.items():
        part = _metric_rows(eff, "time", pass_name)
        if part.empty:
            continue
        out += ["", f"{h} Time (ms), {title_pass}", "", timing.time_table(part, STATUS_TEXT)]
        speedups = timing.speedup_table(part, baseline, STATUS_TEXT)
        if speedups:
            out += ["", f"{h}# Speed-up over {baseline}, {title_pass} (> 1: faster)", "", speedups[0]]
            coverage = min(coverage or 1.0, speedups[1])
    if not _metric_rows(eff, "time", "forward").empty or not _metric_rows(eff, "time", "forward_backward").empty:
        out += ["", timing.legend(coverage)]
    out += [line for name in figures if not name.endswith("approximation.png") for line in _image(name)]
    allocator = run.manifest.get("allocator") or (
        suite.benchmarks.efficiency.allocator if suite is not None and suite.benchmarks.efficiency else "not recorded"
    )
    for pass_name, title_pass in PASS_TITLE.items():
        part = _metric_rows(eff, "time", pass_name)
        faults = [e.get("faults_per_call") if isinstance(e, dict) else None for e in part.get("extra", [])]
        if part.empty or all(f is None for f in faults):
            continue
        part = part.assign(value=faults)
        heading = f"{h} Minor page faults per call while timed, {title_pass} (allocator: {allocator})"
        out += ["", heading, "", _table(part, lambda v: f"{v:.0f}", slope=False)]
    sections = [
        ("memory", "Peak memory (MiB allocated during the call)", lambda v: f"{v / 2**20:.1f}"),
        ("flops", "FLOPs (GFLOP, FlopCounterMode)", lambda v: f"{v / 1e9:.3f}"),
    ]
    for metric, heading, fmt in sections:
        for pass_name, title_pass in PASS_TITLE.items():
            part = _metric_rows(eff, metric, pass_name)
            if part.empty:
                continue
            out += ["", f"{h} {heading}, {title_pass}", "", _table(part, fmt, slope=True)]
    if not eff.empty:
        out += ["", "Memory and FLOP slopes: least-squares slope of log(value) on log(n) (1 = linear)."]

    approx = df[df["benchmark"] == "approximation"]
    if not approx.empty:
        out += ["", f"{h} Relative error vs exact softmax attention (mean ± std over seeds)"]
        for kind_ in approx["input"].dropna().unique():
            part = approx[(approx["input"] == kind_) | (approx["status"] != "ok")]
            part = part.assign(
                value=[
                    (v, e.get("std", 0.0)) if s == "ok" else v
                    for v, e, s in zip(part["value"], part["extra"], part["status"], strict=True)
                ]
            )
            out += ["", f"{h}# {kind_} inputs", "", _table(part, lambda t: f"{t[0]:.3g} ± {t[1]:.2g}", slope=False)]
        out += _why_unsupported(approx)
        out += [line for name in figures if name.endswith("approximation.png") for line in _image(name)]
    accuracy = df[df["benchmark"] == "accuracy"]
    if not accuracy.empty:
        lines = accuracy_table.section(accuracy, STATUS_TEXT)
        out += ["", lines[0].replace("## ", f"{h} ", 1), *lines[1:]]
    forecasts = df[df["benchmark"] == "forecasting"]
    if not forecasts.empty:
        lines = forecasting_table.section(forecasts, STATUS_TEXT)
        out += ["", lines[0].replace("## ", f"{h} ", 1), *lines[1:]]
    return out


FIGURE_ALT = {
    "time": "time vs n",
    "memory": "peak memory vs n",
    "speedup": "speed-up over the baseline vs n",
    "approximation": "approximation error vs sample size",
    "bubble": "speed-up, accuracy and memory",
}


def _image(name: str) -> list[str]:
    kind = name.removesuffix(".png").rsplit("-", 1)[-1]
    return ["", f"![{FIGURE_ALT.get(kind, kind)}]({name})"]


def _why_unsupported(df: pd.DataFrame) -> list[str]:
    reasons = df[df["status"] == "unsupported"].drop_duplicates("label")
    return ["", *(f"- {r.label}: unsupported — {r.error}." for r in reasons.itertuples())] if len(reasons) else []


ENV_FIELDS = ("device_name", "cpu_capability", "torch", "threads", "code")  # what can change a result's numerics


def _provenance(manifest: dict, df: pd.DataFrame) -> list[str]:
    """The kernels that decided the numerics, and a warning when rows come from environments that differ."""
    numerics = manifest.get("numerics") or {}
    lines = [] if numerics else ["CPU kernels: not recorded by the attnzoo version that made this run."]
    if numerics:
        lines.append(
            f"CPU kernels: torch CPU capability {numerics.get('cpu_capability')}, BLAS {numerics.get('blas')}, "
            f"oneDNN {numerics.get('onednn')}"
            + (f"; GPU {numerics['gpu']} (capability {numerics.get('gpu_capability')})" if "gpu" in numerics else "")
            + "."
        )
    if "env" in df:
        envs = {tuple((e or {}).get(f) for f in ENV_FIELDS) for e in df["env"]}
        differing = [f for i, f in enumerate(ENV_FIELDS) if len({env[i] for env in envs}) > 1]
        if differing:
            values = "; ".join(
                f"{f}: {', '.join(sorted({str(env[ENV_FIELDS.index(f)]) for env in envs}))}" for f in differing
            )
            lines.append(
                f"**Mixed environments.** These rows were measured in {len(envs)} environments that differ in "
                f"{values}. Results from machines whose kernels differ are not bit-comparable; compare with care."
            )
    return [" ".join(lines)] if lines else []


def _setup_lines(suite: Any) -> list[str]:
    """What was measured: the suite's description, the layer shape or the training recipe."""
    lines = [suite.description.strip()] if suite.description else []
    benchmarks = suite.benchmarks
    if benchmarks.efficiency or benchmarks.approximation:
        layer = suite.layer
        lines.append(f"Layer: dim {layer.dim}, {layer.heads} heads, batch {layer.batch}, {layer.dtype}.")
    if benchmarks.accuracy:
        r = benchmarks.accuracy.recipe
        lines.append(
            f"Recipe, identical for every variant: encoder dim {r.dim}, {r.depth} layers, {r.heads} heads, FFN "
            f"{r.ffn_dim}, dropout {r.dropout}; AdamW lr {r.lr:g}, weight decay {r.weight_decay:g}, "
            f"{r.warmup_steps} warm-up steps then linear decay, clip {r.clip_norm:g}, batch {r.batch_size}, "
            f"{r.steps} steps, validation every {r.eval_every}; seeds {benchmarks.accuracy.seed_list()}."
        )
        overrides = {t: o["recipe"] for t, o in benchmarks.accuracy.tasks.items() if "recipe" in o}
        if overrides:
            lines.append(
                "Per-task schedule (all variants alike): "
                + "; ".join(f"{t}: {', '.join(f'{k} {v}' for k, v in o.items())}" for t, o in overrides.items())
                + "."
            )
    if benchmarks.forecasting:
        f = benchmarks.forecasting
        r = f.recipe
        lines.append(
            f"Forecasting recipe, identical for every trained model: encoder dim {r.dim}, {r.depth} layers, {r.heads} "
            f"heads, FFN {r.ffn_dim}, dropout {r.dropout}; Adam lr {r.lr:g}, batch {r.batch_size}, at most {r.steps} "
            f"steps, validation every {r.eval_every}, early stopping after {r.patience} validations without "
            f"improvement; seeds {f.seed_list()}."
        )
    return [" ".join(lines)] if lines else []


def _metric_rows(eff: pd.DataFrame, metric: str, pass_name: str) -> pd.DataFrame:
    """Rows of one metric and pass, plus the status rows of cells that produced no measurement."""
    measured = eff[(eff["metric"] == metric) & (eff["pass"] == pass_name)]
    failed = eff[eff["metric"].isna()]
    return pd.concat([measured, failed]) if not measured.empty else measured
