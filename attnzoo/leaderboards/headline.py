"""The headline table: one row per variant setting, the numbers people quote — speed and memory relative to the
baseline at the longest length both ran, how far it scales, where it overtakes the baseline, how close it gets to
softmax attention, and its accuracy — each drawn from one run, never mixed across runs."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import pandas as pd

from attnzoo.leaderboards import accuracy as accuracy_table
from attnzoo.leaderboards.sources import sizes
from attnzoo.leaderboards.timing import interval_text, speedup_interval
from attnzoo.stats import Interval

STATUS_SHORT = {"oom": "OOM", "timeout": "timeout", "skipped": "skipped", "error": "error"}


@dataclass
class Headline:
    setting: str
    variant: str
    sizes: str
    speedup: Interval | None = None
    speedup_n: int | None = None
    memory_ratio: float | None = None
    longest_n: int | None = None
    stopped_by: str = ""  # "OOM at 65536" when a longer length failed
    crossover: str = ""
    crossover_n: int | None = None  # sort key: the first length from which it is faster
    error: float | None = None
    error_at: str = ""
    error_note: str = ""  # why there is no error (exact, or not an approximation)
    accuracy: list[float] = field(default_factory=list)  # per-seed averages over tasks (%)
    runs: dict[str, int] = field(default_factory=dict)  # column -> index of the run it came from

    def record(self) -> dict:
        """Flat values for CSV/JSON."""
        out = asdict(self)
        out["speedup"] = None if self.speedup is None else self.speedup.median
        out["speedup_low"] = None if self.speedup is None else self.speedup.low
        out["speedup_high"] = None if self.speedup is None else self.speedup.high
        out["accuracy"] = sum(self.accuracy) / len(self.accuracy) if self.accuracy else None
        return out


def timing_pass(df: pd.DataFrame) -> str | None:
    """forward+backward where it was measured (training cost), else forward."""
    timed = df[(df["benchmark"] == "efficiency") & (df["metric"] == "time")]
    for name in ("forward_backward", "forward"):
        if (timed["pass"] == name).any():
            return name
    return None


def build(
    df: pd.DataFrame, baseline: str, exact: set[str], tasks: dict[int, list[str]] | None = None
) -> list[Headline]:
    """Headline rows in the order settings first appear; `exact` names the variants that compute softmax
    attention exactly (their approximation error is zero by construction); `tasks`: per run, the accuracy tasks
    its suite declares (a variant has an average only when it finished all of them)."""
    pass_name = timing_pass(df)
    approximated = (df["benchmark"] == "approximation").any()
    rows = []
    for setting, group in df.groupby("setting", sort=False):
        first = group.iloc[0]
        row = Headline(setting, first["variant"], sizes(first["variant"], first["parameters"]))
        if pass_name:
            _efficiency(row, df, group, baseline, pass_name)
        if approximated:
            _approximation(row, group, exact)
        acc = group[group["benchmark"] == "accuracy"]
        if not acc.empty:
            run = int(acc["run"].max())  # the last run given that trained this setting
            acc = acc[acc["run"] == run]
            declared = (tasks or {}).get(run) or df[(df["benchmark"] == "accuracy") & (df["run"] == run)]["task"]
            complete = set(acc["task"]) >= set(declared)  # an unfinished run has no average yet
            row.accuracy = accuracy_table.averages(acc, by="setting").get(setting, []) if complete else []
            if row.accuracy:
                row.runs["accuracy"] = run
        rows.append(row)
    return rows


def _efficiency(row: Headline, df: pd.DataFrame, group: pd.DataFrame, baseline: str, pass_name: str) -> None:
    """From the run where setting and baseline both ran the longest length: speed-up with its interval, memory
    ratio, longest length reached, crossover."""
    candidates = []
    for run, mine in group[group["benchmark"] == "efficiency"].groupby("run"):
        base = df[(df["run"] == run) & (df["setting"] == baseline) & (df["benchmark"] == "efficiency")]
        t_mine, t_base = _by_n(mine, "time", pass_name), _by_n(base, "time", pass_name)
        reached = [n for n, r in t_mine.items() if r["status"] == "ok"]
        both = sorted(n for n in reached if n in t_base and t_base[n]["status"] == "ok")
        candidates.append(((max(both, default=0), max(reached, default=0), run), both, mine, base, t_mine, t_base))
    if not candidates:
        return
    (_, longest, run), both, mine, base, t_mine, t_base = max(candidates, key=lambda c: c[0])
    row.runs["efficiency"] = int(run)
    failed = sorted((n, r["status"]) for n, r in t_mine.items() if r["status"] in STATUS_SHORT)
    later = [(n, s) for n, s in failed if n > longest]
    row.longest_n = longest or None
    row.stopped_by = f"{STATUS_SHORT[later[0][1]]} at {later[0][0]}" if later else ""
    if not both:
        return
    n = both[-1]
    row.speedup, row.speedup_n = speedup_interval(t_mine[n], t_base[n]), n
    m_mine, m_base = _by_n(mine, "memory", pass_name), _by_n(base, "memory", pass_name)
    if n in m_mine and n in m_base and m_mine[n]["status"] == m_base[n]["status"] == "ok" and m_base[n]["value"]:
        row.memory_ratio = m_mine[n]["value"] / m_base[n]["value"]
    if row.setting == baseline:
        return
    faster = [(m, (iv := speedup_interval(t_mine[m], t_base[m])) is not None and iv.median > 1) for m in both]
    start = next((i for i in range(len(faster)) if all(f for _, f in faster[i:])), None)
    if start is None:
        row.crossover = f"none to {n}"
    else:
        row.crossover_n = faster[start][0]
        row.crossover = f"≤ {faster[0][0]}" if start == 0 else f"{faster[start - 1][0]}–{faster[start][0]}"


def _by_n(rows: pd.DataFrame, metric: str, pass_name: str) -> dict[int, pd.Series]:
    """seq_len -> the row of this metric and pass there, or the status row of a cell that measured nothing."""
    found = {int(r["seq_len"]): r for _, r in rows[rows["metric"].isna()].iterrows()}
    measured = rows[(rows["metric"] == metric) & (rows["pass"] == pass_name)]
    found.update({int(r["seq_len"]): r for _, r in measured.iterrows()})
    return found


def _approximation(row: Headline, group: pd.DataFrame, exact: set[str]) -> None:
    """Relative error at the longest length measured, on real-text inputs where there are some."""
    if row.variant in exact:
        row.error_note = "exact"
        return
    approx = group[group["benchmark"] == "approximation"]
    ok = approx[approx["status"] == "ok"]
    if ok.empty:
        if (approx["status"] == "unsupported").any():
            row.error_note = "n/a: not a softmax approximation"
        return
    inputs = list(dict.fromkeys(ok["input"]))
    kind = "text" if "text" in inputs else inputs[0]
    at = ok[ok["input"] == kind]
    pick = at.sort_values(["seq_len", "run"]).iloc[-1]
    row.error, row.error_at = float(pick["value"]), f"{kind}, n={int(pick['seq_len'])}"
    row.runs["approximation"] = int(pick["run"])


def _best(values: dict[str, float | None], higher: bool) -> set[str]:
    present = {k: v for k, v in values.items() if v is not None and not math.isnan(v)}
    if len(present) < 2:
        return set()
    target = max(present.values()) if higher else min(present.values())
    return {k for k, v in present.items() if math.isclose(v, target)}


def table(rows: list[Headline], baseline: str, pass_title: str, run_names: list[str] | None = None) -> list[str]:
    """The markdown table (best per column in bold) and the lines that say what each column means; with
    `run_names` (merged runs), a last column names the runs each row's numbers come from."""
    has = {
        "speed": any(r.speedup for r in rows),
        "scale": any(r.longest_n or r.stopped_by for r in rows),
        "error": any(r.error is not None or r.error_note for r in rows),
        "acc": any(r.accuracy for r in rows),
    }
    others = [r for r in rows if r.setting != baseline]
    best = {
        "speed": _best({r.setting: r.speedup.median if r.speedup else None for r in others}, higher=True),
        "memory": _best({r.setting: r.memory_ratio for r in others}, higher=False),
        "longest": _best({r.setting: r.longest_n for r in rows}, higher=True),
        "crossover": _best({r.setting: r.crossover_n for r in others}, higher=False),
        "error": _best({r.setting: r.error for r in rows}, higher=False),
        "acc": _best({r.setting: sum(r.accuracy) / len(r.accuracy) if r.accuracy else None for r in rows}, True),
    }
    header = ["variant", "sizes"]
    if has["speed"]:
        header += [f"speed-up over {baseline}", f"memory vs {baseline}", "crossover n"]
    if has["scale"]:
        header += ["longest n"]
    if has["error"]:
        header += ["approx. error"]
    if has["acc"]:
        header += ["accuracy (avg %)"]
    if run_names:
        header += ["from"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def bold(text: str, column: str, setting: str) -> str:
        return f"**{text}**" if text and setting in best[column] else text

    for r in sorted(rows, key=lambda r: _sort_key(r, baseline)):
        cells = [r.setting, r.sizes]
        if has["speed"]:
            speed = "1 (baseline)" if r.setting == baseline and r.speedup else ""
            if r.speedup and r.setting != baseline:
                speed = f"{interval_text(r.speedup, '{:.3g}', 'x')} at {r.speedup_n}"
            memory = "" if r.memory_ratio is None else f"{r.memory_ratio:.2g}x"
            cells += [
                bold(speed, "speed", r.setting),
                bold(memory, "memory", r.setting),
                bold(r.crossover, "crossover", r.setting),
            ]
        if has["scale"]:
            reach = "" if r.longest_n is None else str(r.longest_n)
            stop = f"({r.stopped_by})" if r.stopped_by else ""
            cells.append(" ".join(x for x in (bold(reach, "longest", r.setting), stop) if x))
        if has["error"]:
            error = r.error_note if r.error is None else f"{r.error:.3g} ({r.error_at})"
            cells.append(bold(error, "error", r.setting) if r.error is not None else error)
        if has["acc"]:
            acc = ""
            if r.accuracy:
                mean, low, high = accuracy_table.mean_interval(r.accuracy)
                acc = f"{mean:.1f}" if math.isnan(low) else f"{mean:.1f} ({low:.1f}–{high:.1f})"
            cells.append(bold(acc, "acc", r.setting))
        if run_names:
            cells.append(", ".join(run_names[i] for i in sorted(set(r.runs.values()))))
        lines.append("| " + " | ".join(cells) + " |")
    notes = ["Sizes: the parameters that size each variant, defaults included."]
    if has["speed"]:
        notes.append(
            f"Speed-up and memory: {pass_title}, at the longest n both the variant and {baseline} ran in the same "
            "run (median over rounds with its interval; memory: peak bytes allocated during the call, ratio). "
            f"Crossover: between which measured lengths it becomes faster than {baseline} and stays faster."
        )
    if has["scale"]:
        notes.append("Longest n: the longest length it ran within the suite's memory and time limits.")
    if has["error"]:
        notes.append(
            "Approx. error: ‖approx − exact‖ / ‖exact‖ at the longest length measured, mean over seeds, on real-text "
            "inputs where measured."
        )
    if has["acc"]:
        notes.append("Accuracy: average over tasks, mean over seeds with a 95% t-interval.")
    notes.append("Bold: the best in its column.")
    return [*lines, "", " ".join(notes)]


def _sort_key(r: Headline, baseline: str) -> tuple:
    """The baseline first, then the fastest at the longest length, then by accuracy."""
    speed = -r.speedup.median if r.speedup else math.inf
    acc = -(sum(r.accuracy) / len(r.accuracy)) if r.accuracy else math.inf
    return (r.setting != baseline, speed, acc, r.setting)
