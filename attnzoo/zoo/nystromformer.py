"""Nyströmformer: softmax attention through m landmark queries/keys and an iterative pseudo-inverse."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from attnzoo.zoo.base import ProjectedAttention
from attnzoo.zoo.params import VariantParams
from attnzoo.zoo.registry import Capabilities, register_variant


class NystromParams(VariantParams):
    num_landmarks: int = Field(
        64, ge=1, description="landmarks m; m >= n computes exact softmax attention, as the authors' code does"
    )
    pinv_iterations: int = Field(6, ge=1, description="Newton-Schulz iterations of the pseudo-inverse")
    conv_kernel: int = Field(
        0, ge=0, description="depthwise conv skip on V along the sequence (paper's LRA runs: 35); 0 = off"
    )


def iterative_pinv(a: torch.Tensor, iterations: int, start: torch.Tensor | None = None) -> torch.Tensor:
    """Moore-Penrose pseudo-inverse of (..., m, m) by the paper's cubic Newton-Schulz iteration.

    Z0 = A^T / (max column sum · max row sum) per matrix, so each batch element is independent, unless `start`
    gives another first guess."""
    eye = torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
    if start is None:
        col = a.abs().sum(dim=-2).amax(dim=-1, keepdim=True)[..., None]
        row = a.abs().sum(dim=-1).amax(dim=-1, keepdim=True)[..., None]
        start = a.transpose(-1, -2) / (col * row)
    z = start
    for _ in range(iterations):
        az = a @ z
        z = 0.25 * z @ (13 * eye - az @ (15 * eye - az @ (7 * eye - az)))
    return z


@register_variant(
    "nystromformer",
    description="Nyström approximation of the softmax matrix through segment-mean landmarks",
    source="Xiong et al., Nyströmformer (AAAI 2021); authors' code github mlpen/Nystromformer",
    family="low-rank",
    cost="O(n·m·p + m³)",
    params=NystromParams,
    capabilities=Capabilities(approximates_softmax=True, padding_equivalent=False),
    deviations=(
        "Landmarks are means over the real tokens of each segment; a segment with no real token is dropped "
        "from the approximation (the authors' code averages zeroed padded rows into the landmarks).",
        "The pseudo-inverse is initialised per matrix (the authors' code normalises by a max over the whole "
        "batch, which couples batch elements); it runs in float32 whatever the input dtype.",
        "n is padded at the end to a multiple of m with masked tokens (the package pads the front).",
    ),
)
class NystromAttention(ProjectedAttention):
    def __init__(
        self,
        dim: int,
        heads: int,
        max_seq_len: int | None = None,
        num_landmarks: int = 64,
        pinv_iterations: int = 6,
        conv_kernel: int = 0,
    ):
        super().__init__(dim, heads, max_seq_len)
        self.num_landmarks, self.pinv_iterations = num_landmarks, pinv_iterations
        self.conv = None
        if conv_kernel:
            self.conv = nn.Conv2d(
                heads, heads, (conv_kernel, 1), padding=(conv_kernel // 2, 0), groups=heads, bias=False
            )

    def attend(self, q, k, v, mask=None):
        b, h, n, p = q.shape
        dtype = q.dtype
        q, k, v = q.float(), k.float(), v.float()
        real = torch.ones(b, n, dtype=torch.bool, device=q.device) if mask is None else mask
        m = min(self.num_landmarks, n)
        seg = math.ceil(n / m)
        pad = seg * m - n
        keep = F.pad(real, (0, pad), value=False)[:, None, :, None].float()  # (B, 1, n+pad, 1)
        q = q * p**-0.5  # every product below has one q-side factor: the 1/sqrt(p) of softmax attention

        def landmarks(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if mask is None and not pad:  # every segment full and real: plain segment means, one pass
                return t.reshape(b, h, m, seg, p).mean(dim=3), real.new_ones(b, 1, m)
            t = F.pad(t, (0, 0, 0, pad)) * keep
            sums = t.reshape(b, h, m, seg, p).sum(dim=3)
            counts = keep.reshape(b, 1, m, seg, 1).sum(dim=3)
            return sums / counts.clamp_min(1), counts[..., 0] > 0

        if self.num_landmarks >= n:  # every token its own landmark: exact softmax attention, as the authors' code
            scores = q @ k.transpose(-1, -2)
            if mask is not None:
                scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
            return self._with_conv(scores.softmax(dim=-1) @ v, v, real).to(dtype)

        q_l, valid = landmarks(q)
        k_l, _ = landmarks(k)
        scores_1, scores_2 = q @ k_l.transpose(-1, -2), q_l @ k_l.transpose(-1, -2)
        every_landmark = bool(valid.all())
        if not every_landmark:  # some segments hold no real token: their landmarks must not be attended to
            empty = ~valid[:, :, None, :]  # (B, 1, 1, m)
            scores_1, scores_2 = scores_1.masked_fill(empty, float("-inf")), scores_2.masked_fill(empty, float("-inf"))
        kernel_1, kernel_2 = scores_1.softmax(dim=-1), scores_2.softmax(dim=-1)
        if not every_landmark:  # zero their rows too: pinv([[A, 0], [0, 0]]) = [[pinv(A), 0], [0, 0]]
            kernel_2 = kernel_2 * valid[..., None].float()
        scores_3 = q_l @ k.transpose(-1, -2)
        if mask is not None:
            scores_3 = scores_3.masked_fill(~mask[:, None, None, :], float("-inf"))
        kernel_3 = scores_3.softmax(dim=-1)
        out = (kernel_1 @ iterative_pinv(kernel_2, self.pinv_iterations)) @ (kernel_3 @ v)
        return self._with_conv(out, v, real).to(dtype)

    def _with_conv(self, out: torch.Tensor, v: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return out if self.conv is None else out + self.conv(v * real[:, None, :, None].float())
