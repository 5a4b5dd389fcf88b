"""Performer (FAVOR+), on the `performer-pytorch` package's random features and linear attention."""

from __future__ import annotations

import torch
from performer_pytorch.performer_pytorch import (
    FastAttention,
    causal_linear_attention_noncuda,
    linear_attention,
    softmax_kernel,
)
from pydantic import Field

from attnzoo.zoo.base import ProjectedAttention
from attnzoo.zoo.params import SamplingParams
from attnzoo.zoo.registry import Capabilities, register_variant


class PerformerParams(SamplingParams):
    nb_features: int | None = Field(None, ge=1, description="random features m; None = the package default int(p·ln p)")
    causal: bool = Field(False, description="each query sees keys up to its own position (the package's prefix sums)")


@register_variant(
    "performer",
    description="Positive orthogonal random features approximating exp(q·k) (performer-pytorch)",
    source="Choromanski et al., Rethinking Attention with Performers (arXiv 2009.14794); pip performer-pytorch",
    family="kernel",
    cost="O(n·m·p)",
    params=PerformerParams,
    capabilities=Capabilities(causal=True, approximates_softmax=True, stochastic=True),
    deviations=(
        "Key-padding mask (FastAttention has none): the feature rows phi(k_j) of padded keys are zeroed, so "
        "they leave both the numerator and the normaliser; before the features are computed, padded keys are "
        "replaced by a real key so that the package's max-stabiliser sees real keys only.",
        "Features are drawn once at construction and kept in the state_dict (no periodic redraw).",
        "Causal: the package's CPU prefix sums (causal_linear_attention_noncuda), but key features without the "
        "package's stabiliser, a max over all keys that lets future keys move earlier outputs (by 1% here, "
        "through the 1e-4 it adds after the exponential); unstabilised, the exponent is at most |w|²/2 ≈ p/2 for "
        "a random feature w, within float32 and bfloat16 range for head widths up to 128.",
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
        causal: bool = False,
    ):
        super().__init__(dim, heads, max_seq_len)
        self.causal = causal
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
        phi_k = (
            causal_key_features(k, projection)
            if self.causal
            else softmax_kernel(k, projection_matrix=projection, is_query=False)
        )
        if mask is not None:
            phi_k = phi_k * mask[:, None, :, None].to(phi_k.dtype)
        return (causal_linear_attention_noncuda if self.causal else linear_attention)(phi_q, phi_k, v)


def causal_key_features(k: torch.Tensor, projection: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """The package's positive random features of the keys, ratio · (exp(w·k' - |k'|²/2) + eps) with k' = k / p^(1/4),
    without its max-over-all-keys stabiliser, so that each key's features depend on that key alone."""
    k = k * k.shape[-1] ** -0.25
    projected = torch.einsum("bhnd,md->bhnm", k, projection.to(k.dtype))
    return projection.shape[0] ** -0.5 * (torch.exp(projected - k.square().sum(-1, keepdim=True) / 2) + eps)
