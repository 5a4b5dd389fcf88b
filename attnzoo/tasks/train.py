"""The one recipe: AdamW, linear warm-up then linear decay, gradient clipping, a fixed evaluation schedule, and
test accuracy of the checkpoint with the best validation accuracy. Resumable from its last checkpoint."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field

from attnzoo.tasks.base import IGNORE, Split, TaskData
from attnzoo.tasks.model import Classifier, Encoder, Tagger
from attnzoo.zoo import create_attention


class EncoderSize(BaseModel):
    """The encoder's size, shared by the accuracy and forecasting recipes."""

    model_config = ConfigDict(extra="forbid")
    dim: int = Field(64, ge=1)
    depth: int = Field(2, ge=1)
    heads: int = Field(2, ge=1)
    ffn_dim: int = Field(128, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)


class Recipe(EncoderSize):
    """Identical for every variant in a suite."""

    steps: int = Field(1000, ge=1)
    short_conv: int = Field(
        0,
        ge=0,
        description="width of a causal depthwise convolution over the embeddings before the first block; 0: none",
    )
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_steps: int = Field(100, ge=0)
    clip_norm: float = Field(1.0, gt=0)
    eval_every: int = Field(100, ge=1, description="steps between validation passes (and checkpoints)")
    eval_batches: int | None = Field(None, ge=1, description="cap on validation batches; None = the whole split")


@dataclass
class TrainResult:
    test_accuracy: float
    best_val_accuracy: float
    best_step: int
    steps: int
    seconds: float
    step_seconds: float = 0.0  # mean wall time of a training step (forward, backward, update), evaluation left out


Progress = Callable[[dict], None]


def build_model(task: TaskData, variant: str, params: dict, recipe: Recipe) -> Classifier | Tagger:
    def make_attention() -> torch.nn.Module:
        return create_attention(variant, recipe.dim, recipe.heads, max_seq_len=task.seq_len, **params)

    encoder = Encoder(
        make_attention,
        task.vocab_size,
        task.seq_len,
        recipe.dim,
        recipe.depth,
        recipe.ffn_dim,
        recipe.dropout,
        recipe.short_conv,
    )
    if task.per_token:
        return Tagger(encoder, recipe.dim, task.num_classes)
    return Classifier(encoder, recipe.dim, task.num_classes, task.two_tower)


