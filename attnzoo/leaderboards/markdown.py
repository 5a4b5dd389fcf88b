"""Runs -> a markdown leaderboard: the headline table first, then each run's detailed tables, every benchmark's
own, with the run they came from."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from attnzoo.harness.benchmark import Benchmark, benchmarks
from attnzoo.harness.environment import MACHINE_FIELDS
from attnzoo.leaderboards import headline
from attnzoo.leaderboards.sources import Prefer, Run, frame, name_apart

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
    unavailable: dict[str, str]  # setting -> why it could not run on this machine
    benchmarks: dict[str, Benchmark] = field(default_factory=benchmarks)
    headline: list[headline.Headline] = field(default_factory=list)
    figures: dict[tuple, list[str]] = field(default_factory=dict)  # (run index or "headline", benchmark) -> files

    @property
    def title(self) -> str:
        return " + ".join(dict.fromkeys(run.title for run in self.runs))

    @functools.cached_property
    def variant_of(self) -> dict[str, str]:
        return dict(zip(self.df["setting"], self.df["variant"], strict=True))


@dataclass
class RunView:
    """What a benchmark's tables need to know of the run they belong to."""

    run: Run
    h: str  # heading level of its sections
    figures: list[str]
    board: Board | None = None  # the whole board, for tables that read another benchmark's rows


def build(runs: list[Run], prefer: Prefer = "error") -> Board:
    name_apart(runs)
    df = frame(runs, prefer)
    unavailable = {}
    if len(df):
        by_setting = df.groupby("setting", sort=False)["status"].agg(lambda s: set(s) == {"unavailable"})
        for setting in by_setting[by_setting].index:
            unavailable[setting] = str(df[df["setting"] == setting]["error"].iloc[0])
        df = df[~df["setting"].isin(unavailable)].reset_index(drop=True)
    if len(df):  # every table names a setting as the headline does, in the suites' order (rows arrive interleaved)
        named = dict(zip(df["label"], df["setting"], strict=False))
        order = [named[label] for run in runs for label in run.order() if label in named]
        df["label"] = pd.Categorical(df["setting"], categories=list(dict.fromkeys(order + list(df["setting"]))))
    board = Board(runs, df, unavailable)
    board.headline = headline.build(df, board) if len(df) else []
    return board


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
        kinds = {run.kind for run in runs}
        out += [
            f"**{' and '.join(sorted(kinds))} results**, merged from {len(runs)} runs; every number comes from one "
            "run, named in the section that shows it (runs are listed below)."
        ]
    if df.empty:
        return "\n".join(out + ["", "No results."]) + "\n"
    table = headline.table(board.headline, board, None if single else [run.name for run in runs])
    if table:
        out += ["", "## Headline", "", *table]
        out += [line for b in board.benchmarks.values() for line in b.headline_after(board)]
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
        for name, benchmark in board.benchmarks.items():
            rows = part[part["benchmark"] == name]
            if not rows.empty:
                out += benchmark.tables(rows, RunView(run, level, board.figures.get((i, name), []), board))
    out += ["", STATUS_LEGEND]
    errors = df[df["status"] == "error"]
    if not errors.empty:
        out += ["", "## Cells that errored", ""]
        out += [f"- {r.benchmark} {r.label} n={r.seq_len}: {str(r.error).splitlines()[0]}" for r in errors.itertuples()]
    return "\n".join(out) + "\n"


def _run_header(run: Run, df: pd.DataFrame) -> str:
    m = run.manifest
    threads = m.get("threads")
    lines = [
        f"**{run.kind} results.** Measured on {m.get('device_name')} with {threads} thread{'s' * (threads != 1)}, "
        f"torch {m.get('torch')}, {m.get('date')}, attnzoo git {m.get('git')}."
    ]
    lines += _provenance(m, df)
    if run.suite is not None:
        lines += _setup_lines(run.suite)
    return " ".join(lines)


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
        envs = [e or {} for e in df["env"]]
        machines = {tuple(e.get(f) for f in MACHINE_FIELDS) for e in envs}
        differing = [f for i, f in enumerate(MACHINE_FIELDS) if len({m[i] for m in machines}) > 1]
        if differing:
            values = "; ".join(f"{f}: {', '.join(sorted({str(e.get(f)) for e in envs}))}" for f in differing)
            lines.append(
                f"**Mixed environments.** These rows were measured in {len(machines)} environments that differ in "
                f"{values}. Results from machines whose kernels differ are not bit-comparable; compare with care."
            )
        elif len({e.get("code") for e in envs}) > 1:
            revisions = list(dict.fromkeys(_short(str(e.get("git") or e.get("code"))) for e in envs))
            lines.append(
                f"**Resumed across code versions.** These rows come from {len(revisions)} versions of attnzoo "
                f"(git {', '.join(revisions)}) on one machine and kernels. A cell's key holds "
                "its variant's source, so a changed variant's cells re-ran; any other change applies only to the "
                "cells measured after it (`git diff` between the revisions shows what changed)."
            )
    return [" ".join(lines)] if lines else []


def _short(revision: str) -> str:
    """A git revision as a reader types it, keeping the mark of uncommitted changes."""
    return revision[:10] + ("+dirty" if revision.endswith("+dirty") else "")


def sentence(text: str) -> str:
    """Text spliced into a paragraph ends as a sentence does."""
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _setup_lines(suite: Any) -> list[str]:
    """What was measured: the suite's description, the layer shape, each benchmark's setup (a training recipe)."""
    lines = [sentence(suite.description)] if suite.description.strip() else []
    sections = suite.benchmarks.sections()
    if any(benchmark.per_length and benchmark.uses_layer for benchmark, _ in sections):
        layer = suite.layer
        lines.append(f"Layer: dim {layer.dim}, {layer.heads} heads, batch {layer.batch}, {layer.dtype}.")
    lines += [text for benchmark, section in sections if (text := benchmark.setup(suite, section))]
    return [" ".join(lines)] if lines else []
