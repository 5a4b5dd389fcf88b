"""The one forecasting recipe: Adam on MSE, validation every `eval_every` steps, early stopping when validation MSE
has not improved for `patience` validations, and test MSE/MAE of the weights with the best validation MSE, over every
test window."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field

from attnzoo.tasks.train import EncoderSize, StepReport
from attnzoo.timeseries.backbones import Shape, build
from attnzoo.timeseries.data import ForecastData, Windows
from attnzoo.timeseries.models import NAIVE, DLinear, repeat_last, seasonal_naive
from attnzoo.zoo import create_attention


class ForecastRecipe(EncoderSize):
    """Identical for every trained model in a suite (the attention variants and DLinear)."""

    steps: int = Field(1500, ge=1, description="most optimiser steps")
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)  # 1e-4 (the literature's, with 10 epochs) is far from converged at CPU budgets
    eval_every: int = Field(100, ge=1, description="steps between validation passes")
    patience: int = Field(3, ge=1, description="validations without improvement before stopping")
    dropout: float = Field(0.05, ge=0, lt=1)
    optimizer: Literal["adam", "adamw"] = Field("adam", description="torch's Adam or AdamW, at their defaults")
    epochs: int | None = Field(
        None, ge=1, description="validate once per epoch and stop after this many (or `steps`, whichever first)"
    )
    sample_channels: bool = Field(
        False,
        description="channel-independent backbones: a batch is `batch_size` (window, channel) pairs, one random "
        "channel per window, rather than every channel of `batch_size` windows",
    )

    def identity(self) -> dict:
        """What a cell's key holds of the recipe: fields added since the first release only where they are set, so
        that runs written before them resume."""
        dump = self.model_dump()
        added = ("optimizer", "epochs", "sample_channels")
        return {k: v for k, v in dump.items() if k not in added or v != type(self).model_fields[k].default}


@dataclass
class ForecastResult:
    mse: float
    mae: float
    best_val_mse: float | None
    best_step: int
    steps: int
    seconds: float
    windows: int  # test windows scored
    dropped: tuple[float, float] | None = None  # (MSE, MAE) without the last partial test batch of 32 windows


Model = Callable[[torch.Tensor], torch.Tensor]


def shape(data: ForecastData, recipe: ForecastRecipe, patch_len: int = 16, stride: int = 8) -> Shape:
    return Shape(
        data.channels,
        data.test.input_len,
        data.test.horizon,
        recipe.dim,
        recipe.depth,
        recipe.ffn_dim,
        recipe.dropout,
        patch_len,
        stride,
    )


def build_model(
    data: ForecastData, name: str, params: dict, recipe: ForecastRecipe, backbone: str = "encoder", **patch: int
) -> torch.nn.Module:
    if name == "dlinear":
        return DLinear(data.test.input_len, data.test.horizon)

    def make_attention(n: int) -> torch.nn.Module:
        return create_attention(name, recipe.dim, recipe.heads, max_seq_len=n, **params)

    return build(backbone, make_attention, shape(data, recipe, **patch))


# Scoring batches: 32 windows, as the literature's test loader has them (its code drops the last partial one); on a
# CPU also 1.5x to 2.7x faster than 256 (a channel-independent model's activations for 32 windows stay in cache).
# Variants that sample at inference (ProbSparse, BigBird's random blocks) draw per batch, so their scores depend on it.
BATCH = 32


def evaluate(model: Model, windows: Windows, batch_size: int = BATCH, device: str = "cpu") -> tuple[float, float, int]:
    """(MSE, MAE, windows) over every window of the split, each window and channel weighted alike."""
    return _means(_batch_errors(model, windows, batch_size, device), windows)


def score(model: Model, windows: Windows, device: str = "cpu") -> tuple[float, float, int, tuple[float, float] | None]:
    """(MSE, MAE, windows) over every window of a test split, and beside them (MSE, MAE) as the released code of
    Informer, Autoformer, FEDformer and S3Attention score it: without the last partial batch of 32 windows (None
    where no batch is whole). One pass over the split."""
    batches = _batch_errors(model, windows, BATCH, device)
    whole = [b for b in batches if b[2] == BATCH]
    return *_means(batches, windows), (_means(whole, windows)[:2] if whole else None)


@torch.no_grad()
def _batch_errors(model: Model, windows: Windows, batch_size: int, device: str) -> list[tuple[float, float, int]]:
    """(squared error sum, absolute error sum, windows) of each batch, in order."""
    if isinstance(model, torch.nn.Module):
        model.eval()
    batches = []
    for start in range(0, len(windows), batch_size):
        x, y = windows.batch(torch.arange(start, min(start + batch_size, len(windows))))
        error = (model(x.to(device)).cpu() - y).double()
        batches.append((float(error.square().sum()), float(error.abs().sum()), len(x)))
    if isinstance(model, torch.nn.Module):
        model.train()
    return batches


def _means(batches: list[tuple[float, float, int]], windows: Windows) -> tuple[float, float, int]:
    count = sum(b[2] for b in batches)
    elements = count * windows.horizon * windows.rows.shape[1]
    return sum(b[0] for b in batches) / elements, sum(b[1] for b in batches) / elements, count


def naive(data: ForecastData, name: str) -> ForecastResult:
    horizon = data.test.horizon
    model = (
        (lambda x: repeat_last(x, horizon))
        if name == "repeat-last"
        else (lambda x: seasonal_naive(x, horizon, data.period))
    )
    started = time.perf_counter()
    mse, mae, count, dropped = score(model, data.test)
    seconds = time.perf_counter() - started
    return ForecastResult(mse, mae, None, 0, 0, seconds, count, dropped)


def fit(
    data: ForecastData,
    name: str,
    params: dict,
    recipe: ForecastRecipe,
    seed: int,
    progress: Callable[[dict], None] | None = None,
    device: str = "cpu",
    backbone: str = "encoder",
    **patch: int,
) -> ForecastResult:
    """Train `name` (an attention variant in `backbone`, or dlinear) on the train windows; naive baselines are only
    evaluated."""
    if name in NAIVE:
        return naive(data, name)
    torch.manual_seed(seed)
    model = build_model(data, name, params, recipe, backbone, **patch).to(device)
    optimizer = (torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam)(
        model.parameters(), lr=recipe.lr
    )
    epoch_steps = -(-len(data.train) // recipe.batch_size)
    steps = min(recipe.steps, recipe.epochs * epoch_steps) if recipe.epochs else recipe.steps
    eval_every = epoch_steps if recipe.epochs else recipe.eval_every
    per_channel = recipe.sample_channels and backbone in ("channel-independent", "patch")
    started = time.perf_counter()
    best = {"mse": float("inf"), "step": 0, "state": copy.deepcopy(model.state_dict())}
    order = torch.Generator().manual_seed(seed)
    permutation, position, stale, step = torch.randperm(len(data.train), generator=order), 0, 0, 0
    model.train()
    report = StepReport(progress, steps)
    while step < steps and stale < recipe.patience:
        if position >= len(permutation):  # a new epoch; the last partial batch of the previous one was used
            permutation, position = torch.randperm(len(data.train), generator=order), 0
        index = permutation[position : position + recipe.batch_size]
        position += recipe.batch_size
        x, y = data.train.batch(index)
        if per_channel:  # one random channel of each window: the model sees single-channel series
            pick = torch.randint(x.shape[2], (x.shape[0],), generator=order)
            rows = torch.arange(x.shape[0])
            x, y = x[rows, :, pick][..., None], y[rows, :, pick][..., None]
        loss = torch.nn.functional.mse_loss(model(x.to(device)), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        report.step(step, loss.item)
        if step % eval_every == 0 or step == steps:
            val, _, _ = evaluate(model, data.val, device=device)
            if val < best["mse"]:
                best, stale = {"mse": val, "step": step, "state": copy.deepcopy(model.state_dict())}, 0
            else:
                stale += 1
            report.validated(step, loss.item(), val)
    model.load_state_dict(best["state"])
    mse, mae, count, dropped = score(model, data.test, device)
    seconds = time.perf_counter() - started
    return ForecastResult(mse, mae, best["mse"], best["step"], step, seconds, count, dropped)
