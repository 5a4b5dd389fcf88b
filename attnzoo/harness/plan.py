"""A validated Suite -> the list of independent cells (variant setting x seq_len x benchmark)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from attnzoo.harness.suite import Suite
from attnzoo.zoo import variant_info


@dataclass(frozen=True)
class Cell:
    suite: str
    variant: str
    label: str
    params: dict[str, Any]
    seq_len: int
    benchmark: str
    config: dict[str, Any]  # the benchmark's section of the suite
    layer: dict[str, Any]
    threads: int | None
    task: str | None = None
    seed: int | None = None
    code: str = ""  # the variant's code version (distribution, version, source hash)
    chain: str = field(default="")  # cells of one chain run in order of seq_len; an OOM or timeout skips the rest
    import_path: str | None = None  # where `module:Class` variants are imported from (the suite's directory)

    @property
    def key(self) -> str:
        """Hash of everything that determines the cell's result, the variant's code included (not the
        environment: that is recorded in every row and checked on resume)."""
        identity = {k: v for k, v in asdict(self).items() if k not in ("suite", "chain", "import_path")}
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def describe(self) -> str:
        if self.benchmark == "forecasting":
            return f"{self.task} H={self.config['horizon']} {self.label} seed {self.seed}"
        if self.task:
            return f"{self.task} {self.label} seed {self.seed}"
        return f"{self.benchmark} {self.label} n={self.seq_len}"


def threads_for(suite: Suite, benchmark: str, all_cores: int | None) -> int | None:
    """The suite's threads, else: timing on the CPU with one thread (a busy neighbour core stalls every
    multi-threaded kernel at its barriers, and small kernels far more than fused ones), everything else on
    all cores."""
    if suite.execution.threads:
        return suite.execution.threads
    return 1 if benchmark == "efficiency" and suite.layer.device == "cpu" else all_cores


def plan(suite: Suite, default_threads: int | None = None) -> list[Cell]:
    """Cells in execution order: per benchmark, per variant setting, increasing seq_len."""
    cells = []
    for benchmark, config in suite.benchmarks.enabled().items():
        if benchmark == "accuracy":
            cells += _accuracy_cells(suite, config, threads_for(suite, benchmark, default_threads))
            continue
        if benchmark == "forecasting":
            cells += _forecasting_cells(suite, config, threads_for(suite, benchmark, default_threads))
            continue
        for entry, setting, label in _settings(suite):
            for n in suite.seq_lens:
                cells.append(
                    Cell(
                        suite=suite.name,
                        variant=entry.name,
                        label=label,
                        params=setting,
                        seq_len=n,
                        benchmark=benchmark,
                        config=config.model_dump(),
                        layer=suite.layer.model_dump(),
                        threads=threads_for(suite, benchmark, default_threads),
                        code=variant_info(entry.name).code_version,
                        chain=f"{benchmark}/{label}",
                        import_path=suite.import_dir,
                    )
                )
    return cells


def _settings(suite: Suite):
    """(variant entry, one parameter setting, its label) for every setting of every entry."""
    for entry in suite.variants:
        for setting in entry.settings():
            yield entry, setting, entry.label_for(setting)


def _trained_layer(suite: Suite, recipe) -> dict[str, Any]:
    """The layer a training cell records: the suite's device and dtype, the recipe's width, heads and batch."""
    return {**suite.layer.model_dump(), "dim": recipe.dim, "heads": recipe.heads, "batch": recipe.batch_size}


def _accuracy_cells(suite: Suite, config, threads: int | None) -> list[Cell]:
    """Per task, per variant setting, per seed; n is the task's sequence length."""
    from attnzoo.tasks.lengths import declared_length

    cells = []
    recipe = config.recipe.model_dump()
    layer = _trained_layer(suite, config.recipe)
    for task, options in config.tasks.items():
        options = dict(options)
        task_recipe = {**recipe, **options.pop("recipe", {})}  # a task may train longer; never per variant
        for entry, setting, label in _settings(suite):
            for seed in config.seed_list():
                cells.append(
                    Cell(
                        suite=suite.name,
                        variant=entry.name,
                        label=label,
                        params=setting,
                        seq_len=declared_length(task, options),
                        benchmark="accuracy",
                        config={"task_options": options, "recipe": task_recipe},
                        layer=layer,
                        threads=threads,
                        task=task,
                        seed=seed,
                        code=variant_info(entry.name).code_version,
                        chain=f"accuracy/{task}/{label}",
                        import_path=suite.import_dir,
                    )
                )
    return cells


def _forecasting_cells(suite: Suite, config, threads: int | None) -> list[Cell]:
    """Per dataset, horizon, model (the variant settings, then the baselines) and seed; n is the input length.
    The naive baselines are deterministic: one seed."""
    from attnzoo.forecasting.models import NAIVE, DLinear
    from attnzoo.zoo.registry import code_version

    cells = []
    recipe = config.recipe.model_dump()
    layer = _trained_layer(suite, config.recipe)
    models = [
        (entry.name, setting, label, variant_info(entry.name).code_version)
        for entry, setting, label in _settings(suite)
    ]
    models += [(name, {}, name, code_version(DLinear)) for name in config.baselines]
    seeds = config.seed_list()
    for name, dataset, input_len, horizon in config.plan():
        for variant, setting, label, code in models:
            for seed in seeds[:1] if variant in NAIVE else seeds:
                cells.append(
                    Cell(
                        suite=suite.name,
                        variant=variant,
                        label=label,
                        params=setting,
                        seq_len=input_len,
                        benchmark="forecasting",
                        config={
                            "dataset": dataset.data_options(),
                            "horizon": horizon,
                            **({} if variant in NAIVE else {"recipe": recipe}),  # nothing to train
                        },
                        layer=layer,
                        threads=threads,
                        task=name,
                        seed=seed,
                        code=code,
                        chain=f"forecasting/{name}/{horizon}/{label}",
                        import_path=suite.import_dir,
                    )
                )
    return cells
