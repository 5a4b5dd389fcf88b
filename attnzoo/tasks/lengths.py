"""Sequence lengths and option checks of the tasks, from their builders' signatures (without building data)."""

from __future__ import annotations

import difflib
import inspect
from typing import Any


def _defaults(task: str) -> dict[str, Any]:
    from attnzoo.tasks import TASKS

    return {name: p.default for name, p in inspect.signature(TASKS[task]).parameters.items()}


def check_options(task: str, options: dict[str, Any]) -> list[str]:
    """Problems with a task's options: unknown names (with a did-you-mean) and required ones missing."""
    from attnzoo.tasks import TASKS

    if task not in TASKS:
        close = difflib.get_close_matches(task, list(TASKS), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return [f"unknown task {task!r}{hint} (tasks: {', '.join(TASKS)})"]
    defaults = _defaults(task)
    problems = []
    if "recipe" in options:
        from pydantic import ValidationError

        from attnzoo.tasks.train import Recipe

        try:
            Recipe(**options["recipe"])
        except (ValidationError, TypeError) as err:
            problems.append(f"task {task!r} recipe override: {err}".splitlines()[0])
    for name in (n for n in options if n != "recipe"):
        if name not in defaults:
            close = difflib.get_close_matches(name, list(defaults), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"task {task!r} has no option {name!r}{hint} (options: {', '.join(defaults)})")
    for name, default in defaults.items():
        if default is inspect.Parameter.empty and name not in options:
            problems.append(f"task {task!r} needs option {name!r}")
    return problems


def declared_length(task: str, options: dict[str, Any]) -> int:
    values = {**_defaults(task), **{k: v for k, v in options.items() if k != "recipe"}}
    if "seq_len" in values:
        return int(values["seq_len"])
    if values["resolution"] is None:  # the image task's default depends on its source
        from attnzoo.tasks.images import DEFAULT_RESOLUTION

        return DEFAULT_RESOLUTION[values["source"]] ** 2
    return int(values["resolution"]) ** 2
