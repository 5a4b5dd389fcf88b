"""How each efficiency metric is measured (see DESIGN.md): one function per metric, on a zero-argument call.

- time: blocks of calls timed with torch.utils.benchmark.Timer.timeit (explicit num_threads), sized from a first
  call; median and IQR over the blocks, minor page faults per call, and a contention probe run before and after
  (an attempt whose probe ran slower than calibrated is measured again). One such attempt is one repetition; the
  runner repeats it in fresh processes, interleaved with the other variants.
- memory (CPU): peak of the running sum of the profiler's allocation/free events during one call, cross-checked
  by the process's peak RSS growth (VmHWM after resetting it through /proc/self/clear_refs).
- memory (CUDA): torch.cuda.max_memory_allocated after reset_peak_memory_stats, above the memory in use before.
- FLOPs: attnzoo.harness.flops.count_flops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.benchmark import Timer

from attnzoo.harness.flops import count_flops

__all__ = [
    "Probe",
    "Timing",
    "count_flops",
    "keep_freed_memory",
    "layer_call",
    "peak_memory",
    "peak_rss_growth",
    "time_call",
    "time_paired",
]


@dataclass(frozen=True)
class Timing:
    median_s: float
    iqr_s: float
    runs: int
    faults_per_call: float = 0.0  # minor page faults per call: memory the kernel had to hand (back) in
    probe_ratios: list[float] = field(default_factory=list)  # probe time / calibrated, per attempt (worst side)
    contended: bool = False  # no attempt had a clean probe


def layer_call(
    layer: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor | None, backward: bool
) -> Callable[[], None]:
    """The measured unit: a forward pass, or the step a layer costs inside a network: forward, then backward
    through every parameter and to the input (every layer but the first receives an input gradient)."""
    if not backward:

        def forward() -> None:
            with torch.no_grad():
                layer(x, mask=mask)

        return forward

    x = x.detach().requires_grad_(True)

    def forward_backward() -> None:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x, mask=mask).sum().backward()

    return forward_backward


PARALLEL_EFFICIENCY = 0.75  # what a clean multi-threaded probe reaches at least (measured idle: 0.86 on 2 cores)


class Probe:
    """A small fixed workload (400 multiplications of 128 x 128 matrices on the cell's threads, ~10-20 ms on a
    CPU core) timed before and after each timed block. Multi-threaded kernels stall at every barrier when
    another process takes a core; the probe stalls the same way, so a probe slower than calibrated marks the
    block as measured under contention.

    The calibration is single-threaded: one thread barely slows down when another process takes a different core,
    so it holds even when the run starts on a busy machine; with N threads the clean probe is expected within
    t1 / (N · PARALLEL_EFFICIENCY). (Calibrating N threads directly on a busy machine calibrates the stalls.)"""

    def __init__(self, calibrated_s: float | None = None, margin: float = 0.3):
        self.calibrated_s, self.margin = calibrated_s, margin
        self.a, self.b = torch.randn(128, 128), torch.randn(128, 128)

    def __call__(self) -> float:
        start = time.perf_counter()
        for _ in range(400):
            torch.mm(self.a, self.b)
        return time.perf_counter() - start

    def calibrate(self, runs: int = 15) -> float:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            self()
            single = statistics.median(self() for _ in range(runs))
        finally:
            torch.set_num_threads(threads)
        return single if threads == 1 else single / (threads * PARALLEL_EFFICIENCY)

    def ratio(self) -> float:
        """Probe time over the calibrated time (1.0, without running the probe, when there is no calibration)."""
        return self() / self.calibrated_s if self.calibrated_s else 1.0


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _blocks(timer: Timer, min_run_time: float) -> tuple[list[float], int]:
    """Seconds per call of timed blocks filling about min_run_time, and how many calls that took. Each
    `Timer.timeit` block warms up itself; the first block (one call) doubles as the size estimate, and is the
    measurement when one call already takes half of min_run_time."""
    first = timer.timeit(1).median
    if first >= min_run_time / 2:
        return [first], 3
    number = max(1, int(min_run_time / 10 / first))  # about ten blocks
    times, calls = [], 3
    deadline = time.perf_counter() + min_run_time
    while time.perf_counter() < deadline or len(times) < 3:
        times.append(timer.timeit(number).median)
        calls += number + max(number // 100, 2)
    return times, calls


def time_call(
    fn: Callable[[], None],
    threads: int,
    min_run_time: float = 1.0,
    probe: Probe | None = None,
    retries: int = 2,
) -> Timing:
    """One repetition: timed blocks of fn (torch.utils.benchmark.Timer, num_threads explicit), retried up to
    `retries` times while the probe says another process was taking CPU; the last attempt is kept, marked
    contended if none was clean."""
    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    return _attempts(lambda: _blocks(timer, min_run_time), probe or Probe(), retries)


def time_paired(
    fn: Callable[[], None],
    baseline: Callable[[], None],
    threads: int,
    min_run_time: float = 1.0,
    probe: Probe | None = None,
    retries: int = 2,
) -> tuple[Timing, list[float]]:
    """One repetition of fn paired with a baseline in the same process: blocks of the two alternate (A B B A
    A B ..., so that a linear drift in the machine's speed cancels within each pair) until min_run_time has
    passed, each block about a twentieth of it. Returns fn's timing, as time_call's, and per pair of adjacent
    blocks the ratio baseline time / fn time: two measurements milliseconds apart, at one machine speed."""
    timers = [Timer(stmt="fn()", globals={"fn": f}, num_threads=threads) for f in (fn, baseline)]
    ratios: list[float] = []

    def blocks() -> tuple[list[float], int]:
        firsts = [t.timeit(1).median for t in timers]
        numbers = [max(1, int(min_run_time / 20 / first)) for first in firsts]
        mine, ratios[:] = [], []
        calls, deadline = 3, time.perf_counter() + min_run_time
        while time.perf_counter() < deadline or len(ratios) < 3:
            order = (0, 1) if len(ratios) % 2 == 0 else (1, 0)
            block = {i: timers[i].timeit(numbers[i]).median for i in order}
            mine.append(block[0])
            ratios.append(block[1] / block[0])
            calls += sum(number + max(number // 100, 2) for number in numbers)  # faults: both layers' calls
        return mine, calls

    return _attempts(blocks, probe or Probe(), retries), list(ratios)


def _attempts(measure: Callable[[], tuple[list[float], int]], probe: Probe, retries: int) -> Timing:
    """Measure (seconds per call of each block, calls made) between two probes, again while the probe says
    another process was taking CPU; the last attempt's blocks as a Timing."""
    ratios = []
    for _ in range(retries + 1):
        before = probe.ratio()
        faults = _minor_faults()
        times, calls = measure()
        faults = (_minor_faults() - faults) / calls
        ratios.append(round(max(before, probe.ratio()), 3))
        if ratios[-1] <= 1 + probe.margin:
            break
    q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else times * 3
    return Timing(median, q3 - q1, len(times), faults, ratios, ratios[-1] > 1 + probe.margin)


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory in the process instead of handing it back to the kernel after each call,
    so that timings measure compute, not the kernel zeroing pages again (PyTorch's CPU performance guide makes
    the same point about allocators). Blocks up to glibc's 32 MiB mmap ceiling come from the retained heap;
    larger ones are still mapped per call. False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20) and libc.mallopt(_M_TRIM_THRESHOLD, 2**30)
    except (OSError, AttributeError):
        return False
    return bool(ok)


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
