"""What the worker forkserver loads once, so that every forked worker starts warm: torch, attnzoo, every benchmark
and variant, and the profiler (its first use in a process costs over a second; forked workers inherit it ready)."""

import contextlib
import os

import torch
from torch.profiler import ProfilerActivity, profile

import attnzoo.zoo  # noqa: F401 - registers the built-in variants
from attnzoo.harness.benchmark import benchmarks


@contextlib.contextmanager
def silent_fd2():
    """The profiler's native library logs each start and stop on fd 2, which is the terminal of the progress
    display here (workers send theirs to the run's workers.log)."""
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


benchmarks()
with silent_fd2(), profile(activities=[ProfilerActivity.CPU], profile_memory=True):
    torch.zeros(1).add_(1)
