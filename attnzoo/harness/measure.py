"""How each efficiency metric is measured (see DESIGN.md): one function per metric, on a zero-argument call.

- time: torch.utils.benchmark.Timer.blocked_autorange with explicit num_threads, after warm-up; median and IQR.
- memory (CPU): peak of the running sum of the profiler's allocation/free events during one call, cross-checked
  by the process's peak RSS growth (VmHWM after resetting it through /proc/self/clear_refs).
- memory (CUDA): torch.cuda.max_memory_allocated after reset_peak_memory_stats, above the memory in use before.
- FLOPs: attnzoo.harness.flops.count_flops.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.benchmark import Timer

from attnzoo.harness.flops import count_flops

__all__ = ["Timing", "count_flops", "layer_call", "peak_memory", "peak_rss_growth", "time_call"]


@dataclass(frozen=True)
class Timing:
    median_s: float
    iqr_s: float
    runs: int


def layer_call(
    layer: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor | None, backward: bool
) -> Callable[[], None]:
    """The measured unit: a forward pass, or a forward pass and backward through every parameter."""
    if not backward:

        def forward() -> None:
            with torch.no_grad():
                layer(x, mask=mask)

        return forward

    def forward_backward() -> None:
        layer.zero_grad(set_to_none=True)
        layer(x, mask=mask).sum().backward()

    return forward_backward


def time_call(fn: Callable[[], None], threads: int, min_run_time: float = 1.0, warmup: int = 2) -> Timing:
    for _ in range(warmup):
        fn()
    measurement = Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads).blocked_autorange(
        min_run_time=min_run_time
    )
    return Timing(measurement.median, measurement.iqr, len(measurement.times))


def peak_memory(fn: Callable[[], None], device: torch.device) -> int:
    """Peak bytes allocated during one call of fn, above what was allocated before it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # Every allocation and free the profiler saw, in time order; the peak of their running sum.
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    running = peak = 0
    for _, nbytes in events:
        running += nbytes
        peak = max(peak, running)
    return peak


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 0


def peak_rss_growth(fn: Callable[[], None]) -> int | None:
    """Growth of this process's peak resident memory over one call (bytes); None where Linux's /proc is absent.

    Meaningful in an isolated worker process: the allocator may reuse memory it already holds, so this is a
    lower bound of what the call touched beyond the resident set before it."""
    clear_refs = Path("/proc/self/clear_refs")
    try:
        clear_refs.write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        return None
    before = _status_kib("VmRSS")
    fn()
    return max(0, _status_kib("VmHWM") - before) * 1024
