import pytest
import torch

import attnzoo
from attnzoo.zoo import variant_info

DIM, HEADS = 32, 2


def available_variants(**required: bool) -> list[str]:
    """Available registered variants whose capabilities match `required` (e.g. stochastic=True)."""
    names = []
    for name in attnzoo.list_variants(available_only=True):
        caps = variant_info(name).capabilities
        if all(getattr(caps, key) == value for key, value in required.items()):
            names.append(name)
    return names


def make(name: str, max_seq_len: int = 64, weights_seed: int = 0, **params) -> torch.nn.Module:
    """A variant's layer with seeded weights and, for stochastic variants, a seeded generator."""
    torch.manual_seed(weights_seed)
    if variant_info(name).capabilities.stochastic:
        params.setdefault("seed", 1234)
    return attnzoo.create_attention(name, DIM, HEADS, max_seq_len=max_seq_len, **params).eval()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture
def qkv():
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(2, HEADS, 48, DIM // HEADS, generator=g) for _ in range(3))
