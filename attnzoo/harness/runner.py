"""`attnzoo run`: suite -> cells -> executor -> result rows (flushed per cell) -> leaderboard."""

from __future__ import annotations

import datetime
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from attnzoo.harness.environment import manifest, row_environment
from attnzoo.harness.executor import LocalExecutor, Outcome
from attnzoo.harness.plan import Cell, plan
from attnzoo.harness.results import LEADERBOARD_FILE, RunStore
from attnzoo.harness.suite import Suite
from attnzoo.leaderboards.markdown import render
from attnzoo.zoo import variant_info


@dataclass
class RunSummary:
    run_dir: Path
    planned: int
    skipped_as_done: int
    rows: list[dict]

    @property
    def errors(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "error"]

    def status_counts(self) -> dict[str, int]:
        """Cells per status (a cell with several statuses, e.g. one unsupported metric, counts under each)."""
        pairs = {(r["key"], r["status"]) for r in self.rows}
        counts: dict[str, int] = {}
        for _, status in pairs:
            counts[status] = counts.get(status, 0) + 1
        return counts


def default_run_dir(suite: Suite) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{suite.name}-{stamp}"


def _pre_check(cell: Cell, suite: Suite) -> Outcome | None:
    """Cells that need no worker: unavailable variants, devices or dtypes a variant does not support."""
    spec = variant_info(cell.variant)
    if not spec.available.ok:
        return Outcome("unavailable", [], str(spec.available))
    caps = spec.capabilities
    device_type = torch.device(suite.layer.device).type
    if device_type not in caps.devices:
        return Outcome("unsupported", [], f"{spec.name} runs on {', '.join(caps.devices)}, not {device_type}")
    if suite.layer.dtype not in caps.dtypes:
        return Outcome("unsupported", [], f"{spec.name} supports {', '.join(caps.dtypes)}, not {suite.layer.dtype}")
    return None


def _rows(cell: Cell, outcome: Outcome, env: dict) -> list[dict]:
    base = {
        "suite": cell.suite,
        "variant": cell.variant,
        "label": cell.label,
        "parameters": cell.params,
        "task": cell.task,
        "benchmark": cell.benchmark,
        "seq_len": cell.seq_len,
        "batch": cell.layer["batch"],
        "dtype": cell.layer["dtype"],
        "device": cell.layer["device"],
        "seed": cell.seed,
        "key": cell.key,
        "env": env,
    }
    measured = outcome.rows or [{}]  # a cell without measurements still leaves one row with its status
    rows = []
    for m in measured:
        row = {
            **base,
            "metric": m.get("metric"),
            "pass": m.get("pass_"),
            "input": m.get("input"),
            "value": m.get("value"),
            "unit": m.get("unit"),
            "status": m.get("status", outcome.status),
            "error": m.get("error", outcome.error) or None,
            "extra": m.get("extra", {}),
        }
        rows.append(row)
    return rows


def run_suite(
    suite: Suite,
    suite_text: str,
    run_dir: Path,
    resume: bool = False,
    on_cell: Callable[[Cell, str], None] | None = None,
    on_start: Callable[[Cell], None] | None = None,
    on_progress: Callable[[Cell, dict], None] | None = None,
) -> RunSummary:
    store = RunStore(run_dir)
    threads = suite.execution.threads or os.cpu_count() or 1
    if resume and store.exists():
        env = row_environment(store.manifest())
    else:
        full = manifest(suite.layer.device, threads)
        store.create(suite_text, full)
        env = row_environment(full)
    earlier = store.rows()
    done = {row["key"] for row in earlier}
    cells = plan(suite, threads)
    # Resumed runs remember where each chain ran out of memory.
    oom_keys = {row["key"] for row in earlier if row["status"] == "oom"}
    oom_at: dict[str, int] = {}
    for cell in cells:
        if cell.key in oom_keys:
            oom_at[cell.chain] = min(oom_at.get(cell.chain, cell.seq_len), cell.seq_len)

    executor = LocalExecutor(suite.execution.timeout_s, suite.execution.memory_limit_gb, str(run_dir))
    skipped_as_done = 0
    for cell in cells:
        if cell.key in done:
            skipped_as_done += 1
            if on_cell:
                on_cell(cell, "done earlier")
            continue
        if on_start:
            on_start(cell)
        outcome = _pre_check(cell, suite)
        if outcome is None and cell.chain in oom_at and cell.seq_len > oom_at[cell.chain]:
            outcome = Outcome("skipped", [], f"skipped after OOM at n={oom_at[cell.chain]}")
        if outcome is None:
            outcome = executor.run(cell, functools.partial(on_progress, cell) if on_progress else None)
        if outcome.status == "oom":
            oom_at[cell.chain] = min(oom_at.get(cell.chain, cell.seq_len), cell.seq_len)
        store.append(_rows(cell, outcome, env))
        if on_cell:
            on_cell(cell, outcome.status)

    rows = store.rows()
    (run_dir / LEADERBOARD_FILE).write_text(render(rows, store.manifest(), suite))
    return RunSummary(run_dir, len(cells), skipped_as_done, rows)
