"""Run directories as leaderboard sources: their rows, manifest and suite, merged into one table with every row
tagged by the run it came from, and variant settings named the same way across runs."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from attnzoo.harness.benchmark import benchmarks
from attnzoo.harness.rundir import SUITE_FILE, RunDirError, RunStore


def identity() -> list[str]:
    """The columns that tell one measurement of a run from another: the generic ones and every benchmark's own."""
    own = [c for b in benchmarks().values() for c in b.columns]
    return ["label", "benchmark", *dict.fromkeys(own), "seed", "seq_len", "metric", "pass", "input"]


UNMEASURED = ("unsupported", "unavailable")
Prefer = Literal["error", "first", "last", "all"]  # all: keep every run's copy (a comparison of runs)


@dataclass
class Run:
    dir: Path
    rows: list[dict]
    manifest: dict
    suite: Any  # attnzoo.harness.suite.Suite, loaded schema-only (plugins need not be installed)
    alias: str = ""  # a name of its own when another merged run has the same directory name

    @property
    def name(self) -> str:
        return self.alias or self.dir.name

    @property
    def kind(self) -> str:
        """CPU or GPU: where its numbers were measured."""
        return "CPU" if str(self.manifest.get("device", "cpu")).startswith("cpu") else "GPU"

    @property
    def title(self) -> str:
        suite = self.suite.name if self.suite is not None else None
        return self.manifest.get("suite") or suite or (self.rows[0].get("suite") if self.rows else None) or "run"

    def cite(self) -> str:
        """Where and how the run was measured, in one line."""
        m = self.manifest
        threads = m.get("threads")
        return (
            f"{self.kind}: {m.get('device_name')}, {threads} thread{'s' * (threads != 1)}, torch {m.get('torch')}, "
            f"attnzoo git {str(m.get('git'))[:10]}, {str(m.get('date'))[:10]}"
        )

    def order(self) -> list[str]:
        """Labels in the suite's order."""
        if self.suite is None:
            return []
        return [entry.label_for(s) for entry in self.suite.variants for s in entry.settings()]


def load_run(path: str | Path) -> Run:
    from attnzoo.harness.suite import import_modules, load_suite

    store = RunStore(path)
    if not store.exists():
        raise RunDirError(f"{path}: not a run directory (no suite.yaml)")
    manifest = store.manifest()
    suite = load_suite(store.dir / SUITE_FILE, check_variants=False, import_dir=manifest.get("suite_dir"))
    if suite.import_dir not in sys.path:  # its `module:Class` variants, for their names and default sizes
        sys.path.append(suite.import_dir)
    import_modules(suite.modules())  # gone or broken: its stored rows render under their labels
    return Run(store.dir, store.rows(), manifest, suite)


def name_apart(runs: list[Run]) -> None:
    """Runs merged from directories of the same name (runs/a/quick, runs/b/quick) are told apart by their parent
    directory, in headings, the `from` column and figure file names."""
    names = [run.dir.name for run in runs]
    for run in runs:
        if names.count(run.dir.name) > 1:
            run.alias = f"{run.dir.resolve().parent.name}-{run.dir.name}"


