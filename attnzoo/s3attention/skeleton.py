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


def sampled_positions(index: torch.Tensor, n: int, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sampled positions -> (positions clamped into [0, n), validity (B or 1, s1)).

    A position is valid when it lies inside the input and holds a real token; invalid ones are excluded from
    the token softmax (the released code gives padded keys logit 0 instead)."""
    in_range = index < n
    index = index.clamp_max(n - 1)
    valid = in_range[None, :] if mask is None else in_range[None, :] & mask[:, index]
    return index, valid


def token_branch(
    q: torch.Tensor, k_rows: torch.Tensor, v_rows: torch.Tensor, valid: torch.Tensor, dropout: Dropout = _identity
) -> torch.Tensor:
    """``softmax(Q K[S1]^T / sqrt(p)) V[S1]``: q (B, H, n, p), the sampled rows k_rows, v_rows (B, H, s1, p) and
    their validity (B or 1, s1). A sequence with no valid sampled position gets zeros here."""
    logits = (q @ k_rows.transpose(-1, -2)) * q.shape[-1] ** -0.5  # (B, H, n, s1)
    return dropout(_masked_softmax(logits, valid[:, None, None, :])) @ v_rows


def feature_branch(
    q: torch.Tensor,
    k_cols: torch.Tensor,
    v_cols: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout: Dropout = _identity,
) -> torch.Tensor:
    """``V[:, S2] softmax(Q^T K[:, S2] / sqrt(n))^T``: q (B, H, n, p), the sampled channels k_cols, v_cols
    (B, H, n, s2). The softmax runs over the s2 channels; the sum over tokens inside Q^T K covers real tokens
    only, and n is each sequence's real length."""
    if mask is None:
        n_real = torch.full((q.shape[0],), q.shape[2], device=q.device)
    else:
        k_cols = k_cols * mask[:, None, :, None].to(k_cols.dtype)
        n_real = mask.sum(dim=1)
    logits = (q.transpose(-1, -2) @ k_cols) / n_real.to(q.dtype).sqrt()[:, None, None, None]  # (B, H, p, s2)
    return v_cols @ dropout(logits.softmax(dim=-1)).transpose(-1, -2)  # (B, H, n, p)
