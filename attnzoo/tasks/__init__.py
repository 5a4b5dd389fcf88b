"""Accuracy tasks in the style of the Long Range Arena: each builds seeded train/val/test token tensors."""

from attnzoo.tasks import images, listops, pathfinder, recall, text  # noqa: F401 - importing registers the tasks
from attnzoo.tasks.base import IGNORE, PAD, Split, TaskData
from attnzoo.tasks.registry import (
    TASKS,
    build_task,
    check_options,
    data_path,
    declared_length,
    missing_files,
    register_task,
)

__all__ = [
    "IGNORE",
    "PAD",
    "TASKS",
    "Split",
    "TaskData",
    "build_task",
    "check_options",
    "data_path",
    "declared_length",
    "missing_files",
    "register_task",
]
