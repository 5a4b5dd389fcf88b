"""BigBird (ITC): block-sparse softmax attention. Queries in blocks of b tokens; the first and last blocks are global
(they attend to every key, and every query attends to them); every other block attends to its neighbours on either
side and to r random blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from attnzoo.zoo.base import ProjectedAttention, Sampler
from attnzoo.zoo.params import SamplingParams
from attnzoo.zoo.registry import Capabilities, register_variant


class BigBirdParams(SamplingParams):
    block_size: int = Field(64, ge=1, description="b: tokens per block")
    num_random_blocks: int = Field(3, ge=0, description="r: random key blocks per query block")


@register_variant(
    "bigbird",
    description="Block-sparse attention: sliding blocks, global first/last blocks, random blocks (BigBird ITC)",
    source="Zaheer et al., Big Bird: Transformers for Longer Sequences (NeurIPS 2020, arXiv 2007.14062); the "
    "pattern of the Skyformer harness's code/models/attention_bigbird.py (from Hugging Face's BigBird)",
    family="sparse",
    cost="O(n·(5 + r)·b·p)",
    params=BigBirdParams,
    capabilities=Capabilities(approximates_softmax=True, stochastic=True, padding_equivalent=False),
    check_params={"block_size": 4, "num_random_blocks": 2},
    deviations=(
        "Random blocks are drawn uniformly among the blocks outside each row's window and the global blocks, per "
        "head, shared by the batch, on every call (Hugging Face's plan can repeat a window block among the random "
        "ones near the ends, and draws with numpy's global RNG).",
        "Any length: padded inside the layer to a whole number of blocks, the padding masked as keys; with too "
        "few blocks for the pattern, a row attends to every block there is.",
    ),
)
class BigBirdAttention(ProjectedAttention):
    def __init__(
        self,
        dim: int,
        heads: int,
        max_seq_len: int | None = None,
        block_size: int = 64,
        num_random_blocks: int = 3,
        seed: int | None = None,
    ):
        super().__init__(dim, heads, max_seq_len)
        self.block_size, self.num_random_blocks = block_size, num_random_blocks
        self.sampler = Sampler(seed)

    def key_blocks(self, blocks: int, heads: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """For each head and middle query block 1 .. blocks-2: the key blocks it attends to, (heads, blocks-2,
        5 + r), and which of those slots are real (a block listed twice, or a random slot with no block left to
        draw, is not)."""
        rows = torch.arange(1, blocks - 1, device=device)[:, None]
        fixed = torch.cat([torch.zeros_like(rows), torch.full_like(rows, blocks - 1), rows - 1, rows, rows + 1], 1)
        candidates = torch.arange(blocks, device=device)
        taken = (candidates == fixed[:, :, None]).any(dim=1)  # (rows, blocks): the global and window blocks
        r = min(self.num_random_blocks, blocks)
        noise = self.sampler.rand(heads, blocks - 2, blocks, device=device).masked_fill(taken, 2.0)
        chosen = noise.topk(r, dim=-1, largest=False)  # uniform without replacement among the free blocks
        random_ok = chosen.values < 2.0
        index = torch.cat([fixed.expand(heads, -1, -1), chosen.indices], dim=-1)
        # A window block that is also global (rows 1 and blocks-2) counts once.
        duplicate = torch.zeros_like(index, dtype=torch.bool)
        duplicate[..., 2] = fixed[:, 2] == 0
        duplicate[..., 4] = fixed[:, 4] == blocks - 1
        return index, torch.cat([~duplicate[..., :5], random_ok], dim=-1)

    def attend(self, q, k, v, mask=None):
        bsz, h, n, p = q.shape
        w = self.block_size
        real = torch.ones(bsz, n, dtype=torch.bool, device=q.device) if mask is None else mask
        pad = -n % w
        if pad:
            q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
            real = F.pad(real, (0, pad), value=False)
        blocks = q.shape[2] // w
        q = q * p**-0.5
        key_ok = real[:, None, None, :]
        if blocks <= 2:  # every block is global
            scores = (q @ k.transpose(-1, -2)).masked_fill(~key_ok, torch.finfo(q.dtype).min)
            return (scores.softmax(dim=-1) @ v)[:, :, :n]
        out = torch.empty_like(q)
        # The global query blocks: every key.
        for rows in (slice(0, w), slice((blocks - 1) * w, blocks * w)):
            scores = (q[:, :, rows] @ k.transpose(-1, -2)).masked_fill(~key_ok, torch.finfo(q.dtype).min)
            out[:, :, rows] = scores.softmax(dim=-1) @ v
        # The middle query blocks: their key blocks, gathered.
        index, slot_ok = self.key_blocks(blocks, h, q.device)  # (h, m, s), m = blocks - 2, s = 5 + r
        m, s = index.shape[1:]
        # Indexing (not gather on an expanded view, whose backward materialises the (m, blocks) expansion: memory
        # quadratic in n) picks each row's key blocks; its backward accumulates into the (blocks, w, p) keys.
        head = torch.arange(h, device=q.device)[:, None, None]
        keys, values = (t.reshape(bsz, h, blocks, w, p)[:, head, index].reshape(bsz, h, m, s * w, p) for t in (k, v))
        seen = real.reshape(bsz, blocks, w)[:, index]  # (bsz, h, m, s, w)
        seen = (seen & slot_ok[None, :, :, :, None]).reshape(bsz, h, m, 1, s * w)
        middle = q[:, :, w : (blocks - 1) * w].reshape(bsz, h, m, w, p)
        scores = (middle @ keys.transpose(-1, -2)).masked_fill(~seen, torch.finfo(q.dtype).min)
        out[:, :, w : (blocks - 1) * w] = (scores.softmax(dim=-1) @ values).reshape(bsz, h, m * w, p)
        return out[:, :, :n]
