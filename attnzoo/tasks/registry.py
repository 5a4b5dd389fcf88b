"""The task registry: a task is a builder function in one module, registered by name with `@register_task`;
its options are its keyword parameters, checked and read (for the sequence length) without building data."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from attnzoo.tasks.base import TaskData

Builder = Callable[..., TaskData]
TASKS: dict[str, Builder] = {}
_LENGTHS: dict[str, Callable[[dict[str, Any]], int]] = {}


def register_task(name: str, length: Callable[[dict[str, Any]], int] | None = None) -> Callable[[Builder], Builder]:
    """Register a builder under `name`. Its sequence length is its `seq_len` option, else `resolution`² (an
    image read pixel by pixel), else what `length` computes from the options with defaults filled in."""

    def decorator(builder: Builder) -> Builder:
        TASKS[name] = builder
        if length is not None:
            _LENGTHS[name] = length
        return builder

    return decorator


def build_task(name: str, options: dict[str, Any]) -> TaskData:
    return TASKS[name](**options)


def _defaults(task: str) -> dict[str, Any]:
    return {name: p.default for name, p in inspect.signature(TASKS[task]).parameters.items()}


def check_options(task: str, options: dict[str, Any]) -> list[str]:
    """Problems with a task's options: unknown names (with a did-you-mean) and required ones missing."""
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
    if task in _LENGTHS:
        return _LENGTHS[task](values)
    return int(values["seq_len"]) if "seq_len" in values else int(values["resolution"]) ** 2
