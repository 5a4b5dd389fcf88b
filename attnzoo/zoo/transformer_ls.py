"""Transformer-LS (long-short attention): each query attends jointly, in one softmax, to its segment's sliding
window of keys (short-term) and to r keys/values that a learned, input-dependent projection compresses the whole
sequence into (long-term), with a LayerNorm on each side (DualLN)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from pydantic import Field
from torch import nn

from attnzoo.zoo.base import check_inputs, empty_batch
from attnzoo.zoo.params import VariantParams
from attnzoo.zoo.registry import Capabilities, register_variant


class TransformerLSParams(VariantParams):
    window_size: int = Field(16, ge=1, description="w: queries in a segment; each sees w + 2·(w/2) keys around it")
    num_landmarks: int = Field(32, ge=1, description="r: keys and values of the dynamic projection")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the attention weights")


@register_variant(
    "transformer-ls",
    description="Long-short attention: a segment-wise sliding window plus a dynamic low-rank projection, one softmax",
    source="Zhu et al., Long-Short Transformer (NeurIPS 2021, arXiv 2107.02192); the LRA implementation the "
    "S3Attention release ships (github wxie9/S3Attention, lra/attention_transformer_ls.py)",
    family="low-rank",
    cost="O(n·(w + r)·p)",
    params=TransformerLSParams,
    capabilities=Capabilities(),
    deviations=(
        "Any length: the sequence is padded inside the layer to a multiple of the window (the release needs a "
        "multiple of w); padded positions are masked keys, as the release masks its padding.",
        "No CLS-token path and no optional depthwise convolution of V (the release's LRA default leaves it off).",
        "Defaults w = 16, r = 32 are ours; the release's scripts set both per task.",
    ),
)
class TransformerLSAttention(nn.Module):
    """Its own projections (with biases, as released): Q scaled by 1/sqrt(p); K and V through one LayerNorm over all
    heads (DualLN's long side); the compressed K and V through a second (its short side)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        max_seq_len: int | None = None,
        window_size: int = 16,
        num_landmarks: int = 32,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.dim, self.heads, self.dim_head, self.max_seq_len = dim, heads, dim // heads, max_seq_len
        self.window_size, self.num_landmarks = window_size, num_landmarks
        self.to_q, self.to_k, self.to_v, self.to_out = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_keys, self.norm_compressed = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.to_projection = nn.Linear(dim, heads * num_landmarks)
        self.dropout = nn.Dropout(dropout)

    def split(self, t: torch.Tensor) -> torch.Tensor:
        return rearrange(t, "b n (h p) -> b h n p", h=self.heads)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_inputs(x, mask, self.dim, self.max_seq_len)
        if not x.shape[0]:
            return empty_batch(x, self)
        b, n, _ = x.shape
        w, r = self.window_size, self.num_landmarks
        real = torch.ones(b, n, dtype=torch.bool, device=x.device) if mask is None else mask
        pad = -n % w
        if pad:
            x, real = F.pad(x, (0, 0, 0, pad)), F.pad(real, (0, pad), value=False)
        q = self.split(self.to_q(x)) / math.sqrt(self.dim_head)
        k, v = self.split(self.norm_keys(self.to_k(x))), self.split(self.norm_keys(self.to_v(x)))

        # Long-term: r keys and values, each a softmax-weighted mix over the real positions (per head).
        weights = self.to_projection(x).masked_fill(~real[:, :, None], float("-inf")).softmax(dim=1)
        weights = rearrange(weights, "b n (h r) -> b h r n", h=self.heads)
        compressed = [self.split(self.norm_compressed(rearrange(weights @ t, "b h r p -> b r (h p)"))) for t in (k, v)]
        long_scores = q @ compressed[0].transpose(-1, -2)  # (b, h, N, r)

        # Short-term: segments of w queries, each against the keys from w/2 before it to w/2 after it.
        ext = max(w // 2, 1)
        span = w + 2 * ext
        segments = q.shape[2] // w
        k_tiles = _tiles(k, ext, w, span, segments).transpose(-1, -2)  # (b, h, N/w, p, span)
        v_tiles = _tiles(v, ext, w, span, segments)  # (b, h, N/w, span, p)
        seen = F.pad(real, (ext, ext), value=False).unfold(1, span, w)[:, None, :, None, :]  # real keys in range
        short_scores = (q.reshape(b, self.heads, segments, w, self.dim_head) @ k_tiles).masked_fill(
            ~seen, float("-inf")
        )

        scores = torch.cat([long_scores, short_scores.reshape(b, self.heads, -1, span)], dim=-1)
        probs = scores.float().softmax(dim=-1).to(q.dtype)
        probs = self.dropout(probs.masked_fill(~real[:, None, :, None], 0))
        out = probs[..., :r] @ compressed[1]
        short = probs[..., r:].reshape(b, self.heads, segments, w, span) @ v_tiles
        out = out + short.reshape(b, self.heads, -1, self.dim_head)
        return self.to_out(rearrange(out, "b h n p -> b n (h p)"))[:, :n]


def _tiles(t: torch.Tensor, ext: int, w: int, span: int, segments: int) -> torch.Tensor:
    """(b, h, N, p) -> (b, h, N/w, span, p): for each segment of w rows, the rows from ext before it to ext after it
    (zeros beyond the ends), as overlapping views of one padded copy. as_strided rather than unfold: its backward
    is a single index-add, where unfold's costs a tenth of the layer's time."""
    padded = F.pad(t, (0, 0, ext, ext))
    b, h, _, p = padded.shape
    s0, s1, s2, s3 = padded.stride()
    return padded.as_strided((b, h, segments, span, p), (s0, s1, w * s2, s2, s3))
