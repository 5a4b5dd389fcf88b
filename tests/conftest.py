import pytest
import torch

import attnzoo
from attnzoo.zoo import variant_info
from attnzoo.zoo.conformance import DIM, HEADS
from attnzoo.zoo.conformance import make_layer as make  # noqa: F401 - the tests' seeded layers


def available_variants(**required: bool) -> list[str]:
    """Available registered variants whose capabilities match `required` (e.g. stochastic=True)."""
    names = []
    for name in attnzoo.list_variants(available_only=True):
        caps = variant_info(name).capabilities
        if all(getattr(caps, key) == value for key, value in required.items()):
            names.append(name)
    return names


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture
def qkv():
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(2, HEADS, 48, DIM // HEADS, generator=g) for _ in range(3))


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's attnzoo cache (what `attnzoo calibrate` saves)."""
    monkeypatch.setenv("ATTNZOO_CACHE", str(tmp_path_factory.mktemp("cache")))
