"""S3Attention: smoother -> Q/K/V projections -> skeleton attention (token + feature branch) -> output projection."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from pydantic import Field, model_validator
from torch import nn

from attnzoo.zoo.base import ProjectedAttention, check_inputs, empty_batch
from attnzoo.zoo.params import SamplingParams
from attnzoo.zoo.registry import Capabilities, ParameterError, register_variant
from attnzoo.zoo.s3attention.skeleton import feature_branch, sampled_positions, token_branch
from attnzoo.zoo.s3attention.smoother import Smoother

# What the `official` preset fixes: the authors' released LRA code.
OFFICIAL = {"r": None, "stem_kernel": 1, "activation": "elu"}


class S3Params(SamplingParams):
    r: int | None = Field(8, ge=1, description="channel groups of the segment average; None = no averaging")
    s1: int = Field(8, ge=1, description="sampled token positions (token branch); clamped to max_seq_len")
    s2: int = Field(8, ge=1, description="sampled feature channels per head (feature branch), ≤ head width")
    stem_kernel: int = Field(3, ge=1, description="kernel of the Conv1d stem (odd)")
    activation: Literal["relu", "elu", "gelu"] = Field("relu", description="activation after the stem's norm")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout after the smoother")
    attn_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on both branches' attention weights")
    fft_norm: Literal["backward", "ortho"] = Field("backward", description="torch.fft norm of rfft/irfft")
    sampling: Literal["fixed", "resample"] = Field(
        "fixed", description="fixed: indices drawn once, saved in the state_dict; resample: redrawn each training step"
    )
    preset: Literal["paper", "official"] = Field(
        "paper", description="official = the released code's choices: r=None, stem_kernel=1, ELU, s2=s1"
    )

    @model_validator(mode="before")
    @classmethod
    def apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("preset") != "official":
            return data
        fixed = {**OFFICIAL, "s2": data.get("s1", cls.model_fields["s1"].default)}
        for key, value in fixed.items():
            if key in data and data[key] != value:
                raise ValueError(f"preset 'official' fixes {key}={value!r}; drop {key} or use preset 'paper'")
        return {**data, **fixed}

    @model_validator(mode="after")
    def odd_kernel(self) -> S3Params:
        if self.stem_kernel % 2 == 0:
            raise ValueError(f"stem_kernel must be odd so the stem keeps the length, got {self.stem_kernel}")
        return self


@register_variant(
    "s3attention",
    description="Smoothed skeleton sketching: Fourier-conv smoother, then attention over s1 sampled tokens and "
    "s2 sampled feature channels",
    source="Wang et al., S3Attention: Improving Long Sequence Attention with Smoothed Skeleton Sketching "
    "(IEEE JSTSP 2024, arXiv 2408.08567); authors' code github wxie9/S3Attention",
    family="sketching",
    cost="O(n·(s1+s2)·p + n·log n·D)",
    params=S3Params,
    capabilities=Capabilities(needs_max_seq_len=True, stochastic=True),
    deviations=(
        "Variable length and padding (the released code needs inputs of exactly max_seq_len): padded tokens "
        "are zeroed before the FFT and the stem, BatchNorm statistics use real tokens only, sampled padded "
        "keys are excluded from the token softmax (not given logit 0), the feature branch sums over real "
        "tokens and scales by sqrt(real length) (the released code: sqrt(max_seq_len)).",
        "BatchNorm normalises channels in both presets (the released code's BatchNorm1d(seq_len) normalises per "
        "position); projections are bias-free (the released W_q/W_k/W_v have biases).",
        "Sampled indices are buffers in the state_dict (the released code redraws them when it is rebuilt); "
        "with sampling='resample' they are redrawn every training step.",
        "A sequence whose real tokens include none of the s1 sampled positions gets a zero token branch.",
    ),
)
class S3Attention(ProjectedAttention):
    def __init__(
        self,
        dim: int,
        heads: int,
        max_seq_len: int,
        r: int | None = 8,
        s1: int = 8,
        s2: int = 8,
        stem_kernel: int = 3,
        activation: str = "relu",
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        fft_norm: str = "backward",
        sampling: str = "fixed",
        preset: str = "paper",
        seed: int | None = None,
    ):
        super().__init__(dim, heads, max_seq_len)
        if s2 > self.dim_head:
            raise ParameterError(f"s3attention: s2={s2} exceeds the head width {self.dim_head} (dim / heads)")
        try:
            self.smoother = Smoother(dim, max_seq_len, r, stem_kernel, activation, dropout, fft_norm)
        except ValueError as err:
            raise ParameterError(f"s3attention: {err}") from None
        self.s1, self.s2, self.sampling, self.preset = min(s1, max_seq_len), s2, sampling, preset
        self.norm_tokens, self.norm_features = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn_dropout = nn.Dropout(attn_dropout)
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None
        token_index, feature_index = self._draw(max_seq_len)
        self.register_buffer("token_index", token_index)
        self.register_buffer("feature_index", feature_index)

    def _draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """s1 distinct positions of [0, n) and s2 distinct channels of a head, shared by batch and heads."""
        tokens = torch.randperm(n, generator=self.generator)[: self.s1]
        features = torch.randperm(self.dim_head, generator=self.generator)[: self.s2]
        return tokens, features

    def indices(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Token positions, feature channels, and an exclusive bound of the positions (known without a sync)."""
        if self.sampling == "resample" and self.training:
            tokens, features = self._draw(n)
            return tokens.to(device), features.to(device), n
        return self.token_index, self.feature_index, self.max_seq_len

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_inputs(x, mask, self.dim, self.max_seq_len)
        if not x.shape[0]:
            return empty_batch(x, self)
        h = self.smoother(x, mask)
        token_index, feature_index, bound = self.indices(x.shape[1], x.device)
        positions, valid = sampled_positions(token_index, x.shape[1], mask, bound)
        # The skeleton reads only s1 rows and s2 channels per head of K and V: project just those (the same
        # numbers as slicing full projections, at a fraction of the cost), Q and the sampled channels in one
        # product over h.
        w_q, w_k, w_v = self.to_qkv.weight.chunk(3)
        channels = (torch.arange(self.heads, device=x.device)[:, None] * self.dim_head + feature_index).flatten()
        q, k_cols, v_cols = F.linear(h, torch.cat([w_q, w_k[channels], w_v[channels]])).split(
            [self.dim, len(channels), len(channels)], dim=-1
        )
        k_rows, v_rows = F.linear(h[:, positions], torch.cat([w_k, w_v])).chunk(2, dim=-1)
        out_tokens = token_branch(q, k_rows, v_rows, valid, self.heads, self.attn_dropout)
        out_features = feature_branch(q, k_cols, v_cols, self.heads, mask, self.attn_dropout)
        return self.to_out(self.combine(out_tokens, out_features))

    def combine(self, out_tokens: torch.Tensor, out_features: torch.Tensor) -> torch.Tensor:
        """LN1(O1) / 2 + LN2(O2) / 2, both (B, n, H·p) with heads concatenated. The halving goes into each
        norm's affine weights (D numbers) rather than over the (B, n, D) sum."""
        halved = lambda norm, t: F.layer_norm(t, norm.normalized_shape, norm.weight / 2, norm.bias / 2, norm.eps)  # noqa: E731
        return halved(self.norm_tokens, out_tokens) + halved(self.norm_features, out_features)

    def attend(self, q, k, v, mask=None):
        """The skeleton on full (B, H, n, p) q, k, v (the kernel form; `forward` projects only what it reads)."""
        token_index, feature_index, bound = self.indices(q.shape[2], q.device)
        positions, valid = sampled_positions(token_index, q.shape[2], mask, bound)
        merge = lambda t: rearrange(t, "b h n p -> b n (h p)")  # noqa: E731
        out_tokens = token_branch(
            merge(q), merge(k[:, :, positions]), merge(v[:, :, positions]), valid, self.heads, self.attn_dropout
        )
        out_features = feature_branch(
            merge(q), merge(k[..., feature_index]), merge(v[..., feature_index]), self.heads, mask, self.attn_dropout
        )
        return rearrange(self.combine(out_tokens, out_features), "b n (h p) -> b h n p", h=self.heads)
