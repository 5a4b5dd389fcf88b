"""Runs one cell in an isolated worker process with a timeout and a memory cap; failures become statuses.

Workers are forked from a forkserver that has already imported torch and attnzoo, so isolation costs
milliseconds per cell rather than a fresh interpreter's import time."""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import traceback
from dataclasses import dataclass

import torch

from attnzoo.harness import approximation, efficiency
from attnzoo.harness.plan import Cell

BENCHMARKS = {"efficiency": efficiency.run, "approximation": approximation.run}
_OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory", "failed to allocate")


@dataclass(frozen=True)
class Outcome:
    status: str  # ok | oom | timeout | error
    rows: list[dict]
    error: str = ""


def _is_oom(err: BaseException) -> bool:
    if isinstance(err, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(err, RuntimeError) and any(m in str(err).lower() for m in _OOM_MARKERS)


def _work(cell: Cell, memory_limit_bytes: int | None, log_path: str | None, conn) -> None:
    if log_path:  # native libraries warn on fd 2; keep the terminal for the progress display
        with open(log_path, "a") as log:
            os.dup2(log.fileno(), 2)
    if memory_limit_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    if cell.threads:
        torch.set_num_threads(cell.threads)
    try:
        conn.send(Outcome("ok", BENCHMARKS[cell.benchmark](cell)))
    except BaseException as err:  # noqa: BLE001 - every failure is reported as a status, never lost
        status = "oom" if _is_oom(err) else "error"
        conn.send(Outcome(status, [], f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=8)}"))
    finally:
        conn.close()


class LocalExecutor:
    """One worker process per cell, forked from a preloaded forkserver."""

    def __init__(self, timeout_s: float, memory_limit_gb: float | None = None, log_path: str | None = None):
        self.timeout_s, self.log_path = timeout_s, log_path
        self.memory_limit = int(memory_limit_gb * 2**30) if memory_limit_gb else None
        self.context = mp.get_context("forkserver")
        self.context.set_forkserver_preload(["attnzoo.harness.executor"])

    def run(self, cell: Cell) -> Outcome:
        receive, send = self.context.Pipe(duplex=False)
        worker = self.context.Process(target=_work, args=(cell, self.memory_limit, self.log_path, send), daemon=True)
        worker.start()
        send.close()
        try:
            if receive.poll(self.timeout_s):
                try:
                    return receive.recv()
                except EOFError:
                    pass  # the worker died before it could answer
            else:
                worker.kill()
                return Outcome("timeout", [], f"exceeded the cell timeout of {self.timeout_s:g} s")
        finally:
            worker.join(5)
            if worker.is_alive():
                worker.kill()
            receive.close()
        if worker.exitcode == -9:
            return Outcome("oom", [], "worker killed by SIGKILL (the kernel's out-of-memory killer)")
        return Outcome("error", [], f"worker crashed with exit code {worker.exitcode}")
