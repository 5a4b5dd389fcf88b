"""The efficiency benchmark: FLOPs, time and peak memory of one layer, forward and forward+backward.

A worker runs one repetition of one cell: a timed block per pass (measure.time_call; with `pairing: blocks`,
alternating with the baseline's in the same process, measure.time_paired); in the first repetition also the
deterministic metrics: FLOPs, peak memory and the roofline bound. The runner repeats time in fresh workers, in
rounds, with the machine to itself; speed-ups pair the variant's and the baseline's times round by round."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch
from pydantic import Field

from attnzoo.harness.benchmark import Benchmark, Section, register_benchmark
from attnzoo.harness.measure import (
    Probe,
    count_flops,
    keep_freed_memory,
    layer_call,
    peak_memory,
    peak_rss_growth,
    time_call,
    time_paired,
)
from attnzoo.harness.records import Cell, Measurement, Outcome, SectionConfig
from attnzoo.harness.roofline import OpCost, Roofs, bound_s, measure_roofs, op_costs
from attnzoo.harness.rundir import STATUSES, status_text
from attnzoo.leaderboards import plots, timing
from attnzoo.leaderboards.headline import best_of
from attnzoo.leaderboards.tables import image_lines, variant_table
from attnzoo.stats import Interval
from attnzoo.zoo import create_attention, variant_info

PASS_TITLE = {"forward": "forward", "forward_backward": "forward+backward"}


class Efficiency(Section):
    metrics: list[Literal["flops", "time", "memory", "roofline"]] = Field(
        ["flops", "time", "memory", "roofline"],
        min_length=1,
        description="roofline: the time the call needs at least at this machine's matmul rate and memory bandwidth, "
        "op by op (attnzoo.harness.roofline), shown as that bound over the measured time",
    )
    passes: list[Literal["forward", "forward_backward"]] = Field(["forward", "forward_backward"], min_length=1)
    repetitions: int = Field(
        9, ge=1, description="time: repetitions per cell, each in a fresh worker, variants shuffled in every round"
    )
    min_run_time: float = Field(0.2, gt=0, description="time: seconds of timed calls per repetition")
    baseline: str = Field("sdpa", description="label whose time every speed-up is paired against")
    pairing: Literal["rounds", "blocks"] = Field(
        "rounds",
        description="rounds: a speed-up pairs the variant's and the baseline's workers of the same round; blocks: "
        "each worker also times the baseline, in alternating blocks, and pairs the two in-process (narrower "
        "intervals that another run's median falls outside more often, measured on a 2-core VM; see the README)",
    )
    allocator: Literal["retain", "system"] = Field(
        "retain", description="retain: workers keep freed memory (glibc mallopt); system: the allocator's defaults"
    )
    contention_margin: float = Field(
        0.3, gt=0, description="a block whose probe ran this much slower than calibrated is contended"
    )
    contention_retries: int = Field(2, ge=0, description="times a contended block is measured again")


@dataclass(frozen=True)
class PairedConfig(SectionConfig):
    """An efficiency cell's config: its section and, when its time is paired in-process, the baseline setting
    (registered variant, parameters, label) timed beside it."""

    baseline: tuple[str, dict[str, Any], str] | None = None

    def identity(self) -> dict[str, Any]:
        out = super().identity()
        if self.baseline:
            out["paired_with"] = {"variant": self.baseline[0], "params": self.baseline[1]}
        return out


@dataclass
class Speed:
    """A setting's headline numbers: from the run where it and the baseline both ran the longest length."""

    run: int
    speedup: Interval | None = None
    speedup_n: int | None = None
    memory_ratio: float | None = None
    longest_n: int | None = None
    stopped_by: str = ""  # "OOM at 65536" when a longer length failed
    crossover: str = ""
    crossover_n: int | None = None  # sort key: the first length from which it is faster


