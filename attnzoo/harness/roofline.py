"""The time a call needs at least on this machine: every op's FLOPs and bytes against the machine's two roofs.

- FLOPs per op: FlopCounterMode's formulas, attnzoo's own included (attnzoo.harness.flops), so the ops' sum is
  count_flops's total.
- Bytes per op: what the op must read and write at least, each tensor once: its inputs, then its outputs
  (an in-place op reads and writes its target). Views move nothing; an expanded (stride-0) dimension is read once.
  Data that stays in a cache between ops moves less, so a small working set can run faster than this bound.
- Roofs, measured in the worker with the cell's device, dtype and threads: a large square matmul's FLOP/s, and a
  large copy's bytes/s (bytes read plus bytes written).

An op takes at least max(FLOPs / matmul rate, bytes / bandwidth); the call's bound is their sum over ops. Measured
time over that bound says how far an implementation is from what its algorithm needs on this machine."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils import flop_counter as fc
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.benchmark import Timer

import attnzoo.harness.flops  # noqa: F401 - registers the formulas FlopCounterMode lacks

aten = torch.ops.aten
# Ops that return a tensor sharing its input's memory without being declared views.
_NO_TRAFFIC = {aten._unsafe_view.default, aten.lift_fresh.default, aten.detach.default}


@dataclass(frozen=True)
class Roofs:
    flops_per_s: float  # a square matmul's rate
    bytes_per_s: float  # a large copy's rate, bytes read plus written


@dataclass(frozen=True)
class OpCost:
    op: str
    flops: int
    bytes: int  # read and written
    allocated: int  # of which outputs in new memory (not an in-place op's target)

    def seconds(self, roofs: Roofs) -> float:
        return max(self.flops / roofs.flops_per_s, self.bytes / roofs.bytes_per_s)

    def memory_bound(self, roofs: Roofs) -> bool:
        return self.bytes / roofs.bytes_per_s > self.flops / roofs.flops_per_s


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes the tensor's elements occupy, an expanded (stride-0) dimension once."""
    return t.element_size() * math.prod(size for size, stride in zip(t.shape, t.stride(), strict=True) if stride)


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


class _CostMode(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.costs: list[OpCost] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func._schema.is_mutable or not (func.is_view or func in _NO_TRAFFIC):
            read = {id(t): t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
            inputs = {_storage(t) for t in read.values()}
            outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
            # An output in an input's memory was written there (an in-place op) or is that input (an op that
            # returned its argument unchanged, e.g. contiguous() of a contiguous tensor).
            fresh = [t for t in outputs if _storage(t) not in inputs]
            written = fresh if not func._schema.is_mutable else outputs
            moved = sum(map(tensor_bytes, read.values())) + sum(map(tensor_bytes, written))
            fresh = sum(map(tensor_bytes, fresh))
            formula = fc.flop_registry.get(func._overloadpacket)
            flops = int(formula(*args, **kwargs, out_val=out)) if formula else 0
            self.costs.append(OpCost(str(func._overloadpacket.__name__), flops, moved, fresh))
        return out


def op_costs(fn: Callable[[], object]) -> list[OpCost]:
    """Every op one call of fn runs (backward included, where fn runs it), with its FLOPs and bytes."""
    with _CostMode() as mode:
        fn()
    return mode.costs


def bound_s(costs: list[OpCost], roofs: Roofs) -> float:
    return sum(c.seconds(roofs) for c in costs)


def measure_roofs(
    device: torch.device, dtype: torch.dtype, threads: int, min_run_time: float = 0.3, matmul: int = 1024
) -> Roofs:
    """This process's two roofs: FLOP/s of a (matmul x matmul) product and bytes/s of a 64 MiB copy, far larger
    than the caches, each the median of torch.utils.benchmark blocks."""

    def seconds(fn: Callable[[], object]) -> float:
        timer = Timer("fn()", globals={"fn": fn}, num_threads=threads)
        return timer.blocked_autorange(min_run_time=min_run_time).median

    a = torch.randn(matmul, matmul, device=device).to(dtype)
    b = torch.randn(matmul, matmul, device=device).to(dtype)
    source = torch.empty(64 * 2**20 // a.element_size(), device=device, dtype=dtype).fill_(1)
    target = torch.empty_like(source)
    rate = 2 * matmul**3 / seconds(lambda: torch.mm(a, b))
    bandwidth = 2 * tensor_bytes(source) / seconds(lambda: target.copy_(source))
    return Roofs(rate, bandwidth)
