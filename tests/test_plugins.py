"""A third-party benchmark: one module in a package of its own, found through the `attnzoo.benchmarks` entry point,
run through the local and the Ray executor, rendered in the leaderboard, and compared across runs, without
touching any attnzoo file."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow  # real runs, locally and on Ray

# The whole benchmark: its suite section, its job, its table and its headline column.
BENCHMARK = '''
import torch
from pydantic import Field

from attnzoo import create_attention
from attnzoo.harness.benchmark import Benchmark, Section, register_benchmark
from attnzoo.harness.records import Measurement
from attnzoo.leaderboards.tables import variant_table


class Gain(Section):
    batch: int = Field(2, ge=1, description="sequences per measurement")


@register_benchmark("gain")
class GainBenchmark(Benchmark):
    """How much a freshly initialised layer scales its input: RMS(out) / RMS(in), per length."""

    section = Gain
    per_length = True  # the default plan: every variant setting at every length of the suite

    def run(self, cell, **_):
        torch.manual_seed(0)
        layer = create_attention(cell.variant, cell.layer["dim"], cell.layer["heads"], max_seq_len=cell.seq_len)
        x = torch.randn(cell.config.section.batch, cell.seq_len, cell.layer["dim"])
        with torch.no_grad():
            gain = layer(x).pow(2).mean().sqrt() / x.pow(2).mean().sqrt()
        return [Measurement("gain", float(gain), "ratio")]

    def tables(self, df, view):
        return ["", f"{view.h} Output gain (RMS out / RMS in)", "", variant_table(df, lambda v: f"{v:.3f}", False)]

    def headline(self, setting, mine, everything, board):
        ok = mine[mine["status"] == "ok"]
        return None if ok.empty else float(ok.sort_values("seq_len")["value"].iloc[-1])

    def headline_run(self, values):
        return None

    def headline_columns(self, rows, board):
        gains = {r.setting: f"{r.values['gain']:.3f}" for r in rows if "gain" in r.values}
        return [("gain", gains, "Gain: RMS(out) / RMS(in) at the longest n.")] if gains else []
'''


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> dict:
    """A package `gainbench` with an entry point in the group, on PYTHONPATH (as `pip install` would leave it)."""
    root = tmp_path_factory.mktemp("site")
    (root / "gainbench.py").write_text(BENCHMARK)
    info = root / "gainbench-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gainbench\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[attnzoo.benchmarks]\ngain = gainbench\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}


def attnzoo(env: dict, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "attnzoo.cli", *args], capture_output=True, text=True, cwd=cwd, env=env
    )
    assert done.returncode in (0, 1), done.stderr
    return done


def test_a_benchmark_from_an_entry_point_runs_renders_and_compares(tmp_path, plugin):
    suite = {
        "name": "gain",
        "variants": ["sdpa", {"name": "linformer", "params": {"k": 8}}],
        "layer": {"dim": 16, "heads": 2},
        "seq_lens": [16, 32],
        "benchmarks": {"gain": {"batch": 3}},
    }
    (tmp_path / "gain.yaml").write_text(yaml.safe_dump(suite))
    bad = {**suite, "benchmarks": {"gain": {"bacth": 3}}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    refused = subprocess.run(
        [sys.executable, "-m", "attnzoo.cli", "validate", "bad.yaml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=plugin,
    )
    assert refused.returncode == 2 and "benchmarks.gain.bacth: unknown field; did you mean 'batch'?" in refused.stderr

    local = attnzoo(plugin, "run", "gain.yaml", "--out", "local", "--quiet", cwd=tmp_path)
    assert local.returncode == 0 and "4 ok" in local.stdout, local.stdout + local.stderr
    board = (tmp_path / "local" / "leaderboard.md").read_text()
    assert "## Output gain (RMS out / RMS in)" in board and "| sdpa | " in board
    assert "| variant | sizes | gain |" in board  # its headline column

    # The same cells as Ray tasks (where the extra is installed), then the two runs compared cell by cell.
    executor = "ray" if importlib.util.find_spec("ray") else "local"
    again = attnzoo(plugin, "run", "gain.yaml", "--out", "again", "--quiet", "--executor", executor, cwd=tmp_path)
    assert again.returncode == 0 and "4 ok" in again.stdout, again.stdout + again.stderr
    assert "Token authentication" not in again.stderr and "Started a local Ray instance" not in again.stderr
    compared = attnzoo(plugin, "compare", "local", "again", "--format", "md", cwd=tmp_path)
    assert "sdpa n=32 gain" in compared.stdout and "**4 same.**" in compared.stdout, compared.stdout
