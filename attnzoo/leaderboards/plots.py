"""Figures written next to the markdown: time, memory and speed-up vs n on log-log axes with interval bands,
approximation error vs sample size, and the LRA-style bubble chart. White backgrounds, so they read on GitHub in
light and dark mode alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps, rc_context, ticker
from matplotlib.figure import Figure  # no pyplot: no display backend, no global figure state

from attnzoo.leaderboards.sources import resolved_params
from attnzoo.leaderboards.timing import repetitions, speedup_interval

LEGEND_WIDTH = 1.8  # inches added to a figure for the legend beside its last panel
STYLE = {"figure.facecolor": "white", "axes.facecolor": "white", "savefig.facecolor": "white", "font.size": 9}
MARKERS = "os^vDP*Xh<>p"
PALETTE = colormaps["tab20"].colors  # pairs of dark and light; the dark ones are matplotlib's C0..C9


def _figure(width: float, height: float, panels: int = 1, legend: bool = True):
    """A row of `panels` axes, `width` wide plus room for a legend beside the last (see `_legend`)."""
    fig = Figure(figsize=(width + LEGEND_WIDTH * legend, height))
    return fig, fig.subplots(1, panels, squeeze=False, sharey=True)[0]


def _save(fig: Figure, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    return path.name


def _groups(df: pd.DataFrame) -> list[tuple[int, str, pd.DataFrame]]:
    """(colour index, setting, rows) in the suite's order; the colour follows the suite position, so a variant
    keeps its colour in every figure of a run."""
    if isinstance(df["label"].dtype, pd.CategoricalDtype):
        codes = df["label"].cat.codes
    else:
        codes = pd.Series(pd.factorize(df["setting"])[0], index=df.index)
    first = codes.groupby(df["setting"]).min().sort_values(kind="stable")
    return [(int(code), setting, df[df["setting"] == setting]) for setting, code in first.items()]


def _color(i: int) -> tuple:
    """The ten default colours, then their light partners, so that a suite of more than ten settings (the zoo has
    sixteen) draws no two lines alike."""
    return PALETTE[2 * (i % 10) + (i // 10) % 2]


def _style(i: int) -> dict:
    dashed = (i // 10) % 2  # the light partners also dash, to read apart from their dark twins
    return {
        "marker": MARKERS[i % len(MARKERS)],
        "color": _color(i),
        "linestyle": "--" if dashed else "-",
        "markersize": 4,
    }


def efficiency(df: pd.DataFrame, baseline: str, pass_name: str, pass_title: str, out: Path, stem: str) -> list[str]:
    """Time, memory and speed-up vs n for one run's efficiency rows; returns the file names written."""
    ok = df[(df["status"] == "ok") & (df["pass"] == pass_name)]
    timed = ok[ok["metric"] == "time"]
    if timed.empty:
        return []
    files = []
    with rc_context(STYLE):
        fig, (ax,) = _figure(6.4, 4.2)
        for i, setting, g in _groups(timed):
            g = g.sort_values("seq_len")
            reps = [np.array(list(repetitions(r).values())) * 1e3 for _, r in g.iterrows()]
            ax.plot(g["seq_len"], g["value"] * 1e3, label=setting, **_style(i))
            if any(len(r) > 1 for r in reps):
                low, high = [np.percentile(r, 25) for r in reps], [np.percentile(r, 75) for r in reps]
                ax.fill_between(g["seq_len"], low, high, color=_color(i), alpha=0.2, linewidth=0)
        _loglog(ax, "sequence length n", f"time per call (ms), {pass_title}")
        _legend(ax)
        ax.set_title("Time vs n (median; band: interquartile range over repetitions)")
        files.append(_save(fig, out / f"{stem}time.png"))

        memory = ok[ok["metric"] == "memory"]
        if not memory.empty:
            fig, (ax,) = _figure(6.4, 4.2)
            for i, setting, g in _groups(memory):
                g = g.sort_values("seq_len")
                ax.plot(g["seq_len"], g["value"] / 2**20, label=setting, **_style(i))
            _loglog(ax, "sequence length n", f"peak memory allocated (MiB), {pass_title}")
            _legend(ax)
            ax.set_title("Memory vs n")
            files.append(_save(fig, out / f"{stem}memory.png"))

        base = {int(r["seq_len"]): r for _, r in timed[timed["setting"] == baseline].iterrows()}
        if base:
            fig, (ax,) = _figure(6.4, 4.2)
            for i, setting, g in _groups(timed):
                if setting == baseline:
                    continue
                ns = [int(n) for n in g["seq_len"] if int(n) in base]
                rows = {int(r["seq_len"]): r for _, r in g.iterrows()}
                points = [(n, iv) for n in sorted(ns) if (iv := speedup_interval(rows[n], base[n])) is not None]
                if not points:
                    continue
                ns = [n for n, _ in points]
                ax.plot(ns, [iv.median for _, iv in points], label=setting, **_style(i))
                ax.fill_between(
                    ns, [iv.low for _, iv in points], [iv.high for _, iv in points], color=_color(i), alpha=0.2
                )
            ax.axhline(1, color="black", linewidth=0.8, linestyle="--")
            _loglog(ax, "sequence length n", f"speed-up over {baseline} (> 1: faster)")
            _legend(ax)
            ax.set_title(f"Speed-up over {baseline}, {pass_title} (band: interval of the median)")
            files.append(_save(fig, out / f"{stem}speedup.png"))
    return files


