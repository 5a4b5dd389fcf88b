"""Write a leaderboard directory: leaderboard.md with its figures, and the same numbers as CSV or JSON."""

from __future__ import annotations

import json
from pathlib import Path

from attnzoo.leaderboards.markdown import Board, build, markdown
from attnzoo.leaderboards.sources import load_run

FORMATS = ("md", "csv", "json")
CELL_COLUMNS = ["setting", "label", "benchmark", "task", "seed", "seq_len", "metric", "pass", "input", "value", "unit"]


def write(board: Board, out: Path, formats: tuple[str, ...] = ("md",), plots: bool = True) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if "md" in formats:
        if plots:
            board.figures = figures(board, out)
            written += [out / name for names in board.figures.values() for name in names]
        (out / "leaderboard.md").write_text(markdown(board))
        written.append(out / "leaderboard.md")
    if not {"csv", "json"} & set(formats):
        return written
    cells = board.df.assign(run=[board.runs[i].name for i in board.df["run"]]) if len(board.df) else board.df
    cells = cells[[c for c in ["run", *CELL_COLUMNS, "status", "error"] if c in cells]]
    headline = [h.record(board) for h in board.headline]
    if "csv" in formats:
        import pandas as pd

        pd.DataFrame(headline).to_csv(out / "headline.csv", index=False)
        cells.to_csv(out / "cells.csv", index=False)
        written += [out / "headline.csv", out / "cells.csv"]
    if "json" in formats:
        document = {
            "title": board.title,
            "runs": [{"name": r.name, "suite": r.title, "manifest": r.manifest} for r in board.runs],
            "headline": headline,
            "cells": json.loads(cells.to_json(orient="records")),
        }
        (out / "leaderboard.json").write_text(json.dumps(document, indent=1, default=str) + "\n")
        written.append(out / "leaderboard.json")
    return written


def publish_run(run_dir: Path) -> list[Path]:
    """A run directory's own leaderboard.md and figures, from its stored rows."""
    return write(build([load_run(run_dir)]), Path(run_dir))


def figures(board: Board, out: Path) -> dict[tuple, list[str]]:
    """Image files per place in the markdown: (run index, benchmark) or ("headline", benchmark)."""
    found: dict[tuple, list[str]] = {}
    single = len(board.runs) == 1
    for i, run in enumerate(board.runs):
        part = board.df[board.df["run"] == i]
        for name, benchmark in board.benchmarks.items():
            rows = part[part["benchmark"] == name]
            if not rows.empty and (names := benchmark.figures(rows, run, out, "" if single else f"{run.name}-")):
                found[(i, name)] = names
    for name, benchmark in board.benchmarks.items():
        if names := benchmark.headline_figures(board, out):
            found[("headline", name)] = names
    return found
