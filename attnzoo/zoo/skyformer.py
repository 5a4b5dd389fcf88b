"""Skyformer: attention with a Gaussian (RBF) kernel in place of softmax, approximated by Nyström on landmarks
sampled uniformly from the queries and the keys."""

from __future__ import annotations

import torch
from pydantic import Field

from attnzoo.zoo.base import ProjectedAttention, Sampler, real_positions, sample_real
from attnzoo.zoo.nystromformer import iterative_pinv
from attnzoo.zoo.params import SamplingParams
from attnzoo.zoo.registry import Capabilities, register_variant

RIDGE = 0.1  # added to the landmark kernel's diagonal, as released
INVERSE_ITERATIONS = 6


class SkyformerParams(SamplingParams):
    nb_features: int = Field(128, ge=2, description="landmarks, half drawn among the queries, half among the keys")
    accumulation: int = Field(1, ge=1, description="independent landmark draws summed in each landmark column")


def rbf(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """exp(x·y - |x|²/2 - |y|²/2) = exp(-|x - y|²/2): (..., n, p), (..., m, p) -> (..., n, m)."""
    return torch.exp(
        x @ y.transpose(-1, -2) - x.square().sum(-1, keepdim=True) / 2 - y.square().sum(-1)[..., None, :] / 2
    )


def iterative_inverse(matrix: torch.Tensor, iterations: int = INVERSE_ITERATIONS) -> torch.Tensor:
    """Nyströmformer's iteration for a pseudo-inverse, started from K^T / (largest column sum of this matrix), as
    the Skyformer release starts it."""
    start = matrix.transpose(-1, -2) / matrix.sum(dim=-2).amax(dim=-1)[..., None, None]
    return iterative_pinv(matrix, iterations, start)


@register_variant(
    "skyformer",
    description="Gaussian-kernel attention approximated by Nyström on landmarks sampled from queries and keys",
    source="Chen et al., Skyformer: Remodel Self-Attention with Gaussian Kernel and Nyström Method (NeurIPS 2021, "
    "arXiv 2111.00035); authors' code github pkuzengqi/Skyformer, src/models/attention_skyformer.py",
    family="sketching",
    cost="O(n·m·p + m³)",
    params=SkyformerParams,
    capabilities=Capabilities(stochastic=True, padding_equivalent=False),
    deviations=(
        "Inputs are scaled by p^-1/4 for the head width p (the released code hard-codes 32^-1/4, its LRA head width).",
        "Landmarks are drawn among each sequence's real tokens wherever they are (the released code draws "
        "positions below the real count, assuming padding at the end).",
        "The pseudo-inverse starts from the largest column sum of each batch element and head's own matrix (the "
        "released default takes the largest over the whole batch, coupling batch elements).",
    ),
)
class SkyformerAttention(ProjectedAttention):
    def __init__(
        self,
        dim: int,
        heads: int,
        max_seq_len: int | None = None,
        nb_features: int = 128,
        accumulation: int = 1,
        seed: int | None = None,
    ):
        super().__init__(dim, heads, max_seq_len)
        self.nb_features, self.accumulation = nb_features, accumulation
        self.sampler = Sampler(seed)

    def attend(self, q, k, v, mask=None):
        b, h, n, p = q.shape
        real = torch.ones(b, n, dtype=torch.bool, device=q.device) if mask is None else mask
        keep = real[:, None, :, None].to(q.dtype)
        q, k, v = q * keep * p**-0.25, k * keep * p**-0.25, v * keep
        landmarks = self.landmarks(q, k, real)  # (b, h, accumulation, m, p)
        on_queries = rbf(q[:, :, None], landmarks).sum(dim=2)  # (b, h, n, m)
        on_keys = rbf(k[:, :, None], landmarks).sum(dim=2)
        # between landmark columns d and e: the sum over both columns' draws, (b, h, m, m)
        between = rbf(landmarks, landmarks.flatten(2, 3)[:, :, None]).sum(dim=2)
        between = between.reshape(b, h, self.nb_features, self.accumulation, self.nb_features).sum(dim=3)
        between = between + RIDGE * torch.eye(self.nb_features, dtype=q.dtype, device=q.device)
        scale = between.sum(dim=-1).rsqrt()  # symmetric normalisation before the inverse, undone after
        inverse = iterative_inverse(scale[..., :, None] * between * scale[..., None, :])
        keys = ((on_keys * scale[..., None, :]) @ inverse) * scale[..., None, :] * keep
        return on_queries @ (keys.transpose(-1, -2) @ v)

    def landmarks(self, q: torch.Tensor, k: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Rows drawn uniformly among the real queries (the first half) and the real keys (the second half), from
        uniforms shared by the batch and the heads (each sequence scales them to its own real length), as
        released."""
        b, h, n, p = q.shape
        m, draws = self.nb_features, self.accumulation
        uniform = self.sampler.rand(1, draws * m, device=q.device).expand(b, -1)
        slots = sample_real(real_positions(real), real.sum(dim=1), uniform)
        from_keys = torch.arange(draws * m, device=q.device) >= (draws * m) // 2
        rows = torch.cat([q, k], dim=2)  # (b, h, 2n, p)
        index = (slots + n * from_keys)[:, None, :, None].expand(b, h, draws * m, p)
        return torch.gather(rows, 2, index).reshape(b, h, draws, m, p)
