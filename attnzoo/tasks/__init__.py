"""Accuracy tasks in the style of the Long Range Arena: each builds seeded train/val/test token tensors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attnzoo.tasks import images, listops, pathfinder, text
from attnzoo.tasks.base import PAD, Split, TaskData

TASKS: dict[str, Callable[..., TaskData]] = {
    "listops": listops.build,
    "text": text.text,
    "retrieval": text.retrieval,
    "image": images.image,
    "cifar10": images.cifar10,
    "pathfinder": pathfinder.build,
}


def build_task(name: str, options: dict[str, Any]) -> TaskData:
    return TASKS[name](**options)


__all__ = ["PAD", "TASKS", "Split", "TaskData", "build_task"]
