"""The one interface: ``forward(x, mask=None)`` with the projections convention every variant shares.

x is (B, n, dim); mask is bool (B, n), True for real tokens. Variants with the standard projections subclass
`ProjectedAttention` and implement only the kernel ``attend(q, k, v, mask) -> (B, H, n, p)``.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn


def check_inputs(x: torch.Tensor, mask: torch.Tensor | None, dim: int, max_seq_len: int | None = None) -> None:
    """Reject malformed inputs with a message that says what shape was expected."""
    if x.dim() != 3 or x.shape[-1] != dim:
        raise ValueError(f"expected x of shape (batch, seq_len, {dim}), got {tuple(x.shape)}")
    if max_seq_len is not None and x.shape[1] > max_seq_len:
        raise ValueError(f"sequence length {x.shape[1]} exceeds this layer's max_seq_len={max_seq_len}")
    if mask is None:
        return
    if mask.dtype != torch.bool or mask.shape != x.shape[:2]:
        raise ValueError(
            f"mask must be a bool tensor of shape {tuple(x.shape[:2])} (True = real token), "
            f"got {mask.dtype} {tuple(mask.shape)}"
        )
    if not bool(mask.any(dim=1).all()):
        raise ValueError("every sequence needs at least one real token (a mask row is all False)")


def empty_batch(x: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """The output for a batch of zero sequences: zeros of x's shape, still connected to the parameters so that
    backward works as it does on any other batch. Every variant answers an empty batch this way."""
    return x.new_zeros(x.shape) + sum((p.sum() * 0 for p in module.parameters()), x.new_zeros(()))


def key_bias_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B, n) key-padding mask -> (B, 1, 1, n), broadcastable over heads and queries."""
    return None if mask is None else mask[:, None, None, :]


class Sampler:
    """Random draws for sampling variants: from the layer's own seeded generator, or torch's global RNG.

    Draws happen on the CPU generator and move to the data's device, so a seed means the same samples on
    every device."""

    def __init__(self, seed: int | None):
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)

    def rand(self, *shape: int, device: torch.device) -> torch.Tensor:
        return torch.rand(*shape, generator=self.generator).to(device)


def real_positions(mask: torch.Tensor) -> torch.Tensor:
    """(B, n) bool -> (B, n) indices with each row's real positions first, in order."""
    return torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices


def sample_real(positions: torch.Tensor, n_real: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Map uniforms in [0, 1) of shape (B, ...) to real positions drawn uniformly with replacement."""
    b = positions.shape[0]
    view = (b,) + (1,) * (uniform.dim() - 1)
    slot = (uniform * n_real.view(view)).long().clamp_max(positions.shape[1] - 1)
    return torch.gather(positions, 1, slot.reshape(b, -1)).reshape(slot.shape)


class ProjectedAttention(nn.Module):
    """Multi-head attention with the shared projections: one bias-free Linear(dim, 3·dim) to q, k, v, heads of
    width p = dim / heads, and an output Linear(dim, dim)."""

    def __init__(self, dim: int, heads: int, max_seq_len: int | None = None):
        super().__init__()
        self.dim, self.heads, self.dim_head, self.max_seq_len = dim, heads, dim // heads, max_seq_len
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_inputs(x, mask, self.dim, self.max_seq_len)
        if not x.shape[0]:
            return empty_batch(x, self)
        return self.project_out(self.attend(*self.projections(x), mask))

    def projections(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, n, dim) -> q, k, v, each (B, H, n, p)."""
        return rearrange(self.to_qkv(x), "b n (three h p) -> three b h n p", three=3, h=self.heads)

    def project_out(self, out: torch.Tensor) -> torch.Tensor:
        """(B, H, n, p) -> (B, n, dim)."""
        return self.to_out(rearrange(out, "b h n p -> b n (h p)"))

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, H, n, p) q, k, v and an optional (B, n) key-padding mask -> (B, H, n, p)."""
        raise NotImplementedError
