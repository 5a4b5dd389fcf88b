"""The run directory, the one place its format is written down: the suite as run, the environment manifest,
results.jsonl flushed cell by cell (one row per measurement), and the statuses a row can have."""

from __future__ import annotations

import json
import os
from pathlib import Path

from attnzoo.harness.records import Cell, Measurement, Outcome

SUITE_FILE, MANIFEST_FILE, RESULTS_FILE = "suite.yaml", "manifest.json", "results.jsonl"
SUPERSEDED_FILE = "superseded.jsonl"  # rows of cells a forced resume measured again with other code
REPETITIONS_FILE = "repetitions.jsonl"  # each finished repetition of a repeated cell, until the cell is complete

# status -> (short form, what a table cell shows); "ok" shows the value
STATUSES = {
    "ok": ("ok", "ok"),
    "oom": ("OOM", "OOM"),
    "timeout": ("timeout", "timeout"),
    "skipped": ("skipped", "skipped (OOM/timeout below)"),
    "unsupported": ("unsupported", "unsupported"),
    "unavailable": ("unavailable", "unavailable"),
    "error": ("error", "error"),
}
STOPS_CHAIN = ("oom", "timeout")  # a cell that ends so skips the longer lengths of its chain


def status_text(status: str) -> str:
    return STATUSES.get(status, (status, status))[1]


def make_rows(cell: Cell, outcome: Outcome, env: dict) -> list[dict]:
    """The rows of one finished cell: one per measurement, or one carrying the status of a cell that measured
    nothing. The benchmark's config adds its own columns (task, horizon)."""
    base = {
        "suite": cell.suite,
        "variant": cell.variant,
        "label": cell.label,
        "parameters": cell.params,
        "task": None,
        "benchmark": cell.benchmark,
        "seq_len": cell.seq_len,
        "batch": cell.layer["batch"],
        "dtype": cell.layer["dtype"],
        "device": cell.layer["device"],
        "seed": cell.seed,
        **cell.config.row(),
        "key": cell.key,
        "env": env,
        "where": outcome.where,
    }
    measured = outcome.measurements or [Measurement(metric=None)]
    return [
        {
            **base,
            "metric": m.metric,
            "pass": m.pass_name,
            "input": m.input,
            "value": m.value,
            "unit": m.unit,
            "status": m.status or outcome.status,
            "error": m.error or outcome.error or None,
            "extra": m.extra,
        }
        for m in measured
    ]


class RunDirError(Exception):
    """A run directory that cannot take this run (another suite, or a changed environment on resume)."""


class RunStore:
    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self.results = self.dir / RESULTS_FILE

    def create(self, suite_text: str, manifest: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / SUITE_FILE).write_text(suite_text)
        self.write_manifest(manifest)

    def write_manifest(self, manifest: dict) -> None:
        tmp = self.dir / (MANIFEST_FILE + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        tmp.replace(self.dir / MANIFEST_FILE)

    def supersede(self, keep: set[str]) -> int:
        """Move rows whose cell key is not in `keep` to superseded.jsonl (kept, never deleted); returns how many."""
        rows = self.rows()
        stale = [r for r in rows if r["key"] not in keep]
        if not stale:
            return 0
        with (self.dir / SUPERSEDED_FILE).open("a") as f:
            f.write("".join(json.dumps(r, default=str) + "\n" for r in stale))
        tmp = self.dir / (RESULTS_FILE + ".tmp")
        tmp.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows if r["key"] in keep))
        tmp.replace(self.results)
        return len(stale)

    def exists(self) -> bool:
        return (self.dir / SUITE_FILE).exists()

    def suite_text(self) -> str:
        return (self.dir / SUITE_FILE).read_text()

    def manifest(self) -> dict:
        return json.loads((self.dir / MANIFEST_FILE).read_text())

    def rows(self) -> list[dict]:
        """Every complete row; a line cut short by a kill mid-write is ignored (its cell runs again)."""
        return _read_jsonl(self.results)

    def repetitions(self) -> dict[str, dict[int, Outcome]]:
        """cell key -> repetition -> outcome, for repeated cells not yet complete."""
        found: dict[str, dict[int, Outcome]] = {}
        for record in _read_jsonl(self.dir / REPETITIONS_FILE):
            measurements = [Measurement.from_dict(m) for m in record["rows"]]
            outcome = Outcome(record["status"], measurements, record["error"] or "")
            found.setdefault(record["key"], {})[record["repetition"]] = outcome
        return found

    def append_repetition(self, key: str, repetition: int, outcome: Outcome) -> None:
        rows = [m.to_dict() for m in outcome.measurements]
        record = {"key": key, "repetition": repetition, "status": outcome.status, "error": outcome.error, "rows": rows}
        _append_lines(self.dir / REPETITIONS_FILE, [record])

    def finished_keys(self) -> set[str]:
        return {row["key"] for row in self.rows()}

    def append(self, rows: list[dict]) -> None:
        """All rows of one cell in one write, flushed to disk before the next cell starts."""
        _append_lines(self.results, rows)


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _append_lines(path: Path, records: list[dict]) -> None:
    """Records as JSON lines in one write, fsynced; a line a killed writer left unfinished stays on its own."""
    text = "".join(json.dumps(r, default=str) + "\n" for r in records)
    with path.open("a") as f:
        if f.tell() and not _ends_with_newline(path):
            text = "\n" + text
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
