"""Cells on a Ray cluster: the same cell function as the local executor, run by runner actors.

A runner is a Ray actor that runs one cell at a time, each in a worker forked from its own preloaded forkserver
(exactly as the local executor does), so a cell never pays for a fresh process importing torch, and nothing leaks
from one cell to the next. The driver submits, waits (ray.wait) and hands each outcome back as it arrives; only the
driver writes the run directory, so a killed driver loses at most the cells in flight. Failures are statuses:
- the cell's own exception (caught inside the worker, as locally): ``error`` or ``oom``, never retried;
- Ray's memory monitor killing a runner: ``oom``;
- a worker, runner or node that dies under the cell: retried up to ``max_retries`` times, then ``error`` with the
  reason;
- a cell running past the cell timeout: its worker killed by the runner: ``timeout`` (a runner that does not answer
  within a grace period after that is killed from the driver).

Placement: a cell of a benchmark that packs (training, approximation) goes to a runner that asks for the cell's
torch threads as CPUs (and the suite's GPUs and memory); idle runners of the same shape are reused, so cells pack up
to the cluster's CPUs. The cells of an exclusive benchmark (timing) go to one runner on one node that holds every
CPU of that node (pinned by node affinity), so nothing else Ray schedules shares the machine while it is timed and
all of a run's times compare. Idle runners of the other kind are released before a runner is started, so the
timing runner never waits for CPUs that idle packers hold, nor the reverse.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from attnzoo.harness.benchmark import Progress, get_benchmark
from attnzoo.harness.executor import CRASHED, LocalExecutor
from attnzoo.harness.records import Cell, Outcome

GRACE_S = 30  # past the cell timeout, for a runner to report the timeout it enforced itself


class ExecutorError(Exception):
    """The executor cannot start (Ray missing, cluster unreachable): nothing has been written."""


def _ray():
    try:
        import ray
    except ImportError:
        raise ExecutorError("--executor ray needs Ray: pip install 'attnzoo[ray]'") from None
    return ray


class Runner:
    """A Ray actor that runs cells one at a time, each in a worker forked from its preloaded forkserver."""

    def __init__(self, timeout_s: float, memory_limit_gb: float | None, workdir: str | None):
        import ray

        # This process's __main__ is Ray's worker script, which multiprocessing would re-import in every forked
        # worker (half a second each); the cells need nothing from it.
        vars(sys.modules["__main__"]).pop("__file__", None)
        if workdir and not Path(workdir).is_dir():  # a node without the driver's filesystem: local scratch
            workdir = tempfile.mkdtemp(prefix="attnzoo-")
        self.local = LocalExecutor(timeout_s, memory_limit_gb, workdir)
        self.where = {"executor": "ray", "host": socket.gethostname(), "node": ray.get_runtime_context().get_node_id()}

    def run(self, cell: Cell, job: str, options: dict) -> Outcome:
        outcome = self.local.run(cell, None, job, **options)
        return replace(outcome, where={**self.where, "pid": (outcome.where or {}).get("pid")})


@dataclass
class _Task:
    cell: Cell
    job: str
    options: dict
    runner: object  # the actor handle running it
    shape: tuple  # what the runner holds: ("timing", node) or (cpus, gpus, memory)
    attempt: int = 1
    started: float = field(default_factory=time.monotonic)


class RayExecutor:
    """Submit cells to runner actors and collect their outcomes; `run` is the blocking form the timing rounds use."""

    def __init__(
        self,
        timeout_s: float,
        memory_limit_gb: float | None = None,
        workdir: str | None = None,
        address: str | None = None,
        gpus_per_cell: float = 0,
        memory_gb_per_cell: float | None = None,
        max_retries: int = 2,
        max_in_flight: int | None = None,
    ):
        ray = self.ray = _ray()
        self.timeout_s, self.workdir, self.max_retries = timeout_s, workdir, max_retries
        self.memory_limit_gb = memory_limit_gb
        self.gpus, self.memory = gpus_per_cell, int(memory_gb_per_cell * 2**30) if memory_gb_per_cell else None
        if not ray.is_initialized():
            _check_reachable(address)
            if not address:  # a private instance of this driver's: no token to set up, nothing to log
                os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            sigterm = signal.getsignal(signal.SIGTERM)
            try:
                # Without an address: a private local instance (not one that happens to run on this machine).
                ray.init(
                    address=address or "local",
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                )
            except (ConnectionError, ValueError, RuntimeError) as err:
                raise ExecutorError(f"cannot reach the Ray cluster at {address}: {err}") from None
            # ray.init installs its own SIGTERM handler, which kills the driver mid-run without a word; the
            # process's own disposition (`attnzoo run`: stop as Ctrl-C does, and say how to resume; or default, or
            # ignored) stays in charge. None: a handler not set from Python, which cannot be put back.
            if sigterm is not None:
                signal.signal(signal.SIGTERM, sigterm)
        self.actor = ray.remote(Runner)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.capacity = max_in_flight or max(1, cpus)
        self.inflight: dict[object, _Task] = {}
        self.idle: dict[tuple, list] = {}  # shape -> runners waiting for a cell
        self._timing_node: dict | None = None

    def describe(self) -> dict:
        """For the manifest: what ran the cells."""
        nodes = [n for n in self.ray.nodes() if n["Alive"]]
        return {
            "executor": "ray",
            "ray": self.ray.__version__,
            "nodes": [{"host": n["NodeManagerHostname"], "cpus": n["Resources"].get("CPU", 0)} for n in nodes],
        }

    def timing_node(self) -> dict:
        """The node every timing cell of this run goes to: the driver's own when it is part of the cluster."""
        if self._timing_node is None:
            nodes = [n for n in self.ray.nodes() if n["Alive"] and n["Resources"].get("CPU")]
            here = self.ray.get_runtime_context().get_node_id()
            nodes.sort(key=lambda n: (n["NodeID"] != here, n["NodeID"]))
            self._timing_node = nodes[0]
        return self._timing_node

    def _runner(self, cell: Cell) -> tuple[object, tuple]:
        """An idle runner of the shape the cell needs, or a new one (idle runners of other shapes released)."""
        if get_benchmark(cell.benchmark).exclusive:  # timing repetitions and the calibration alike
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            node = self.timing_node()
            shape = ("timing", node["NodeID"])
            strategy = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
            options = {"num_cpus": node["Resources"]["CPU"], "scheduling_strategy": strategy}
        else:
            shape = (cell.threads or 1, self.gpus, self.memory)
            options = {"num_cpus": shape[0], "num_gpus": self.gpus, **({"memory": self.memory} if self.memory else {})}
        if self.idle.get(shape):
            return self.idle[shape].pop(), shape
        for other in [s for s in self.idle if s != shape]:
            for runner in self.idle.pop(other):
                self.ray.kill(runner)
        return self.actor.options(**options).remote(self.timeout_s, self.memory_limit_gb, self.workdir), shape

    def submit(
        self, cell: Cell, on_progress: Progress | None = None, job: str = "run", attempt: int = 1, **options
    ) -> None:
        """Start the cell on a runner (progress is not streamed back from Ray)."""
        runner, shape = self._runner(cell)
        ref = runner.run.remote(cell, job, options)
        self.inflight[ref] = _Task(cell, job, options, runner, shape, attempt)

    def next_done(self) -> tuple[Cell, Outcome]:
        """Wait for the next cell to finish (or to run out of time) and return it with its outcome; a cell whose
        worker, runner or node died is resubmitted and waited for like the others."""
        ray = self.ray
        while True:
            deadline = min(t.started + self.timeout_s + GRACE_S for t in self.inflight.values())
            ready, _ = ray.wait(list(self.inflight), num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                now = time.monotonic()
                overdue = [ref for ref, t in self.inflight.items() if t.started + self.timeout_s + GRACE_S <= now]
                if not overdue:
                    continue
                task = self.inflight.pop(overdue[0])
                ray.kill(task.runner)  # it did not enforce the timeout itself: it goes
                where = {"executor": "ray", "attempt": task.attempt}
                return task.cell, Outcome("timeout", [], f"exceeded the cell timeout of {self.timeout_s:g} s", where)
            task = self.inflight.pop(ready[0])
            try:
                outcome = ray.get(ready[0])
                died = outcome.status == "error" and outcome.error.startswith(CRASHED)
                self.idle.setdefault(task.shape, []).append(task.runner)
            except ray.exceptions.OutOfMemoryError as err:
                outcome, died = Outcome("oom", [], f"killed by Ray's memory monitor: {_first_line(err)}"), False
            except (ray.exceptions.RayActorError, ray.exceptions.NodeDiedError) as err:
                outcome, died = Outcome("error", [], _first_line(err)), True
            except ray.exceptions.RayError as err:
                outcome, died = Outcome("error", [], f"{type(err).__name__}: {_first_line(err)}"), False
            if died and task.attempt <= self.max_retries:
                self.submit(task.cell, None, task.job, task.attempt + 1, **task.options)
                continue
            if died:
                outcome = replace(
                    outcome, error=f"worker died on each of {task.attempt} attempts; last: {outcome.error}"
                )
            where = {**(outcome.where or {"executor": "ray"}), "attempt": task.attempt}
            return task.cell, replace(outcome, where=where)

    def run(self, cell: Cell, on_progress: Progress | None = None, job: str = "run", **options) -> Outcome:
        """One cell, blocking (the timing rounds and the calibration): submitted alone and waited for."""
        if self.inflight:
            raise RuntimeError("run() with cells in flight would time them beside other work")
        self.submit(cell, None, job, **options)
        return self.next_done()[1]


def _check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """A host:port that does not answer fails here in seconds (ray.init would keep retrying for minutes)."""
    if not address or address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s).close()
    except (OSError, ValueError) as err:
        raise ExecutorError(f"cannot reach the Ray cluster at {address}: {err}") from None


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
