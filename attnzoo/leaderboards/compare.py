"""Two runs cell by cell: the change of every measurement, a verdict from a significance test on the stored
repetitions (Welch's t on log times; on accuracy over seeds), Holm-adjusted over all the cells compared, plus a
minimum effect, and a geometric-mean summary — as a terminal table or a pull-request comment with the regressions
first."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import pandas as pd
from scipy import stats

from attnzoo.harness.benchmark import Benchmark, benchmarks
from attnzoo.harness.environment import BUSY, machine
from attnzoo.leaderboards.sources import Run, frame, identity

ALPHA = 0.05


@dataclass
class Change:
    cell: str
    metric: str
    base: float | None
    new: float | None
    change: float | None  # new / base - 1
    p: float | None  # None: no test possible (one value a side, or a deterministic metric)
    verdict: str  # better | worse | same | added | removed
    benchmark: Benchmark = field(default_factory=Benchmark)  # how its values read and which way is better

    @property
    def lower_is_better(self) -> bool:
        return self.benchmark.lower_is_better.get(self.metric, True)

    def regression(self) -> bool:
        return self.verdict == "worse"


def compare(base: Run, new: Run, threshold: float = 0.05, alpha: float = ALPHA) -> list[Change]:
    df = frame([base, new], prefer="all")
    df = _spread_statuses(df[df["status"] != "unavailable"])
    found = benchmarks()
    cell_columns = ["setting", *(c for c in identity() if c not in ("label", "seed"))]  # seeds pooled
    changes = []
    for _, cell in df.groupby(cell_columns, dropna=False, sort=False):
        sides = [cell[cell["run"] == i] for i in (0, 1)]
        benchmark = found.get(cell["benchmark"].iloc[0], Benchmark())
        if cell["metric"].iloc[0] not in benchmark.not_compared:
            changes.append(_change(sides[0], sides[1], benchmark))
    _holm([c for c in changes if c.p is not None])
    for c in changes:
        if c.verdict == "":
            big = abs(c.change) > threshold
            significant = c.p is None or c.p < alpha
            lower = c.lower_is_better
            c.verdict = "same" if not (big and significant) else "better" if (c.change < 0) == lower else "worse"
    order = {"worse": 0, "better": 1, "removed": 2, "added": 3, "same": 4}
    return sorted(changes, key=lambda c: (order[c.verdict], -abs(c.change or 0)))


def _spread_statuses(df: pd.DataFrame) -> pd.DataFrame:
    """A cell that measured nothing (OOM, timeout...) has one status row; it stands for every metric and pass its
    benchmark measures, so that ok -> OOM is one change per measurement, not a removal plus an addition."""
    measured = df[df["metric"].notna()]
    kinds = measured[["benchmark", "metric", "pass", "input"]].drop_duplicates()
    status = df[df["metric"].isna()].drop(columns=["metric", "pass", "input"]).merge(kinds, on="benchmark", how="left")
    return pd.concat([measured, status], ignore_index=True)


def _name(row: pd.Series, benchmark: Benchmark) -> str:
    """e.g. "linformer n=4096 fwd+bwd time", "s3attention text accuracy", "dlinear ETTh1 96 mse"."""
    own = [_text(row[c]) for c in benchmark.columns if isinstance(row[c], str) or pd.notna(row[c])]
    parts = [row["setting"], *(own or [f"n={int(row['seq_len'])}"])]
    parts += [str(row["pass"]).replace("forward_backward", "fwd+bwd")] if isinstance(row["pass"], str) else []
    parts += [str(row["input"])] if isinstance(row["input"], str) else []
    parts += [str(row["metric"])] if isinstance(row["metric"], str) else []
    return " ".join(parts)


def _text(value) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _holm(tested: list[Change]) -> None:
    """Holm's step-down adjustment of the p-values in place: with dozens of cells compared at once, a plain 5%
    test would flag about one cell in twenty of two identical runs; adjusted, the chance of any false alarm in the
    whole comparison is at most 5%."""
    tested.sort(key=lambda c: c.p)
    running = 0.0
    for rank, c in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * c.p))
        c.p = running


def _change(base: pd.DataFrame, new: pd.DataFrame, benchmark: Benchmark) -> Change:
    """The change of one cell; its verdict is decided once every cell's p-value is known (verdict "" until
    then), except for cells present on one side only or whose status changed."""
    row = (base if len(base) else new).iloc[0]
    metric = str(row["metric"]) if isinstance(row["metric"], str) else "status"
    name = _name(row, benchmark)
    if base.empty or new.empty:
        return Change(name, metric, None, None, None, None, "added" if base.empty else "removed", benchmark)
    sides = [side[side["status"] == "ok"] for side in (base, new)]
    a, b = (benchmark.samples(side) if len(side) else [] for side in sides)
    if not a or not b:  # a status changed (ok -> oom is a regression) or stayed failed
        was, now = base["status"].iloc[-1], new["status"].iloc[-1]
        verdict = "same" if (not a) == (not b) else ("worse" if a else "better")
        return Change(f"{name} ({was} → {now})", metric, None, None, None, None, verdict, benchmark)
    center_a, center_b = benchmark.center(base, a), benchmark.center(new, b)
    change = center_b / center_a - 1 if center_a else math.inf
    return Change(name, metric, center_a, center_b, change, _p_value(benchmark.tested.get(metric), a, b), "", benchmark)


def _p_value(test: str | None, a: list[float], b: list[float]) -> float | None:
    """Welch's t on the samples ("linear") or on their logs ("log"); None for a metric that is not tested (a
    deterministic one: the threshold alone decides) or with fewer than two samples a side."""
    if test is None or len(a) < 2 or len(b) < 2:
        return None
    if test == "log":
        a, b = [math.log(v) for v in a], [math.log(v) for v in b]
    if statistics.stdev(a) == statistics.stdev(b) == 0:
        return 0.0 if statistics.fmean(a) != statistics.fmean(b) else 1.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def geomean(changes: list[Change], metric: str = "time") -> tuple[float, int] | None:
    """Geometric mean of new/base over the cells measured in both runs."""
    ratios = [1 + c.change for c in changes if c.metric == metric and c.change is not None and c.change > -1]
    if not ratios:
        return None
    return math.exp(statistics.fmean(math.log(r) for r in ratios)), len(ratios)


def environment_note(base: Run, new: Run) -> str:
    was, now = machine(base.manifest), machine(new.manifest)
    differ = [f for f in was if was[f] != now[f]]
    if not differ:
        return ""
    what = "; ".join(f"{f}: {was[f]} → {now[f]}" for f in differ)
    return (
        f"**Different environments** ({what}): absolute times do not travel between machines; compare speed-ups "
        "measured side by side instead."
    )


def load_note(role: str, run: Run) -> str:
    """A warning when the run was measured on a busy machine, as its manifest recorded at start and end."""
    busy = {when: share for when in ("start", "end") if (share := run.manifest.get(f"load_{when}", {}).get("busy"))}
    busy = {when: share for when, share in busy.items() if share > BUSY}
    if not busy:
        return ""
    when = " and ".join(f"{share:.0%} at its {when}" for when, share in busy.items())
    return (
        f"**{role} ran on a busy machine** ({when} went to other work): its times may be slower than the machine "
        "can do, and a difference in them may be the load rather than the code."
    )


def _table(changes: list[Change]) -> list[str]:
    lines = ["| cell | base | new | change | p | verdict |", "|---|---|---|---|---|---|"]
    for c in changes:
        change = "" if c.change is None else f"{c.change:+.1%}"
        p = "" if c.p is None else f"{c.p:.3g}"
        base, new = ("" if v is None else c.benchmark.format(c.metric, v) for v in (c.base, c.new))
        lines.append(f"| {c.cell} | {base} | {new} | {change} | {p} | {c.verdict} |")
    return lines


def report(base: Run, new: Run, changes: list[Change], threshold: float, fold: bool) -> str:
    """Markdown: the verdict counts and geomean, the regressions, then every cell (folded for a pull request)."""
    counts = {v: sum(c.verdict == v for c in changes) for v in ("worse", "better", "same", "added", "removed")}
    out = [
        f"## attnzoo compare: {base.name} → {new.name}",
        "",
        f"Base: {base.title} ({base.cite()}). New: {new.title} ({new.cite()}).",
    ]
    if note := environment_note(base, new):
        out += ["", note]
    for role, run in (("Base", base), ("New", new)):
        if note := load_note(role, run):
            out += ["", note]
    summary = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    tested = sum(c.p is not None for c in changes)
    out += [
        "",
        f"**{summary}.** A cell is better or worse when it changed by more than {threshold:.0%} and the change is "
        f"significant at the {ALPHA:.0%} level after Holm's adjustment over the {tested} cells tested (time: "
        "Welch's t on the logs of the repetitions; accuracy: Welch's t over seeds; p: adjusted), so identical "
        "runs raise a false alarm anywhere in the table at most 5% of the time. Memory, FLOPs and errors are "
        "deterministic: the threshold alone decides. A status change (e.g. ok → OOM) counts as worse.",
    ]
    for metric in ("time", "memory"):
        if g := geomean(changes, metric):
            out.append(f"Geometric mean of new/base {metric}: {g[0]:.3f}x over {g[1]} cells.")
    worse = [c for c in changes if c.regression()]
    if worse:
        out += ["", "### Regressions", "", *_table(worse)]
    rest = [c for c in changes if not c.regression()]
    if rest:
        body = ["", *_table(rest)]
        if fold:
            out += ["", f"<details><summary>All other cells ({len(rest)})</summary>", *body, "", "</details>"]
        else:
            out += ["", "### All other cells", *body]
    return "\n".join(out) + "\n"