@register_benchmark("efficiency")
class EfficiencyBenchmark(Benchmark):
    section = Efficiency
    exclusive = True
    per_length = True

    def plan(self, suite: Any, section: Efficiency, threads: int | None) -> list[Cell]:
        """Every setting at every length; with block pairing, each setting but the baseline carries the baseline
        setting to time beside it (where the baseline can run here), and both codes in its version."""
        settings, layer = list(suite.settings()), suite.layer.model_dump()
        device_type = torch.device(layer["device"]).type
        baseline = next(((v, s, label) for v, s, label in settings if label == section.baseline), None)
        if baseline:
            info = variant_info(baseline[0])
            if info.cannot_run(device_type, layer["dtype"]) or not info.available.ok:
                baseline = None
        cells = []
        for variant, setting, label in settings:
            paired = section.pairing == "blocks" and "time" in section.metrics and baseline and label != baseline[2]
            config = PairedConfig(section, baseline if paired else None)
            code = (
                f"{variant_info(variant).code_version} vs {variant_info(baseline[0]).code_version}" if paired else None
            )
            cells += [
                suite.cell(self, variant, label, setting, n, config, layer, threads, code=code) for n in suite.seq_lens
            ]
        return cells

    def repetitions(self, cell: Cell) -> int:
        section = cell.config.section
        return section.repetitions if "time" in section.metrics else 1

    # --- the worker ----------------------------------------------------------------------------------------

    def run(
        self,
        cell: Cell,
        *,
        repetition: int = 0,
        probe_s: float | None = None,
        matmul_flops_per_s: float | None = None,
        bandwidth_bytes_per_s: float | None = None,
        **_: object,
    ) -> list[Measurement]:
        layer_cfg, config = cell.layer, cell.config.section
        if config.allocator == "retain":
            keep_freed_memory()
        device, dtype = torch.device(layer_cfg["device"]), getattr(torch, layer_cfg["dtype"])
        torch.manual_seed(0)
        layer = create_attention(
            cell.variant, layer_cfg["dim"], layer_cfg["heads"], max_seq_len=cell.seq_len, **cell.params
        ).to(device=device, dtype=dtype)
        x = torch.randn(layer_cfg["batch"], cell.seq_len, layer_cfg["dim"], device=device, dtype=dtype)
        baseline = getattr(cell.config, "baseline", None)
        if baseline and "time" in config.metrics:
            base_layer = create_attention(
                baseline[0], layer_cfg["dim"], layer_cfg["heads"], max_seq_len=cell.seq_len, **baseline[1]
            ).to(device=device, dtype=dtype)
        probe = Probe(probe_s, config.contention_margin)
        roofs = (
            Roofs(matmul_flops_per_s, bandwidth_bytes_per_s) if matmul_flops_per_s and bandwidth_bytes_per_s else None
        )
        out = []
        for pass_name in config.passes:
            backward = pass_name == "forward_backward"
            layer.train(backward)  # a training step, or inference
            call = layer_call(layer, x, None, backward)
            if "time" in config.metrics:
                extra: dict[str, Any] = {}
                t = None
                if baseline:
                    base_layer.train(backward)
                    try:
                        t, ratios = time_paired(
                            call,
                            layer_call(base_layer, x, None, backward),
                            torch.get_num_threads(),
                            config.min_run_time,
                            probe,
                            config.contention_retries,
                        )
                        extra = {"paired_with": baseline[2], "paired_ratios": [round(r, 5) for r in ratios]}
                    except Exception as err:  # noqa: BLE001 - the baseline failing here (OOM) must not lose the cell
                        extra = {"paired_with": baseline[2], "pairing_failed": f"{type(err).__name__}: {err}"[:300]}
                if t is None:
                    t = time_call(call, torch.get_num_threads(), config.min_run_time, probe, config.contention_retries)
                extra |= {
                    "iqr_s": t.iqr_s,
                    "runs": t.runs,
                    "faults_per_call": round(t.faults_per_call, 1),
                    "probe_ratios": t.probe_ratios,
                    "contended": t.contended,
                }
                out.append(Measurement("time", t.median_s, "s", pass_name, extra=extra))
            if repetition:
                continue  # FLOPs and memory do not vary between processes: measured once
            if "memory" in config.metrics:
                call()  # first-call allocations (thread pools, caches) are not the layer's
                extra = {"rss_growth_bytes": peak_rss_growth(call)} if device.type == "cpu" else {}
                out.append(Measurement("memory", peak_memory(call, device), "bytes", pass_name, extra=extra))
            # One call under the cost mode gives the roofline and the FLOPs (its ops' FLOPs sum to count_flops's).
            costs = op_costs(call) if "roofline" in config.metrics and roofs else None
            if "flops" in config.metrics:
                flops = sum(c.flops for c in costs) if costs is not None else count_flops(call)
                out.append(Measurement("flops", flops, "FLOP", pass_name))
            if costs is not None:
                out.append(_roofline(costs, roofs, pass_name))
        return out

    def calibrate(self, cell: Cell) -> dict[str, float] | None:
        """At the start of a run, with the suite's threads: the contention probe's time, for a CPU cell (the probe
        detects processes competing for CPU cores, and a GPU cell's kernels do not run there: on a 16-core GPU
        machine the CPU probe read 6x its calibration, marking every block contended); and, for the roofline,
        the matmul rate and memory bandwidth on the cell's device in its dtype."""
        metrics, out = cell.config.section.metrics, {}
        device = torch.device(cell.layer.get("device", "cpu"))
        if "time" in metrics and device.type == "cpu":
            out["probe_s"] = Probe().calibrate()
        if "roofline" in metrics:
            roofs = measure_roofs(device, getattr(torch, cell.layer["dtype"]), torch.get_num_threads())
            out |= {"matmul_flops_per_s": roofs.flops_per_s, "bandwidth_bytes_per_s": roofs.bytes_per_s}
        return out or None

    def aggregate(self, repetitions: dict[int, Outcome]) -> list[Measurement]:
        """Time: the median over repetitions whose probe was clean (over all of them when none was), every
        repetition's value kept with its round so that speed-ups can be paired round by round; the cell is
        contended when most of its repetitions were. FLOPs and memory: the
        first repetition's."""
        reps = sorted(repetitions)
        first = repetitions[reps[0]].measurements
        out = [m for m in first if m.metric != "time"]
        failed = {str(r): repetitions[r].error.splitlines()[0] for r in reps if repetitions[r].status != "ok"}
        for row in (m for m in first if m.metric == "time"):
            blocks = [
                (r, m)
                for r in reps
                if repetitions[r].status == "ok"
                for m in repetitions[r].measurements
                if m.metric == "time" and m.pass_name == row.pass_name
            ]
            clean = [(r, m) for r, m in blocks if not m.extra["contended"]]
            used = clean or blocks
            extra = {
                "repetitions": [m.value for _, m in blocks],
                "rounds": [r for r, _ in blocks],
                "clean": [not m.extra["contended"] for _, m in blocks],
                "block_iqr_s": [m.extra["iqr_s"] for _, m in blocks],
                "probe_ratios": [m.extra["probe_ratios"] for _, m in blocks],
                "faults_per_call": statistics.median(m.extra["faults_per_call"] for _, m in used),
                # per repetition, the median in-process speed-up over the baseline; None where it was not paired
                "paired": [
                    statistics.median(m.extra["paired_ratios"]) if m.extra.get("paired_ratios") else None
                    for _, m in blocks
                ],
                "paired_with": next((m.extra["paired_with"] for _, m in blocks if "paired_with" in m.extra), None),
                "pairing_failed": next(
                    (m.extra["pairing_failed"] for _, m in blocks if "pairing_failed" in m.extra), ""
                ),
                "contended": 2 * len(clean) < len(blocks),
                "failed_repetitions": failed,
            }
            value = statistics.median(m.value for _, m in used)
            out.append(Measurement("time", value, "s", row.pass_name, extra=extra))
        return out

    # --- the run's tables and figures ------------------------------------------------------------------------

    def tables(self, df: pd.DataFrame, view) -> list[str]:
        out: list[str] = []
        h, baseline = view.h, _baseline_of(view.run)
        coverage = None
        for pass_name, title_pass in PASS_TITLE.items():
            part = _metric_rows(df, "time", pass_name)
            if part.empty:
                continue
            out += ["", f"{h} Time (ms), {title_pass}", "", timing.time_table(part, status_text)]
            speedups = timing.speedup_table(part, baseline, status_text)
            if speedups:
                out += ["", f"{h}# Speed-up over {baseline}, {title_pass} (> 1: faster)", "", speedups[0]]
                coverage = min(coverage or 1.0, speedups[1])
        if not _metric_rows(df, "time", "forward").empty or not _metric_rows(df, "time", "forward_backward").empty:
            out += ["", timing.legend(coverage)]
        out += [line for name in view.figures for line in image_lines(name)]
        section = _section(view.run)
        allocator = view.run.manifest.get("allocator") or (section.allocator if section else "not recorded")
        for pass_name, title_pass in PASS_TITLE.items():
            part = _metric_rows(df, "time", pass_name)
            faults = [e.get("faults_per_call") if isinstance(e, dict) else None for e in part.get("extra", [])]
            if part.empty or all(f is None for f in faults):
                continue
            part = part.assign(value=faults)
            heading = f"{h} Minor page faults per call while timed, {title_pass} (allocator: {allocator})"
            out += ["", heading, "", variant_table(part, lambda v: f"{v:.0f}", slope=False)]
        for pass_name, title_pass in PASS_TITLE.items():
            part = roofline_efficiency(df, pass_name)
            if not part.empty:
                heading = f"{h} Roofline efficiency, {title_pass}: the two-roof bound over the measured time"
                out += ["", heading, "", variant_table(part, lambda v: f"{v:.0%}", slope=False), "", ROOFLINE_LEGEND]
        sections = [
            ("memory", "Peak memory (MiB allocated during the call)", lambda v: f"{v / 2**20:.1f}"),
            ("flops", "FLOPs (GFLOP, FlopCounterMode)", lambda v: f"{v / 1e9:.3f}"),
        ]
        for metric, heading, fmt in sections:
            for pass_name, title_pass in PASS_TITLE.items():
                part = _metric_rows(df, metric, pass_name)
                if part.empty:
                    continue
                out += ["", f"{h} {heading}, {title_pass}", "", variant_table(part, fmt, slope=True)]
        return out + ["", "Memory and FLOP slopes: least-squares slope of log(value) on log(n) (1 = linear)."]

    def figures(self, df: pd.DataFrame, run, out: Path, stem: str) -> list[str]:
        if not (pass_name := timing_pass(df)):
            return []
        files = plots.efficiency(df, _baseline_of(run), pass_name, PASS_TITLE[pass_name], out, stem)
        bound = plots.roofline(roofline_efficiency(df, pass_name), PASS_TITLE[pass_name], out, stem)
        return files + ([bound] if bound else [])

    # --- the headline ----------------------------------------------------------------------------------------

    def headline(self, setting: str, mine: pd.DataFrame, everything: pd.DataFrame, board) -> Speed | None:
        """From the run where setting and baseline both ran the longest length: speed-up with its interval,
        memory ratio, longest length reached, crossover."""
        pass_name, baseline = timing_pass(everything), board_baseline(board)
        if not pass_name:
            return None
        candidates = []
        for run, rows in mine.groupby("run"):
            base = everything[(everything["run"] == run) & (everything["setting"] == baseline)]
            t_mine, t_base = _by_n(rows, "time", pass_name), _by_n(base, "time", pass_name)
            reached = [n for n, r in t_mine.items() if r["status"] == "ok"]
            both = sorted(n for n in reached if n in t_base and t_base[n]["status"] == "ok")
            candidates.append(((max(both, default=0), max(reached, default=0), run), both, rows, base, t_mine, t_base))
        if not candidates:
            return None
        (_, longest, run), both, rows, base, t_mine, t_base = max(candidates, key=lambda c: c[0])
        speed = Speed(int(run))
        failed = sorted((n, r["status"]) for n, r in t_mine.items() if r["status"] in _FAILED)
        later = [(n, s) for n, s in failed if n > longest]
        speed.longest_n = longest or None
        speed.stopped_by = f"{STATUSES[later[0][1]][0]} at {later[0][0]}" if later else ""
        if not both:
            return speed
        n = both[-1]
        speed.speedup, speed.speedup_n = timing.speedup_interval(t_mine[n], t_base[n]), n
        m_mine, m_base = _by_n(rows, "memory", pass_name), _by_n(base, "memory", pass_name)
        if n in m_mine and n in m_base and m_mine[n]["status"] == m_base[n]["status"] == "ok" and m_base[n]["value"]:
            speed.memory_ratio = m_mine[n]["value"] / m_base[n]["value"]
        if setting == baseline:
            return speed
        faster = [
            (m, (iv := timing.speedup_interval(t_mine[m], t_base[m])) is not None and iv.median > 1) for m in both
        ]
        start = next((i for i in range(len(faster)) if all(f for _, f in faster[i:])), None)
        if start is None:
            speed.crossover = f"none to {n}"
        else:
            speed.crossover_n = faster[start][0]
            speed.crossover = f"≤ {faster[0][0]}" if start == 0 else f"{faster[start - 1][0]}–{faster[start][0]}"
        return speed

    def headline_columns(self, rows: list, board) -> list[tuple[str, dict[str, str], str]]:
        baseline = board_baseline(board)
        speeds = {r.setting: r.values[self.name] for r in rows if self.name in r.values}
        has_speed = any(s.speedup for s in speeds.values())
        has_scale = any(s.longest_n or s.stopped_by for s in speeds.values())
        others = {k: s for k, s in speeds.items() if k != baseline}
        best = {
            "speed": best_of({k: s.speedup.median if s.speedup else None for k, s in others.items()}, higher=True),
            "memory": best_of({k: s.memory_ratio for k, s in others.items()}, higher=False),
            "crossover": best_of({k: s.crossover_n for k, s in others.items()}, higher=False),
            "longest": best_of({k: s.longest_n for k, s in speeds.items()}, higher=True),
        }

        def bold(text: str, column: str, setting: str) -> str:
            return f"**{text}**" if text and setting in best[column] else text

        columns = []
        if has_speed:
            speed, memory, crossover = {}, {}, {}
            for k, s in speeds.items():
                text = "1 (baseline)" if k == baseline and s.speedup else ""
                if s.speedup and k != baseline:
                    text = f"{timing.interval_text(s.speedup, '{:.3g}', 'x')} at {s.speedup_n}"
                speed[k] = bold(text, "speed", k)
                memory[k] = bold("" if s.memory_ratio is None else f"{s.memory_ratio:.2g}x", "memory", k)
                crossover[k] = bold(s.crossover, "crossover", k)
            note = (
                f"Speed-up and memory: {PASS_TITLE.get(timing_pass(board.df) or '', '')}, at the longest n both the "
                f"variant and {baseline} ran in the same run (median over rounds with its interval; memory: peak "
                f"bytes allocated during the call, ratio). Crossover: between which measured lengths it becomes "
                f"faster than {baseline} and stays faster."
            )
            columns += [
                (f"speed-up over {baseline}", speed, note),
                (f"memory vs {baseline}", memory, ""),
                ("crossover n", crossover, ""),
            ]
        if has_scale:
            reach = {}
            for k, s in speeds.items():
                stop = f"({s.stopped_by})" if s.stopped_by else ""
                longest = bold("" if s.longest_n is None else str(s.longest_n), "longest", k)
                reach[k] = " ".join(x for x in (longest, stop) if x)
            note = "Longest n: the longest length it ran within the suite's memory and time limits."
            columns.append(("longest n", reach, note))
        return columns

    def headline_order(self, values: Speed | None, setting: str, board) -> tuple:
        """The baseline first, then the fastest at the longest length."""
        speed = -values.speedup.median if values is not None and values.speedup else math.inf
        return (setting != board_baseline(board), speed)

    def headline_after(self, board) -> list[str]:
        """A warning when the speed columns of different rows come from runs on different machines or layers, and
        the bubble chart."""
        out = []
        used = sorted({r.values[self.name].run for r in board.headline if self.name in r.values})

        def setup(i: int) -> tuple:
            m, suite = board.runs[i].manifest, board.runs[i].suite
            layer = suite.layer.model_dump() if suite is not None else None
            return (m.get("device_name"), m.get("threads"), m.get("torch"), json.dumps(layer, sort_keys=True))

        if len({setup(i) for i in used}) > 1:
            out += [
                "",
                "**The speed columns come from runs on different machines, thread counts, torch versions or layer "
                f"shapes** ({', '.join(board.runs[i].name for i in used)}): each ratio is sound within its run, but "
                "rows are not comparable to one another.",
            ]
        for name in board.figures.get(("headline", self.name), []):
            out += [
                *image_lines(name),
                "",
                f"Bubbles: speed-up over {board_baseline(board)} and memory from the speed columns above, accuracy "
                "from the accuracy column; where a variant was trained at other sizes than it was timed at (e.g. "
                "sample sizes scaled to shorter sequences), its bubble joins the two.",
            ]
        return out

    def headline_figures(self, board, out: Path) -> list[str]:
        """LRA-style bubbles: speed-up against any benchmark's quality score, area memory."""
        points = []
        for r in (r for r in board.headline if r.under is None):
            speed = r.values.get(self.name)
            quality = next(
                (q for name, v in r.values.items() if (q := board.benchmarks[name].quality(v)) is not None), None
            )
            points.append(
                (
                    r.variant,
                    r.setting,
                    speed.speedup.median if speed and speed.speedup else None,
                    speed.memory_ratio if speed else None,
                    quality,
                )
            )
        bubble = plots.bubble(points, board_baseline(board), out, "")
        return [bubble] if bubble else []

    def record(self, values: Speed) -> dict:
        iv = values.speedup
        return {
            "speedup": None if iv is None else iv.median,
            "speedup_low": None if iv is None else iv.low,
            "speedup_high": None if iv is None else iv.high,
            "speedup_n": values.speedup_n,
            "memory_ratio": values.memory_ratio,
            "longest_n": values.longest_n,
            "stopped_by": values.stopped_by,
            "crossover": values.crossover,
            "crossover_n": values.crossover_n,
        }

    # --- compare ---------------------------------------------------------------------------------------------

    tested = {"time": "log"}  # times are skewed; their logs are close to symmetric
    not_compared = frozenset({"roofline"})  # its bound moves with the roofs each run measures; time is compared

    def samples(self, rows: pd.DataFrame) -> list[float]:
        """Time: the clean repetitions; FLOPs and memory: the stored value (deterministic)."""
        if rows["metric"].iloc[0] == "time":
            return list(timing.repetitions(rows.iloc[-1]).values())
        return super().samples(rows)

    def center(self, rows: pd.DataFrame, samples: list[float]) -> float:
        return float(rows["value"].iloc[-1]) if rows["metric"].iloc[0] == "time" else super().center(rows, samples)

    def format(self, metric: str, value: float) -> str:
        if metric == "time":
            return f"{value * 1e3:.3g} ms"
        return f"{value / 2**20:.1f} MiB" if metric == "memory" else super().format(metric, value)


