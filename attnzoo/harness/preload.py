"""What the worker forkserver loads once, so that every forked worker starts warm: torch, attnzoo, every benchmark
and variant, and the profiler (its first use in a process costs over a second; forked workers inherit it ready)."""

import torch
from torch.profiler import ProfilerActivity, profile

import attnzoo.zoo  # noqa: F401 - registers the built-in variants
from attnzoo.harness.benchmark import benchmarks

benchmarks()
with profile(activities=[ProfilerActivity.CPU], profile_memory=True):
    torch.zeros(1).add_(1)
