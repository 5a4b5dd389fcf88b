"""Cells as Ray tasks: the same cell function as the local executor, one task per cell, on a Ray cluster.

The driver submits, waits (ray.wait) and hands each outcome back as it arrives; only the driver writes the run
directory, so a killed driver loses at most the cells in flight. Failures are statuses:
- the cell's own exception (caught inside the task, as locally): ``error`` or ``oom``, never retried;
- Ray's memory monitor killing the task: ``oom``;
- a worker or node that dies under the task: retried up to ``max_retries`` times, then ``error`` with the reason;
- a task running past the cell timeout: cancelled (its process killed) from the driver: ``timeout``.

Placement: a cell of a benchmark that packs (training, approximation) asks for its torch threads as CPUs (and the
suite's GPUs and memory) and packs with others, each in a fresh Ray worker. The cells of an exclusive benchmark
(timing) go to one node (so their times compare) and run through a runner actor there that holds every CPU of that
node (pinned by node affinity), so nothing else Ray schedules shares the machine while it is timed; the actor forks
each repetition from a preloaded forkserver, as the local executor does, instead of starting a Ray worker that
imports torch for every repetition. The actor is released when the packed cells start.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from attnzoo.harness.benchmark import Progress, get_benchmark
from attnzoo.harness.executor import LocalExecutor, execute
from attnzoo.harness.records import Cell, Outcome

GRACE_S = 30  # past the cell timeout, for the runner actor to report a timeout it enforced itself


class ExecutorError(Exception):
    """The executor cannot start (Ray missing, cluster unreachable): nothing has been written."""


def _ray():
    try:
        import ray
    except ImportError:
        raise ExecutorError("--executor ray needs Ray: pip install 'attnzoo[ray]'") from None
    return ray


def _run_cell(cell: Cell, job: str, options: dict, workdir: str | None, memory_limit_bytes: int | None):
    """The body of one Ray task (a fresh worker process per task: max_calls=1)."""
    import resource

    import ray

    if memory_limit_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    if workdir and not Path(workdir).is_dir():  # another machine without the driver's filesystem: local scratch
        workdir = tempfile.mkdtemp(prefix="attnzoo-")
    where = {
        "executor": "ray",
        "host": socket.gethostname(),
        "node": ray.get_runtime_context().get_node_id(),
        "pid": os.getpid(),
    }
    return replace(execute(cell, job, options, workdir), where=where)


class _NodeRunner:
    """A Ray actor on the timing node: each job runs in a worker forked from its preloaded forkserver."""

    def __init__(self, timeout_s: float, memory_limit_gb: float | None, workdir: str | None):
        import ray

        if workdir and not Path(workdir).is_dir():
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
    attempt: int = 1
    started: float = field(default_factory=time.monotonic)
    on_runner: bool = False  # sent to the runner actor, which enforces the cell timeout itself


class RayExecutor:
    """Submit cells to Ray and collect their outcomes; `run` is the blocking form the timing rounds use."""

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
        self.memory_limit = int(memory_limit_gb * 2**30) if memory_limit_gb else None
        self.gpus, self.memory = gpus_per_cell, int(memory_gb_per_cell * 2**30) if memory_gb_per_cell else None
        if not ray.is_initialized():
            _check_reachable(address)
            if not address:  # a private instance of this driver's: no token to set up, nothing to log
                os.environ.setdefault("RAY_AUTH_MODE", "disabled")
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
        self.remote = ray.remote(max_calls=1)(_run_cell)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.capacity = max_in_flight or max(1, cpus)
        self.inflight: dict[object, _Task] = {}
        self._timing_node: dict | None = None
        self._runner = None  # the runner actor on the timing node, while exclusive cells run

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

    def _runner_actor(self):
        """The runner actor on the timing node, holding all its CPUs (started on first use)."""
        if self._runner is None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            node = self.timing_node()
            strategy = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
            actor = self.ray.remote(_NodeRunner).options(
                num_cpus=node["Resources"]["CPU"], scheduling_strategy=strategy
            )
            self._runner = actor.remote(self.timeout_s, self.memory_limit_gb, self.workdir)
        return self._runner

    def _release_runner(self) -> None:
        if self._runner is not None:
            self.ray.kill(self._runner)
            self._runner = None

    def submit(
        self, cell: Cell, on_progress: Progress | None = None, job: str = "run", attempt: int = 1, **options
    ) -> None:
        """Start the cell: an exclusive one (timing repetitions, the calibration) on the runner actor, any other as
        a Ray task of its own (progress is not streamed back from Ray)."""
        if get_benchmark(cell.benchmark).exclusive:
            ref = self._runner_actor().run.remote(cell, job, options)
            self.inflight[ref] = _Task(cell, job, options, attempt, on_runner=True)
            return
        self._release_runner()  # the timing is over: its node's CPUs go back to the packed cells
        extra = {"memory": self.memory} if self.memory else {}
        remote = self.remote.options(num_cpus=cell.threads or 1, num_gpus=self.gpus, max_retries=0, **extra)
        ref = remote.remote(cell, job, options, self.workdir, self.memory_limit)
        self.inflight[ref] = _Task(cell, job, options, attempt)

    def next_done(self) -> tuple[Cell, Outcome]:
        """Wait for the next cell to finish (or to run out of time) and return it with its outcome; a cell whose
        worker died is resubmitted and waited for like the others."""
        ray = self.ray
        while True:
            now = time.monotonic()
            deadline = min(self._deadline(t) for t in self.inflight.values())
            ready, _ = ray.wait(list(self.inflight), num_returns=1, timeout=max(0.0, deadline - now))
            if not ready:
                overdue = [ref for ref, t in self.inflight.items() if self._deadline(t) <= time.monotonic()]
                if not overdue:
                    continue
                ref = overdue[0]
                task = self.inflight.pop(ref)
                if task.on_runner:  # stuck beyond its own timeout: the actor goes, a new one starts if needed
                    self._release_runner()
                else:
                    ray.cancel(ref, force=True)
                where = {"executor": "ray", "attempt": task.attempt}
                return task.cell, Outcome("timeout", [], f"exceeded the cell timeout of {self.timeout_s:g} s", where)
            ref = ready[0]
            task = self.inflight.pop(ref)
            try:
                outcome = ray.get(ref)
            except ray.exceptions.OutOfMemoryError as err:
                outcome = Outcome("oom", [], f"killed by Ray's memory monitor: {_first_line(err)}")
            except (
                ray.exceptions.WorkerCrashedError,
                ray.exceptions.NodeDiedError,
                ray.exceptions.RayActorError,
            ) as err:
                if task.on_runner:
                    self._runner = None  # died with its node: the next exclusive cell starts another
                if task.attempt <= self.max_retries:
                    self.submit(task.cell, None, task.job, task.attempt + 1, **task.options)
                    continue
                reason = f"worker died on each of {task.attempt} attempts; last: {_first_line(err)}"
                outcome = Outcome("error", [], reason)
            except ray.exceptions.RayError as err:
                outcome = Outcome("error", [], f"{type(err).__name__}: {_first_line(err)}")
            where = {**(outcome.where or {"executor": "ray"}), "attempt": task.attempt}
            return task.cell, replace(outcome, where=where)

    def _deadline(self, task: _Task) -> float:
        return task.started + self.timeout_s + (GRACE_S if task.on_runner else 0)

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
