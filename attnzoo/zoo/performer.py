"""Performer (FAVOR+), on the `performer-pytorch` package's random features and linear attention."""

from __future__ import annotations

import torch
from performer_pytorch.performer_pytorch import FastAttention, linear_attention, softmax_kernel
from pydantic import Field

from attnzoo.zoo.base import ProjectedAttention
from attnzoo.zoo.params import SamplingParams
from attnzoo.zoo.registry import Capabilities, register_variant


class PerformerParams(SamplingParams):
    nb_features: int | None = Field(None, ge=1, description="random features m; None = the package default int(p·ln p)")


@register_variant(
    "performer",
    description="Positive orthogonal random features approximating exp(q·k) (performer-pytorch)",
    source="Choromanski et al., Rethinking Attention with Performers (arXiv 2009.14794); pip performer-pytorch",
    family="kernel",
    cost="O(n·m·p)",
    params=PerformerParams,
    capabilities=Capabilities(approximates_softmax=True, stochastic=True),
    deviations=(
        "Key-padding mask (FastAttention has none): the feature rows phi(k_j) of padded keys are zeroed, so "
        "they leave both the numerator and the normaliser; before the features are computed, padded keys are "
        "replaced by a real key so that the package's max-stabiliser sees real keys only.",
        "Features are drawn once at construction and kept in the state_dict (no periodic redraw).",
    ),
)
class PerformerAttention(ProjectedAttention):
    def __init__(
        self,
        dim: int,
        heads: int,
        max_seq_len: int | None = None,
        nb_features: int | None = None,
        seed: int | None = None,
    ):
        super().__init__(dim, heads, max_seq_len)
        with torch.random.fork_rng(enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.fast = FastAttention(self.dim_head, nb_features=nb_features)

    def attend(self, q, k, v, mask=None):
        projection = self.fast.projection_matrix
        if mask is not None:
            # Any real key stands in for the padded ones: it leaves the stabiliser max over keys unchanged.
            first_real = mask.float().argmax(dim=1)
            stand_in = k[torch.arange(k.shape[0], device=k.device), :, first_real][:, :, None]
            k = torch.where(mask[:, None, :, None], k, stand_in)
        phi_q = softmax_kernel(q, projection_matrix=projection, is_query=True)
        phi_k = softmax_kernel(k, projection_matrix=projection, is_query=False)
        if mask is not None:
            phi_k = phi_k * mask[:, None, :, None].to(phi_k.dtype)
        return linear_attention(phi_q, phi_k, v)
