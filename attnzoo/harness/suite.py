"""The YAML suite: its schema (pydantic), loading, and errors that name the file, line, field, problem and fix."""

from __future__ import annotations

import difflib
import itertools
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from attnzoo.forecasting.data import BUILTIN, SplitRule
from attnzoo.forecasting.models import BASELINES
from attnzoo.forecasting.train import ForecastRecipe
from attnzoo.tasks.lengths import check_options
from attnzoo.tasks.train import Recipe
from attnzoo.zoo import VariantError, create_attention, variant_info


class SuiteError(Exception):
    """A suite that cannot run, with one line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VariantEntry(_Closed):
    name: str = Field(description="registered variant name or 'package.module:Name'")
    label: str | None = Field(None, description="name in the leaderboard; default: name and parameters")
    params: dict[str, Any] = Field(default_factory=dict, description="parameters for every setting")
    sweep: dict[str, list[Any]] = Field(
        default_factory=dict, description="parameter -> values; one setting per combination"
    )

    @model_validator(mode="before")
    @classmethod
    def from_name(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    def settings(self) -> list[dict[str, Any]]:
        combos = itertools.product(*self.sweep.values())
        return [{**self.params, **dict(zip(self.sweep, combo, strict=True))} for combo in combos]

    def label_for(self, setting: dict[str, Any]) -> str:
        swept = {k: setting[k] for k in self.sweep}
        base = self.label or (
            self.name if not self.params else f"{self.name}({', '.join(f'{k}={v}' for k, v in self.params.items())})"
        )
        return base if not swept else f"{base}[{', '.join(f'{k}={v}' for k, v in swept.items())}]"


class Layer(_Closed):
    dim: int = Field(64, ge=1)
    heads: int = Field(2, ge=1)
    batch: int = Field(1, ge=1)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device: str = "cpu"

    @model_validator(mode="after")
    def heads_divide_dim(self) -> Layer:
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be a multiple of heads ({self.heads})")
        return self

    @field_validator("device")
    @classmethod
    def device_exists(cls, device: str) -> str:
        try:
            parsed = torch.device(device)
        except RuntimeError:
            raise ValueError(f"{device!r} is not a torch device; use 'cpu' or 'cuda[:N]'") from None
        if parsed.type not in ("cpu", "cuda"):
            raise ValueError(f"device type {parsed.type!r} is not supported; use 'cpu' or 'cuda[:N]'")
        return device


class Efficiency(_Closed):
    metrics: list[Literal["flops", "time", "memory"]] = Field(["flops", "time", "memory"], min_length=1)
    passes: list[Literal["forward", "forward_backward"]] = Field(["forward", "forward_backward"], min_length=1)
    repetitions: int = Field(
        9, ge=1, description="time: repetitions per cell, each in a fresh worker, variants shuffled in every round"
    )
    min_run_time: float = Field(0.2, gt=0, description="time: seconds of timed calls per repetition")
    baseline: str = Field("sdpa", description="label whose time every speed-up is paired against, round by round")
    allocator: Literal["retain", "system"] = Field(
        "retain", description="retain: workers keep freed memory (glibc mallopt); system: the allocator's defaults"
    )
    contention_margin: float = Field(
        0.3, gt=0, description="a block whose probe ran this much slower than calibrated is contended"
    )
    contention_retries: int = Field(2, ge=0, description="times a contended block is measured again")


class Approximation(_Closed):
    inputs: list[Literal["gaussian", "text"]] = Field(["gaussian", "text"], min_length=1)
    seeds: int = Field(3, ge=1, description="independent draws of inputs and samples, averaged")


class _Seeded(_Closed):
    seeds: int | list[int] = Field(3, description="a count (0..k-1) or the list of training seeds")

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


class Accuracy(_Seeded):
    tasks: dict[str, dict[str, Any]] = Field(min_length=1, description="task -> options of its builder")
    recipe: Recipe = Field(default_factory=Recipe)


class ForecastDataset(_Closed):
    """One series: a CSV (`date`, channels, target) or a series a package ships."""

    path: str | None = Field(None, description="CSV file, relative to the suite's directory")
    source: Literal[tuple(BUILTIN)] | None = Field(None, description="a series shipped by a package")
    target: str = Field("OT", description="the column to forecast (kept last)")
    columns: list[str] | None = Field(None, description="channels to use besides the target; default: all")
    split: SplitRule = Field("auto", description="auto: ett-hourly for ETTh*, ett-minute for ETTm*, else ratio 7:1:2")
    period: int | None = Field(None, ge=1, description="seasonal-naive period; default: from the date spacing")
    input_len: int | None = Field(None, ge=2, description="default: the section's input_len")
    horizons: list[PositiveInt] | None = Field(None, min_length=1, description="default: the section's horizons")

    @model_validator(mode="after")
    def one_origin(self) -> ForecastDataset:
        if (self.path is None) == (self.source is None):
            raise ValueError(f"give either path (a CSV file) or source ({', '.join(BUILTIN)}), not both or neither")
        return self

    def data_options(self) -> dict[str, Any]:
        """What decides the series and its splits (part of every cell's key)."""
        return self.model_dump(exclude={"input_len", "horizons"}, exclude_none=True)


class Forecasting(_Seeded):
    datasets: dict[str, ForecastDataset] = Field(min_length=1, description="name -> series")
    input_len: int = Field(96, ge=2, description="input window (rows); also the attention's sequence length")
    horizons: list[PositiveInt] = Field([96, 192, 336, 720], min_length=1, description="forecast lengths (rows)")
    baselines: list[Literal[BASELINES]] = Field(list(BASELINES), description="models beside the variants")
    recipe: ForecastRecipe = Field(default_factory=ForecastRecipe)

    def plan(self) -> list[tuple[str, ForecastDataset, int, int]]:
        """(name, dataset, input length, horizon) in suite order."""
        return [
            (name, d, d.input_len or self.input_len, h)
            for name, d in self.datasets.items()
            for h in (d.horizons or self.horizons)
        ]


class Benchmarks(_Closed):
    # Each benchmark is one optional section; a new kind of benchmark is one more field here.
    efficiency: Efficiency | None = None
    approximation: Approximation | None = None
    accuracy: Accuracy | None = None
    forecasting: Forecasting | None = None

    @model_validator(mode="after")
    def at_least_one(self) -> Benchmarks:
        if not any(getattr(self, name) for name in type(self).model_fields):
            raise ValueError(f"name at least one benchmark: {', '.join(type(self).model_fields)}")
        return self

    def enabled(self) -> dict[str, BaseModel]:
        return {name: getattr(self, name) for name in type(self).model_fields if getattr(self, name) is not None}


class RayExecution(_Closed):
    """Where and how cells run with `--executor ray` (see attnzoo.harness.ray_executor)."""

    address: str | None = Field(None, description="a cluster (`auto`, or host:port); default: a local instance")
    cpus_per_cell: int = Field(1, ge=1, description="CPUs, and torch threads, of a training/approximation cell")
    gpus_per_cell: float = Field(0, ge=0, description="GPUs per cell")
    memory_gb_per_cell: float | None = Field(None, gt=0, description="memory Ray reserves per cell")
    max_retries: int = Field(2, ge=0, description="re-runs of a cell whose worker or node died under it")
    max_in_flight: int | None = Field(None, ge=1, description="cells submitted at once; default: the cluster's CPUs")


class Execution(_Closed):
    executor: Literal["local", "ray"] = Field("local", description="local worker processes, or Ray tasks")
    ray: RayExecution = Field(default_factory=RayExecution)
    timeout_s: float = Field(600, gt=0, description="wall-clock limit per cell")
    memory_limit_gb: float | None = Field(None, gt=0, description="address-space cap per worker process")
    threads: int | None = Field(
        None, ge=1, description="torch threads per cell; default: 1 for CPU timing, all cores for the rest"
    )
    on_unavailable: Literal["error", "skip"] = "error"


class Suite(_Closed):
    name: str
    description: str = ""
    variants: list[VariantEntry] = Field(min_length=1)
    layer: Layer = Field(default_factory=Layer)
    seq_lens: list[int] = Field(default_factory=list, description="for efficiency and approximation")
    benchmarks: Benchmarks
    execution: Execution = Field(default_factory=Execution)

    @field_validator("seq_lens")
    @classmethod
    def lengths_positive(cls, lengths: list[int]) -> list[int]:
        if any(n < 2 for n in lengths):
            raise ValueError("every sequence length must be at least 2")
        return sorted(set(lengths))

    # Where `module:Class` variants are imported from, as `python -m` would: the suite file's directory.
    _import_dir: str | None = PrivateAttr(None)

    @property
    def import_dir(self) -> str | None:
        return self._import_dir

    @model_validator(mode="after")
    def lengths_when_needed(self) -> Suite:
        if not self.seq_lens and (self.benchmarks.efficiency or self.benchmarks.approximation):
            raise ValueError("seq_lens: list the sequence lengths for the efficiency and approximation benchmarks")
        return self


# --- loading -----------------------------------------------------------------------------------------------

DEFAULT_SUITE = "quick.yaml"


def default_suite_path() -> Path:
    return Path(str(resources.files("attnzoo") / "suites" / DEFAULT_SUITE))


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at a pydantic error location, or of its deepest existing ancestor."""
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((value for key, value in node.value if key.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
    return node.start_mark.line + 1 if node is not None else line


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The allowed field names at loc's parent in the schema (for 'did you mean')."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        field = current.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        inner = getattr(annotation, "__args__", None) or (annotation,)
        current = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), annotation)
        if getattr(annotation, "__origin__", None) is list:
            current = next(
                (a for a in annotation.__args__ if isinstance(a, type) and issubclass(a, BaseModel)), current
            )
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _format_loc(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _schema_problems(path: str, root: yaml.Node, err: ValidationError) -> list[str]:
    problems = []
    for e in err.errors():
        loc = e["loc"]
        where = f"{path}:{_line_of(root, loc) or 1}"
        field = _format_loc(loc)
        if e["type"] == "extra_forbidden":
            allowed = _field_names(Suite, loc)
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"{where}: {field}: unknown field{hint} (allowed: {', '.join(allowed)})")
        elif e["type"] == "missing":
            problems.append(f"{where}: {field}: required field is missing")
        else:
            message = e["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {field}: {message} (got {e.get('input')!r})")
    return problems


def _variant_problems(path: str, root: yaml.Node, suite: Suite) -> list[str]:
    """Names, parameters, labels, dtype/device support and availability against the registry, and every
    setting built at the suite's shapes (on the meta device where the variant allows it), so that a suite
    that validates does not fail cell by cell at run time."""
    problems, labels, runnable = [], {}, 0
    device_type = torch.device(suite.layer.device).type
    for i, entry in enumerate(suite.variants):
        where = f"{path}:{_line_of(root, ('variants', i)) or 1}: variants[{i}]"
        try:
            spec = variant_info(entry.name)
        except VariantError as err:
            problems.append(f"{where}.name: {err}")
            continue
        for setting in entry.settings():
            label = entry.label_for(setting)
            if label in labels:
                problems.append(
                    f"{where}: label {label!r} is already used by variants[{labels[label]}]; drop the duplicate "
                    "or give one entry its own `label:`"
                )
            labels.setdefault(label, i)
        caps = spec.capabilities
        unsupported = []
        if device_type not in caps.devices:
            unsupported.append(f"{spec.name} runs on {', '.join(caps.devices)}, not {device_type}")
        if suite.layer.dtype not in caps.dtypes:
            unsupported.append(f"{spec.name} supports {', '.join(caps.dtypes)}, not layer.dtype {suite.layer.dtype}")
        runnable += not unsupported
        unusable = ([] if (availability := spec.available).ok else [str(availability)]) + unsupported
        if unusable:
            if suite.execution.on_unavailable == "error":
                problems.append(
                    f"{where}: variant {entry.name!r} cannot run here: {'; '.join(unusable)}; fix that, or set "
                    "execution.on_unavailable: skip to record it as unavailable"
                )
            continue
        seen: set[str] = set()
        for setting in entry.settings():
            for shape in _shapes(suite):
                problem = _build_problem(entry.name, setting, **shape)
                if problem and problem not in seen:
                    seen.add(problem)
                    swept = {k: setting[k] for k in entry.sweep}
                    at = f" with {swept}" if swept else ""
                    problems.extend(f"{where}.params{at}: {line}" for line in problem.splitlines())
    if not runnable and not problems:
        problems.append(
            f"{path}:1: variants: none of them supports layer.device {suite.layer.device} with layer.dtype "
            f"{suite.layer.dtype}, so the run would measure nothing (`attnzoo show NAME` lists each one's "
            "devices and dtypes)"
        )
    return problems


def _shapes(suite: Suite) -> list[dict[str, int]]:
    """(dim, heads, max_seq_len) at which the suite builds layers: the layer at every length, and the
    accuracy model's attention at every task's length."""
    shapes = [{"dim": suite.layer.dim, "heads": suite.layer.heads, "max_seq_len": n} for n in suite.seq_lens]
    accuracy = suite.benchmarks.accuracy
    if accuracy is not None:
        from attnzoo.tasks.lengths import declared_length

        r = accuracy.recipe
        for task, options in accuracy.tasks.items():
            try:
                n = declared_length(task, options or {})
            except (KeyError, TypeError, ValueError):
                continue  # reported by the task checks
            shapes.append({"dim": r.dim, "heads": r.heads, "max_seq_len": n})
    forecasting = suite.benchmarks.forecasting
    if forecasting is not None:
        r = forecasting.recipe
        for n in sorted({n for _, _, n, _ in forecasting.plan()}):
            shapes.append({"dim": r.dim, "heads": r.heads, "max_seq_len": n})
    return shapes


def _build_problem(name: str, setting: dict[str, Any], dim: int, heads: int, max_seq_len: int) -> str | None:
    """Build one layer without allocating (meta device; the CPU for variants that need real data at init)."""
    for device in ("meta", "cpu"):
        try:
            with torch.device(device):
                create_attention(name, dim, heads, max_seq_len=max_seq_len, **setting)
            return None
        except VariantError as err:
            return str(err)
        except NotImplementedError:
            continue  # needs real tensors to initialise: build it on the CPU
        except Exception as err:  # noqa: BLE001 - a plugin's constructor may fail in any way
            if device == "meta" and "meta" in str(err).lower():
                continue
            shape = f"dim {dim}, heads {heads}, n {max_seq_len}"
            return f"{name}: building it at {shape} fails: {type(err).__name__}: {err}"
    return None


def runtime_problems(suite: Suite) -> list[str]:
    """What this machine lacks to run the suite (a warning for `validate`, an error for `run`)."""
    device = torch.device(suite.layer.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        return [f"layer.device: {suite.layer.device} but CUDA is not available on this machine; use device: cpu"]
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        return [f"layer.device: {suite.layer.device} but this machine has {torch.cuda.device_count()} GPU(s)"]
    return []


def _task_problems(path: str, root: yaml.Node, suite: Suite) -> list[str]:
    problems = _dataset_problems(path, root, suite)
    if suite.benchmarks.accuracy is None:
        return problems
    for task, options in suite.benchmarks.accuracy.tasks.items():
        where = f"{path}:{_line_of(root, ('benchmarks', 'accuracy', 'tasks', task)) or 1}: benchmarks.accuracy.tasks"
        problems += [f"{where}.{task}: {problem}" for problem in check_options(task, options or {})]
    return problems


def _dataset_problems(path: str, root: yaml.Node, suite: Suite) -> list[str]:
    """Every forecasting series read and split at its longest horizon, so that a missing file, column or row
    shows now rather than cell by cell."""
    forecasting = suite.benchmarks.forecasting
    if forecasting is None:
        return []
    from attnzoo.forecasting.data import DataError, prepare
    from attnzoo.harness.forecasting import load_series

    problems = []
    for name, dataset in forecasting.datasets.items():
        where = f"{path}:{_line_of(root, ('benchmarks', 'forecasting', 'datasets', name)) or 1}: "
        where += f"benchmarks.forecasting.datasets.{name}"
        input_len = dataset.input_len or forecasting.input_len
        try:
            series = load_series(dataset.data_options(), suite.import_dir)
            prepare(series, input_len, max(dataset.horizons or forecasting.horizons), dataset.split, dataset.period)
        except DataError as err:
            problems.append(f"{where}: {err}")
    return problems


def _read(path: Path) -> str:
    shown = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SuiteError([f"{shown}: no such file; `attnzoo run` with no argument runs the default suite"]) from None
    except OSError as err:
        raise SuiteError([f"{shown}: cannot read it: {err.strerror}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SuiteError(
            [f"{shown}: not a UTF-8 text file (byte {err.start} is {data[err.start]:#04x}); a suite is YAML text"]
        ) from None
    if "\0" in text:
        raise SuiteError([f"{shown}: contains NUL bytes, so it is binary, not a YAML suite"])
    return text


def load_suite(path: str | Path | None = None, *, check_variants: bool = True, import_dir: str | None = None) -> Suite:
    """Read and validate a suite; raises SuiteError listing every problem.

    `module:Class` variants are imported with `import_dir` (default: the suite's directory) on sys.path, as
    `python -m` puts the current directory there. check_variants=False checks the schema alone (to re-render
    stored results where a plugin is no longer installed)."""
    path = Path(path) if path is not None else default_suite_path()
    shown = str(path)
    text = _read(path)
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise SuiteError([f"{shown}{line}: YAML syntax error: {problem}"]) from None
    if not isinstance(data, dict):
        raise SuiteError([f"{shown}:1: a suite is a YAML mapping with keys name, variants, seq_lens, benchmarks"])
    try:
        suite = Suite.model_validate(data)
    except ValidationError as err:
        raise SuiteError(_schema_problems(shown, root, err)) from None
    suite._import_dir = import_dir or str(path.resolve().parent)
    if not check_variants:
        return suite
    if suite.import_dir not in sys.path:
        sys.path.insert(0, suite.import_dir)
    problems = _task_problems(shown, root, suite)
    problems = _variant_problems(shown, root, suite) + problems
    if problems:
        raise SuiteError(problems)
    return suite
