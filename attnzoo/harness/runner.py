"""`attnzoo run`: suite -> cells -> executor -> result rows, flushed per cell (the CLI renders the leaderboard)."""

from __future__ import annotations

import datetime
import functools
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from attnzoo.harness import noise
from attnzoo.harness.benchmark import Benchmark, benchmarks, get_benchmark
from attnzoo.harness.environment import BUSY, changes, load, manifest, row_environment
from attnzoo.harness.executor import Executor, LocalExecutor
from attnzoo.harness.plan import plan
from attnzoo.harness.records import Cell, Outcome
from attnzoo.harness.rundir import STOPS_CHAIN, RunDirError, RunStore, make_rows
from attnzoo.harness.suite import Suite, SuiteError, runtime_problems

Hook = Callable[..., None]


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


def default_threads(suite: Suite) -> int:
    """Threads of the cells that do not time: all cores locally, a cell's CPUs on Ray."""
    return suite.execution.ray.cpus_per_cell if suite.execution.executor == "ray" else os.cpu_count() or 1


def make_executor(suite: Suite, run_dir: Path) -> Executor:
    execution = suite.execution
    if execution.executor == "local":
        return LocalExecutor(execution.timeout_s, execution.memory_limit_gb, str(run_dir))
    from attnzoo.harness.ray_executor import RayExecutor

    options = execution.ray
    return RayExecutor(
        execution.timeout_s,
        execution.memory_limit_gb,
        str(run_dir),
        address=options.address,
        gpus_per_cell=options.gpus_per_cell,
        memory_gb_per_cell=options.memory_gb_per_cell,
        max_retries=options.max_retries,
        max_in_flight=options.max_in_flight,
    )


def default_run_dir(suite: Suite) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{suite.name}-{stamp}"


def _open_store(suite_text: str, run_dir: Path, resume: bool, force: bool, env: dict) -> RunStore:
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


def _repetitions(cell: Cell) -> int:
    """Workers a cell takes: an exclusive benchmark's repetitions, else one."""
    benchmark = get_benchmark(cell.benchmark)
    return benchmark.repetitions(cell) if benchmark.exclusive else 1


def progress_units(cells: list[Cell]) -> int:
    """Worker runs a suite takes."""
    return sum(map(_repetitions, cells))


def run_suite(
    suite: Suite,
    suite_text: str,
    run_dir: Path,
    resume: bool = False,
    force: bool = False,
    retry_errors: bool = False,
    on_cell: Hook | None = None,
    on_start: Hook | None = None,
    on_progress: Hook | None = None,
    on_warning: Hook | None = None,
    calibration: dict[str, float] | None = None,
    executor: str | None = None,
    address: str | None = None,
) -> RunSummary:
    """Run every planned cell not already finished in run_dir; rows are appended as each cell finishes.

    A new run refuses a directory that holds one; a resumed run refuses a changed environment or variant code
    unless forced, and then moves rows measured with other code to superseded.jsonl before measuring again
    (with retry_errors, the rows of cells that ended in error too).
    Hooks: on_start(cell, what), on_cell(cell, status, units) after each worker (units of progress made),
    on_progress(cell, message) while a cell trains, on_warning(text) before the run. calibration overrides what
    exclusive benchmarks calibrate before their rounds (e.g. {"probe_s": 0.02}). executor and address override
    the suite's execution.executor and execution.ray.address."""
    if problems := runtime_problems(suite):
        raise SuiteError(problems)
    if executor or address:
        ray_options = suite.execution.ray.model_copy(update={"address": address or suite.execution.ray.address})
        execution = suite.execution.model_copy(update={"executor": executor or "ray", "ray": ray_options})
        suite = suite.model_copy(update={"execution": execution})
    cells = plan(suite, default_threads(suite))
    pool = make_executor(suite, Path(run_dir))  # before anything is written: a cluster that cannot be reached
    found = benchmarks()
    threads = {c.benchmark: c.threads for c in cells}
    exclusive = [c for c in cells if found[c.benchmark].exclusive]
    full = {
        **manifest(suite.layer.device, exclusive[0].threads if exclusive else next(iter(threads.values()))),
        "threads_by_benchmark": threads,
        "suite": suite.name,
        "suite_dir": suite.import_dir,
        "variants": {c.variant or c.label: c.code for c in cells},
        "load_start": load(),
        "executor": pool.describe(),
    }
    full["machine_noise"] = noise.load(full)  # what `attnzoo calibrate` measured here, if it ran
    busy = full["load_start"].get("busy", 0)
    if on_warning and busy > BUSY and exclusive:
        on_warning(
            f"the machine is busy: {busy:.0%} of its CPU time went to other work just now; timings taken "
            "under contention will be marked, but an idle machine gives the numbers worth publishing"
        )
    store = _open_store(suite_text, Path(run_dir), resume, force, full)
    keep = {c.key for c in cells}
    if retry_errors:  # e.g. after installing a missing dataset: errored cells run again, their rows kept aside
        keep -= {row["key"] for row in store.rows() if row["status"] == "error"}
    store.supersede(keep)
    run = _Run(suite, cells, store, row_environment(full), pool, on_cell, on_start, on_progress)
    for name in dict.fromkeys(c.benchmark for c in exclusive):  # alone on the machine, before the rest
        run.rounds(found[name], [c for c in exclusive if c.benchmark == name], calibration)
    run.parallel([c for c in cells if not found[c.benchmark].exclusive])
    if not resume or run.measured:
        store.write_manifest({**store.manifest(), "load_end": load()})
    rows = store.rows()
    return RunSummary(run_dir, len(cells), run.skipped_as_done, rows)


