"""Local attention: softmax attention inside windows of w tokens, each query seeing its own window and the one
before (and, not causal, the one after), as lucidrains' local-attention package computes it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from attnzoo.zoo.base import ProjectedAttention
from attnzoo.zoo.params import VariantParams
from attnzoo.zoo.registry import Capabilities, register_variant


class LocalParams(VariantParams):
    window_size: int = Field(64, ge=1, description="tokens per window")
    causal: bool = Field(
        False, description="each query sees keys up to its own position (its window and the one before)"
    )


@register_variant(
    "local",
    description="Sliding-window softmax attention: a query attends to its window of w tokens and the neighbours",
    source="Beltagy et al. / Parmar et al. (local attention); the windowing of github lucidrains/local-attention",
    family="sparse",
    cost="O(n·w·p)",
    params=LocalParams,
    capabilities=Capabilities(causal=True, approximates_softmax=True),
    deviations=(
        "The package's windowing (look_backward=1, look_forward=1, or 0 when causal; exact_windowsize=False; "
        "autopad): a query sees 2w-3w tokens depending on its place in its window; without the package's "
        "default rotary embeddings (positions are the model's, as for every variant).",
    ),
)
class LocalAttention(ProjectedAttention):
    def __init__(
        self, dim: int, heads: int, max_seq_len: int | None = None, window_size: int = 64, causal: bool = False
    ):
        super().__init__(dim, heads, max_seq_len)
        self.window_size, self.causal = window_size, causal

    def attend(self, q, k, v, mask=None):
        b, h, n, p = q.shape
        w = self.window_size
        pad = -n % w
        real = q.new_ones(b, n, dtype=torch.bool) if mask is None else mask
        if pad:
            q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
            real = F.pad(real, (0, pad), value=False)
        windows = (n + pad) // w
        forward = 0 if self.causal else 1
        q = q.reshape(b, h, windows, w, p) * p**-0.5
        k, v = (_around(t.reshape(b, h, windows, w, p), forward) for t in (k, v))  # (b, h, windows, (2+f)·w, p)
        position = torch.arange(n + pad, device=q.device).reshape(windows, w)
        seen = _around(position.to(q.dtype)[None, None, ..., None], forward, fill=-1.0)[0, 0, ..., 0]  # key positions
        allowed = _around(real.reshape(b, 1, windows, w, 1), forward, fill=False)[..., 0]  # real keys, in range
        allowed = allowed[:, :, :, None, :]  # (b, 1, windows, 1, keys)
        if self.causal:
            allowed = allowed & (seen[None, None, :, None, :] <= position[None, None, :, :, None])
        scores = (q @ k.transpose(-1, -2)).masked_fill(~allowed, torch.finfo(q.dtype).min)
        out = scores.softmax(dim=-1) @ v
        return out.reshape(b, h, windows * w, p)[:, :, :n]


def _around(t: torch.Tensor, forward: int, fill: float | bool = 0.0) -> torch.Tensor:
    """(..., windows, w, e) -> (..., windows, (1 + 1 + forward)·w, e): each window with the one before (and after),
    `fill` beyond the ends."""
    windows = t.shape[-3]
    padded = F.pad(t, (0, 0, 0, 0, 1, forward), value=fill)
    parts = [padded[..., i : i + windows, :, :] for i in range(2 + forward)]
    return torch.cat(parts, dim=-2)
