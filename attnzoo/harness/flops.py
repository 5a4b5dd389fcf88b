"""FLOP counting with torch's FlopCounterMode, plus formulas for the ops it counts as 0 on CPU.

Registered formulas (one multiply-add = 2 FLOPs, as FlopCounterMode counts matmuls):
- CPU fused SDPA (`_scaled_dot_product_flash_attention_for_cpu` and its backward): the same count torch uses for
  the CUDA flash/efficient kernels — two batched matmuls forward, four backward.
- FFTs (`_fft_r2c`, `_fft_c2r`, `_fft_c2c`): the conventional radix-2 count, 5·N·log2(N) real FLOPs for a complex
  transform of length N and half of that for a real one, times the number of transforms.
- In-place products (`baddbmm_`, `addmm_`, which accumulate into an existing tensor): as their out-of-place forms.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.utils import flop_counter as fc

aten = torch.ops.aten


def _fft_flops(shape: tuple[int, ...], dims: list[int], length: int, real: bool) -> int:
    transforms = math.prod(shape) // max(1, math.prod(shape[d] for d in dims))
    per_transform = 5 * length * math.log2(max(length, 2))
    return int(transforms * per_transform * (0.5 if real else 1.0))


@fc.register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu)
def _sdpa_cpu(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return fc.sdpa_flop_count(query_shape, key_shape, value_shape)


@fc.register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu_backward)
def _sdpa_cpu_backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return fc.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


@fc.register_flop_formula([aten.baddbmm_, aten.addmm_])
def _in_place_matmul(self_shape, a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    return fc.bmm_flop(a_shape, b_shape) if len(a_shape) == 3 else fc.mm_flop(a_shape, b_shape)


@fc.register_flop_formula(aten._fft_r2c)
def _rfft(x_shape, dim, normalization, onesided, out_shape=None, **kwargs) -> int:
    return _fft_flops(x_shape, dim, math.prod(x_shape[d] for d in dim), real=True)


@fc.register_flop_formula(aten._fft_c2r)
def _irfft(x_shape, dim, normalization, last_dim_size, out_shape=None, **kwargs) -> int:
    return _fft_flops(out_shape, dim, math.prod(out_shape[d] for d in dim), real=True)


@fc.register_flop_formula(aten._fft_c2c)
def _fft(x_shape, dim, normalization, forward, out_shape=None, **kwargs) -> int:
    return _fft_flops(x_shape, dim, math.prod(x_shape[d] for d in dim), real=False)


def count_flops(fn: Callable[[], object]) -> int:
    """Total FLOPs of one call of fn, as FlopCounterMode counts them with the formulas above."""
    with fc.FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())
