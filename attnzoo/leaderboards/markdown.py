"""Result rows -> a markdown leaderboard: per sequence length, per variant, with scaling slopes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from attnzoo.leaderboards import accuracy as accuracy_table
from attnzoo.leaderboards import timing
from attnzoo.stats import loglog_slope

STATUS_TEXT = {
    "oom": "OOM",
    "timeout": "timeout",
    "skipped": "skipped (OOM/timeout below)",
    "unsupported": "unsupported",
    "unavailable": "unavailable",
    "error": "error",
}
PASS_TITLE = {"forward": "forward", "forward_backward": "forward+backward"}


def _cell_text(group: pd.DataFrame, fmt: Callable[[float], str]) -> str:
    row = group.iloc[-1]
    return fmt(row["value"]) if row["status"] == "ok" else STATUS_TEXT.get(row["status"], row["status"])


def _table(df: pd.DataFrame, fmt: Callable[[float], str], slope: bool) -> str:
    ns = sorted(df["seq_len"].unique())
    header = ["variant", *[f"n={n}" for n in ns]] + (["slope"] if slope else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, group in df.groupby("label", sort=True, observed=True):
        cells = [_cell_text(group[group["seq_len"] == n], fmt) if (group["seq_len"] == n).any() else "" for n in ns]
        if slope:
            ok = group[group["status"] == "ok"]
            s = loglog_slope(list(ok["seq_len"]), list(ok["value"]))
            cells.append("" if s is None else f"{s:.2f}")
        lines.append("| " + " | ".join([label, *cells]) + " |")
    return "\n".join(lines)


def render(rows: list[dict], manifest: dict, suite: Any = None) -> str:
    df = pd.DataFrame(rows)
    if len(df):  # one row per measurement: the latest, should stored rows repeat a cell
        identity = ["label", "benchmark", "task", "seed", "seq_len", "metric", "pass", "input"]
        df = df.drop_duplicates([c for c in identity if c in df], keep="last").reset_index(drop=True)
    if len(df):  # tables list variants in the suite's order (rows arrive interleaved)
        order = [entry.label_for(s) for entry in suite.variants for s in entry.settings()] if suite is not None else []
        order += [label for label in dict.fromkeys(df["label"]) if label not in order]
        df["label"] = pd.Categorical(df["label"], categories=order)
    title = manifest.get("suite") or (suite.name if suite is not None else (df["suite"].iloc[0] if len(df) else "run"))
    device = manifest.get("device", "cpu")
    kind = "CPU results" if device.startswith("cpu") else "GPU results"
    threads = manifest.get("threads")
    out = [
        f"# attnzoo leaderboard: {title}",
        "",
        f"**{kind}.** Measured on {manifest.get('device_name')} with {threads} thread{'s' * (threads != 1)}, "
        f"torch {manifest.get('torch')}, {manifest.get('date')}, attnzoo git {manifest.get('git')}.",
    ]
    out += _provenance(manifest, df)
    if suite is not None:
        out += _setup_lines(suite)
    if df.empty:
        return "\n".join(out + ["", "No results."]) + "\n"

    eff = df[df["benchmark"] == "efficiency"]
    baseline = suite.benchmarks.efficiency.baseline if suite is not None and suite.benchmarks.efficiency else "sdpa"
    coverage = None
    for pass_name, title_pass in PASS_TITLE.items():
        part = _metric_rows(eff, "time", pass_name)
        if part.empty:
            continue
        out += ["", f"## Time (ms), {title_pass}", "", timing.time_table(part, STATUS_TEXT)]
        speedups = timing.speedup_table(part, baseline, STATUS_TEXT)
        if speedups:
            out += ["", f"### Speed-up over {baseline}, {title_pass} (> 1: faster)", "", speedups[0]]
            coverage = min(coverage or 1.0, speedups[1])
    if not _metric_rows(eff, "time", "forward").empty or not _metric_rows(eff, "time", "forward_backward").empty:
        out += ["", timing.legend(coverage)]
    allocator = manifest.get("allocator") or (
        suite.benchmarks.efficiency.allocator if suite is not None and suite.benchmarks.efficiency else "not recorded"
    )
    for pass_name, title_pass in PASS_TITLE.items():
        part = _metric_rows(eff, "time", pass_name)
        faults = [e.get("faults_per_call") if isinstance(e, dict) else None for e in part.get("extra", [])]
        if part.empty or all(f is None for f in faults):
            continue
        part = part.assign(value=faults)
        heading = f"## Minor page faults per call while timed, {title_pass} (allocator: {allocator})"
        out += ["", heading, "", _table(part, lambda v: f"{v:.0f}", slope=False)]
    sections = [
        ("memory", "Peak memory (MiB allocated during the call)", lambda v: f"{v / 2**20:.1f}"),
        ("flops", "FLOPs (GFLOP, FlopCounterMode)", lambda v: f"{v / 1e9:.3f}"),
    ]
    for metric, heading, fmt in sections:
        for pass_name, title_pass in PASS_TITLE.items():
            part = _metric_rows(eff, metric, pass_name)
            if part.empty:
                continue
            out += ["", f"## {heading}, {title_pass}", "", _table(part, fmt, slope=True)]
    if not eff.empty:
        out += ["", "Memory and FLOP slopes: least-squares slope of log(value) on log(n) (1 = linear)."]

    approx = df[df["benchmark"] == "approximation"]
    if not approx.empty:
        out += ["", "## Relative error vs exact softmax attention (mean ± std over seeds)"]
        inputs = [i for i in approx["input"].dropna().unique()]
        for kind_ in inputs:
            part = approx[(approx["input"] == kind_) | (approx["status"] != "ok")]
            part = part.assign(
                value=[
                    (v, e.get("std", 0.0)) if s == "ok" else v
                    for v, e, s in zip(part["value"], part["extra"], part["status"], strict=True)
                ]
            )
            out += ["", f"### {kind_} inputs", "", _table(part, lambda t: f"{t[0]:.3g} ± {t[1]:.2g}", slope=False)]
    accuracy = df[df["benchmark"] == "accuracy"]
    if not accuracy.empty:
        out += ["", *accuracy_table.section(accuracy, STATUS_TEXT)]
    errors = df[df["status"] == "error"]
    if not errors.empty:
        out += ["", "## Cells that errored", ""]
        out += [f"- {r.benchmark} {r.label} n={r.seq_len}: {str(r.error).splitlines()[0]}" for r in errors.itertuples()]
    return "\n".join(out) + "\n"


ENV_FIELDS = ("device_name", "cpu_capability", "torch", "threads", "code")  # what can change a result's numerics


def _provenance(manifest: dict, df: pd.DataFrame) -> list[str]:
    """The kernels that decided the numerics, and a warning when rows come from environments that differ."""
    numerics = manifest.get("numerics") or {}
    lines = [] if numerics else ["CPU kernels: not recorded by the attnzoo version that made this run."]
    if numerics:
        lines.append(
            f"CPU kernels: torch CPU capability {numerics.get('cpu_capability')}, BLAS {numerics.get('blas')}, "
            f"oneDNN {numerics.get('onednn')}"
            + (f"; GPU {numerics['gpu']} (capability {numerics.get('gpu_capability')})" if "gpu" in numerics else "")
            + "."
        )
    if "env" in df:
        envs = {tuple((e or {}).get(f) for f in ENV_FIELDS) for e in df["env"]}
        differing = [f for i, f in enumerate(ENV_FIELDS) if len({env[i] for env in envs}) > 1]
        if differing:
            values = "; ".join(
                f"{f}: {', '.join(sorted({str(env[ENV_FIELDS.index(f)]) for env in envs}))}" for f in differing
            )
            lines.append(
                f"**Mixed environments.** These rows were measured in {len(envs)} environments that differ in "
                f"{values}. Results from machines whose kernels differ are not bit-comparable; compare with care."
            )
    return [" ".join(lines)] if lines else []


def _setup_lines(suite: Any) -> list[str]:
    """What was measured: the suite's description, the layer shape or the training recipe."""
    lines = [suite.description.strip()] if suite.description else []
    benchmarks = suite.benchmarks
    if benchmarks.efficiency or benchmarks.approximation:
        layer = suite.layer
        lines.append(f"Layer: dim {layer.dim}, {layer.heads} heads, batch {layer.batch}, {layer.dtype}.")
    if benchmarks.accuracy:
        r = benchmarks.accuracy.recipe
        lines.append(
            f"Recipe, identical for every variant: encoder dim {r.dim}, {r.depth} layers, {r.heads} heads, FFN "
            f"{r.ffn_dim}, dropout {r.dropout}; AdamW lr {r.lr:g}, weight decay {r.weight_decay:g}, "
            f"{r.warmup_steps} warm-up steps then linear decay, clip {r.clip_norm:g}, batch {r.batch_size}, "
            f"{r.steps} steps, validation every {r.eval_every}; seeds {benchmarks.accuracy.seed_list()}."
        )
        overrides = {t: o["recipe"] for t, o in benchmarks.accuracy.tasks.items() if "recipe" in o}
        if overrides:
            lines.append(
                "Per-task schedule (all variants alike): "
                + "; ".join(f"{t}: {', '.join(f'{k} {v}' for k, v in o.items())}" for t, o in overrides.items())
                + "."
            )
    return [" ".join(lines)] if lines else []


def _metric_rows(eff: pd.DataFrame, metric: str, pass_name: str) -> pd.DataFrame:
    """Rows of one metric and pass, plus the status rows of cells that produced no measurement."""
    measured = eff[(eff["metric"] == metric) & (eff["pass"] == pass_name)]
    failed = eff[eff["metric"].isna()]
    return pd.concat([measured, failed]) if not measured.empty else measured
