"""The accuracy benchmark: train the matched model with this cell's attention on one task, one seed."""

from __future__ import annotations

from pathlib import Path

from attnzoo.harness.plan import Cell
from attnzoo.tasks import build_task
from attnzoo.tasks.train import Progress, Recipe, train


def run(cell: Cell, workdir: Path | None = None, progress: Progress | None = None) -> list[dict]:
    task = build_task(cell.task, cell.config["task_options"])
    checkpoint = None
    if workdir is not None:
        (workdir / "checkpoints").mkdir(parents=True, exist_ok=True)
        checkpoint = workdir / "checkpoints" / f"{cell.key}.pt"
    recipe = Recipe(**cell.config["recipe"])
    result = train(task, cell.variant, cell.params, recipe, cell.seed, checkpoint, progress, cell.layer["device"])
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    extra = {
        "best_val_accuracy": result.best_val_accuracy,
        "best_step": result.best_step,
        "steps": result.steps,
        "train_seconds": result.seconds,
        "chance": task.chance(),
        "data": task.note,
        "sizes": [len(task.train), len(task.val), len(task.test)],
    }
    return [dict(metric="accuracy", value=result.test_accuracy, unit="fraction", extra=extra)]
