"""Properties every registered variant must have. A newly registered variant is tested automatically."""

import pytest
import torch

from attnzoo.zoo import variant_info
from attnzoo.zoo.conformance import CHECKS, padded_batch, run_check
from tests.conftest import available_variants, make, rel_err

ALL = available_variants()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name.replace(" ", "_"))
@pytest.mark.parametrize("name", ALL)
def test_every_variant_has_the_common_properties(name, check):
    result = run_check(check, name)
    assert result.status != "fail", f"{name}: {check.name}: {result.error} (fix: {check.fix})"


def test_every_check_applies_to_some_variant():
    """None of the checks is dead: each one runs on at least one built-in variant."""
    for check in CHECKS:
        if check.name != "a mask is refused":  # every built-in variant honours masks
            assert any(check.applies(variant_info(name).capabilities) for name in ALL), check.name


def test_linformer_forward_is_the_package():
    """Our wrapper adds masking only: unmasked, it returns exactly what linformer's module returns."""
    layer = make("linformer")
    x, _ = padded_batch(n=64)
    assert torch.equal(layer(x), layer.inner(x))


def test_reformer_forward_is_the_package():
    """Unmasked, at a length the package accepts and with its global RNG in the same state, our wrapper returns
    what reformer-pytorch's LSHSelfAttention returns."""
    layer = make("reformer", bucket_size=4, seed=None)
    x, _ = padded_batch(n=64)
    torch.manual_seed(0)
    ours = layer(x)
    torch.manual_seed(0)
    assert torch.equal(ours, layer.inner(x, input_mask=torch.ones(x.shape[:2], dtype=torch.bool)))


def test_skeinformer_is_safe_at_large_logits(qkv):
    q, k, v = qkv
    layer = make("skeinformer", sample_size=16)
    out = layer.attend(q * 40, k * 40, v)
    assert torch.isfinite(out).all()
    exact = make("vanilla").attend(q * 40, k * 40, v)
    full = make("skeinformer", sample_size=64).attend(q * 40, k * 40, v)
    torch.testing.assert_close(full, exact, rtol=1e-4, atol=1e-4)
    assert rel_err(out, exact) < 1.5
