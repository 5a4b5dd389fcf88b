"""The forecasting backbones an attention variant is swapped into. Each maps an input window (B, L, C) to a forecast
(B, H, C) on standardised values, and says how many tokens its attention sees (the variant's sequence length).

- `encoder`: one token per time step carrying all C channels (attnzoo's first forecaster, `AttentionForecaster`).
- `channel-independent`: each channel its own series, normalised per window (RevIN without the affine map), one
  token per step: PatchTST's configuration with patching off (Nie et al., ICLR 2023, Table 10), so that n = L.
- `patch`: the same over patches of `patch_len` steps every `stride` steps (PatchTST's 16/8), the series padded at the
  end by repeating its last value `stride` times, as PatchTST pads.
- `s3-paper`: the forecasting model of the S3Attention release (github wxie9/S3Attention, `Time Series/run.py`,
  class `SKTLinear`), with the zoo's attention in place of the release's own. Deviations are listed in its class.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from attnzoo.tasks.model import Block
from attnzoo.timeseries.models import AttentionForecaster, sinusoids

MakeAttention = Callable[[int], nn.Module]  # sequence length -> an attention layer of the recipe's dim and heads


@dataclass(frozen=True)
class Shape:
    """What a backbone builds from: the series' channels, input length and horizon, the encoder's sizes."""

    channels: int
    input_len: int
    horizon: int
    dim: int
    depth: int
    ffn_dim: int
    dropout: float
    patch_len: int = 16
    stride: int = 8


def patches(input_len: int, patch_len: int, stride: int) -> int:
    """PatchTST's token count: the series padded by `stride` repeats of its last value, then cut every `stride`."""
    return (input_len + stride - patch_len) // stride + 1


def tokens(backbone: str, shape: Shape) -> int:
    """The sequence length the backbone's attention sees."""
    return patches(shape.input_len, shape.patch_len, shape.stride) if backbone == "patch" else shape.input_len


def per_window_norm(
    x: torch.Tensor, eps: float, unbiased: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, L, C) -> x normalised per window and channel over time, its mean and its scale sqrt(var + eps)."""
    mean = x.mean(dim=1, keepdim=True)
    scale = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=unbiased) + eps)
    return (x - mean) / scale, mean, scale


class ChannelIndependent(nn.Module):
    """Each channel a separate series (weights shared across channels), normalised per window (subtract the mean,
    divide by sqrt(var + 1e-5), restored at the output: RevIN without its affine map); tokens are single steps or
    patches, linearly embedded, plus learned positions (PatchTST's, initialised uniform in ±0.02); pre-LN blocks
    with the variant's attention (attnzoo's one block, where PatchTST uses BatchNorm); a flatten head mapping all
    tokens' states to the horizon."""

    def __init__(self, make_attention: MakeAttention, shape: Shape, patch: bool):
        super().__init__()
        self.patch_len, self.stride = (shape.patch_len, shape.stride) if patch else (1, 1)
        self.pad = shape.stride if patch else 0
        n = tokens("patch" if patch else "channel-independent", shape)
        self.embed = nn.Linear(self.patch_len, shape.dim)
        self.positions = nn.Parameter(torch.empty(n, shape.dim).uniform_(-0.02, 0.02))
        self.dropout = nn.Dropout(shape.dropout)
        self.blocks = nn.ModuleList(
            [Block(shape.dim, shape.ffn_dim, shape.dropout, make_attention(n)) for _ in range(shape.depth)]
        )
        self.norm = nn.LayerNorm(shape.dim)
        self.head = nn.Sequential(nn.Flatten(-2), nn.Dropout(shape.dropout), nn.Linear(n * shape.dim, shape.horizon))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        x, mean, scale = per_window_norm(x, eps=1e-5)
        series = x.transpose(1, 2).reshape(b * c, -1)  # (B·C, L)
        if self.pad:
            series = torch.cat([series, series[:, -1:].expand(-1, self.pad)], dim=1)
        h = self.embed(series.unfold(1, self.patch_len, self.stride))  # (B·C, n, dim)
        h = self.dropout(h + self.positions)
        for block in self.blocks:
            h = block(h, None)
        y = self.head(self.norm(h)).reshape(b, c, -1).transpose(1, 2)  # (B, H, C)
        return y * scale + mean


