"""A run directory: the suite as run, the environment manifest, and results.jsonl flushed cell by cell."""

from __future__ import annotations

import json
import os
from pathlib import Path

SUITE_FILE, MANIFEST_FILE, RESULTS_FILE, LEADERBOARD_FILE = (
    "suite.yaml",
    "manifest.json",
    "results.jsonl",
    "leaderboard.md",
)
SUPERSEDED_FILE = "superseded.jsonl"  # rows of cells a forced resume measured again with other code
REPETITIONS_FILE = "repetitions.jsonl"  # each finished repetition of a time cell, until the cell is complete
RESULT_STATUSES = ("ok", "oom", "timeout", "unsupported", "unavailable", "skipped")  # "error" is the other one


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

    def repetitions(self) -> dict[str, dict[int, dict]]:
        """cell key -> repetition -> {"status", "error", "rows"} of time cells not yet complete."""
        found: dict[str, dict[int, dict]] = {}
        for record in _read_jsonl(self.dir / REPETITIONS_FILE):
            found.setdefault(record["key"], {})[record["repetition"]] = record
        return found

    def append_repetition(self, key: str, repetition: int, status: str, error: str, rows: list[dict]) -> None:
        record = {"key": key, "repetition": repetition, "status": status, "error": error, "rows": rows}
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
