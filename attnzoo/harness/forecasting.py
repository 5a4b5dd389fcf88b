"""The forecasting benchmark: one dataset, horizon, model and seed per cell; test MSE and MAE on standardised values."""

from __future__ import annotations

import os
from pathlib import Path

from attnzoo.forecasting.data import Series, builtin, prepare, read_csv
from attnzoo.forecasting.train import ForecastRecipe, fit
from attnzoo.harness.plan import Cell
from attnzoo.tasks.train import Progress


def load_series(options: dict, base: str | Path | None) -> Series:
    """A dataset entry of the suite: `source` (a series a package ships) or `path` (relative to the suite's
    directory)."""
    if options.get("source"):
        return builtin(options["source"])
    path = Path(os.path.expandvars(options["path"])).expanduser()  # e.g. ${DATA}/ETTh1.csv
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return read_csv(path, options.get("target", "OT"), options.get("columns"))


def run(cell: Cell, workdir: Path | None = None, progress: Progress | None = None) -> list[dict]:
    options = cell.config["dataset"]
    series = load_series(options, cell.import_path)
    data = prepare(series, cell.seq_len, cell.config["horizon"], options.get("split", "auto"), options.get("period"))
    recipe = ForecastRecipe(**cell.config.get("recipe", {}))
    result = fit(data, cell.variant, cell.params, recipe, cell.seed or 0, progress, cell.layer["device"])
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
    }
    return [
        dict(metric="mse", value=result.mse, unit="standardised", extra=extra),
        dict(metric="mae", value=result.mae, unit="standardised", extra=extra),
    ]
