"""Linformer, wrapping the `linformer` package's LinformerSelfAttention."""

from __future__ import annotations

import torch
from einops import rearrange
from linformer import LinformerSelfAttention
from pydantic import Field
from torch import nn

from attnzoo.zoo.base import check_inputs, empty_batch
from attnzoo.zoo.params import VariantParams
from attnzoo.zoo.registry import Capabilities, register_variant


class LinformerParams(VariantParams):
    k: int = Field(256, ge=1, description="projected length of keys and values")
    share_kv: bool = Field(False, description="one projection E = F for keys and values")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the attention weights")


@register_variant(
    "linformer",
    description="Keys and values projected along the sequence to k rows by learned E, F (linformer package)",
    source="Wang et al., Linformer: Self-Attention with Linear Complexity (arXiv 2006.04768); pip linformer",
    family="low-rank",
    cost="O(n·k·p)",
    params=LinformerParams,
    capabilities=Capabilities(needs_max_seq_len=True, approximates_softmax=True),
    deviations=(
        "Key-padding mask (the package has none): padded tokens are zeroed before the bias-free key/value "
        "projections, so they drop out of E·K and F·V; inputs shorter than max_seq_len use the first n "
        "columns of E and F, as the package does.",
    ),
)
class LinformerAttention(nn.Module):
    """Linformer self-attention: ``softmax(Q (E K)^T / sqrt(p)) (F V)`` with E, F of shape (k, max_seq_len).

    `forward` is the package's own module; `attend` is the same kernel on given q, k, v (for the approximation
    suite), using this layer's E and F."""

    def __init__(
        self, dim: int, heads: int, max_seq_len: int, k: int = 256, share_kv: bool = False, dropout: float = 0.0
    ):
        super().__init__()
        self.dim, self.heads, self.max_seq_len = dim, heads, max_seq_len
        self.inner = LinformerSelfAttention(
            dim, seq_len=max_seq_len, k=k, heads=heads, share_kv=share_kv, dropout=dropout
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_inputs(x, mask, self.dim, self.max_seq_len)
        if not x.shape[0]:
            return empty_batch(x, self)
        if mask is not None:
            x = x * mask[..., None].to(x.dtype)
        return self.inner(x)

    def attend(self, q, k, v, mask=None):
        n = k.shape[-2]
        proj_k = self.inner.proj_k[:n]
        proj_v = proj_k if self.inner.share_kv else self.inner.proj_v[:n]
        if mask is not None:
            keep = mask[:, None, :, None].to(k.dtype)
            k, v = k * keep, v * keep
        k = torch.einsum("bhnp,nk->bhkp", k, proj_k.to(k.dtype))
        v = torch.einsum("bhnp,nk->bhkp", v, proj_v.to(v.dtype))
        attn = (q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5).softmax(dim=-1)
        return attn @ v

    def projections(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The package's q, k, v projections of x, as (B, H, n, p) each."""
        inner = self.inner
        return tuple(
            rearrange(f(x), "b n (h p) -> b h n p", h=self.heads) for f in (inner.to_q, inner.to_k, inner.to_v)
        )

    def project_out(self, out: torch.Tensor) -> torch.Tensor:
        return self.inner.to_out(rearrange(out, "b h n p -> b n (h p)"))