class FourierExtrapolation(nn.Module):
    """The release's forecasting head: the L-step sequence's DFT, kept at its 1 + 2·H lowest frequencies (by |f|,
    ties in index order), summed as cosines at steps L .. L+H-1. With all frequencies kept (1 + 2·H >= L, every
    configuration the release runs) this is the periodic continuation of the sequence: step h of the forecast is
    step h mod L of the sequence."""

    def __init__(self, input_len: int, horizon: int):
        super().__init__()
        frequencies = torch.fft.fftfreq(input_len)
        order = sorted(range(input_len), key=lambda i: abs(float(frequencies[i])))
        kept = torch.tensor(order[: 1 + 2 * horizon])
        t = torch.arange(input_len, input_len + horizon, dtype=torch.float64)
        phase = 2 * torch.pi * frequencies[kept].double()[:, None] * t[None, :]  # (kept, H)
        self.register_buffer("kept", kept, persistent=False)
        self.register_buffer("cos", phase.cos().float(), persistent=False)
        self.register_buffer("sin", phase.sin().float(), persistent=False)
        self.input_len = input_len

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """(B, L, C) -> (B, H, C): sum_k |Y_k|/L cos(2π f_k t + arg Y_k) = (Re Y_k cos - Im Y_k sin) / L."""
        spectrum = torch.fft.fft(y, dim=1)[:, self.kept]  # (B, kept, C)
        out = torch.einsum("bkc,kh->bhc", spectrum.real, self.cos) - torch.einsum(
            "bkc,kh->bhc", spectrum.imag, self.sin
        )
        return out / self.input_len


class S3Paper(nn.Module):
    """`SKTLinear` as released, with the zoo's attention swapped in:

    - each window normalised per channel over time by its mean and sqrt(var + 1) (unbiased variance, +1 inside the
      root, as released), restored at the output;
    - a Conv1d(kernel 1) from the C channels to `dim` (a linear map), dropout, plus the fixed sinusoidal positions;
    - `depth` layers of x = attention(x) + x: no normalisation, no FFN;
    - a linear map from `dim` back to the C channels, then `FourierExtrapolation` to the horizon.

    Deviations: the release builds one channel map per layer and uses the last one only; here there is one. Its
    Fourier head also builds a `Linear(192, 96)` that it never uses; not here. Its attention is its own
    S3Attention variant (no output projection, BatchNorm over positions); here any zoo variant, each with the
    zoo's projections (an output projection included), so that the variants compare inside one backbone.
    """

    def __init__(self, make_attention: MakeAttention, shape: Shape):
        super().__init__()
        self.embed = nn.Linear(shape.channels, shape.dim)  # = Conv1d(C, dim, kernel_size=1)
        self.register_buffer("positions", sinusoids(shape.input_len, shape.dim), persistent=False)
        self.dropout = nn.Dropout(shape.dropout)
        self.layers = nn.ModuleList([make_attention(shape.input_len) for _ in range(shape.depth)])
        self.to_channels = nn.Linear(shape.dim, shape.channels)
        self.extrapolate = FourierExtrapolation(shape.input_len, shape.horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, mean, scale = per_window_norm(x, eps=1.0, unbiased=True)
        h = self.dropout(self.embed(x))
        h = h + self.positions
        for attention in self.layers:
            h = attention(h) + h
        return self.extrapolate(self.to_channels(h)) * scale + mean


BACKBONES = ("encoder", "channel-independent", "patch", "s3-paper")


def describe(backbone: str) -> str:
    """What the backbone computes and where it deviates from its source: its class's docstring."""
    cls = {"encoder": AttentionForecaster, "s3-paper": S3Paper}.get(backbone, ChannelIndependent)
    patched = "Over patches of `patch_len` steps every `stride` steps.\n\n" if backbone == "patch" else ""
    # The docstring's line breaks unwrapped (paragraphs and "- " items kept), for the terminal to wrap.
    return re.sub(r"\n(?!\n|- )(?<!\n\n)\s*", " ", patched + (inspect.getdoc(cls) or ""))


def unknown(name: str) -> str:
    """The error for a backbone name that does not exist, with the nearest one."""
    near = difflib.get_close_matches(name, BACKBONES, n=1)
    hint = f"did you mean '{near[0]}'? " if near else ""
    return f"unknown backbone '{name}': {hint}choose one of {', '.join(BACKBONES)}"


def build(backbone: str, make_attention: MakeAttention, shape: Shape) -> nn.Module:
    if backbone == "encoder":
        return AttentionForecaster(
            lambda: make_attention(shape.input_len),
            shape.channels,
            shape.input_len,
            shape.horizon,
            shape.dim,
            shape.depth,
            shape.ffn_dim,
            shape.dropout,
        )
    if backbone in ("channel-independent", "patch"):
        return ChannelIndependent(make_attention, shape, patch=backbone == "patch")
    if backbone == "s3-paper":
        return S3Paper(make_attention, shape)
    raise ValueError(unknown(backbone))