def outputs(
    model: Classifier | Tagger, tokens: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, targets): per sequence, or at the scored positions only of a per-token task (the head and the loss
    over a large vocabulary at every position would cost more than the whole encoder)."""
    if isinstance(model, Tagger):
        scored = labels != IGNORE
        return model(tokens, scored), labels[scored]
    return model(tokens), labels


@torch.no_grad()
def accuracy(model: Classifier | Tagger, data: Split, batch_size: int, max_batches: int | None = None) -> float:
    """The share of sequences (or of scored positions) classified right."""
    model.eval()
    device = next(model.parameters()).device
    correct = total = 0
    for i, start in enumerate(range(0, len(data), batch_size)):
        if max_batches is not None and i >= max_batches:
            break
        tokens, labels = data.tokens[start : start + batch_size], data.labels[start : start + batch_size]
        logits, targets = outputs(model, tokens.to(device), labels.to(device))
        correct += int((logits.argmax(dim=-1) == targets).sum())
        total += len(targets)
    model.train()
    return correct / max(total, 1)


def _schedule(recipe: Recipe) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < recipe.warmup_steps:
            return (step + 1) / recipe.warmup_steps
        return max(0.0, (recipe.steps - step) / max(1, recipe.steps - recipe.warmup_steps))

    return factor


class StepReport:
    """Training progress for the display: step and loss about once a second, and the validation score as each
    one is taken, so that a long first stretch before the first validation does not look stalled."""

    interval_s = 1.0

    def __init__(self, progress: Callable[[dict], None] | None, steps: int):
        self.progress, self.steps = progress, steps
        self.val: float | None = None
        self.last = time.perf_counter()

    def step(self, step: int, loss: Callable[[], float]) -> None:
        if self.progress and time.perf_counter() - self.last >= self.interval_s:
            self._send(step, loss())

    def validated(self, step: int, loss: float, val: float) -> None:
        self.val = val
        if self.progress:
            self._send(step, loss)

    def _send(self, step: int, loss: float) -> None:
        self.last = time.perf_counter()
        self.progress({"step": step, "steps": self.steps, "loss": loss, "val": self.val})


def train(
    task: TaskData,
    variant: str,
    params: dict,
    recipe: Recipe,
    seed: int,
    checkpoint: Path | None = None,
    progress: Progress | None = None,
    device: str = "cpu",
    start_from: Path | None = None,
    keep_best: Path | None = None,
) -> TrainResult:
    """Train and test one model. `start_from`: a model saved by an earlier run (`keep_best`) to start from rather
    than from the seed's initialisation, as far as the shapes allow (see `warm_start`)."""
    torch.manual_seed(seed)
    model = build_model(task, variant, params, recipe).to(device)
    if start_from is not None:
        warm_start(model, torch.load(start_from, map_location=device))
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(recipe))
    state = {"step": 0, "best_val": -1.0, "best_step": 0, "test_at_best": 0.0, "seconds": 0.0, "step_seconds": 0.0}
    if checkpoint is not None and checkpoint.exists():
        saved = torch.load(checkpoint, weights_only=False, map_location=device)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["torch_rng"].cpu())
        state = saved["state"]

    model.train()
    batches_per_epoch = max(1, len(task.train) // recipe.batch_size)
    permutation = None
    started = time.perf_counter() - state["seconds"]
    loss_value = math.nan
    report = StepReport(progress, recipe.steps)
    while state["step"] < recipe.steps:
        step = state["step"]
        position = step % batches_per_epoch
        if permutation is None or position == 0:
            # One permutation per epoch, a function of (seed, epoch) only, so a resumed run sees the same order.
            epoch = step // batches_per_epoch
            permutation = torch.randperm(
                len(task.train), generator=torch.Generator().manual_seed(seed * 100_003 + epoch)
            )
        index = permutation[position * recipe.batch_size : (position + 1) * recipe.batch_size]
        tokens, labels = task.train.tokens[index].to(device), task.train.labels[index].to(device)
        stepping = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(*outputs(model, tokens, labels))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.clip_norm)
        optimizer.step()
        scheduler.step()
        loss_value = loss.item()  # waits for the step to finish, on any device
        state["step_seconds"] = state.get("step_seconds", 0.0) + time.perf_counter() - stepping
        state["step"] = step + 1
        report.step(state["step"], loss.item)
        if state["step"] % recipe.eval_every == 0 or state["step"] == recipe.steps:
            val = accuracy(model, task.val, recipe.batch_size * 4, recipe.eval_batches)
            if val > state["best_val"]:
                test = accuracy(model, task.test, recipe.batch_size * 4)
                state.update(best_val=val, best_step=state["step"], test_at_best=test)
                if keep_best is not None:
                    _atomic_save(keep_best, model.state_dict())
            state["seconds"] = time.perf_counter() - started
            if checkpoint is not None:
                _save(checkpoint, model, optimizer, scheduler, state)
            report.validated(state["step"], loss_value, val)
    return TrainResult(
        state["test_at_best"],
        state["best_val"],
        state["best_step"],
        state["step"],
        time.perf_counter() - started,
        state.get("step_seconds", 0.0) / max(state["step"], 1),
    )


def warm_start(model: torch.nn.Module, saved: dict[str, torch.Tensor]) -> None:
    """Copy a saved model into `model`: each tensor of the same shape whole; one that has grown with the sequence
    length (position embeddings, a projection over positions), into its leading block; the rest stays as
    initialised."""
    own = model.state_dict()
    with torch.no_grad():
        for name, value in saved.items():
            target = own.get(name)
            if (
                target is None
                or target.dim() != value.dim()
                or any(a > b for a, b in zip(value.shape, target.shape, strict=True))
            ):
                continue
            target[tuple(slice(0, size) for size in value.shape)] = value


def _save(path: Path, model, optimizer, scheduler, state: dict) -> None:
    saved = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "state": state,
    }
    _atomic_save(path, saved)


def _atomic_save(path: Path, saved: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(saved, tmp)
    os.replace(tmp, path)  # a kill mid-save leaves the previous file intact
