"""Reformer: LSH attention with shared queries and keys, wrapping the `reformer-pytorch` package's LSHSelfAttention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from reformer_pytorch import LSHSelfAttention
from torch import nn

from attnzoo.zoo.base import Sampler, check_inputs, empty_batch
from attnzoo.zoo.params import SamplingParams
from attnzoo.zoo.registry import Capabilities, register_variant


class ReformerParams(SamplingParams):
    bucket_size: int = Field(
        64, ge=1, description="tokens per chunk of sorted buckets; a query sees its chunk and the one before"
    )
    n_hashes: int = Field(2, ge=1, description="rounds of hashing, averaged")


@register_variant(
    "reformer",
    description="Locality-sensitive hashing attention with shared queries and keys (reformer-pytorch)",
    source="Kitaev et al., Reformer: The Efficient Transformer (ICLR 2020, arXiv 2001.04451); pip reformer-pytorch",
    family="sparse",
    cost="O(n·log n·p) (sorting), O(n·c·p) attention in chunks of c",
    params=ReformerParams,
    capabilities=Capabilities(stochastic=True, padding_equivalent=False),
    deviations=(
        "Any length: the sequence is padded inside the layer to a multiple of 2 · bucket_size (the package "
        "requires it), the padding masked as keys; padded tokens are zeroed first, so that what they hold cannot "
        "move the real tokens' buckets and chunks.",
        "Not offered causally: the package's causal mask keeps future keys out, but sorting by bucket lets future "
        "tokens decide which earlier keys share a query's chunk, so changing token t+1 changes outputs up to t.",
        "With a seed, each call's random rotations come from the layer's own generator (a reproducible sequence of "
        "hashings); without one, from torch's global RNG, as in the package.",
        "Defaults: chunks of 64 and 2 rounds, as the Nyströmformer LRA code runs Hugging Face's Reformer (the "
        "package's default is 8 rounds).",
    ),
    check_params={"bucket_size": 4},
)
class ReformerAttention(nn.Module):
    def __init__(
        self,
        dim: int,
        heads: int,
        max_seq_len: int | None = None,
        bucket_size: int = 64,
        n_hashes: int = 2,
        seed: int | None = None,
    ):
        super().__init__()
        self.dim, self.heads, self.max_seq_len, self.bucket_size = dim, heads, max_seq_len, bucket_size
        self.inner = LSHSelfAttention(dim, heads=heads, bucket_size=bucket_size, n_hashes=n_hashes, full_attn_thres=0)
        self.seed, self.sampler = seed, Sampler(seed)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_inputs(x, mask, self.dim, self.max_seq_len)
        if not x.shape[0]:
            return empty_batch(x, self)
        n = x.shape[1]
        real = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask
        x = x * real[..., None].to(x.dtype)
        pad = -n % (2 * self.bucket_size)
        if pad:
            x, real = F.pad(x, (0, 0, 0, pad)), F.pad(real, (0, pad), value=False)
        if self.seed is None:
            return self.inner(x, input_mask=real)[:, :n]
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(int(torch.randint(2**62, (1,), generator=self.sampler.generator)))
            return self.inner(x, input_mask=real)[:, :n]
