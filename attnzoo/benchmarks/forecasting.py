"""The forecasting benchmark: one dataset, horizon, model and seed per cell, test MSE and MAE on standardised
values; every attention variant in one forecaster beside the baselines (repeat-last, seasonal-naive, DLinear). Its
table: per dataset, horizon and metric, every model's error (mean ± std over seeds), the lowest in bold, the
baselines first, and a count of where attention beat them."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import Field, PositiveInt, ValidationError, field_validator, model_validator

from attnzoo.harness.benchmark import Benchmark, Progress, Section, SeededSection, register_benchmark
from attnzoo.harness.records import Cell, Measurement
from attnzoo.harness.rundir import status_text
from attnzoo.leaderboards.tables import plural
from attnzoo.timeseries.backbones import BACKBONES, Shape, tokens, unknown
from attnzoo.timeseries.data import BUILTIN, DataError, SplitRule, load_series, prepare
from attnzoo.timeseries.models import BASELINES, NAIVE, DLinear
from attnzoo.timeseries.train import ForecastRecipe, fit
from attnzoo.zoo.registry import code_version


class ForecastDataset(Section):
    """One series: a CSV (`date`, channels, target) or a series a package ships."""

    path: str | None = Field(None, description="CSV file, relative to the suite's directory")
    source: Literal[tuple(BUILTIN)] | None = Field(None, description="a series shipped by a package")
    target: str = Field("OT", description="the column to forecast (kept last)")
    columns: list[str] | None = Field(None, description="channels to use besides the target; default: all")
    split: SplitRule = Field("auto", description="auto: ett-hourly for ETTh*, ett-minute for ETTm*, else ratio 7:1:2")
    period: int | None = Field(None, ge=1, description="seasonal-naive period; default: from the date spacing")
    input_len: int | None = Field(None, ge=2, description="default: the section's input_len")
    horizons: list[PositiveInt] | None = Field(None, min_length=1, description="default: the section's horizons")
    backbone: str | None = Field(None, description="default: the section's backbone")
    recipe: dict[str, Any] | None = Field(
        None, description="recipe fields for this dataset only, every model alike (e.g. a released per-dataset dim)"
    )

    @field_validator("backbone")
    @classmethod
    def known_backbone(cls, name: str | None) -> str | None:
        return _known(name) if name is not None else None

    @model_validator(mode="after")
    def one_origin(self) -> ForecastDataset:
        if (self.path is None) == (self.source is None):
            raise ValueError(f"give either path (a CSV file) or source ({', '.join(BUILTIN)}), not both or neither")
        return self

    def data_options(self) -> dict[str, Any]:
        """What decides the series and its splits (part of every cell's key)."""
        return self.model_dump(exclude={"input_len", "horizons", "backbone", "recipe"}, exclude_none=True)


def _known(name: str) -> str:
    if name not in BACKBONES:
        raise ValueError(unknown(name))
    return name


class Forecasting(SeededSection):
    datasets: dict[str, ForecastDataset] = Field(min_length=1, description="name -> series")
    input_len: int = Field(96, ge=2, description="input window (rows); also the attention's sequence length")
    horizons: list[PositiveInt] = Field([96, 192, 336, 720], min_length=1, description="forecast lengths (rows)")
    baselines: list[Literal[BASELINES]] = Field(list(BASELINES), description="models beside the variants")
    recipe: ForecastRecipe = Field(default_factory=ForecastRecipe)
    baseline_recipe: ForecastRecipe | None = Field(
        None,
        description="DLinear's own recipe, the same in every backbone's suite (so that a slow recipe made for one "
        "backbone does not leave the baseline short of training); default: the recipe the variants train with",
    )
    backbone: str = Field("encoder", description=f"the model the variants are swapped into: {', '.join(BACKBONES)}")
    patch_len: PositiveInt = Field(16, description="with backbone `patch`: steps per patch (PatchTST's 16)")
    stride: PositiveInt = Field(8, description="with backbone `patch`: steps between patches (PatchTST's 8)")

    @field_validator("backbone")
    @classmethod
    def known_backbone(cls, name: str) -> str:
        return _known(name)

    def windows(self) -> list[tuple[str, ForecastDataset, int, int]]:
        """(name, dataset, input length, horizon) in suite order."""
        return [
            (name, d, d.input_len or self.input_len, h)
            for name, d in self.datasets.items()
            for h in (d.horizons or self.horizons)
        ]

    def backbone_of(self, dataset: ForecastDataset) -> str:
        return dataset.backbone or self.backbone

    def recipe_of(self, dataset: ForecastDataset) -> ForecastRecipe:
        """The section's recipe with the dataset's own fields (raises pydantic's ValidationError on bad ones)."""
        if not dataset.recipe:
            return self.recipe
        return ForecastRecipe.model_validate({**self.recipe.model_dump(), **dataset.recipe})

    def patch(self, backbone: str) -> dict[str, int]:
        """The patch options a backbone's cells carry (only `patch` has any)."""
        return {"patch_len": self.patch_len, "stride": self.stride} if backbone == "patch" else {}


@dataclass(frozen=True)
class ForecastCell:
    """One training run's series (its name and what decides its data), horizon and model; `recipe` is None for a
    naive baseline, which is not trained."""

    dataset: str
    data: dict[str, Any]
    horizon: int
    model: str
    recipe: dict[str, Any] | None
    backbone: str | None = None  # None for the baselines, which have none
    patch: dict[str, int] | None = None

    def identity(self) -> dict[str, Any]:
        config = {"dataset": self.data, "horizon": self.horizon}
        if self.recipe is not None:
            config["recipe"] = self.recipe
        if self.backbone not in (None, "encoder"):  # the first release's cells keep their keys
            config["backbone"] = self.backbone
        if self.patch:
            config["patch"] = self.patch
        return {"config": config, "task": self.dataset, "variant": self.model}

    def row(self) -> dict[str, Any]:
        return {"task": self.dataset, "horizon": self.horizon, "variant": self.model, "backbone": self.backbone}


@register_benchmark("forecasting")
class ForecastingBenchmark(Benchmark):
    section = Forecasting
    columns = ("task", "horizon")

    def plan(self, suite, section: Forecasting, threads: int | None) -> list[Cell]:
        """Per dataset, horizon, model (the variant settings, then the baselines) and seed; n is the input length.
        The naive baselines are deterministic: one seed."""
        cells = []
        layer = suite.trained_layer(section.recipe)
        models = list(suite.settings())
        models += [(name, {}, name) for name in section.baselines]
        seeds = section.seed_list()
        for name, dataset, input_len, horizon in section.windows():
            backbone, recipe = section.backbone_of(dataset), section.recipe_of(dataset).identity()
            dlinear = section.baseline_recipe.identity() if section.baseline_recipe else recipe
            for model, setting, label in models:
                baseline = model in BASELINES
                config = ForecastCell(
                    name,
                    dataset.data_options(),
                    horizon,
                    model,
                    None if model in NAIVE else dlinear if model == "dlinear" else recipe,
                    None if baseline else backbone,
                    None if baseline else section.patch(backbone) or None,
                )
                for seed in seeds[:1] if model in NAIVE else seeds:
                    cells.append(
                        suite.cell(
                            self,
                            None if baseline else model,
                            label,
                            setting,
                            input_len,
                            config,
                            layer,
                            threads,
                            seed,
                            f"{name}/{horizon}/{label}" + ("" if baseline else f"/{backbone}"),
                            code=code_version(DLinear) if baseline else None,
                        )
                    )
        return cells

    def problems(self, suite, section: Forecasting) -> list[tuple[tuple, str]]:
        """Every series read and split at its longest horizon, so that a missing file, column or row shows now
        rather than cell by cell."""
        problems = []
        for name, dataset in section.datasets.items():
            try:
                series = load_series(dataset.data_options(), suite.import_dir)
                horizon = max(dataset.horizons or section.horizons)
                prepare(series, dataset.input_len or section.input_len, horizon, dataset.split, dataset.period)
            except DataError as err:
                problems.append((("benchmarks", "forecasting", "datasets", name), str(err)))
        for name, dataset, input_len, _ in section.windows():
            if section.backbone_of(dataset) == "patch" and section.patch_len > input_len:
                where = ("benchmarks", "forecasting", "patch_len")
                problems.append((where, f"patch_len={section.patch_len} exceeds {name}'s input length {input_len}"))
            try:
                section.recipe_of(dataset)
            except ValidationError as err:
                where = ("benchmarks", "forecasting", "datasets", name, "recipe")
                problems += [(where, f"{'.'.join(map(str, e['loc']))}: {e['msg']}") for e in err.errors()]
        return list(dict.fromkeys(problems))

    def shapes(self, suite, section: Forecasting) -> list[tuple[int, int, int]]:
        """The attention's sequence length in each dataset's backbone: the input length, or its patch count."""
        found = set()
        for _, d, input_len, _ in section.windows():
            try:
                r = section.recipe_of(d)
            except ValidationError:
                continue  # reported by problems()
            shape = Shape(1, input_len, 1, r.dim, r.depth, r.ffn_dim, 0, section.patch_len, section.stride)
            if (n := tokens(section.backbone_of(d), shape)) >= 1:  # else patch_len > input: reported by problems()
                found.add((r.dim, r.heads, n))
        return sorted(found)

    def describe(self, cell: Cell) -> str:
        where = f" in {cell.config.backbone}" if cell.config.backbone not in (None, "encoder") else ""
        return f"{cell.config.dataset} H={cell.config.horizon} {cell.label}{where} seed {cell.seed}"

    def setup(self, suite, section: Forecasting) -> str:
        r = section.recipe
        used = list(dict.fromkeys(section.backbone_of(d) for d in section.datasets.values()))
        patch = f" (patches of {section.patch_len} every {section.stride} steps)" if "patch" in used else ""
        who = "every attention model" if section.baseline_recipe else "every trained model"
        return (
            f"Forecasting recipe, identical for {who}: backbone {', '.join(used)}{patch}; dim {r.dim}"
            f", {plural(r.depth, 'layer')}, {plural(r.heads, 'head')}, FFN {r.ffn_dim}, dropout {r.dropout}; "
            f"{_schedule(r)}; seeds {section.seed_list()}."
            + "".join(
                f" {name}: {', '.join(f'{k} {v}' for k, v in d.recipe.items())}."
                for name, d in section.datasets.items()
                if d.recipe
            )
            + (f" DLinear: {_schedule(section.baseline_recipe)}." if section.baseline_recipe else "")
        )

    def run(
        self, cell: Cell, *, workdir: Path | None = None, progress: Progress | None = None, **_: Any
    ) -> list[Measurement]:
        config: ForecastCell = cell.config
        series = load_series(config.data, cell.import_path)
        data = prepare(
            series, cell.seq_len, config.horizon, config.data.get("split", "auto"), config.data.get("period")
        )
        recipe = ForecastRecipe(**(config.recipe or {}))
        report = (lambda message: progress({**message, "val_metric": "val MSE"})) if progress else None
        backbone = config.backbone or "encoder"
        result = fit(
            data, config.model, cell.params, recipe, cell.seed or 0, report, cell.layer["device"], backbone,
            **(config.patch or {}),
        )  # fmt: skip
        extra = {
            "horizon": data.test.horizon,
            "best_val_mse": result.best_val_mse,
            "best_step": result.best_step,
            "steps": result.steps,
            "train_seconds": result.seconds,
            "test_windows": result.windows,
            "windows": [len(data.train), len(data.val), len(data.test)],
            "borders": data.borders,
            "period": data.period,
            "channels": data.channels,
            "data": data.note,
            "released_protocol": dict(zip(("mse", "mae"), result.dropped, strict=True)) if result.dropped else None,
        }
        return [
            Measurement("mse", result.mse, "standardised", extra=extra),
            Measurement("mae", result.mae, "standardised", extra=extra),
        ]

    def tables(self, df: pd.DataFrame, view) -> list[str]:
        lines = table(df)
        return ["", lines[0].replace("## ", f"{view.h} ", 1), *lines[1:]]


def _schedule(r: ForecastRecipe) -> str:
    steps = (
        f"at most {r.epochs} epochs (and {r.steps} steps), validation every epoch"
        if r.epochs
        else f"at most {r.steps} steps, validation every {r.eval_every}"
    )
    return (
        f"{'AdamW' if r.optimizer == 'adamw' else 'Adam'} lr {r.lr:g}, batch {r.batch_size}, {steps}, early "
        f"stopping after {r.patience} validations without improvement"
    )


def _text(values: list[float], runs: int, best: bool) -> str:
    mean = statistics.fmean(values)
    text = f"{mean:.3f}" + (f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else "")
    text = f"**{text}**" if best else text
    return text + (f" ({len(values)}/{runs} seeds)" if len(values) < runs else "")


BACKBONE_NOTE = {
    "encoder": "one token per time step carrying every channel, no per-window normalisation",
    "channel-independent": "each channel its own series, per-window normalisation, one token per step (PatchTST "
    "without patches)",
    "patch": "each channel its own series, per-window normalisation, one token per patch",
    "s3-paper": "the S3Attention release's forecasting model (SKTLinear), its attention swapped",
}


def backbones(df: pd.DataFrame) -> list[str]:
    """The backbones of the attention rows, in order (rows written before backbones existed: `encoder`)."""
    if "backbone" not in df:
        return ["encoder"] if (~df["label"].isin(BASELINES)).any() else []
    return list(dict.fromkeys(_backbone(df)[~df["label"].isin(BASELINES)]))


def _backbone(df: pd.DataFrame) -> pd.Series:
    column = df["backbone"] if "backbone" in df else pd.Series(None, index=df.index, dtype=object)
    return column.where(column.notna() | df["label"].isin(BASELINES), "encoder")


def table(df: pd.DataFrame) -> list[str]:
    """One table, or one per backbone (each with the baselines) when the run has more than the first one."""
    found = backbones(df)
    if found in ([], ["encoder"]):
        return _table(
            df, "## Forecasting (test MSE and MAE on standardised values; mean ± std over seeds; lowest in bold)"
        )
    out: list[str] = []
    backbone = _backbone(df)
    for name in found:
        mine = df[backbone == name]
        where = df.set_index(["task", "horizon"]).index.isin(mine.set_index(["task", "horizon"]).index)
        part = df[(backbone == name) | (df["label"].isin(BASELINES) & where)]
        title = f"## Forecasting, backbone `{name}`: {BACKBONE_NOTE.get(name, '')} (test MSE and MAE; lowest in bold)"
        out += [*_table(part, title)[:-2], ""]
    ok = df[df["status"] == "ok"]
    return [*out, _method(ok), *_released(ok)]


def _table(df: pd.DataFrame, title: str) -> list[str]:
    labels = [label for label in df["label"].cat.categories if (df["label"] == label).any()]
    models = [b for b in BASELINES if b in labels] + [label for label in labels if label not in BASELINES]
    ok = df[df["status"] == "ok"]
    lines = [title, "", "| dataset | horizon | metric | " + " | ".join(models) + " |", "|" + "---|" * (3 + len(models))]
    rows = wins = 0
    for task, horizon in df[["task", "horizon"]].drop_duplicates().itertuples(index=False):
        here = df[(df["task"] == task) & (df["horizon"] == horizon)]
        for metric in ("mse", "mae"):
            values = {
                label: list(g["value"])
                for label, g in ok[
                    (ok["task"] == task) & (ok["horizon"] == horizon) & (ok["metric"] == metric)
                ].groupby("label", observed=True)
            }
            best = min(values, key=lambda m: statistics.fmean(values[m])) if values else None
            cells = []
            for m in models:
                if m in values:
                    cells.append(_text(values[m], here[here["label"] == m]["seed"].nunique(), m == best))
                else:
                    failed = here[here["label"] == m]["status"]
                    cells.append(status_text(failed.iloc[0]) if len(failed) else "")
            lines.append(f"| {task} | {int(horizon)} | {metric.upper()} | " + " | ".join(cells) + " |")
            attention = [statistics.fmean(v) for m, v in values.items() if m not in BASELINES]
            baseline = [statistics.fmean(v) for m, v in values.items() if m in BASELINES]
            if attention and baseline:
                rows += 1
                wins += min(attention) < min(baseline)
    notes = [""]
    if rows:
        notes.append(
            f"Does attention help? The best attention model beats the best baseline (naive or linear) in {wins} "
            f"of {rows} rows."
        )
    notes += ["", _method(ok)]
    return lines + notes


def _released(ok: pd.DataFrame) -> list[str]:
    """The s3-paper rows scored as the released code scores them, beside every-window scores."""
    if "backbone" not in ok:
        return []
    rows = ok[(ok["backbone"] == "s3-paper") & ok["extra"].map(lambda e: bool(e.get("released_protocol")))]
    if rows.empty:
        return []
    lines = [
        "",
        "Scored as the released code scores (the last partial test batch of 32 windows dropped), beside every "
        "window (mean over seeds):",
        "",
        "| dataset | horizon | variant | MSE, every window | MSE, released protocol | MAE, every window "
        "| MAE, released protocol |",
        "|---|---|---|---|---|---|---|",
    ]
    for (task, horizon, label), g in rows.groupby(["task", "horizon", "label"], observed=True, sort=False):
        cells = []
        for metric in ("mse", "mae"):
            part = g[g["metric"] == metric]
            every = statistics.fmean(part["value"])
            released = statistics.fmean(e["released_protocol"][metric] for e in part["extra"])
            cells += [f"{every:.3f}", f"{released:.3f}"]
        lines.append(f"| {task} | {int(horizon)} | {label} | " + " | ".join(cells) + " |")
    return lines


def _method(ok: pd.DataFrame) -> str:
    parts = []
    for r in ok.drop_duplicates("task").itertuples():
        e = r.extra
        parts.append(
            f"{r.task}: {e['data']}, {e['channels']} channels, input {r.seq_len}, "
            f"train/val/test windows {'/'.join(map(str, e['windows']))} (at horizon {e['horizon']}), "
            f"seasonal period {e['period']}"
        )
    return (
        "Baselines: repeat-last (every future step is the last input value), seasonal-naive (the last season "
        "repeated), DLinear (trend/remainder, one linear map over time each; trained with the recipe above). Errors "
        "are averaged over every test window, channel and step, on values standardised with the train split's "
        "mean and std; naive baselines are deterministic (one seed). Data: " + "; ".join(parts) + "."
    )
