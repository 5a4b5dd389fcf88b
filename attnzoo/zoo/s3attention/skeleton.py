"""Skeleton attention: a token branch over s1 sampled positions and a feature branch over s2 sampled channels.

Both cost O(n·s·p); nothing of size n x n is ever formed. The branches work on the heads-merged layout
(B, n, H·p) that the projections produce and the output projection consumes: each head's small (p x s) factor
sits on the diagonal of one (H·p x H·s) matrix, so every branch is one (n, H·p) product over all heads at once,
with no (B, H, n, p) transposes of the long dimension.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Dropout = Callable[[torch.Tensor], torch.Tensor]


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


def block_diagonal(blocks: torch.Tensor) -> torch.Tensor:
    """(B, H, a, b) -> (B, H·a, H·b): the H blocks on the diagonal, zeros elsewhere."""
    b, h, rows, cols = blocks.shape
    eye = torch.eye(h, dtype=blocks.dtype, device=blocks.device)
    return torch.einsum("bhij,hg->bhigj", blocks, eye).reshape(b, h * rows, h * cols)


def _masked_softmax(logits: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last dim restricted to `valid`; a row with nothing valid gets all-zero weights."""
    if valid is None:
        return logits.softmax(dim=-1)
    logits = logits.masked_fill(~valid, float("-inf"))
    shift = logits.amax(dim=-1, keepdim=True).detach()
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
    weights = (logits - shift).exp()
    return weights / weights.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)


def sampled_positions(
    index: torch.Tensor, n: int, mask: torch.Tensor | None, bound: int | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sampled positions -> (positions clamped into [0, n), validity (B or 1, s1), or None when all are valid).

    A position is valid when it lies inside the input and holds a real token; invalid ones are excluded from
    the token softmax (the released code gives padded keys logit 0 instead). `bound`, when known, is an
    exclusive upper bound of the indices: with no mask and bound <= n every position is valid, known without
    looking at the indices."""
    if mask is None and bound is not None and bound <= n:
        return index, None
    in_range = index < n
    index = index.clamp_max(n - 1)
    valid = in_range[None, :] if mask is None else in_range[None, :] & mask[:, index]
    return index, valid


def _per_head(t: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, m, H·p) -> (B, H, m, p)."""
    return t.unflatten(-1, (heads, -1)).transpose(1, 2)


def token_branch(
    q: torch.Tensor,
    k_rows: torch.Tensor,
    v_rows: torch.Tensor,
    valid: torch.Tensor | None,
    heads: int,
    dropout: Dropout = _identity,
) -> torch.Tensor:
    """``softmax(Q K[S1]^T / sqrt(p)) V[S1]`` per head: q (B, n, H·p), the sampled rows k_rows, v_rows
    (B, s1, H·p) and their validity (B or 1, s1; None = all valid) -> (B, n, H·p). A sequence with no valid
    sampled position gets zeros here."""
    b, n, width = q.shape
    s1 = k_rows.shape[1]
    scale = (width // heads) ** -0.5
    keys = block_diagonal(_per_head(k_rows * scale, heads).transpose(-1, -2))  # (B, H·p, H·s1)
    logits = (q @ keys).view(b, n, heads, s1)
    weights = _masked_softmax(logits, None if valid is None else valid[:, None, None, :])
    return dropout(weights).view(b, n, heads * s1) @ block_diagonal(_per_head(v_rows, heads))


def feature_branch(
    q: torch.Tensor,
    k_cols: torch.Tensor,
    v_cols: torch.Tensor,
    heads: int,
    mask: torch.Tensor | None = None,
    dropout: Dropout = _identity,
) -> torch.Tensor:
    """``V[:, S2] softmax(Q^T K[:, S2] / sqrt(n))^T`` per head: q (B, n, H·p), the sampled channels k_cols,
    v_cols (B, n, H·s2, head-major) -> (B, n, H·p). The softmax runs over the s2 channels; the sum over tokens
    inside Q^T K covers real tokens only, and n is each sequence's real length."""
    b, n, width = q.shape
    p, s2 = width // heads, k_cols.shape[-1] // heads
    if mask is None:
        n_real = torch.full((b,), n, device=q.device)
    else:
        k_cols = k_cols * mask[..., None].to(k_cols.dtype)
        n_real = mask.sum(dim=1)
    # Q^T K over all head pairs in one product (H·p x H·s2, tiny), then each head's own (p x s2) block.
    cross = (q.transpose(1, 2) @ k_cols).view(b, heads, p, heads, s2)
    logits = cross.diagonal(dim1=1, dim2=3).permute(0, 3, 1, 2)  # (B, H, p, s2)
    weights = dropout((logits / n_real.to(q.dtype).sqrt()[:, None, None, None]).softmax(dim=-1))
    return v_cols @ block_diagonal(weights.transpose(-1, -2))  # (B, n, H·s2) @ (B, H·s2, H·p)