def frame(runs: list[Run], prefer: Prefer = "error") -> pd.DataFrame:
    """Every run's rows in one table with a `run` column (index into `runs`) and a `setting` column naming the
    variant setting the same way in every run. Within a run the latest row of a measurement wins; a cell (same
    key) present in two runs is an error unless `prefer` says which run keeps it."""
    parts, columns = [], identity()
    for i, run in enumerate(runs):
        df = pd.DataFrame(run.rows)
        if df.empty:
            continue
        for column in [*columns, "variant", "parameters", "key", "extra", "error", "value"]:
            if column not in df:
                df[column] = None
        df["variant"] = df["variant"].fillna(df["label"])
        df["parameters"] = [p if isinstance(p, dict) else {} for p in df["parameters"]]
        keyless = ["/".join(map(str, t)) for t in zip(*(df[c] for c in columns), strict=True)]
        df["key"] = [k or i for k, i in zip(df["key"], keyless, strict=True)]
        df = df.drop_duplicates(columns, keep="last")
        parts.append(df.assign(run=i))
    if not parts:
        return pd.DataFrame(columns=[*columns, "run", "setting", "key", "status", "value", "extra", "variant"])
    df = pd.concat(parts, ignore_index=True)
    owners = df.groupby("key")["run"].unique()
    shared = owners[owners.map(len) > 1]
    # A cell that cannot run (unsupported, unavailable) holds no measurement: two runs may both have it.
    measured = shared[shared.index.isin(df[~df["status"].isin(UNMEASURED)]["key"])]
    if len(shared) and prefer != "all":
        if prefer == "error" and len(measured):
            example = df[df["key"] == measured.index[0]].iloc[0]
            raise RunDirError(
                f"{len(measured)} cell(s) are in more than one run (e.g. {example['benchmark']} {example['label']} "
                f"n={example['seq_len']} in {', '.join(str(runs[i].dir) for i in measured.iloc[0])}); pass "
                "--prefer first or --prefer last to keep the cell from the first or last run given, or leave a "
                "run out"
            )
        keep = {key: (max(r) if prefer == "last" else min(r)) for key, r in shared.items()}
        df = df[[keep.get(k, r) == r for k, r in zip(df["key"], df["run"], strict=True)]]
    df = df.reset_index(drop=True)
    df["setting"] = setting_names(df["variant"], df["parameters"], df["label"])
    return df


def resolved_params(variant: str, params: dict) -> dict | None:
    """The variant's parameters with its defaults filled in; None when it is not installed here."""
    return _resolved(variant, json.dumps(params or {}, sort_keys=True, default=str))


@functools.cache
def _resolved(variant: str, params: str) -> dict | None:
    from attnzoo.zoo import variant_info

    try:
        return variant_info(variant).validate_params(json.loads(params)).model_dump()
    except Exception:  # a plugin that is not installed: fall back to the parameters as given
        return None


def is_default(variant: str, params: dict) -> bool:
    """Whether a setting is the variant at its defaults (as far as can be told where it is not installed)."""
    full = resolved_params(variant, params)
    return full == resolved_params(variant, {}) if full is not None else not params


def setting_names(variants: Sequence[str], params: Sequence[dict], labels: Sequence[str]) -> list[str]:
    """One name per variant setting, the same in every table and every run however a suite spelled it (params,
    sweep or defaults): `name(k=v, ...)` with the values that differ from the variant's defaults or between its
    settings here (a sweep names its default value too), else `name`. A label of the suite's own (`label:`), or
    a setting of a variant not installed here, keeps its label."""
    full = [resolved_params(v, p) for v, p in zip(variants, params, strict=True)]
    own = [
        f is None or not (lbl == v or lbl.startswith((f"{v}(", f"{v}[")))
        for v, f, lbl in zip(variants, full, labels, strict=True)
    ]
    seen: dict[str, dict[str, set[str]]] = {}  # variant -> parameter -> the values its settings take
    for v, f, mine in zip(variants, full, own, strict=True):
        for k, value in ({} if mine else f).items():
            seen.setdefault(v, {}).setdefault(k, set()).add(repr(value))
    names = []
    for v, f, lbl, mine in zip(variants, full, labels, own, strict=True):
        if mine:
            names.append(lbl)
            continue
        defaults = resolved_params(v, {}) or {}
        shown = {k: x for k, x in f.items() if defaults.get(k) != x or len(seen[v][k]) > 1}
        shown_text = ", ".join(f"{k}={'default' if x is None else x}" for k, x in shown.items())
        names.append(f"{v}({shown_text})" if shown else v)
    return names


def sizes(variant: str, params: dict) -> str:
    """The numbers that size a variant's approximation, defaults included (a size left to the implementation shows
    as `default`; seeds, dropout and switches are left out): what a reader needs to know a setting by."""
    full = resolved_params(variant, params)
    given = params or {}
    if full is None:
        return ", ".join(f"{k}={v}" for k, v in given.items())
    shown = {
        k: "default" if v is None else v
        for k, v in full.items()
        if k != "seed" and (k in given or v is None or isinstance(v, int) and not isinstance(v, bool))
    }
    return ", ".join(f"{k}={v}" for k, v in shown.items())
