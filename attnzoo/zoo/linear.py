"""Linear Transformer: softmax replaced by the feature map elu(x) + 1, so attention is phi(Q) (phi(K)^T V); causal
by running sums over the keys."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from attnzoo.zoo.base import ProjectedAttention
from attnzoo.zoo.params import VariantParams
from attnzoo.zoo.registry import Capabilities, register_variant

EPS = 1e-6  # added to the normaliser, as in the authors' fast-transformers code
CHUNK = 64  # causal: positions per chunk (quadratic inside a chunk, one running state across chunks)


class LinearParams(VariantParams):
    form: Literal["paper", "lra-code"] = Field(
        "paper",
        description="paper: normalised by phi(q)·sum phi(k); lra-code: the Nyströmformer LRA code's un-normalised "
        "phi(Q) (phi(K)^T V) / sqrt(n)",
    )
    causal: bool = Field(False, description="each query sees the keys up to its own position (running sums)")


def feature_map(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x) + 1


@register_variant(
    "linear",
    description="Linear Transformer: feature map elu(x)+1 in place of softmax, attention as phi(Q)(phi(K)^T V)",
    source="Katharopoulos et al., Transformers are RNNs (ICML 2020, arXiv 2006.16236); LRA form: github "
    "mlpen/Nystromformer LRA/code/attention_linear.py",
    family="kernel",
    cost="O(n·p²)",
    params=LinearParams,
    capabilities=Capabilities(causal=True),
    deviations=(
        "form='lra-code' reproduces the LRA code the Nyströmformer authors ran (no normaliser, phi(Q) and phi(K) "
        "each scaled by n^-1/4); the default is the paper's normalised form.",
        "Causal attention runs in chunks of 64 positions (exact; the paper's formulation is one running sum).",
    ),
)
class LinearAttention(ProjectedAttention):
    def __init__(self, dim: int, heads: int, max_seq_len: int | None = None, form: str = "paper", causal: bool = False):
        super().__init__(dim, heads, max_seq_len)
        self.form, self.causal = form, causal

    def attend(self, q, k, v, mask=None):
        q, k = feature_map(q), feature_map(k)
        if mask is not None:  # padded keys leave both the sums and the normaliser
            keep = mask[:, None, :, None].to(k.dtype)
            k, v = k * keep, v * keep
        if self.form == "lra-code":
            scale = math.sqrt(math.sqrt(q.shape[-2]))
            q, k = q / scale, k / scale
        numerator, normaliser = causal_sums(q, k, v) if self.causal else full_sums(q, k, v)
        return numerator if self.form == "lra-code" else numerator / (normaliser + EPS)


def full_sums(q, k, v):
    """phi(Q)(phi(K)^T V) and phi(Q)·sum_j phi(k_j), each query against every key."""
    return q @ (k.transpose(-1, -2) @ v), q @ k.sum(dim=-2, keepdim=True).transpose(-1, -2)


def causal_sums(q, k, v):
    """The same sums over the keys j <= i: inside a chunk a masked product, across chunks the state of all
    earlier chunks (phi(K)^T V and sum phi(K) up to the chunk's start)."""
    b, h, n, _ = q.shape
    pad = -n % CHUNK
    if pad:
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
    chunks = (n + pad) // CHUNK
    q, k, v = (t.reshape(b, h, chunks, CHUNK, t.shape[-1]) for t in (q, k, v))
    state = torch.einsum("bhcnp,bhcne->bhcpe", k, v).cumsum(dim=2) - torch.einsum("bhcnp,bhcne->bhcpe", k, v)
    totals = k.sum(dim=-2).cumsum(dim=2) - k.sum(dim=-2)  # (b, h, chunks, p): keys of the chunks before
    inside = torch.ones(CHUNK, CHUNK, dtype=torch.bool, device=q.device).tril()
    scores = (q @ k.transpose(-1, -2)).masked_fill(~inside, 0)
    numerator = scores @ v + q @ state
    normaliser = scores.sum(dim=-1, keepdim=True) + (q * totals[..., None, :]).sum(dim=-1, keepdim=True)
    unchunk = lambda t: t.reshape(b, h, chunks * CHUNK, t.shape[-1])[:, :, :n]  # noqa: E731
    return unchunk(numerator), unchunk(normaliser)
