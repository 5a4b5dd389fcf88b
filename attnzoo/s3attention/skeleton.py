"""Skeleton attention: a token branch over s1 sampled positions and a feature branch over s2 sampled channels.

Both cost O(n·s·p); nothing of size n x n is ever formed."""

from __future__ import annotations

from collections.abc import Callable

import torch

Dropout = Callable[[torch.Tensor], torch.Tensor]


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


def _masked_softmax(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim restricted to `valid`; a row with nothing valid gets all-zero weights."""
    logits = logits.masked_fill(~valid, float("-inf"))
    shift = logits.amax(dim=-1, keepdim=True).detach()
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
    weights = (logits - shift).exp()
    return weights / weights.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)


def token_branch(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    index: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout: Dropout = _identity,
) -> torch.Tensor:
    """``softmax(Q K[S1]^T / sqrt(p)) V[S1]`` over the sampled positions S1 = `index` that are real tokens.

    Sampled positions beyond the input's length or at padded tokens are excluded from the softmax (the released
    code gives padded keys logit 0 instead). A sequence with no real sampled position gets zeros here."""
    n = q.shape[2]
    in_range = index < n
    index = index.clamp_max(n - 1)
    valid = in_range[None, :] if mask is None else in_range[None, :] & mask[:, index]  # (B or 1, s1)
    logits = (q @ k[:, :, index].transpose(-1, -2)) * q.shape[-1] ** -0.5  # (B, H, n, s1)
    return dropout(_masked_softmax(logits, valid[:, None, None, :])) @ v[:, :, index]


def feature_branch(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    index: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout: Dropout = _identity,
) -> torch.Tensor:
    """``V[:, S2] softmax(Q^T K[:, S2] / sqrt(n))^T`` with S2 = `index` (channels of the head); the softmax runs
    over the s2 sampled channels. The sum over tokens inside Q^T K covers real tokens only, and n is each
    sequence's real length."""
    k_s = k[..., index]  # (B, H, n, s2)
    if mask is None:
        n_real = torch.full((q.shape[0],), q.shape[2], device=q.device)
    else:
        k_s = k_s * mask[:, None, :, None].to(k.dtype)
        n_real = mask.sum(dim=1)
    logits = (q.transpose(-1, -2) @ k_s) / n_real.to(q.dtype).sqrt()[:, None, None, None]  # (B, H, p, s2)
    return v[..., index] @ dropout(logits.softmax(dim=-1)).transpose(-1, -2)  # (B, H, n, p)
