"""Properties every registered variant must have. A newly registered variant is tested automatically."""

import pytest
import torch

from attnzoo.zoo import variant_info
from tests.conftest import DIM, available_variants, make, rel_err

ALL = available_variants()
N = 40


def padded_batch(n: int = N, short: int = 23, garbage_seed: int = 0):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, n, DIM, generator=g)
    mask = torch.ones(2, n, dtype=torch.bool)
    mask[1, short:] = False
    junk = torch.randn(2, n, DIM, generator=torch.Generator().manual_seed(garbage_seed)) * 5
    return torch.where(mask[..., None], x, junk), mask


@pytest.mark.parametrize("name", ALL)
def test_shapes_and_dtypes(name):
    for dtype_name in variant_info(name).capabilities.dtypes:
        dtype = getattr(torch, dtype_name)
        layer = make(name).to(dtype)
        x, mask = padded_batch()
        y = layer(x.to(dtype), mask=mask)
        assert y.shape == x.shape and y.dtype == dtype
        assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", ALL)
def test_gradients_reach_every_parameter(name):
    layer = make(name).train()
    x, mask = padded_batch()
    x.requires_grad_(True)
    layer(x, mask=mask)[mask].square().sum().backward()
    assert x.grad is not None and x.grad[mask].abs().sum() > 0
    for pname, param in layer.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, f"{name}: no gradient reaches {pname}"


@pytest.mark.parametrize("name", ALL)
def test_an_empty_batch_gives_an_empty_output(name):
    layer = make(name).train()
    x = torch.randn(0, N, DIM, requires_grad=True)
    for mask in (None, torch.ones(0, N, dtype=torch.bool)):
        y = layer(x, mask=mask)
        assert y.shape == (0, N, DIM)
        y.sum().backward()  # as on any batch


@pytest.mark.parametrize("name", ALL)
def test_deterministic_under_a_seed(name):
    x, mask = padded_batch()
    assert torch.equal(make(name)(x, mask=mask), make(name)(x, mask=mask))


@pytest.mark.parametrize("name", available_variants(stochastic=True))
def test_seed_changes_the_samples(name):
    x, mask = padded_batch()
    assert not torch.allclose(make(name, seed=1)(x, mask=mask), make(name, seed=2)(x, mask=mask))


@pytest.mark.parametrize("name", ALL)
def test_padded_positions_do_not_leak(name):
    """Garbage at padded positions must not change any output at a real position."""
    x1, mask = padded_batch(garbage_seed=1)
    x2, _ = padded_batch(garbage_seed=2)
    y1, y2 = make(name)(x1, mask=mask), make(name)(x2, mask=mask)
    torch.testing.assert_close(y1[mask], y2[mask], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", available_variants(padding_equivalent=True))
def test_padded_equals_unpadded(name):
    x, mask = padded_batch(short=23)
    layer = make(name)
    padded = layer(x, mask=mask)[1, :23]
    alone = layer(x[1:, :23])[0]
    torch.testing.assert_close(padded, alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", available_variants(causal=True))
def test_causal_ignores_the_future(name):
    x, _ = padded_batch()
    changed = x.clone()
    changed[:, 30:] = torch.randn_like(changed[:, 30:])
    layer = make(name, causal=True)
    torch.testing.assert_close(layer(x)[:, :30], layer(changed)[:, :30])
    assert not torch.allclose(layer(x)[:, 30:], layer(changed)[:, 30:])


@pytest.mark.parametrize("name", ALL)
def test_bad_input_is_a_clear_error(name):
    layer = make(name)
    x, mask = padded_batch()
    with pytest.raises(ValueError, match="expected x of shape"):
        layer(x[..., :-1])
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        layer(x, mask=mask.float())
    with pytest.raises(ValueError, match="at least one real token"):
        layer(x, mask=torch.zeros_like(mask))
    if variant_info(name).capabilities.needs_max_seq_len:
        with pytest.raises(ValueError, match="exceeds this layer's max_seq_len"):
            layer(torch.randn(1, 65, DIM))


@pytest.mark.parametrize("name", available_variants(approximates_softmax=True))
def test_attend_matches_forward(name):
    """forward == output projection of attend(q, k, v): the kernel form is the same computation."""
    layer = make(name)
    x, mask = padded_batch()
    got = layer.project_out(layer.attend(*layer.projections(x), mask))
    torch.testing.assert_close(got[mask], make(name)(x, mask=mask)[mask], rtol=1e-5, atol=1e-5)


def test_linformer_forward_is_the_package():
    """Our wrapper adds masking only: unmasked, it returns exactly what linformer's module returns."""
    layer = make("linformer")
    x, _ = padded_batch(n=64)
    assert torch.equal(layer(x), layer.inner(x))


def test_skeinformer_is_safe_at_large_logits(qkv):
    q, k, v = qkv
    layer = make("skeinformer", sample_size=16)
    out = layer.attend(q * 40, k * 40, v)
    assert torch.isfinite(out).all()
    exact = make("vanilla").attend(q * 40, k * 40, v)
    full = make("skeinformer", sample_size=64).attend(q * 40, k * 40, v)
    torch.testing.assert_close(full, exact, rtol=1e-4, atol=1e-4)
    assert rel_err(out, exact) < 1.5
