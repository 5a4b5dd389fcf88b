"""Informer's ProbSparse self-attention (encoder form)."""

from __future__ import annotations

import math

import torch
from pydantic import Field

from attnzoo.zoo.base import ProjectedAttention, Sampler, real_positions, sample_real
from attnzoo.zoo.params import SamplingParams
from attnzoo.zoo.registry import Capabilities, register_variant


class InformerParams(SamplingParams):
    factor: int = Field(5, ge=1, description="c: U = c·ceil(ln n) sampled keys, u = c·ceil(ln n) active queries")


@register_variant(
    "informer",
    description="ProbSparse: exact attention for the top-u 'active' queries, mean(V) for the rest",
    source="Zhou et al., Informer (AAAI 2021, arXiv 2012.07436); authors' code github zhouhaoyi/Informer2020",
    family="sparse",
    cost="O(n·log n·p)",
    params=InformerParams,
    capabilities=Capabilities(approximates_softmax=True, stochastic=True, padding_equivalent=False),
    deviations=(
        "Key-padding mask (the original has none): keys are sampled among real tokens only, the sparsity "
        "score divides by the real key count, active queries are chosen among real queries, softmax excludes "
        "padded keys, and inactive queries get the mean of the real values.",
        "U and u are computed from the padded length n.",
    ),
)
class InformerAttention(ProjectedAttention):
    def __init__(self, dim: int, heads: int, max_seq_len: int | None = None, factor: int = 5, seed: int | None = None):
        super().__init__(dim, heads, max_seq_len)
        self.factor = factor
        self.sampler = Sampler(seed)

    def attend(self, q, k, v, mask=None):
        b, h, n, p = q.shape
        real = torch.ones(b, n, dtype=torch.bool, device=q.device) if mask is None else mask
        n_real = real.sum(dim=1)
        # U sampled keys per query and u active queries; equal here because self-attention has n_q = n_k.
        n_keys = n_top = min(self.factor * math.ceil(math.log(n)), n) if n > 1 else 1
        # As in the original, one set of sampled key indices per query, shared over batch and heads.
        uniform = self.sampler.rand(1, n, n_keys, device=q.device).expand(b, n, n_keys)
        sampled = sample_real(real_positions(real), n_real, uniform).reshape(b, n * n_keys)
        # Whole key rows by index, then one (1 x p) @ (p x U) product per query, as the original does; a gather
        # with an index expanded over every channel and a broadcast multiply-sum cost several times as much.
        # One index_select over keys laid out (H, B·n, p), so the largest tensor is written once (a per-batch
        # select and a stack would copy it again); for B = 1 the layout change is a view.
        offsets = (torch.arange(b, device=q.device) * n)[:, None]
        by_head = k.transpose(0, 1).reshape(h, b * n, p).index_select(1, (sampled + offsets).flatten())
        k_sample = by_head.view(h, b, n, n_keys, p).transpose(0, 1)  # (B, H, n, U, p)
        qk_sample = (q.unsqueeze(-2) @ k_sample.transpose(-1, -2)).squeeze(-2)  # (B, H, n, U)
        sparsity = qk_sample.amax(dim=-1) - qk_sample.sum(dim=-1) / n_real.view(b, 1, 1)
        sparsity = sparsity.masked_fill(~real[:, None, :], float("-inf"))
        top = sparsity.topk(n_top, dim=-1).indices  # (B, H, u)

        keep = real[:, None, :, None].to(v.dtype)
        out = ((v * keep).sum(dim=2, keepdim=True) / n_real.view(b, 1, 1, 1)).expand(b, h, n, p)
        q_top = torch.gather(q, 2, top[..., None].expand(b, h, n_top, p))
        scores = (q_top @ k.transpose(-1, -2)) * p**-0.5
        scores = scores.masked_fill(~real[:, None, None, :], float("-inf"))
        exact_rows = scores.softmax(dim=-1) @ v
        return out.scatter(2, top[..., None].expand(b, h, n_top, p), exact_rows)
