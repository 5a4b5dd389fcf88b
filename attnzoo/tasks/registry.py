"""The task registry: a task is a builder function in one module, registered by name with `@register_task`;
its options are its keyword parameters, checked and read (for the sequence length) without building data."""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from attnzoo.tasks.base import TaskData

Builder = Callable[..., TaskData]
TASKS: dict[str, Builder] = {}
_LENGTHS: dict[str, Callable[[dict[str, Any]], int]] = {}
_FILES: dict[str, Callable[[dict[str, Any]], list[list[Path]]]] = {}
_CHECKS: dict[str, Callable[[dict[str, Any]], list[str]]] = {}


def register_task(
    name: str,
    length: Callable[[dict[str, Any]], int] | None = None,
    files: Callable[[dict[str, Any]], list[list[Path]]] | None = None,
    check: Callable[[dict[str, Any]], list[str]] | None = None,
) -> Callable[[Builder], Builder]:
    """Register a builder under `name`. Its sequence length is its `seq_len` option, else `resolution`² (an
    image read pixel by pixel), else what `length` computes from the options with defaults filled in. `files`
    lists, from the options (defaults filled in, `path` resolved), the files the task reads: each entry is a list
    of alternatives, one of which must exist (checked by `attnzoo validate`); `check` lists what is wrong with
    the option values (defaults filled in), so that `validate` reports it rather than the run."""

    def decorator(builder: Builder) -> Builder:
        TASKS[name] = builder
        if length is not None:
            _LENGTHS[name] = length
        if files is not None:
            _FILES[name] = files
        if check is not None:
            _CHECKS[name] = check
        return builder

    return decorator


def in_path(*names: str) -> Callable[[dict[str, Any]], list[list[Path]]]:
    """`files` for a task that reads these files from its `path` directory when it is given one."""
    return lambda o: [[Path(o["path"]) / name] for name in names] if o.get("path") else []


def data_path(text: str, base: str | Path | None) -> Path:
    """A data path as a suite gives it: ${VAR} and ~ expanded, relative to `base` (the suite's directory)."""
    path = Path(os.path.expandvars(text)).expanduser()
    return Path(base) / path if not path.is_absolute() and base is not None else path


def _resolved(options: dict[str, Any], base: str | Path | None) -> dict[str, Any]:
    return {**options, "path": str(data_path(options["path"], base))} if options.get("path") else options


def build_task(name: str, options: dict[str, Any], base: str | Path | None = None) -> TaskData:
    """The task's data; a `path` option is relative to `base` (the suite's directory)."""
    return TASKS[name](**_resolved(options, base))


def missing_files(task: str, options: dict[str, Any], base: str | Path | None = None) -> list[str]:
    """The data files the task would read and cannot find, as problems that say what to do."""
    if task not in _FILES:
        return []
    values = {**_defaults(task), **_resolved({k: v for k, v in options.items() if k != "recipe"}, base)}
    try:
        needed = _FILES[task](values)
    except (TypeError, ValueError, KeyError):
        return []  # options the builder itself rejects: reported by the other checks or at run time
    missing = [alternatives for alternatives in needed if not any(p.exists() for p in alternatives)]
    if not missing:
        return []
    where = f" (path {options['path']!r} resolves to {values['path']})" if options.get("path") else ""
    names = ", ".join(str(alternatives[0]) for alternatives in missing[:3])
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    return [f"task {task!r} reads files that are not there: {names}{more}{where}"]


def _defaults(task: str) -> dict[str, Any]:
    return {name: p.default for name, p in inspect.signature(TASKS[task]).parameters.items()}


def check_options(task: str, options: dict[str, Any]) -> list[str]:
    """Problems with a task's options: unknown names (with a did-you-mean) and required ones missing."""
    if task not in TASKS:
        close = difflib.get_close_matches(task, list(TASKS), n=1, cutoff=0.6)
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
            close = difflib.get_close_matches(name, list(defaults), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"task {task!r} has no option {name!r}{hint} (options: {', '.join(defaults)})")
    for name, default in defaults.items():
        if default is inspect.Parameter.empty and name not in options:
            problems.append(f"task {task!r} needs option {name!r}")
    if not problems and task in _CHECKS:
        problems += _CHECKS[task]({**defaults, **{k: v for k, v in options.items() if k != "recipe"}})
    return problems


def declared_length(task: str, options: dict[str, Any]) -> int:
    values = {**_defaults(task), **{k: v for k, v in options.items() if k != "recipe"}}
    if task in _LENGTHS:
        return _LENGTHS[task](values)
    return int(values["seq_len"]) if "seq_len" in values else int(values["resolution"]) ** 2
