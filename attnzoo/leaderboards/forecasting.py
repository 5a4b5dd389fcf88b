"""The forecasting table: per dataset, horizon and metric, every model's test error (mean ± std over seeds), the
lowest in bold, the baselines first, and a count of where attention beat them."""

from __future__ import annotations

import statistics

import pandas as pd

from attnzoo.forecasting.models import BASELINES


def _text(values: list[float], runs: int, best: bool) -> str:
    mean = statistics.fmean(values)
    text = f"{mean:.3f}" + (f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else "")
    text = f"**{text}**" if best else text
    return text + (f" ({len(values)}/{runs} seeds)" if len(values) < runs else "")


def section(df: pd.DataFrame, status_text: dict[str, str]) -> list[str]:
    labels = [label for label in df["label"].cat.categories if (df["label"] == label).any()]
    models = [b for b in BASELINES if b in labels] + [label for label in labels if label not in BASELINES]
    ok = df[df["status"] == "ok"]
    lines = [
        "## Forecasting (test MSE and MAE on standardised values; mean ± std over seeds; lowest in bold)",
        "",
        "| dataset | horizon | metric | " + " | ".join(models) + " |",
        "|" + "---|" * (3 + len(models)),
    ]
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
                    cells.append(status_text.get(failed.iloc[0], failed.iloc[0]) if len(failed) else "")
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
        "repeated), DLinear (trend/remainder, one linear map over time each; trained with the same recipe). Errors "
        "are averaged over every test window, channel and step, on values standardised with the train split's "
        "mean and std; naive baselines are deterministic (one seed). Data: " + "; ".join(parts) + "."
    )
