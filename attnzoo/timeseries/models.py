"""The forecasters: one attention encoder for every variant, and the baselines an honest table needs beside it.

Every model maps an input window (B, L, C) to a forecast (B, H, C), multivariate in and out, on standardised values.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from attnzoo.tasks.model import Block

NAIVE = ("repeat-last", "seasonal-naive")  # no parameters: evaluated, not trained
BASELINES = (*NAIVE, "dlinear")


def sinusoids(length: int, dim: int) -> torch.Tensor:
    """The fixed sine/cosine positions of the Transformer (and of Informer's encoder)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


class AttentionForecaster(nn.Module):
    """Value embedding (a linear map of the C channels at each step) + fixed sinusoidal positions, `depth` pre-LN
    blocks with the variant's attention (the same block as the accuracy tasks' encoder), a final LayerNorm, then a
    linear head to the horizon: each step's state back to C channels, and one linear map over time, L steps to H,
    shared by the channels. No time-of-day/calendar features: the head sees positions only, as the attention does."""

    def __init__(
        self,
        make_attention: Callable[[], nn.Module],
        channels: int,
        input_len: int,
        horizon: int,
        dim: int,
        depth: int,
        ffn_dim: int,
        dropout: float,
    ):
        super().__init__()
        self.embed = nn.Linear(channels, dim)
        self.register_buffer("positions", sinusoids(input_len, dim), persistent=False)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([Block(dim, ffn_dim, dropout, make_attention()) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.to_channels = nn.Linear(dim, channels)
        self.over_time = nn.Linear(input_len, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.embed(x) + self.positions)
        for block in self.blocks:
            h = block(h, None)
        y = self.to_channels(self.norm(h))  # (B, L, C)
        return self.over_time(y.transpose(1, 2)).transpose(1, 2)


class DLinear(nn.Module):
    """DLinear (Zeng et al., 2023, "Are Transformers Effective for Time Series Forecasting?"): the window split
    into a moving-average trend (kernel 25, ends padded by repeating the first and last rows) and the remainder,
    each mapped L -> H by one linear layer over time shared by the channels (the paper's non-individual setting);
    weights start at 1/L as in the authors' code."""

    def __init__(self, input_len: int, horizon: int, kernel: int = 25):
        super().__init__()
        self.kernel = kernel
        self.seasonal, self.trend = nn.Linear(input_len, horizon), nn.Linear(input_len, horizon)
        for layer in (self.seasonal, self.trend):
            nn.init.constant_(layer.weight, 1.0 / input_len)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = (self.kernel - 1) // 2
        padded = torch.cat([x[:, :1].expand(-1, pad, -1), x, x[:, -1:].expand(-1, pad, -1)], dim=1)
        trend = nn.functional.avg_pool1d(padded.transpose(1, 2), self.kernel, stride=1)  # (B, C, L)
        seasonal = x.transpose(1, 2) - trend
        return (self.seasonal(seasonal) + self.trend(trend)).transpose(1, 2)


def repeat_last(x: torch.Tensor, horizon: int) -> torch.Tensor:
    """Every future step is the last observed value."""
    return x[:, -1:].expand(-1, horizon, -1)


def seasonal_naive(x: torch.Tensor, horizon: int, period: int) -> torch.Tensor:
    """Step t of the future is the value one period (or a whole number of periods) before it: the last observed
    season, repeated."""
    season = x[:, -period:]
    return season.repeat(1, math.ceil(horizon / period), 1)[:, :horizon]
