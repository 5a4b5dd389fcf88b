"""The YAML suite: its schema (pydantic; each benchmark's section comes from the benchmark registry), loading, and
errors that name the file, line, field, problem and fix."""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib
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
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from attnzoo.harness.benchmark import Benchmark, benchmarks
from attnzoo.harness.records import Cell, CellConfig
from attnzoo.zoo import Variant, VariantError, create_attention, variant_info


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

    def variant(self) -> str:
        """The registered name of a `module:Class` whose class registered itself (so it is known, and shown, by
        that name everywhere), else the name as written."""
        if ":" not in self.name:
            return self.name
        try:
            return variant_info(self.name).name
        except VariantError:  # re-rendering where the module is gone: keep the name as written
            return self.name

    def label_for(self, setting: dict[str, Any]) -> str:
        swept = {k: setting[k] for k in self.sweep}
        name = self.variant()
        base = self.label or (
            name if not self.params else f"{name}({', '.join(f'{k}={v}' for k, v in self.params.items())})"
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


class Benchmarks(_Closed):
    """Each registered benchmark is one optional section (fields added by `suite_model`)."""

    @model_validator(mode="after")
    def at_least_one(self) -> Benchmarks:
        if not self.enabled():
            raise ValueError(f"name at least one benchmark: {', '.join(type(self).model_fields)}")
        return self

    def enabled(self) -> dict[str, BaseModel]:
        return {name: getattr(self, name) for name in type(self).model_fields if getattr(self, name) is not None}

    def sections(self) -> list[tuple[Benchmark, BaseModel]]:
        """(benchmark, its section) for every section the suite has, in table order."""
        found = benchmarks()
        return [(found[name], section) for name, section in self.enabled().items()]


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
    seq_lens: list[int] = Field(default_factory=list, description="for the benchmarks that run at every length")
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
        per_length = [b.name for b, _ in self.benchmarks.sections() if b.per_length]
        if not self.seq_lens and per_length:
            raise ValueError(f"seq_lens: list the sequence lengths for the {' and '.join(per_length)} benchmark(s)")
        return self

    def settings(self):
        """(variant name, one parameter setting, its label) for every setting of every entry."""
        for entry in self.variants:
            for setting in entry.settings():
                yield entry.variant(), setting, entry.label_for(setting)

    def modules(self) -> tuple[str, ...]:
        """The modules `module:Class` entries name: every worker imports them, so that a variant they register
        can be used by its registered name in any entry."""
        return modules_of(self.variants)

    def trained_layer(self, recipe: Any) -> dict[str, Any]:
        """The layer a training cell records: the suite's device and dtype, the recipe's width, heads and batch."""
        return {**self.layer.model_dump(), "dim": recipe.dim, "heads": recipe.heads, "batch": recipe.batch_size}

    def cell(
        self,
        benchmark: Benchmark,
        variant: str | None,
        label: str,
        params: dict[str, Any],
        seq_len: int,
        config: CellConfig,
        layer: dict[str, Any],
        threads: int | None,
        seed: int | None = None,
        chain: str | None = None,
        code: str | None = None,
    ) -> Cell:
        """A cell of this suite; `chain` (default: the label) groups the cells an OOM or timeout skips together,
        `code` (default: the variant's) is the code version of what is measured."""
        return Cell(
            suite=self.name,
            benchmark=benchmark.name,
            variant=variant,
            label=label,
            params=params,
            seq_len=seq_len,
            config=config,
            layer=layer,
            threads=threads,
            seed=seed,
            code=code if code is not None else variant_info(variant).code_version,
            chain=f"{benchmark.name}/{chain or label}",
            import_path=self.import_dir,
            imports=self.modules(),
        )


@functools.cache
def _suite_model(names: tuple[str, ...]) -> type[Suite]:
    found = benchmarks()
    sections = {name: (found[name].section | None, None) for name in names}
    model = create_model("Benchmarks", __base__=Benchmarks, **sections)
    return create_model("Suite", __base__=Suite, benchmarks=(model, ...))


def suite_model() -> type[Suite]:
    """The suite schema with a section for every benchmark registered now (entry points included)."""
    return _suite_model(tuple(benchmarks()))


# --- loading -----------------------------------------------------------------------------------------------

DEFAULT_SUITE = "quick.yaml"


def default_suite_path(name: str = DEFAULT_SUITE) -> Path:
    """A suite that ships with attnzoo (default: the one `attnzoo run` runs without an argument)."""
    return Path(str(resources.files("attnzoo") / "suites" / name))


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


def _schema_problems(path: str, root: yaml.Node, err: ValidationError, model: type[Suite]) -> list[str]:
    problems = []
    for e in err.errors():
        loc = e["loc"]
        where = f"{path}:{_line_of(root, loc) or 1}"
        field = _format_loc(loc)
        if e["type"] == "extra_forbidden":
            allowed = _field_names(model, loc)
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"{where}: {field}: unknown field{hint} (allowed: {', '.join(allowed)})")
        elif e["type"] == "missing":
            problems.append(f"{where}: {field}: required field is missing")
        else:
            message = e["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {field}: {message} (got {e.get('input')!r})")
    return problems


