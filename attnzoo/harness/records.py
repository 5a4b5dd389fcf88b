"""The records that travel between the planner, the workers and the run directory: a cell to run, the
measurements a worker returns, and the outcome of one worker on one cell."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


class CellConfig(Protocol):
    """A benchmark's own, typed description of one cell (its section, a task and its options, a dataset...)."""

    def identity(self) -> dict[str, Any]:
        """The fields this config adds to the cell's key: ``config`` and, where the benchmark has them,
        ``task`` and ``variant`` (a model that is not an attention variant)."""
        ...

    def row(self) -> dict[str, Any]:
        """Columns this benchmark adds to every result row (e.g. task, horizon)."""
        ...


@dataclass(frozen=True)
class SectionConfig:
    """A cell's config when it is its benchmark's whole suite section."""

    section: Any  # the section's pydantic model

    def identity(self) -> dict[str, Any]:
        return {"config": self.section.model_dump()}

    def row(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class Cell:
    """One independent unit of work: a variant setting (or another model) x a length x a benchmark's config."""

    suite: str
    benchmark: str
    variant: str | None  # the attention variant; None for a model that is not one (a forecasting baseline)
    label: str
    params: dict[str, Any]
    seq_len: int
    config: CellConfig
    layer: dict[str, Any]
    threads: int | None
    seed: int | None = None
    code: str = ""  # the code version of what is measured (distribution, version, source hash)
    chain: str = ""  # cells of one chain run in order of seq_len; an OOM or timeout skips the rest
    import_path: str | None = None  # where `module:Class` variants are imported from (the suite's directory)
    imports: tuple[str, ...] = ()  # modules a worker imports first: what they register is known by name

    @property
    def key(self) -> str:
        """Hash of everything that determines the cell's result, the code included (not the environment: that
        is recorded in every row and checked on resume). The identity keeps the field names of the first
        release, so run directories written since then resume."""
        identity = {
            "variant": self.variant,
            "label": self.label,
            "params": self.params,
            "seq_len": self.seq_len,
            "benchmark": self.benchmark,
            "layer": self.layer,
            "threads": self.threads,
            "task": None,
            "seed": self.seed,
            "code": self.code,
            **self.config.identity(),
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Measurement:
    """One value a worker measured, or (status, error) for a metric it could not measure."""

    metric: str | None  # None: a row that only carries the status of a cell that measured nothing
    value: Any = None
    unit: str | None = None
    pass_name: str | None = None  # forward | forward_backward, for metrics measured per pass
    input: str | None = None  # the kind of input, for metrics measured per input
    status: str | None = None  # None: the cell's status
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["pass"] = record.pop("pass_name")
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Measurement:
        """From to_dict's form, or from repetitions saved by earlier releases (`pass_`)."""
        fields = {k: v for k, v in record.items() if k not in ("pass", "pass_")}
        return cls(**fields, pass_name=record.get("pass", record.get("pass_")))


@dataclass(frozen=True)
class Outcome:
    """What one worker made of one cell: a status (ok | oom | timeout | error, or a status decided without a
    worker: unsupported | unavailable | skipped), its measurements, the error text, and where it ran."""

    status: str
    measurements: list[Measurement] = field(default_factory=list)
    error: str = ""
    where: dict | None = None  # executor, host, pid, attempt (and node on Ray)