def roofline(efficiency: pd.DataFrame, pass_title: str, out: Path, stem: str) -> str | None:
    """Roofline efficiency (two-roof bound / measured time) vs n, one line per setting."""
    ok = efficiency[(efficiency["status"] == "ok") & efficiency["value"].notna()]
    if ok.empty:
        return None
    with rc_context(STYLE):
        fig, (ax,) = _figure(6.4, 4.2)
        for i, setting, g in _groups(ok):
            g = g.sort_values("seq_len")
            ax.plot(g["seq_len"], g["value"] * 100, label=setting, **_style(i))
        ax.axhline(100, color="black", linewidth=0.8, linestyle="--")
        ax.set_xscale("log", base=2)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("sequence length n")
        ax.set_ylabel(f"bound / measured time (%), {pass_title}")
        ax.set_title("Roofline efficiency: time at the matmul and bandwidth roofs over time taken")
        ax.grid(True, alpha=0.3)
        _legend(ax)
        return _save(fig, out / f"{stem}roofline.png")


def approximation(df: pd.DataFrame, out: Path, stem: str) -> list[str]:
    """Relative error vs the parameter each variant sweeps, at the longest length, one panel per input kind."""
    ok = df[df["status"] == "ok"]
    if ok.empty:
        return []
    n = int(ok["seq_len"].max())
    ok = ok[ok["seq_len"] == n]
    kinds = list(dict.fromkeys(ok["input"]))
    lines = _sweeps(ok)
    if not lines:
        return []
    with rc_context(STYLE):
        fig, axes = _figure(4.2 * len(kinds), 3.8, len(kinds))
        for ax, kind in zip(axes, kinds, strict=True):
            for i, (variant, (param, points)) in enumerate(lines.items()):
                points = [(x, e, s) for x, e, s, k in points if k == kind]
                if not points:
                    continue
                xs, err, std = (np.array(v, dtype=float) for v in zip(*sorted(points), strict=True))
                ax.errorbar(xs, err, yerr=std, label=f"{variant} ({param})", capsize=2, **_style(i))
            _loglog(ax, "sample size (the swept parameter)", "relative error vs exact softmax")
            ax.set_title(f"{kind} inputs, n={n}")
        _legend(axes[-1])
        return [_save(fig, out / f"{stem}approximation.png")]


def _sweeps(ok: pd.DataFrame) -> dict[str, tuple[str, list[tuple]]]:
    """variant -> (the one parameter that varies across its settings, [(value, error, std, input), ...])."""
    found = {}
    for variant, g in ok.groupby("variant", sort=False):
        params = [resolved_params(variant, p) or p for p in g["parameters"]]
        varying = [k for k in params[0] if len({str(p.get(k)) for p in params}) > 1]
        if len(varying) != 1:
            continue
        key = varying[0]
        found[variant] = (
            key,
            [
                (p[key], r["value"], (r["extra"] or {}).get("std", 0.0), r["input"])
                for p, (_, r) in zip(params, g.iterrows(), strict=True)
            ],
        )
    return found


def bubble(settings: list[tuple], baseline: str, out: Path, stem: str) -> str | None:
    """LRA-style: x speed-up over the baseline, y quality (average accuracy), area memory relative to the baseline.
    `settings`: (variant, setting, speed-up, memory ratio, quality), any of the last three None. Speed and quality
    are joined by variant when they were measured at different settings (the caption says which)."""
    speed = {variant: (setting, x, mem) for variant, setting, x, mem, _ in settings if x is not None}
    points = []
    for variant, setting, _, _, y in settings:
        if y is None or variant not in speed:
            continue
        timed_at, x, mem = speed[variant]
        if setting != timed_at and any(v == variant and q is not None and s is not None for v, _, s, _, q in settings):
            continue
        points.append((variant, x, y, mem or 1.0))
    if len(points) < 2:
        return None
    largest = max(mem for *_, mem in points)
    with rc_context(STYLE):
        fig, (ax,) = _figure(6.4, 4.4, legend=False)
        for i, (variant, x, y, mem) in enumerate(points):
            ax.scatter(x, y, s=2500 * mem / largest, color=_color(i), alpha=0.45, edgecolors="black", linewidths=0.6)
            ax.annotate(variant, (x, y), fontsize=8, ha="center", va="center")
        ax.set_xscale("log")
        ax.set_xlabel(f"speed-up over {baseline} at the longest common n (log)")
        ax.set_ylabel("average accuracy over tasks (%)")
        ax.set_title(f"Speed, accuracy and memory (area: peak memory relative to {baseline})")
        ax.grid(True, which="both", alpha=0.3)
        ax.margins(0.15)
        return _save(fig, out / f"{stem}bubble.png")


def accuracy_by_length(ok: pd.DataFrame, out: Path, stem: str) -> str | None:
    """Accuracy (%) vs n, one line per setting (mean over seeds; band: min to max over seeds), one panel per task."""
    tasks = list(dict.fromkeys(ok["task"]))
    with rc_context(STYLE):
        fig, axes = _figure(4.6 * len(tasks), 4.2, panels=len(tasks))
        for ax, task in zip(axes, tasks, strict=True):
            for i, setting, g in _groups(ok[ok["task"] == task]):
                by_n = (g["value"] * 100).groupby(g["seq_len"])
                ax.plot(by_n.mean().index, by_n.mean(), label=setting, **_style(i))
                ax.fill_between(by_n.min().index, by_n.min(), by_n.max(), color=_color(i), alpha=0.15, linewidth=0)
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.set_xlabel("sequence length n")
            ax.set_title(f"{task}: accuracy vs n (band: range over seeds)")
            ax.grid(True, which="both", alpha=0.3)
        axes[0].set_ylabel("test accuracy (%)")
        _legend(axes[-1])
        return _save(fig, out / f"{stem}accuracy_by_length.png")


def _loglog(ax, xlabel: str, ylabel: str) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)


def _legend(ax) -> None:
    """Beside the axes, not on them: with the whole zoo, lines fill every corner a legend could take."""
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
