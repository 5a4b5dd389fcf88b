"""`attnzoo run`: suite -> cells -> executor -> result rows (flushed per cell) -> leaderboard."""

from __future__ import annotations

import datetime
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from attnzoo.harness.environment import changes, manifest, row_environment
from attnzoo.harness.executor import LocalExecutor, Outcome
from attnzoo.harness.plan import Cell, plan
from attnzoo.harness.results import LEADERBOARD_FILE, RunStore
from attnzoo.harness.suite import Suite, SuiteError, runtime_problems
from attnzoo.leaderboards.markdown import render
from attnzoo.zoo import variant_info


class RunDirError(Exception):
    """A run directory that cannot take this run (another suite, or a changed environment on resume)."""


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


def _open_store(suite: Suite, suite_text: str, run_dir: Path, resume: bool, force: bool, env: dict) -> RunStore:
    """The run directory, created for a new run or checked for a resumed one: one suite, one environment."""
    store = RunStore(run_dir)
    if not resume:
        if store.exists():
            raise RunDirError(
                f"{run_dir} already holds a run of suite {store.manifest().get('suite', '?')!r}; a run directory "
                f"holds one run: continue it with `attnzoo run --resume {run_dir}`, or choose another --out"
            )
        store.create(suite_text, env)
        return store
    if not store.exists():
        raise RunDirError(f"{run_dir}: not a run directory (no suite.yaml); start a new run instead")
    before = store.manifest()
    changed = changes(before, env)
    if changed and not force:
        raise RunDirError(
            f"{run_dir} was measured in another environment or with other code; resuming would mix them:\n"
            + "\n".join(f"  {line}" for line in changed)
            + f"\nstart a new run, or continue anyway with `attnzoo run --resume {run_dir} --force` (each row "
            "records the environment it was measured in)"
        )
    if changed:
        resumes = before.get("resumed", []) + [{"date": env["date"], "changes": changed}]
        store.write_manifest({**before, "resumed": resumes})
    return store


def run_suite(
    suite: Suite,
    suite_text: str,
    run_dir: Path,
    resume: bool = False,
    force: bool = False,
    on_cell: Callable[[Cell, str], None] | None = None,
    on_start: Callable[[Cell], None] | None = None,
    on_progress: Callable[[Cell, dict], None] | None = None,
) -> RunSummary:
    """Run every planned cell not already finished in run_dir; rows are appended as each cell finishes.

    A new run refuses a directory that holds one; a resumed run refuses a changed environment or variant code
    unless forced, and then moves rows measured with other code to superseded.jsonl before measuring again."""
    if problems := runtime_problems(suite):
        raise SuiteError(problems)
    threads = suite.execution.threads or os.cpu_count() or 1
    cells = plan(suite, threads)
    full = {
        **manifest(suite.layer.device, threads),
        "suite": suite.name,
        "suite_dir": suite.import_dir,
        "variants": {c.variant: c.code for c in cells},
    }
    store = _open_store(suite, suite_text, Path(run_dir), resume, force, full)
    env = row_environment(full)
    store.supersede({c.key for c in cells})
    earlier = store.rows()
    done = {row["key"] for row in earlier}
    # Resumed runs remember where each chain ran out of memory or time.
    stopped = {row["key"]: row["status"] for row in earlier if row["status"] in ("oom", "timeout")}
    stopped_at: dict[str, tuple[int, str]] = {}
    for cell in cells:
        if cell.key in stopped and cell.chain not in stopped_at:
            stopped_at[cell.chain] = (cell.seq_len, stopped[cell.key])

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
        if outcome is None and cell.chain in stopped_at and cell.seq_len > stopped_at[cell.chain][0]:
            n, status = stopped_at[cell.chain]
            outcome = Outcome("skipped", [], f"skipped after {'OOM' if status == 'oom' else status} at n={n}")
        if outcome is None:
            outcome = executor.run(cell, functools.partial(on_progress, cell) if on_progress else None)
        if outcome.status in ("oom", "timeout") and cell.chain not in stopped_at:
            stopped_at[cell.chain] = (cell.seq_len, outcome.status)
        store.append(_rows(cell, outcome, env))
        if on_cell:
            on_cell(cell, outcome.status)

    rows = store.rows()
    (run_dir / LEADERBOARD_FILE).write_text(render(rows, store.manifest(), suite))
    return RunSummary(run_dir, len(cells), skipped_as_done, rows)
