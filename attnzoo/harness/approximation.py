"""The approximation benchmark: relative Frobenius error of a variant's kernel against exact softmax attention
on the same q, k, v.

Inputs:
- ``gaussian``: q, k, v with i.i.d. standard normal entries.
- ``text``: q, k, v projected from byte embeddings of real English text (the documentation text Python ships in
  ``pydoc_data.topics``), with sinusoidal positions: repeated bytes make the structured, low-rank inputs that
  real sequences have. Embeddings and projections are random (seeded), not trained.
"""

from __future__ import annotations

import math
import statistics
from functools import cache

import torch

from attnzoo.harness.plan import Cell
from attnzoo.zoo import create_attention, variant_info


@cache
def english_bytes() -> bytes:
    """Real English text available wherever Python is: the documentation topics in pydoc_data."""
    from pydoc_data.topics import topics

    return " ".join(topics[key] for key in sorted(topics)).encode()


def text_embeddings(batch: int, n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """(batch, n, dim): random byte embeddings of n consecutive bytes of English text, plus sinusoidal positions."""
    corpus = english_bytes()
    starts = torch.randint(0, len(corpus) - n, (batch,), generator=generator).tolist()
    ids = torch.tensor([list(corpus[s : s + n]) for s in starts])
    embedding = torch.randn(256, dim, generator=generator)
    position = torch.arange(n)[:, None] / torch.pow(10_000, torch.arange(0, dim, 2) / dim)[None, :]
    return embedding[ids] + torch.cat([position.sin(), position.cos()], dim=-1)


def text_qkv(batch: int, heads: int, n: int, dim: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    x = text_embeddings(batch, n, dim, generator)
    projections = torch.randn(3, dim, dim, generator=generator) / math.sqrt(dim)
    return tuple((x @ w).unflatten(-1, (heads, dim // heads)).transpose(1, 2) for w in projections)


def gaussian_qkv(batch: int, heads: int, n: int, dim: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    return tuple(torch.randn(batch, heads, n, dim // heads, generator=generator) for _ in range(3))


INPUTS = {"gaussian": gaussian_qkv, "text": text_qkv}


def exact_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(p)) v in float64: the reference every variant is compared with."""
    q, k, v = q.double(), k.double(), v.double()
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1) @ v


def _why_no_error(spec) -> str:
    if spec.origin is not None and hasattr(spec.origin, "attend"):
        return (
            f"{spec.name} is a plain nn.Module class named in the suite, and such a class cannot declare "
            "capabilities, so its attend() is not known to approximate softmax attention; register it with "
            "@attnzoo.register_variant(..., capabilities=attnzoo.Capabilities(approximates_softmax=True)) "
            "(or an entry point) and name the registered variant"
        )
    return f"{spec.name} is not a softmax approximation (its capabilities say so), so it has no approximation error"


def run(cell: Cell, **_: object) -> list[dict]:
    spec = variant_info(cell.variant)
    if not spec.capabilities.approximates_softmax:
        return [dict(metric="rel_error", status="unsupported", error=_why_no_error(spec))]
    layer_cfg = cell.layer
    b, h, dim, n = layer_cfg["batch"], layer_cfg["heads"], layer_cfg["dim"], cell.seq_len
    rows = []
    for kind in cell.config["inputs"]:
        errors = []
        for seed in range(cell.config["seeds"]):
            generator = torch.Generator().manual_seed(seed)
            q, k, v = INPUTS[kind](b, h, n, dim, generator)
            torch.manual_seed(seed)
            params = {"seed": seed, **cell.params} if spec.capabilities.stochastic else cell.params
            layer = create_attention(cell.variant, dim, h, max_seq_len=n, **params).eval()
            with torch.no_grad():
                approx = layer.attend(q, k, v).double()
            exact = exact_attention(q, k, v)
            errors.append(float((approx - exact).norm() / exact.norm()))
        rows.append(
            dict(
                metric="rel_error",
                input=kind,
                value=statistics.fmean(errors),
                unit="ratio",
                extra={"std": statistics.pstdev(errors), "seeds": len(errors)},
            )
        )
    return rows
