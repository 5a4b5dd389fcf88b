"""The benchmark registry: a benchmark is one class in one module, registered by name.

A benchmark declares its suite section (a pydantic model), how it plans its cells from a suite, the job a worker
runs for a cell, how many repetitions a cell takes and whether it needs the whole machine, and how its rows render
(leaderboard sections, headline columns, figures, how `compare` judges its metrics). The runner, the executors, the
planner, the CLI, the headline and `compare` only ever ask the registry. Built-in benchmarks live in
``attnzoo.benchmarks``; third-party ones arrive through the entry-point group ``attnzoo.benchmarks``:

    [project.entry-points."attnzoo.benchmarks"]
    my_benchmark = "my_package.my_benchmark"
"""

from __future__ import annotations

import difflib
import importlib
import statistics
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field

from attnzoo.harness.records import Cell, Measurement, Outcome, SectionConfig
from attnzoo.zoo import variant_info

if TYPE_CHECKING:
    import pandas as pd

ENTRY_POINT_GROUP = "attnzoo.benchmarks"
BUILTIN = (
    "efficiency",
    "approximation",
    "accuracy",
    "accuracy_by_length",
    "forecasting",
)  # modules of attnzoo.benchmarks, in table order

Progress = Callable[[dict], None]


class Section(BaseModel):
    """Base of a benchmark's suite section: closed, so a misspelt field is an error with a did-you-mean."""

    model_config = ConfigDict(extra="forbid")


class SeededSection(Section):
    """A section of a benchmark that trains: one cell per training seed."""

    seeds: int | list[int] = Field(3, description="a count (0..k-1) or the list of training seeds")

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


class Benchmark:
    """Subclass, set `section`, implement `plan` and `run` (and the rendering hooks you want), and decorate
    with `@register_benchmark("name")`. Every hook has a working default except those two."""

    name: ClassVar[str] = ""
    section: ClassVar[type[Section]] = Section
    exclusive: ClassVar[bool] = False  # cells are timed: alone on the machine, in interleaved rounds
    per_length: ClassVar[bool] = False  # runs at the suite's seq_lens (with the suite's layer, unless uses_layer)
    uses_layer: ClassVar[bool] = True  # a per-length benchmark that trains a model of its own sets this False
    columns: ClassVar[tuple[str, ...]] = ()  # row columns besides seq_len that tell its measurements apart
    lower_is_better: ClassVar[dict[str, bool]] = {}  # metric -> direction; unlisted metrics: lower is better
    tested: ClassVar[dict[str, str]] = {}  # metric -> "log" | "linear": `compare` tests its samples (Welch's t)
    # Metrics `compare` leaves out: derived from others and from what each run measures of its machine (a bound
    # computed at that run's roofs), so a change in them is the machine's, not the code's.
    not_compared: ClassVar[frozenset[str]] = frozenset()

    # --- planning and validation (the driver) -------------------------------------------------------------

    def plan(self, suite: Any, section: Any, threads: int | None) -> list[Cell]:
        """The cells of this benchmark for a validated suite, in execution order. By default, for a `per_length`
        benchmark: per variant setting, the suite's layer at every length, with the section as the config."""
        if not self.per_length:
            raise NotImplementedError(f"benchmark {self.name!r} does not say how it plans its cells")
        config, layer = SectionConfig(section), suite.layer.model_dump()
        return [
            suite.cell(self, variant, label, setting, n, config, layer, threads)
            for variant, setting, label in suite.settings()
            for n in suite.seq_lens
        ]

    def problems(self, suite: Any, section: Any) -> list[tuple[tuple, str]]:
        """What the schema cannot see but a run would trip over (a missing data file): (location in the suite,
        problem) pairs, reported by `attnzoo validate` with the suite's line."""
        return []

    def shapes(self, suite: Any, section: Any) -> list[tuple[int, int, int]]:
        """(dim, heads, max_seq_len) at which its cells build variants, so validation builds every setting there."""
        if self.per_length:
            return [(suite.layer.dim, suite.layer.heads, n) for n in suite.seq_lens]
        return []

    def repetitions(self, cell: Cell) -> int:
        """Workers an exclusive benchmark's cell takes, each a fresh process in its own round (see `aggregate`)."""
        return 1

    def describe(self, cell: Cell) -> str:
        """The cell in a progress line."""
        return f"{cell.benchmark} {cell.label} n={cell.seq_len}"

    def setup(self, suite: Any, section: Any) -> str:
        """A sentence for the leaderboard on how it was measured (e.g. the training recipe)."""
        return ""

    def pre_check(self, cell: Cell, device: str, dtype: str) -> Outcome | None:
        """The outcome of a cell that needs no worker: a variant unavailable here or unable to run this device
        or dtype."""
        if cell.variant is None:
            return None
        spec = variant_info(cell.variant)
        if not spec.available.ok:
            return Outcome("unavailable", [], str(spec.available))
        if reason := spec.cannot_run(torch.device(device).type, dtype):
            return Outcome("unsupported", [], reason)
        return None

    # --- the worker ----------------------------------------------------------------------------------------

    def run(
        self, cell: Cell, *, workdir: Path | None = None, progress: Progress | None = None, **options: Any
    ) -> list[Measurement]:
        """Measure one cell in this (worker) process; an exception becomes the cell's error or OOM status."""
        raise NotImplementedError

    def calibrate(self, cell: Cell) -> dict[str, float] | None:
        """Run once in a worker before an exclusive benchmark's rounds; the values are recorded in the manifest
        and passed to every repetition as keyword options. None: nothing to calibrate."""
        return None

    def aggregate(self, repetitions: dict[int, Outcome]) -> list[Measurement]:
        """One cell's measurements from its repetitions (by round): by default the median of every value."""
        by_metric: dict[tuple, list[Measurement]] = {}
        for outcome in repetitions.values():
            for m in outcome.measurements:
                by_metric.setdefault((m.metric, m.pass_name, m.input), []).append(m)
        return [
            Measurement(ms[0].metric, statistics.median(m.value for m in ms), ms[0].unit, ms[0].pass_name, ms[0].input)
            for ms in by_metric.values()
        ]

    # --- rendering (the leaderboard; df: this benchmark's rows of one run, or of all runs) ----------------------

    def tables(self, df: pd.DataFrame, view: Any) -> list[str]:
        """Markdown lines of its detailed section in one run's part of the leaderboard; `view` has the heading
        level `h`, the `run` (manifest, suite) and its `figures`."""
        return []

    def figures(self, df: pd.DataFrame, run: Any, out: Path, stem: str) -> list[str]:
        """Image files written to `out` (names starting with `stem`) for one run's rows."""
        return []

    def headline(self, setting: str, mine: pd.DataFrame, everything: pd.DataFrame, board: Any) -> Any:
        """This benchmark's values for one variant setting in the headline (None: nothing to show); `mine` holds
        the setting's rows of this benchmark in every run, with a `run` column."""
        return None

    def headline_run(self, values: Any) -> int | None:
        """The run the headline values came from."""
        return getattr(values, "run", None)

    def headline_columns(self, rows: list, board: Any) -> list[tuple[str, dict[str, str], str]]:
        """(header, setting -> cell text, note) for each of its headline columns."""
        return []

    def headline_sizes(self, values: Any, sizes: str) -> str:
        """The sizes behind its headline values, given the setting's own (e.g. those that scale with n)."""
        return sizes

    def headline_order(self, values: Any, setting: str, board: Any) -> tuple:
        """Its part of the headline's sort key (smaller first)."""
        return ()

    def headline_after(self, board: Any) -> list[str]:
        """Markdown lines under the headline table (warnings, figures)."""
        return []

    def headline_figures(self, board: Any, out: Path) -> list[str]:
        """Image files of the headline."""
        return []

    def quality(self, values: Any) -> float | None:
        """A higher-is-better score (%) of a setting that others may plot against speed."""
        return None

    def record(self, values: Any) -> dict[str, Any]:
        """Its headline values as flat fields for CSV/JSON."""
        return {}

    def samples(self, rows: pd.DataFrame) -> list[float]:
        """The values `compare` tests for one measurement of one run (ok rows only): one per seed by default."""
        return [float(v) for v in rows["value"]]

    def center(self, rows: pd.DataFrame, samples: list[float]) -> float:
        """The value `compare` shows for one measurement of one run."""
        return statistics.fmean(samples)

    def format(self, metric: str, value: float) -> str:
        """A value of one of its metrics, with its unit, as `compare` shows it."""
        return f"{value:.3g}"


