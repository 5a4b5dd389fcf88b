"""A validated Suite -> the list of independent cells, every benchmark planning its own."""

from __future__ import annotations

from attnzoo.harness.benchmark import Benchmark
from attnzoo.harness.records import Cell
from attnzoo.harness.suite import Suite


def threads_for(suite: Suite, benchmark: Benchmark, all_cores: int | None) -> int | None:
    """The suite's threads, else: timing on the CPU with one thread (a busy neighbour core stalls every
    multi-threaded kernel at its barriers, and small kernels far more than fused ones), everything else on
    all cores."""
    if suite.execution.threads:
        return suite.execution.threads
    return 1 if benchmark.exclusive and suite.layer.device == "cpu" else all_cores


def plan(suite: Suite, default_threads: int | None = None) -> list[Cell]:
    """Cells in execution order: per benchmark, as the benchmark plans them."""
    return [
        cell
        for benchmark, section in suite.benchmarks.sections()
        for cell in benchmark.plan(suite, section, threads_for(suite, benchmark, default_threads))
    ]
