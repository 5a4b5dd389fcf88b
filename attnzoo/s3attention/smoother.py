"""S3Attention's smoother: segment average over channels, a learnable Fourier convolution along the sequence,
then a convolution stem over [smoothed, input]. Padding-aware: padded tokens are zeroed before the FFT and
before the stem, and normalisation statistics come from real tokens only."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU}


def zero_padded(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x if mask is None else x * mask[..., None].to(x.dtype)


class FourierConv(nn.Module):
    """``M = irfft(rfft(segment_average(X), n=N) * L, n=N)[:n]``: a circular convolution of length N (the
    configured max length) along the sequence, one learnable filter per channel, parameterised by its
    N//2+1 complex frequency weights L."""

    def __init__(self, dim: int, max_seq_len: int, groups: int | None, fft_norm: str = "backward"):
        super().__init__()
        if groups is not None and dim % groups:
            raise ValueError(f"r={groups} must divide dim={dim} (channels are averaged in r equal groups)")
        self.dim, self.max_seq_len, self.groups, self.fft_norm = dim, max_seq_len, groups, fft_norm
        # Real view (frequencies, channels, re/im) of L; Kaiming init as in the paper (normal).
        self.spectrum = nn.Parameter(torch.empty(max_seq_len // 2 + 1, dim, 2))
        nn.init.kaiming_normal_(self.spectrum, mode="fan_in", nonlinearity="relu")

    def segment_average(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n, D) -> (B, n, r): the mean of each of the r groups of D/r consecutive channels."""
        if self.groups is None:
            return x
        return x.unflatten(-1, (self.groups, self.dim // self.groups)).mean(dim=-1)

    def filters(self) -> torch.Tensor:
        """The time-domain filters h (N, D) such that the layer computes the circular convolution h * X."""
        return torch.fft.irfft(
            torch.view_as_complex(self.spectrum.float()), n=self.max_seq_len, dim=0, norm=self.fft_norm
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, N = x.shape[1], self.max_seq_len
        # FFTs have no bfloat16 CPU kernels, and float32 keeps the long sums accurate.
        averaged = self.segment_average(x.float())
        freq = torch.fft.rfft(averaged, n=N, dim=1, norm=self.fft_norm)  # (B, N//2+1, r)
        if self.groups is not None:
            freq = freq.repeat_interleave(self.dim // self.groups, dim=-1)  # the r columns back to D
        out = torch.fft.irfft(freq * torch.view_as_complex(self.spectrum.float()), n=N, dim=1, norm=self.fft_norm)
        return out[:, :n].to(x.dtype)


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm over the channels of (B, n, C) (channels last, as the layer computes), whose batch statistics use
    real tokens only."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None or not self.training:
            return super().forward(x.reshape(-1, x.shape[-1])).view_as(x)
        keep = mask[..., None].to(x.dtype)
        count = keep.sum()
        mean = (x * keep).sum(dim=(0, 1)) / count
        var = ((x - mean).square() * keep).sum(dim=(0, 1)) / count
        with torch.no_grad():
            unbiased = var * count / (count - 1).clamp_min(1)
            self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), self.momentum)
            self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype), self.momentum)
            self.num_batches_tracked += 1
        return (x - mean) / (var + self.eps).sqrt() * self.weight + self.bias


class Smoother(nn.Module):
    """concat([FourierConv(X), X]) -> Conv1d(2D -> D, kernel) -> BatchNorm -> activation -> dropout."""

    def __init__(
        self,
        dim: int,
        max_seq_len: int,
        groups: int | None,
        stem_kernel: int,
        activation: str,
        dropout: float,
        fft_norm: str,
    ):
        super().__init__()
        self.fourier = FourierConv(dim, max_seq_len, groups, fft_norm)
        self.stem = nn.Conv1d(2 * dim, dim, stem_kernel, padding=stem_kernel // 2)
        self.norm = MaskedBatchNorm1d(dim)
        self.activation = ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = zero_padded(x, mask)
        # Zero the convolution's output at padded positions too, so the stem's window at the last real token
        # sees the same zeros an unpadded sequence of that length would.
        smoothed = zero_padded(self.fourier(x), mask)
        # The stem convolution over concat([smoothed, x]) as one (n, 2D) @ (2D, D) product per kernel tap on
        # shifted views, channels last throughout: the same sums as Conv1d, without transposing (B, n, C) to
        # (B, C, n) and back (about a fifth less time for the stem's forward+backward at n = 16384).
        n, k = x.shape[1], self.stem.kernel_size[0]
        z = F.pad(torch.cat([smoothed, x], dim=-1), (0, 0, k // 2, k // 2))
        taps = self.stem.weight.permute(2, 1, 0)  # (k, 2D, D)
        h = self.stem.bias + sum(z[:, j : j + n] @ taps[j] for j in range(k))
        return self.dropout(self.activation(self.norm(h, mask)))


def direct_circular_convolution(x: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """Reference O(n·N) computation of ``y[t, c] = sum_s h[(t - s) mod N, c] x[s, c]`` for x (B, n, D) zero-padded
    to N (for tests and for readers who want the smoother without Fourier transforms)."""
    N = filters.shape[0]
    padded = F.pad(x, (0, 0, 0, N - x.shape[1]))
    t = torch.arange(N)
    lag = (t[:, None] - t[None, :]) % N  # (t, s)
    return torch.einsum("tsc,bsc->btc", filters[lag], padded)[:, : x.shape[1]]
