"""The properties every variant must have, as checks that say what to fix: run by the test suite on every
registered variant and by `attnzoo check` on a user's own, packaged or not.

A check that fails names the capability to declare when the variant is right and its claim is wrong (a layer
that pads internally is not padding-equivalent; one that draws samples is stochastic)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from attnzoo.zoo.registry import Capabilities, create_attention, variant_info

DIM, HEADS, N, MAX_SEQ_LEN = 32, 2, 40, 64
Factory = Callable[..., torch.nn.Module]  # keyword overrides (e.g. seed=, causal=) -> a fresh layer, same weights


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Factory, Capabilities], None]  # raises when the property does not hold
    applies: Callable[[Capabilities], bool]
    fix: str  # what to change, or which capability to declare, when it fails


@dataclass(frozen=True)
class Result:
    check: Check
    status: str  # "pass", "fail" or "n/a" (the capabilities say it does not apply)
    error: str = ""


def padded_batch(n: int = N, short: int = 23, garbage_seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two sequences, the second with `short` real tokens, and large garbage at its padded positions."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, n, DIM, generator=g)
    mask = torch.ones(2, n, dtype=torch.bool)
    mask[1, short:] = False
    junk = torch.randn(2, n, DIM, generator=torch.Generator().manual_seed(garbage_seed)) * 5
    return torch.where(mask[..., None], x, junk), mask


def make_layer(name: str, max_seq_len: int = MAX_SEQ_LEN, weights_seed: int = 0, **params: Any) -> torch.nn.Module:
    """A variant's layer in eval mode with seeded weights and, for a stochastic variant, a seeded generator."""
    torch.manual_seed(weights_seed)
    if variant_info(name).capabilities.stochastic:
        params.setdefault("seed", 1234)
    return create_attention(name, DIM, HEADS, max_seq_len=max_seq_len, **params).eval()


def factory(name: str, weights_seed: int = 0, **params: Any) -> Factory:
    """Fresh layers of one variant setting, the same weights each time, with keyword overrides."""
    base = {**variant_info(name).check_params, **params}
    return lambda **overrides: make_layer(name, weights_seed=weights_seed, **{**base, **overrides})


def _close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    try:
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    except AssertionError as err:
        raise AssertionError(f"{what}: {str(err).splitlines()[0]}") from None


def _dtypes(make: Factory, caps: Capabilities) -> None:
    for dtype_name in caps.dtypes:
        dtype = getattr(torch, dtype_name)
        x, mask = padded_batch()
        y = make().to(dtype)(x.to(dtype), mask=mask)
        if y.shape != x.shape or y.dtype != dtype:
            raise AssertionError(f"{dtype_name}: output {y.dtype} {tuple(y.shape)} for input {tuple(x.shape)}")
        if not torch.isfinite(y).all():
            raise AssertionError(f"{dtype_name}: non-finite outputs")


def _gradients(make: Factory, caps: Capabilities) -> None:
    layer = make().train()
    x, mask = padded_batch()
    x.requires_grad_(True)
    layer(x, mask=mask)[mask].square().sum().backward()
    if x.grad is None or not x.grad[mask].abs().sum() > 0:
        raise AssertionError("no gradient reaches the input")
    for pname, param in layer.named_parameters():
        if param.grad is None or not param.grad.abs().sum() > 0:
            raise AssertionError(f"no gradient reaches parameter {pname}")


def _empty_batch(make: Factory, caps: Capabilities) -> None:
    layer = make().train()
    x = torch.randn(0, N, DIM, requires_grad=True)
    for mask in (None, torch.ones(0, N, dtype=torch.bool)):
        y = layer(x, mask=mask)
        if y.shape != (0, N, DIM):
            raise AssertionError(f"output shape {tuple(y.shape)} for an empty batch")
        y.sum().backward()


def _deterministic(make: Factory, caps: Capabilities) -> None:
    x, mask = padded_batch()
    if not torch.equal(make()(x, mask=mask), make()(x, mask=mask)):
        raise AssertionError("two layers built under the same seed give different outputs")


def _seed_matters(make: Factory, caps: Capabilities) -> None:
    x, mask = padded_batch()
    if torch.allclose(make(seed=1)(x, mask=mask), make(seed=2)(x, mask=mask)):
        raise AssertionError("seeds 1 and 2 give the same outputs")


def _no_leak(make: Factory, caps: Capabilities) -> None:
    (x1, mask), (x2, _) = padded_batch(garbage_seed=1), padded_batch(garbage_seed=2)  # fresh layers: same samples
    _close(make()(x1, mask=mask)[mask], make()(x2, mask=mask)[mask], "garbage at padded positions changes outputs")


def _refuses_mask(make: Factory, caps: Capabilities) -> None:
    x, mask = padded_batch()
    try:
        make()(x, mask=mask)
    except (ValueError, TypeError, NotImplementedError):
        return
    raise AssertionError("it takes a mask although its capabilities say it cannot honour one")


