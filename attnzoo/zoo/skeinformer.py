"""Skeinformer: sketching with pilot rows, importance-sampled key columns and adaptive row normalisation."""

from __future__ import annotations

import torch
from pydantic import Field

from attnzoo.zoo.base import ProjectedAttention, Sampler, real_positions, sample_real
from attnzoo.zoo.params import SamplingParams
from attnzoo.zoo.registry import Capabilities, register_variant


class SkeinformerParams(SamplingParams):
    sample_size: int = Field(256, ge=1, description="d: pilot rows and sampled key columns per head")


def _gather_rows(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """t (B, H, n, p), idx (B, H, d) -> (B, H, d, p)."""
    return torch.gather(t, 2, idx[..., None].expand(*idx.shape, t.shape[-1]))


@register_variant(
    "skeinformer",
    description="Sketched softmax attention: pilot rows, importance-sampled columns, adaptive row normalisation",
    source="Chen et al., Sketching as a Tool for Understanding and Accelerating Self-attention for Long "
    "Sequences (NAACL 2022, arXiv 2112.05359); authors' code github pkuzengqi/Skeinformer",
    family="sketching",
    cost="O(n·d·p)",
    params=SkeinformerParams,
    capabilities=Capabilities(approximates_softmax=True, stochastic=True, padding_equivalent=False),
    deviations=(
        "Numerically safe: exponentials are shifted by each row's max (the authors' code exponentiates raw "
        "logits and overflows at large logits).",
        "Key-padding mask (the original has none): pilot rows are drawn among real tokens, padded keys get "
        "importance 0 and are never sampled, and the adaptive normaliser counts real keys only.",
        "Columns are drawn without replacement by the Gumbel-top-k trick, equivalent to sequential sampling "
        "proportional to importance.",
        "Sample size d = min(sample_size, n) for the whole batch, so the layer is exact when sample_size >= the "
        "real length (the authors' code uses min(sample_size, shortest real length in the batch - 1)).",
        "Pilot rows are drawn independently per batch element and head (the authors' code shares one draw).",
    ),
)
class SkeinformerAttention(ProjectedAttention):
    def __init__(
        self, dim: int, heads: int, max_seq_len: int | None = None, sample_size: int = 256, seed: int | None = None
    ):
        super().__init__(dim, heads, max_seq_len)
        self.sample_size = sample_size
        self.sampler = Sampler(seed)

    def attend(self, q, k, v, mask=None):
        b, h, n, p = q.shape
        d = min(self.sample_size, n)
        scale = p**-0.5
        real = torch.ones(b, n, dtype=torch.bool, device=q.device) if mask is None else mask
        n_real = real.sum(dim=1)
        key_ok = real[:, None, None, :]

        q = q * scale  # once on (n, p) rather than on every (n, d) and (d, n) product below

        # 1. Pilot: d query rows drawn uniformly (with replacement) among real tokens; their exact rows.
        pilot = sample_real(real_positions(real), n_real, self.sampler.rand(b, h, d, device=q.device))
        pilot_rows = _gather_rows(q, pilot) @ k.transpose(-1, -2)
        if mask is not None:
            pilot_rows = pilot_rows.masked_fill(~key_ok, float("-inf"))
        pilot_attn = pilot_rows.softmax(dim=-1)  # (B, H, d, n)

        # 2-3. Column importance sqrt(sum_J B_J[:, i]^2) * ||v_i||, then d columns without replacement.
        column_norm = pilot_attn.detach().float().square().sum(dim=2).sqrt()  # vector_norm over dim 2 is slower
        importance = column_norm * torch.linalg.vector_norm(v.detach(), dim=-1, dtype=torch.float32)
        importance = importance.clamp_min(torch.finfo(torch.float32).tiny)  # every real key stays drawable
        gumbel = -torch.log(-torch.log(self.sampler.rand(b, h, n, device=q.device).clamp(1e-20, 1 - 1e-7)))
        score = (importance.log() + gumbel).masked_fill(~real[:, None, :], float("-inf"))
        cols = score.topk(d, dim=-1).indices  # (B, H, d)
        col_ok = torch.gather(real[:, None, :].expand(b, h, n), 2, cols)  # False only when d > n_real

        # 4. Adaptive row normalisation: unsampled keys share the geometric mean g_i of the sampled a_ij. The
        # shift (each row's largest exponent) cancels between numerator and denominator: no gradient needed.
        k_s, v_s = _gather_rows(k, cols), _gather_rows(v, cols)
        logits = q @ k_s.transpose(-1, -2)  # (B, H, n, d)
        if bool(col_ok.all()):  # every sampled column is a real key: skip the (n, d) masking passes
            log_g = logits.mean(dim=-1)  # log of the geometric mean
            shift = logits.detach().amax(dim=-1)
            a = (logits - shift[..., None]).exp()
        else:
            ok = col_ok[:, :, None, :]
            log_g = (logits * ok).sum(dim=-1) / col_ok.sum(dim=-1)[..., None].to(q.dtype)
            shift = logits.detach().masked_fill(~ok, float("-inf")).amax(dim=-1)
            a = (logits - shift[..., None]).exp() * ok
        g = (log_g - shift).exp()
        v_rest = (v * real[:, None, :, None]).sum(dim=2) - (v_s * col_ok[..., None]).sum(dim=2)  # (B, H, p)
        n_rest = (n_real[:, None] - col_ok.sum(dim=-1)).to(q.dtype)  # (B, H)
        numer = a @ v_s + g[..., None] * v_rest[:, :, None, :]
        denom = a.sum(dim=-1) + n_rest[..., None] * g
        out = numer / denom[..., None]

        # 5. Pilot reuse: the pilot rows are known exactly.
        return out.scatter(2, pilot[..., None].expand(b, h, d, p), pilot_attn @ v)
