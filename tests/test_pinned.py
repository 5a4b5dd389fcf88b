"""Each variant's output on fixed inputs, pinned: a kernel rewritten for speed must compute the same thing.

The pinned tensors live in tests/golden/kernels.pt; regenerate them only for an intended change of what a variant
computes (UPDATE_GOLDEN=1), never to make a speed-up pass."""

import os
from pathlib import Path

import pytest
import torch

from tests.conftest import DIM, available_variants, make

PINNED = Path(__file__).parent / "golden" / "kernels.pt"
N = 64


def outputs(name: str) -> dict[str, torch.Tensor]:
    """Forward and the input gradient of a fixed loss, on a padded batch (real tokens only) and on a full one."""
    found = {}
    for case, short in (("", 41), ("_full", N)):
        x = torch.randn(2, N, DIM, generator=torch.Generator().manual_seed(11))
        mask = torch.ones(2, N, dtype=torch.bool)
        mask[1, short:] = False
        layer = make(name, max_seq_len=N)
        x.requires_grad_(True)
        y = layer(x, mask=mask if case == "" else None)
        (y[mask] * torch.linspace(-1, 1, DIM)).sum().backward()
        found |= {f"forward{case}": y.detach()[mask], f"input_grad{case}": x.grad[mask]}
    return found


@pytest.mark.parametrize("name", available_variants())
def test_output_is_pinned(name):
    pinned = torch.load(PINNED) if PINNED.exists() else {}
    got = outputs(name)
    if os.environ.get("UPDATE_GOLDEN"):
        pinned[name] = got
        torch.save(pinned, PINNED)
        return
    assert name in pinned, f"no pinned output for {name}; add one with UPDATE_GOLDEN=1"
    for what, tensor in got.items():
        torch.testing.assert_close(tensor, pinned[name][what], rtol=1e-4, atol=1e-5, msg=f"{name} {what}")
