"""cosFormer: ReLU features re-weighted by cos(π/2 · (i - j) / M), which splits into sine and cosine halves so that
attention stays linear in n; causal by running sums."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field

from attnzoo.zoo.base import ProjectedAttention
from attnzoo.zoo.linear import causal_sums, full_sums
from attnzoo.zoo.params import VariantParams
from attnzoo.zoo.registry import Capabilities, register_variant

EPS = 1e-6  # the release's floor under the normaliser


class CosformerParams(VariantParams):
    causal: bool = Field(False, description="each query sees the keys up to its own position (running sums)")


@register_variant(
    "cosformer",
    description="ReLU features with a cos-based distance re-weighting, linear in n",
    source="Qin et al., cosFormer: Rethinking Softmax in Attention (ICLR 2022, arXiv 2202.08791); authors' code "
    "github OpenNLPLab/cosFormer",
    family="kernel",
    cost="O(n·p²)",
    params=CosformerParams,
    capabilities=Capabilities(causal=True),
    deviations=(
        "Key-padding mask (the release has none): padded keys' features are zeroed, and M, the length in the "
        "re-weighting, is each sequence's count of real tokens (the release: the padded length), so a padded "
        "sequence gives what it gives alone.",
        "Causal attention runs in chunks of 64 positions (the release: one cumulative sum over an (n, 2p, p) "
        "tensor); the normaliser is floored at 1e-6 in both, as released.",
    ),
)
class CosformerAttention(ProjectedAttention):
    def __init__(self, dim: int, heads: int, max_seq_len: int | None = None, causal: bool = False):
        super().__init__(dim, heads, max_seq_len)
        self.causal = causal

    def attend(self, q, k, v, mask=None):
        n = q.shape[-2]
        q, k = F.relu(q), F.relu(k)
        if mask is None:
            length = torch.full((q.shape[0], 1, 1, 1), float(n), dtype=q.dtype, device=q.device)
        else:
            k = k * mask[:, None, :, None].to(k.dtype)
            length = mask.sum(dim=1).to(q.dtype)[:, None, None, None]
        angle = math.pi / 2 * torch.arange(1, n + 1, dtype=q.dtype, device=q.device)[:, None] / length  # (B,1,n,1)
        q = torch.cat([q * angle.sin(), q * angle.cos()], dim=-1)
        k = torch.cat([k * angle.sin(), k * angle.cos()], dim=-1)
        numerator, normaliser = causal_sums(q, k, v) if self.causal else full_sums(q, k, v)
        return numerator / normaliser.clamp_min(EPS)
