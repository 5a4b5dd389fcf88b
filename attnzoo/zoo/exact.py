"""Exact softmax attention three ways: textbook (materialised n x n), torch's fused SDPA, xformers."""

from __future__ import annotations

import functools
import importlib.util
from importlib import metadata

import torch
import torch.nn.functional as F
from pydantic import Field

from attnzoo.zoo.base import ProjectedAttention, key_bias_mask
from attnzoo.zoo.params import VariantParams
from attnzoo.zoo.registry import AVAILABLE, Availability, Capabilities, register_variant

VASWANI = "Vaswani et al., Attention Is All You Need (NeurIPS 2017)"


class ExactParams(VariantParams):
    causal: bool = Field(False, description="mask future keys (autoregressive attention)")


HALF = ("float32", "bfloat16", "float16")  # the kernels take every half type on both devices
EXACT = Capabilities(causal=True, approximates_softmax=True, exact=True, dtypes=HALF)


def _causal_mask(n: int, device: torch.device) -> torch.Tensor:
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


class _ExactAttention(ProjectedAttention):
    def __init__(self, dim: int, heads: int, max_seq_len: int | None = None, causal: bool = False):
        super().__init__(dim, heads, max_seq_len)
        self.causal = causal


@register_variant(
    "vanilla",
    description="Textbook softmax attention; materialises the n x n score matrix",
    source=VASWANI,
    family="exact",
    cost="O(n²·p) time, O(n²) memory",
    params=ExactParams,
    capabilities=EXACT,
)
class VanillaAttention(_ExactAttention):
    def attend(self, q, k, v, mask=None):
        scores = (q @ k.transpose(-1, -2)) * self.dim_head**-0.5
        if mask is not None:
            scores = scores.masked_fill(~key_bias_mask(mask), float("-inf"))
        if self.causal:
            scores = scores.masked_fill(~_causal_mask(q.shape[-2], q.device), float("-inf"))
        return scores.softmax(dim=-1) @ v


@register_variant(
    "sdpa",
    description="torch.nn.functional.scaled_dot_product_attention (fused kernels: flash / memory-efficient)",
    source="PyTorch fused SDPA; Dao et al. FlashAttention (2022), Rabe & Staats (2021)",
    family="exact",
    cost="O(n²·p) time, O(n) memory with fused kernels",
    params=ExactParams,
    capabilities=EXACT,
)
class SDPAttention(_ExactAttention):
    def attend(self, q, k, v, mask=None):
        attn_mask = key_bias_mask(mask)
        if self.causal and attn_mask is not None:
            # SDPA refuses is_causal together with attn_mask: fold both into one boolean mask.
            attn_mask = attn_mask & _causal_mask(q.shape[-2], q.device)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=self.causal)


def _xformers_availability() -> Availability:
    if importlib.util.find_spec("xformers") is None:
        return Availability(False, "xformers is not installed", "pip install 'attnzoo[xformers]' on a CUDA machine")
    if not torch.cuda.is_available():
        return Availability(False, "needs CUDA (xformers has no CPU kernels)", "run on a machine with a CUDA GPU")
    return _xformers_kernels_run()


@functools.cache
def _xformers_kernels_run(device: str = "cuda") -> Availability:
    """An installed xformers may hold no kernels for this torch (a wheel built against another torch or CUDA
    imports, warns, and fails at the first call): one tiny call says."""
    try:
        import xformers.ops as xops

        q = torch.zeros(1, 8, 1, 32, device=device, dtype=torch.float16)
        xops.memory_efficient_attention(q, q, q)
    except Exception as err:  # noqa: BLE001 - any failure means its kernels cannot run here
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return Availability(
            False,
            f"xformers {_version('xformers')} has no working CUDA kernels with torch {torch.__version__} "
            f"({first_line})",
            "install the xformers release built for this torch and CUDA (see xformers' install notes)",
        )
    return AVAILABLE


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "(version unknown)"


@register_variant(
    "xformers",
    description="xformers.ops.memory_efficient_attention (CUDA kernels)",
    source="Lefaudeux et al., xformers (Meta); Rabe & Staats, Self-attention Does Not Need O(n²) Memory (2021)",
    family="exact",
    cost="O(n²·p) time, O(n) memory",
    params=ExactParams,
    capabilities=Capabilities(causal=True, approximates_softmax=True, exact=True, devices=("cuda",), dtypes=HALF),
    availability=_xformers_availability,
)
class XFormersAttention(_ExactAttention):
    def attend(self, q, k, v, mask=None):
        import xformers.ops as xops

        b, h, n, _ = q.shape
        bias = None
        if mask is not None or self.causal:
            # xformers takes an additive bias; its kernels want the last dim's storage padded to a multiple
            # of 8, hence the allocate-then-slice.
            allowed = torch.ones(b, 1, n, n, dtype=torch.bool, device=q.device)
            if mask is not None:
                allowed = allowed & key_bias_mask(mask)
            if self.causal:
                allowed = allowed & _causal_mask(n, q.device)
            storage = torch.zeros(b, h, n, (n + 7) // 8 * 8, dtype=q.dtype, device=q.device)
            bias = storage[..., :n]
            bias.masked_fill_(~allowed, float("-inf"))
        # xformers uses the (B, n, H, p) layout.
        out = xops.memory_efficient_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_bias=bias)
        return out.transpose(1, 2)
