"""What the worker forkserver loads once, so that every forked worker starts warm: torch, attnzoo, the benchmarks,
and the profiler (its first use in a process costs over a second; forked workers inherit it ready)."""

import torch
from torch.profiler import ProfilerActivity, profile

from attnzoo.harness import executor  # noqa: F401 - imports the benchmarks and every variant

with profile(activities=[ProfilerActivity.CPU], profile_memory=True):
    torch.zeros(1).add_(1)
