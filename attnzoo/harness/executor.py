"""Runs one cell in an isolated worker process with a timeout and a memory cap; failures become statuses.

Workers are forked from a forkserver that has already imported torch and attnzoo, so isolation costs
milliseconds per cell rather than a fresh interpreter's import time. A cell on a GPU gets a fresh interpreter
instead: on a CUDA build of torch, merely asking whether a GPU is present (as packages do on import) leaves every
process forked afterwards unable to use CUDA."""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import resource
import signal
import socket
import sys
import time
import traceback
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import torch

from attnzoo.harness.benchmark import Progress, get_benchmark
from attnzoo.harness.records import Cell, Measurement, Outcome

_OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory", "failed to allocate")


class Executor(Protocol):
    """What the runner asks of an executor (local worker processes, or Ray tasks)."""

    capacity: int  # cells in flight at once

    def run(self, cell: Cell, on_progress: Progress | None = None, job: str = "run", **options: object) -> Outcome:
        """One cell alone, blocking: nothing else runs meanwhile (timing, calibration)."""
        ...

    def submit(self, cell: Cell, on_progress: Progress | None = None) -> None:
        """Start a cell (it may finish before this returns)."""
        ...

    def next_done(self) -> tuple[Cell, Outcome]:
        """The next submitted cell to finish, with its outcome."""
        ...

    def describe(self) -> dict:
        """For the manifest: what ran the cells."""
        ...


CRASHED = "worker crashed"  # how an outcome starts when the worker process died under the cell


def _is_oom(err: BaseException) -> bool:
    if isinstance(err, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(err, RuntimeError) and any(m in str(err).lower() for m in _OOM_MARKERS)


def execute(cell: Cell, job: str, options: dict, workdir: str | None, progress: Progress | None = None) -> Outcome:
    """Run one job of the cell's benchmark on the cell in this process ("run", or "calibrate" before timing
    rounds); every failure becomes a status (the cell function both the local and the Ray executor run)."""
    if cell.import_path and cell.import_path not in sys.path:
        sys.path.insert(0, cell.import_path)  # `module:Class` variants next to the suite
    if cell.threads:
        torch.set_num_threads(cell.threads)
    try:
        for module in cell.imports:
            importlib.import_module(module)
        benchmark = get_benchmark(cell.benchmark)
        if job == "calibrate":
            values = benchmark.calibrate(cell) or {}
            return Outcome("ok", [Measurement(name, value) for name, value in values.items()])
        workpath = Path(workdir) if workdir else None
        return Outcome("ok", benchmark.run(cell, workdir=workpath, progress=progress, **options))
    except BaseException as err:  # noqa: BLE001 - every failure is reported as a status, never lost
        status = "oom" if _is_oom(err) else "error"
        return Outcome(status, [], f"{type(err).__name__}: {err}\n{traceback.format_exc()}")


def _work(cell: Cell, job: str, options: dict, memory_limit_bytes: int | None, workdir: str | None, conn) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: it kills this worker
    if workdir:  # native libraries warn on fd 2; keep the terminal for the progress display
        with open(Path(workdir) / "workers.log", "a") as log:
            os.dup2(log.fileno(), 2)
    if memory_limit_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    try:
        conn.send(execute(cell, job, options, workdir, progress=conn.send))
    finally:
        conn.close()


class LocalExecutor:
    """One worker process per cell, forked from a preloaded forkserver (spawned for a GPU cell), one at a time."""

    capacity = 1

    def __init__(self, timeout_s: float, memory_limit_gb: float | None = None, workdir: str | None = None):
        self.timeout_s, self.workdir = timeout_s, workdir
        self.memory_limit = int(memory_limit_gb * 2**30) if memory_limit_gb else None
        self.context = mp.get_context("forkserver")
        self.context.set_forkserver_preload(["attnzoo.harness.preload"])
        self.gpu_context = mp.get_context("spawn")
        self.done: deque[tuple[Cell, Outcome]] = deque()

    def describe(self) -> dict:
        return {"executor": "local"}

    def submit(self, cell: Cell, on_progress: Progress | None = None) -> None:
        self.done.append((cell, self.run(cell, on_progress)))

    def next_done(self) -> tuple[Cell, Outcome]:
        return self.done.popleft()

    def run(self, cell: Cell, on_progress: Progress | None = None, job: str = "run", **options: object) -> Outcome:
        """The outcome of a job on the cell, with keyword options for it; progress messages the worker sends on the
        way go to on_progress."""
        context = self.gpu_context if str(cell.layer.get("device", "cpu")).startswith("cuda") else self.context
        receive, send = context.Pipe(duplex=False)
        args = (cell, job, options, self.memory_limit, self.workdir, send)
        worker = context.Process(target=_work, args=args, daemon=True)
        worker.start()
        send.close()
        where = {"executor": "local", "host": socket.gethostname(), "pid": worker.pid, "attempt": 1}
        deadline = time.monotonic() + self.timeout_s
        ended = False  # the worker answered or died by itself: let it exit before looking at its exit code
        try:
            while receive.poll(max(0.0, deadline - time.monotonic())):
                try:
                    message = receive.recv()
                except EOFError:
                    ended = True
                    break  # the worker died before it could answer
                if isinstance(message, Outcome):
                    ended = True
                    return replace(message, where=where)
                if on_progress:
                    on_progress(message)
            else:
                worker.kill()
                return Outcome("timeout", [], f"exceeded the cell timeout of {self.timeout_s:g} s", where)
        finally:
            if ended:
                worker.join(5)
            if worker.is_alive():
                worker.kill()
                worker.join()
            receive.close()
        if worker.exitcode == -9:
            return Outcome("oom", [], "worker killed by SIGKILL (the kernel's out-of-memory killer)", where)
        return Outcome("error", [], f"{CRASHED} with exit code {worker.exitcode}", where)