_FAILED = ("oom", "timeout", "skipped", "error")


def _section(run) -> Efficiency | None:
    return run.suite.benchmarks.enabled().get("efficiency") if run.suite is not None else None


def _baseline_of(run) -> str:
    section = _section(run)
    return section.baseline if section else "sdpa"


def board_baseline(board) -> str:
    """The baseline of the first run that timed: what every speed-up in the headline is relative to."""
    return next((s.baseline for run in board.runs if (s := _section(run))), "sdpa")


def timing_pass(df: pd.DataFrame) -> str | None:
    """forward+backward where it was measured (training cost), else forward."""
    timed = df[(df["benchmark"] == "efficiency") & (df["metric"] == "time")]
    for name in ("forward_backward", "forward"):
        if (timed["pass"] == name).any():
            return name
    return None


def _metric_rows(eff: pd.DataFrame, metric: str, pass_name: str) -> pd.DataFrame:
    """Rows of one metric and pass, plus the status rows of cells that produced no measurement."""
    measured = eff[(eff["metric"] == metric) & (eff["pass"] == pass_name)]
    failed = eff[eff["metric"].isna()]
    return pd.concat([measured, failed]) if not measured.empty else measured


def _by_n(rows: pd.DataFrame, metric: str, pass_name: str) -> dict[int, pd.Series]:
    """seq_len -> the row of this metric and pass there, or the status row of a cell that measured nothing."""
    found = {int(r["seq_len"]): r for _, r in rows[rows["metric"].isna()].iterrows()}
    measured = rows[(rows["metric"] == metric) & (rows["pass"] == pass_name)]
    found.update({int(r["seq_len"]): r for _, r in measured.iterrows()})
    return found