def _padding_equivalent(make: Factory, caps: Capabilities) -> None:
    x, mask = padded_batch(short=23)
    layer = make()
    _close(layer(x, mask=mask)[1, :23], layer(x[1:, :23])[0], "a padded sequence differs from the same one alone")


def _causal(make: Factory, caps: Capabilities) -> None:
    x, _ = padded_batch()
    changed = x.clone()
    changed[:, 30:] = torch.randn_like(changed[:, 30:])
    layer = make(causal=True)
    _close(layer(x)[:, :30], layer(changed)[:, :30], "changing tokens 30.. changes outputs before 30")
    if torch.allclose(layer(x)[:, 30:], layer(changed)[:, 30:]):
        raise AssertionError("changing tokens 30.. leaves their own outputs unchanged")


def _bad_input(make: Factory, caps: Capabilities) -> None:
    layer = make()
    x, mask = padded_batch()
    cases = [
        ("a wrong feature width", lambda: layer(x[..., :-1]), "expected x of shape"),
        ("a float mask", lambda: layer(x, mask=mask.float()), "mask must be a bool tensor"),
        ("an all-padding row", lambda: layer(x, mask=torch.zeros_like(mask)), "at least one real token"),
    ]
    if caps.needs_max_seq_len:
        cases.append(("a sequence over max_seq_len", lambda: layer(torch.randn(1, 65, DIM)), "exceeds this layer"))
    for what, call, expected in cases:
        try:
            call()
        except ValueError as err:
            if expected not in str(err):
                raise AssertionError(f"{what}: ValueError without saying {expected!r}: {err}") from None
            continue
        except Exception as err:  # noqa: BLE001 - any other failure is the unclear error this check is about
            raise AssertionError(f"{what}: {type(err).__name__} instead of a clear ValueError: {err}") from None
        raise AssertionError(f"{what} is accepted")


def _attend(make: Factory, caps: Capabilities) -> None:
    layer = make()
    x, mask = padded_batch()
    got = layer.project_out(layer.attend(*layer.projections(x), mask))
    _close(got[mask], make()(x, mask=mask)[mask], "project_out(attend(projections(x))) differs from forward(x)")


def _always(caps: Capabilities) -> bool:
    return True


CHECKS = [
    Check("shapes and dtypes", _dtypes, _always, "declare the dtypes it supports: Capabilities(dtypes=(...))"),
    Check("gradients reach every parameter", _gradients, _always, "drop parameters the output does not use"),
    Check(
        "an empty batch gives an empty output",
        _empty_batch,
        _always,
        "answer B = 0 with zeros of x's shape (attnzoo.zoo.base.empty_batch; ProjectedAttention does it)",
    ),
    Check(
        "deterministic under a seed",
        _deterministic,
        _always,
        "a variant that draws random samples declares Capabilities(stochastic=True) and takes a `seed` parameter",
    ),
    Check(
        "the seed changes the samples",
        _seed_matters,
        lambda caps: caps.stochastic,
        "use the `seed` parameter for every draw, or declare Capabilities(stochastic=False)",
    ),
    Check(
        "padded positions do not leak",
        _no_leak,
        lambda caps: caps.key_padding_mask,
        "honour the mask (keys at padded positions get no weight), or declare "
        "Capabilities(key_padding_mask=False) and refuse a mask",
    ),
    Check(
        "a mask is refused",
        _refuses_mask,
        lambda caps: not caps.key_padding_mask,
        "raise ValueError when given a mask it cannot honour, or declare Capabilities(key_padding_mask=True)",
    ),
    Check(
        "padded equals unpadded",
        _padding_equivalent,
        lambda caps: caps.key_padding_mask and caps.padding_equivalent,
        "a layer whose output depends on the padded length (it pads internally to a window or bucket, or "
        "samples over all positions) declares Capabilities(padding_equivalent=False)",
    ),
    Check(
        "causal ignores the future",
        _causal,
        lambda caps: caps.causal,
        "mask future keys when causal=True, or declare Capabilities(causal=False)",
    ),
    Check(
        "bad input is a clear error",
        _bad_input,
        _always,
        "check inputs with attnzoo.zoo.base.check_inputs (subclassing attnzoo.ProjectedAttention does it)",
    ),
    Check(
        "attend matches forward",
        _attend,
        lambda caps: caps.approximates_softmax,
        "approximates_softmax=True needs projections(), attend(q, k, v, mask) and project_out() that compose "
        "to forward (subclass attnzoo.ProjectedAttention), or declare Capabilities(approximates_softmax=False)",
    ),
]


def run_check(check: Check, name: str, **params: Any) -> Result:
    caps = variant_info(name).capabilities
    if not check.applies(caps):
        return Result(check, "n/a")
    try:
        check.run(factory(name, **params), caps)
    except Exception as err:  # noqa: BLE001 - a check reports every failure as a result
        message = str(err) if isinstance(err, AssertionError) else f"{type(err).__name__}: {err}"
        return Result(check, "fail", message)
    return Result(check, "pass")


def check_variant(name: str, **params: Any) -> list[Result]:
    """Every check on one variant setting (a registered name or a `module:Class`)."""
    return [run_check(check, name, **params) for check in CHECKS]
