"""The one forecasting recipe: Adam on MSE, validation every `eval_every` steps, early stopping when validation MSE
has not improved for `patience` validations, and test MSE/MAE of the weights with the best validation MSE, over every
test window."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from pydantic import Field

from attnzoo.tasks.train import EncoderSize, StepReport
from attnzoo.timeseries.data import ForecastData, Windows
from attnzoo.timeseries.models import NAIVE, AttentionForecaster, DLinear, repeat_last, seasonal_naive
from attnzoo.zoo import create_attention


class ForecastRecipe(EncoderSize):
    """Identical for every trained model in a suite (the attention variants and DLinear)."""

    steps: int = Field(1500, ge=1, description="most optimiser steps")
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)  # 1e-4 (the literature's, with 10 epochs) is far from converged at CPU budgets
    eval_every: int = Field(100, ge=1, description="steps between validation passes")
    patience: int = Field(3, ge=1, description="validations without improvement before stopping")
    dropout: float = Field(0.05, ge=0, lt=1)


@dataclass
class ForecastResult:
    mse: float
    mae: float
    best_val_mse: float | None
    best_step: int
    steps: int
    seconds: float
    windows: int  # test windows scored


Model = Callable[[torch.Tensor], torch.Tensor]


def build_model(data: ForecastData, name: str, params: dict, recipe: ForecastRecipe) -> torch.nn.Module:
    horizon, input_len = data.test.horizon, data.test.input_len
    if name == "dlinear":
        return DLinear(input_len, horizon)

    def make_attention() -> torch.nn.Module:
        return create_attention(name, recipe.dim, recipe.heads, max_seq_len=input_len, **params)

    return AttentionForecaster(
        make_attention, data.channels, input_len, horizon, recipe.dim, recipe.depth, recipe.ffn_dim, recipe.dropout
    )


@torch.no_grad()
def evaluate(model: Model, windows: Windows, batch_size: int = 256, device: str = "cpu") -> tuple[float, float, int]:
    """(MSE, MAE, windows) over every window of the split, each window and channel weighted alike."""
    if isinstance(model, torch.nn.Module):
        model.eval()
    squared = absolute = 0.0
    count = len(windows)
    for start in range(0, count, batch_size):
        x, y = windows.batch(torch.arange(start, min(start + batch_size, count)))
        error = model(x.to(device)).cpu() - y
        squared += float(error.double().square().sum())
        absolute += float(error.double().abs().sum())
    if isinstance(model, torch.nn.Module):
        model.train()
    elements = count * windows.horizon * windows.rows.shape[1]
    return squared / elements, absolute / elements, count


def naive(data: ForecastData, name: str) -> ForecastResult:
    horizon = data.test.horizon
    model = (
        (lambda x: repeat_last(x, horizon))
        if name == "repeat-last"
        else (lambda x: seasonal_naive(x, horizon, data.period))
    )
    started = time.perf_counter()
    mse, mae, count = evaluate(model, data.test)
    return ForecastResult(mse, mae, None, 0, 0, time.perf_counter() - started, count)


def fit(
    data: ForecastData,
    name: str,
    params: dict,
    recipe: ForecastRecipe,
    seed: int,
    progress: Callable[[dict], None] | None = None,
    device: str = "cpu",
) -> ForecastResult:
    """Train `name` (an attention variant, or dlinear) on the train windows; naive baselines are only evaluated."""
    if name in NAIVE:
        return naive(data, name)
    torch.manual_seed(seed)
    model = build_model(data, name, params, recipe).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    started = time.perf_counter()
    best = {"mse": float("inf"), "step": 0, "state": copy.deepcopy(model.state_dict())}
    order = torch.Generator().manual_seed(seed)
    permutation, position, stale, step = torch.randperm(len(data.train), generator=order), 0, 0, 0
    model.train()
    report = StepReport(progress, recipe.steps)
    while step < recipe.steps and stale < recipe.patience:
        if position >= len(permutation):  # a new epoch; the last partial batch of the previous one was used
            permutation, position = torch.randperm(len(data.train), generator=order), 0
        index = permutation[position : position + recipe.batch_size]
        position += recipe.batch_size
        x, y = data.train.batch(index)
        loss = torch.nn.functional.mse_loss(model(x.to(device)), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        report.step(step, loss.item)
        if step % recipe.eval_every == 0 or step == recipe.steps:
            val, _, _ = evaluate(model, data.val, device=device)
            if val < best["mse"]:
                best, stale = {"mse": val, "step": step, "state": copy.deepcopy(model.state_dict())}, 0
            else:
                stale += 1
            report.validated(step, loss.item(), val)
    model.load_state_dict(best["state"])
    mse, mae, count = evaluate(model, data.test, device=device)
    return ForecastResult(mse, mae, best["mse"], best["step"], step, time.perf_counter() - started, count)
