"""Diagnostics for the paper's claim that smoothing lowers the incoherence of the token matrix."""

from __future__ import annotations

import torch


def incoherence(x: torch.Tensor, rank: int) -> float:
    """mu-incoherence of a token matrix x (n tokens, d features) at `rank`:
    ``mu = (n / rank) * max_i ||U_i||^2`` with U the top-`rank` left singular vectors (rows = tokens).

    mu lies in [1, n / rank]; 1 means the row space's energy is spread evenly over tokens, so few uniformly
    sampled tokens suffice to sketch it."""
    if x.dim() != 2:
        raise ValueError(f"expected a (tokens, features) matrix, got shape {tuple(x.shape)}")
    n, d = x.shape
    if not 1 <= rank <= min(n, d):
        raise ValueError(f"rank must be in [1, {min(n, d)}] for a {n}x{d} matrix, got {rank}")
    u = torch.linalg.svd(x.double(), full_matrices=False).U[:, :rank]
    return float(n / rank * u.square().sum(dim=1).max())