class _Run:
    """The state of one run: what is done, where chains stopped, the executor, and the progress hooks."""

    def __init__(
        self,
        suite: Suite,
        cells: list[Cell],
        store: RunStore,
        env: dict,
        executor: Executor,
        on_cell,
        on_start,
        on_progress,
    ):
        self.suite, self.store, self.env, self.executor = suite, store, env, executor
        self.on_cell, self.on_start, self.on_progress = on_cell, on_start, on_progress
        earlier = store.rows()
        self.done = {row["key"] for row in earlier}
        self.skipped_as_done = self.measured = 0
        # Resumed runs remember where each chain ran out of memory or time (cells are in order of length).
        stopped = {row["key"]: row["status"] for row in earlier if row["status"] in STOPS_CHAIN}
        self.stopped_at: dict[str, tuple[int, str]] = {}
        for cell in cells:
            if cell.key in stopped:
                self.stopped_at.setdefault(cell.chain, (cell.seq_len, stopped[cell.key]))

    def _emit(self, hook, *args) -> None:
        if hook:
            hook(*args)

    def without_worker(self, cell: Cell) -> Outcome | None:
        """The outcome of the checks that make a worker pointless, if one applies."""
        benchmark = get_benchmark(cell.benchmark)
        outcome = benchmark.pre_check(cell, self.suite.layer.device, self.suite.layer.dtype)
        stop = self.stopped_at.get(cell.chain)
        if outcome is None and stop and cell.seq_len > stop[0]:
            outcome = Outcome("skipped", [], f"skipped after {'OOM' if stop[1] == 'oom' else stop[1]} at n={stop[0]}")
        return outcome

    def note_stop(self, cell: Cell, outcome: Outcome) -> None:
        if outcome.status in STOPS_CHAIN and cell.chain not in self.stopped_at:
            self.stopped_at[cell.chain] = (cell.seq_len, outcome.status)

    def finish(self, cell: Cell, outcome: Outcome, units: int = 1) -> None:
        self.store.append(make_rows(cell, outcome, self.env))
        self.done.add(cell.key)
        self._emit(self.on_cell, cell, outcome.status, units)

    def parallel(self, cells: list[Cell]) -> None:
        """Cells submitted to the executor as they become ready (a chain's longer lengths after its shorter ones,
        so an OOM or timeout still skips the rest), finished in the order they complete."""
        todo = []
        for cell in cells:
            if cell.key in self.done:
                self.skipped_as_done += 1
                self._emit(self.on_cell, cell, "done earlier", 1)
            else:
                todo.append(cell)
        unfinished: dict[str, list[int]] = {}
        for cell in todo:
            unfinished.setdefault(cell.chain, []).append(cell.seq_len)
        waiting, running = list(todo), 0
        while waiting or running:
            for cell in [c for c in waiting if c.seq_len <= min(unfinished[c.chain])]:
                if running >= self.executor.capacity:
                    break
                waiting.remove(cell)
                outcome = self.without_worker(cell)
                if outcome is not None:
                    self.finish(cell, outcome)
                    unfinished[cell.chain].remove(cell.seq_len)
                    continue
                self._emit(self.on_start, cell, "")
                self.executor.submit(cell, functools.partial(self.on_progress, cell) if self.on_progress else None)
                running += 1
            if not running:
                continue
            cell, outcome = self.executor.next_done()
            running -= 1
            self.measured += 1
            self.note_stop(cell, outcome)
            self.finish(cell, outcome)
            unfinished[cell.chain].remove(cell.seq_len)

    def rounds(self, benchmark: Benchmark, cells: list[Cell], calibration: dict[str, float] | None) -> None:
        """An exclusive benchmark's cells in rounds: every round visits each length in turn and, at each, the
        variants in a shuffled order, one fresh worker per cell, nothing else running; each repetition is saved as
        it finishes, and a cell's rows are written once its last repetition is in (see Benchmark.aggregate)."""
        reps = max(map(_repetitions, cells))
        for cell in (c for c in cells if c.key in self.done):
            self.skipped_as_done += 1
            self._emit(self.on_cell, cell, "done earlier", reps)
        pending = [c for c in cells if c.key not in self.done]
        if not pending:
            return
        partial = self.store.repetitions()
        ran_on: dict[str, dict | None] = {}
        options = calibration if calibration is not None else self._calibrate(benchmark, pending[0])
        for rep in range(reps):
            for n in sorted({c.seq_len for c in pending}):
                group = [c for c in pending if c.seq_len == n and c.key not in self.done]
                random.Random(f"{rep}/{n}").shuffle(group)  # reproducible, so a resumed run keeps the order
                for cell in group:
                    saved = partial.setdefault(cell.key, {})
                    if rep not in saved:
                        self._emit(self.on_start, cell, f"repetition {rep + 1}/{reps}")
                        outcome = self.without_worker(cell)
                        if outcome is None:
                            outcome = self.executor.run(cell, repetition=rep, **options)
                            self.measured += 1
                        self.note_stop(cell, outcome)
                        if outcome.status != "ok" and not saved:  # nothing measured: the cell's result is this
                            self.finish(cell, outcome, reps - rep)
                            continue
                        self.store.append_repetition(cell.key, rep, outcome)
                        saved[rep] = outcome
                        ran_on[cell.key] = outcome.where  # one node for all of a run's timing cells
                    if rep == reps - 1:
                        self.finish(cell, Outcome("ok", benchmark.aggregate(saved), where=ran_on.get(cell.key)))
                    else:
                        self._emit(self.on_cell, cell, f"repetition {rep + 1}/{reps}", 1)

    def _calibrate(self, benchmark: Benchmark, cell: Cell) -> dict[str, float]:
        """What the benchmark calibrates on this machine now, with the suite's threads; kept in the manifest."""
        outcome = self.executor.run(cell, job="calibrate")
        values = {m.metric: m.value for m in outcome.measurements} if outcome.status == "ok" else {}
        if values:
            manifest_ = self.store.manifest()
            now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            calibrations = manifest_.get("calibrations", {})
            calibrations[benchmark.name] = calibrations.get(benchmark.name, []) + [{"date": now, **values}]
            self.store.write_manifest({**manifest_, "calibrations": calibrations})
        return values