def modules_of(entries) -> tuple[str, ...]:
    """The modules that `module:Class` variant entries name."""
    return tuple(dict.fromkeys(e.name.partition(":")[0] for e in entries if ":" in e.name))


def import_modules(modules) -> None:
    """Import the modules `module:Class` entries name first, so that what they register is known to every entry,
    in any order; an import error is left to whoever names the module (validate reports it at the entry)."""
    for module in modules:
        with contextlib.suppress(Exception):
            importlib.import_module(module)


def _entry(path: str, root: yaml.Node, i: int, entry: VariantEntry) -> tuple[str, Variant | None, list[str]]:
    """Where an entry is, its variant, and what is wrong with its name or parameters (validated, not built)."""
    where = f"{path}:{_line_of(root, ('variants', i)) or 1}: variants[{i}]"
    try:
        spec = variant_info(entry.name)
    except VariantError as err:
        return where, None, [f"{where}.name: {err}"]
    problems = []
    for setting in entry.settings():
        try:
            spec.validate_params(setting)
        except VariantError as err:
            swept = {k: setting[k] for k in entry.sweep}
            at = f" with {swept}" if swept else ""
            problems += [f"{where}.params{at}: {line}" for line in str(err).splitlines() if line not in problems]
    return where, spec, list(dict.fromkeys(problems))


def _variant_problems(path: str, root: yaml.Node, suite: Suite) -> list[str]:
    """Names, parameters, labels, dtype/device support and availability against the registry, and every
    setting built at the suite's shapes (on the meta device where the variant allows it), so that a suite
    that validates does not fail cell by cell at run time."""
    problems, labels, runnable = [], {}, 0
    unsupported: dict[str, list[str]] = {}  # layer field -> "name (variants[i])" of the entries that cannot run it
    device_type = torch.device(suite.layer.device).type
    import_modules(suite.modules())
    for i, entry in enumerate(suite.variants):
        where, spec, found = _entry(path, root, i, entry)
        problems += found
        if spec is None:
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
        field = "layer.device" if device_type not in caps.devices else "layer.dtype"
        if spec.cannot_run(device_type, suite.layer.dtype):
            unsupported.setdefault(field, []).append(f"{spec.name} (variants[{i}])")
        else:
            runnable += 1
        availability = spec.available
        if not availability.ok and suite.execution.on_unavailable == "error":
            problems.append(
                f"{where}: variant {entry.name!r} cannot run here: {availability}; fix that, or set "
                "execution.on_unavailable: skip to record it as unavailable"
            )
        if found or not availability.ok or spec.cannot_run(device_type, suite.layer.dtype):
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
    if suite.execution.on_unavailable == "error":
        for field, names in unsupported.items():
            value = suite.layer.device if field == "layer.device" else suite.layer.dtype
            line = _line_of(root, tuple(field.split("."))) or 1
            problems.append(
                f"{path}:{line}: {field}: {value} is not supported by {', '.join(names)} (`attnzoo show NAME` lists "
                "each one's devices and dtypes); change it, drop those variants, or set execution.on_unavailable: "
                "skip to record them as unsupported"
            )
    if not runnable and not problems:
        problems.append(
            f"{path}:1: variants: none of them supports layer.device {suite.layer.device} with layer.dtype "
            f"{suite.layer.dtype}, so the run would measure nothing (`attnzoo show NAME` lists each one's "
            "devices and dtypes)"
        )
    return problems