ROOFLINE_LEGEND = (
    "Bound: every op of the call at the machine's roofs, max(FLOPs / matmul rate, bytes / memory bandwidth), summed "
    "(both roofs measured at the start of the run with the suite's threads and dtype; bytes: each op's inputs and "
    "outputs once). 100% would be an implementation that runs every op at its roof; above 100%, data stayed in a "
    "cache between ops. Low efficiency with mostly memory-bound ops points at passes that move bytes for few FLOPs."
)


def roofline_efficiency(df: pd.DataFrame, pass_name: str) -> pd.DataFrame:
    """Rows (label, seq_len, value = roofline bound / measured time) where a cell has both; other statuses kept."""
    bounds = _metric_rows(df, "roofline", pass_name)
    times = _metric_rows(df, "time", pass_name)
    if bounds.empty or times.empty:
        return bounds.iloc[0:0]
    keys = ["label", "seq_len", *(["run"] if "run" in df else [])]
    joined = times.merge(bounds[[*keys, "value"]], on=keys, how="left", suffixes=("", "_bound"))
    ok = joined["status"] == "ok"
    joined = joined[~ok | joined["value_bound"].notna()]
    return joined.assign(value=joined["value_bound"] / joined["value"]).drop(columns="value_bound")


def _roofline(costs: list[OpCost], roofs: Roofs, pass_name: str) -> Measurement:
    """A call's two-roof bound from its ops' costs, with its totals and the share spent in memory-bound ops."""
    bound = bound_s(costs, roofs)
    memory_bound = sum(c.seconds(roofs) for c in costs if c.memory_bound(roofs))
    extra = {
        "flops": sum(c.flops for c in costs),
        "bytes": sum(c.bytes for c in costs),
        "ops": len(costs),
        "memory_bound_share": round(memory_bound / bound, 4) if bound else 0.0,
        "matmul_flops_per_s": roofs.flops_per_s,
        "bandwidth_bytes_per_s": roofs.bytes_per_s,
    }
    return Measurement("roofline", bound, "s", pass_name, extra=extra)