_REGISTRY: dict[str, Benchmark] = {}
_PLUGIN_ERRORS: dict[str, str] = {}
_loaded = False
B = TypeVar("B", bound=type[Benchmark])


class BenchmarkError(ValueError):
    """An unknown or broken benchmark; the message says what to do next."""


def register_benchmark(name: str) -> Callable[[B], B]:
    """Register a Benchmark subclass under the name its suite section has."""

    def decorator(cls: B) -> B:
        if name in _REGISTRY and type(_REGISTRY[name]) is not cls:
            raise BenchmarkError(f"benchmark {name!r} is already registered (by {type(_REGISTRY[name]).__module__})")
        cls.name = name
        _REGISTRY[name] = cls()
        return cls

    return decorator


def _load(again: bool = False) -> None:
    """The built-in benchmarks, then every entry point of the group (again: those installed since); a broken
    plugin is recorded, never raised."""
    global _loaded
    if _loaded and not again:
        return
    _loaded = True
    for module in BUILTIN:
        importlib.import_module(f"attnzoo.benchmarks.{module}")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY or ep.name in _PLUGIN_ERRORS:
            continue
        try:
            ep.load()
        except Exception as err:  # noqa: BLE001 - a plugin may fail in any way; report it by name
            _PLUGIN_ERRORS[ep.name] = f"{type(err).__name__}: {err}"


def benchmarks() -> dict[str, Benchmark]:
    """Every registered benchmark by name, the built-ins first, in the order their tables appear (whatever order
    their modules happened to be imported in), then the plugins."""
    _load()
    rank = {name: i for i, name in enumerate(BUILTIN)}
    return dict(sorted(_REGISTRY.items(), key=lambda item: rank.get(item[0], len(rank))))


def get_benchmark(name: str) -> Benchmark:
    found = benchmarks()
    if name not in found:
        _load(again=True)  # e.g. a worker forked from a server started before the plugin was installed
        found = benchmarks()
    if name in found:
        return found[name]
    if name in _PLUGIN_ERRORS:
        raise BenchmarkError(f"benchmark plugin {name!r} failed to load: {_PLUGIN_ERRORS[name]}")
    close = difflib.get_close_matches(name, list(found), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise BenchmarkError(f"unknown benchmark {name!r}{hint} (registered: {', '.join(found)})")