def _entries_problems(path: str, root: yaml.Node, data: dict, err: ValidationError) -> list[str]:
    """When the schema fails: what can still be checked of the variant entries that parse (names, parameters),
    so that one `validate` reports every problem it can."""
    entries = data.get("variants") if isinstance(data.get("variants"), list) else []
    broken = {e["loc"][1] for e in err.errors() if e["loc"][:1] == ("variants",) and len(e["loc"]) > 1}
    parsed = {}
    for i, raw in enumerate(entries):
        if i not in broken:
            with contextlib.suppress(ValidationError):
                parsed[i] = VariantEntry.model_validate(raw)
    import_modules(modules_of(parsed.values()))
    return [problem for i, entry in parsed.items() for problem in _entry(path, root, i, entry)[2]]


def _shapes(suite: Suite) -> list[dict[str, int]]:
    """(dim, heads, max_seq_len) at which the suite's benchmarks build layers."""
    shapes = []
    for benchmark, section in suite.benchmarks.sections():
        for dim, heads, n in benchmark.shapes(suite, section):
            if (shape := {"dim": dim, "heads": heads, "max_seq_len": n}) not in shapes:
                shapes.append(shape)
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


def _benchmark_problems(path: str, root: yaml.Node, suite: Suite) -> list[str]:
    """What each benchmark checks beyond the schema (data files, task options), with the suite's line."""
    return [
        f"{path}:{_line_of(root, loc) or 1}: {_format_loc(loc)}: {problem}"
        for benchmark, section in suite.benchmarks.sections()
        for loc, problem in benchmark.problems(suite, section)
    ]


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


def load_suite(
    path: str | Path | None = None,
    *,
    check_variants: bool = True,
    import_dir: str | None = None,
    text: str | None = None,
) -> Suite:
    """Read and validate a suite; raises SuiteError listing every problem.

    `module:Class` variants are imported with `import_dir` (default: the suite's directory) on sys.path, as
    `python -m` puts the current directory there. check_variants=False checks the schema alone (to re-render
    stored results where a plugin is no longer installed). `text`: the suite's text as it is to run (the file's
    with command-line overrides applied), read from `path` when not given."""
    path = Path(path) if path is not None else default_suite_path()
    shown = str(path)
    text = _read(path) if text is None else text
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
    model = suite_model()
    try:
        suite = model.model_validate(data)
    except ValidationError as err:
        raise SuiteError(
            _schema_problems(shown, root, err, model) + _entries_problems(shown, root, data, err)
        ) from None
    suite._import_dir = import_dir or str(path.resolve().parent)
    if not check_variants:
        return suite
    if suite.import_dir not in sys.path:
        sys.path.insert(0, suite.import_dir)
    problems = _variant_problems(shown, root, suite) + _benchmark_problems(shown, root, suite)
    if problems:
        raise SuiteError(problems)
    return suite


def with_overrides(
    text: str,
    variants: list[str] | None = None,
    seq_lens: list[int] | None = None,
    benchmarks: list[str] | None = None,
) -> str:
    """The suite's text with command-line overrides applied, as it will run and be stored: `variants` keeps the
    suite's entries of those names (with their parameters and sweeps) and adds the others by name; `seq_lens`
    replaces the lengths; `benchmarks` keeps those sections (a benchmark the suite lacks runs with its defaults).
    Without overrides the text is returned as written, comments and all."""
    if variants is None and seq_lens is None and benchmarks is None:
        return text
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        return text  # load_suite says what is wrong with it
    if variants is not None:
        entries = data.get("variants") or []
        named = lambda e: e if isinstance(e, str) else e.get("name") if isinstance(e, dict) else None  # noqa: E731
        data["variants"] = [e for name in variants for e in ([e for e in entries if named(e) == name] or [name])]
    if seq_lens is not None:
        data["seq_lens"] = seq_lens
    if benchmarks is not None:
        sections = data.get("benchmarks") or {}
        data["benchmarks"] = {name: sections.get(name) or {} for name in benchmarks}
    applied = ", ".join(
        f"--{flag} {','.join(map(str, values))}"
        for flag, values in (("variants", variants), ("seq-lens", seq_lens), ("benchmarks", benchmarks))
        if values is not None
    )
    return f"# the suite as run, with {applied}\n" + yaml.safe_dump(data, sort_keys=False)
