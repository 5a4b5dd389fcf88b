"""The one model every variant is trained in: only the attention layer changes."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from attnzoo.tasks.base import PAD


class Block(nn.Module):
    """Pre-LN: x + attn(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, dim: int, ffn_dim: int, dropout: float, attention: nn.Module):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = attention
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.norm1(x), mask=mask))
        return x + self.dropout(self.ffn(self.norm2(x)))


class ShortConv(nn.Module):
    """x + a depthwise causal convolution over the last `width` tokens: each position sees its predecessors'
    embeddings before any attention, as Hyena, H3 and Based models do with their short convolutions."""

    def __init__(self, dim: int, width: int):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, width, groups=dim, padding=width - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x.transpose(1, 2))[..., : x.shape[1]].transpose(1, 2)


class Encoder(nn.Module):
    """Learned token + position embeddings, an optional short convolution, `depth` blocks, final LN, mean pooling
    over real tokens."""

    def __init__(
        self,
        make_attention: Callable[[], nn.Module],
        vocab_size: int,
        seq_len: int,
        dim: int,
        depth: int,
        ffn_dim: int,
        dropout: float,
        short_conv: int = 0,
    ):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.positions = nn.Embedding(seq_len, dim)
        self.short_conv = ShortConv(dim, short_conv) if short_conv > 1 else nn.Identity()
        self.blocks = nn.ModuleList([Block(dim, ffn_dim, dropout, make_attention()) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def states(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n) tokens -> the final normed states (B, n, dim) and the mask of real tokens."""
        mask = tokens != PAD
        mask[:, 0] = True  # an empty document still has one position to pool
        x = self.tokens(tokens) + self.positions(torch.arange(tokens.shape[1], device=tokens.device))
        x = self.short_conv(x)
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x), mask

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x, mask = self.states(tokens)
        keep = mask[..., None].to(x.dtype)
        return (x * keep).sum(dim=1) / keep.sum(dim=1)


class Classifier(nn.Module):
    """One document -> classes; or two documents through the same encoder (two towers, shared weights) ->
    classes from [u, v, u*v, u-v], as in LRA's matching task."""

    def __init__(self, encoder: Encoder, dim: int, num_classes: int, two_tower: bool):
        super().__init__()
        self.encoder, self.two_tower = encoder, two_tower
        width = 4 * dim if two_tower else dim
        self.head = nn.Sequential(nn.Linear(width, dim), nn.GELU(), nn.Linear(dim, num_classes))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if not self.two_tower:
            return self.head(self.encoder(tokens))
        u, v = self.encoder(tokens.flatten(0, 1)).unflatten(0, (tokens.shape[0], 2)).unbind(1)
        return self.head(torch.cat([u, v, u * v, u - v], dim=-1))


class Tagger(nn.Module):
    """Per-token classes from the same encoder's states (a per-token task such as associative recall)."""

    def __init__(self, encoder: Encoder, dim: int, num_classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(dim, num_classes)

    def forward(self, tokens: torch.Tensor, scored: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n, classes), or (positions, classes) at the positions `scored` (bool, (B, n)) marks."""
        states = self.encoder.states(tokens)[0]
        return self.head(states if scored is None else states[scored])
