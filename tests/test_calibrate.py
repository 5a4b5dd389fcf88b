"""Knowing the machine: two runs' agreement, `attnzoo calibrate`, and the manifest recording what it measured."""

import json

import pytest
import yaml

from attnzoo import cli
from attnzoo.harness import noise
from attnzoo.harness.rundir import RunStore
from attnzoo.harness.runner import run_suite
from attnzoo.harness.suite import load_suite
from attnzoo.leaderboards.agreement import agreement, speedups
from tests.test_harness import write_suite


def run_rows(paired: dict[str, list[float]]) -> list[dict]:
    """Time rows at n = 64, forward: the baseline's and each variant's, with per-repetition in-process speed-ups."""
    rows = [{"label": "sdpa", "seq_len": 64, "pass": "forward", "metric": "time", "status": "ok", "value": 1.0}]
    rows[0]["extra"] = {"repetitions": [1.0] * 5, "rounds": list(range(5)), "clean": [True] * 5}
    for label, ratios in paired.items():
        extra = {"repetitions": [1.0] * 5, "rounds": list(range(5)), "clean": [True] * 5}
        extra |= {"paired": ratios, "paired_with": "sdpa"}
        rows.append({**rows[0], "label": label, "extra": extra})
    return rows


def test_agreement_counts_cells_within_10_and_20_percent_and_intervals_that_hold():
    a = speedups(run_rows({"x": [2.0, 2.1, 1.9, 2.0, 2.05], "y": [0.5] * 5, "z": [3.0] * 5}), "sdpa")
    b = speedups(run_rows({"x": [2.1, 2.0, 2.0, 1.95, 2.0], "y": [0.58] * 5, "z": [3.9] * 5}), "sdpa")
    found = agreement(a, b)
    assert (found.cells, found.within_10, found.within_20) == (3, 1, 2)
    assert found.worst == pytest.approx(1.3) and found.worst_cell == ("z", 64, "forward")
    assert found.held == 2  # x's two intervals hold each other's median; y's and z's, of zero width, do not
    assert found.median_half_width == 0.0  # four of the six intervals have zero width
    assert agreement(a, {}) is None


def test_a_calibration_is_kept_per_machine_and_recorded_in_later_runs(tmp_path):
    suite = {
        "name": "tiny",
        "variants": ["sdpa"],
        "layer": {"dim": 16, "heads": 2},
        "seq_lens": [32],
        "benchmarks": {"efficiency": {"metrics": ["flops"], "passes": ["forward"]}},
    }
    path = write_suite(tmp_path, suite)
    first = run_suite(load_suite(path), path.read_text(), tmp_path / "first")
    manifest = RunStore(first.run_dir).manifest()
    assert manifest["machine_noise"] is None  # never calibrated here
    noise.save(manifest, {"resolves": 0.07})
    noise.save({**manifest, "host": "another"}, {"resolves": 0.5})
    second = run_suite(load_suite(path), path.read_text(), tmp_path / "second")
    assert RunStore(second.run_dir).manifest()["machine_noise"] == {"resolves": 0.07}
    assert len(json.loads(noise.cache_file().read_text())) == 2


@pytest.mark.slow
def test_calibrate_runs_twice_prints_what_it_resolves_and_saves_it(tmp_path, monkeypatch, capsys):
    tiny = {
        "name": "calibrate",
        "description": "tiny",
        "variants": ["sdpa", "vanilla", "s3attention"],
        "layer": {"dim": 16, "heads": 2},
        "seq_lens": [64],
        "benchmarks": {
            "efficiency": {
                "metrics": ["time"],
                "passes": ["forward"],
                "repetitions": 3,
                "min_run_time": 0.02,
            }
        },
    }
    path = tmp_path / "calibrate.yaml"
    path.write_text(yaml.safe_dump(tiny))
    monkeypatch.setattr("attnzoo.harness.suite.default_suite_path", lambda name="": path)
    assert cli.main(["calibrate"]) == 0
    out = capsys.readouterr().out
    assert "2 cells:" in out and "resolves speed-up differences of about" in out
    (saved,) = json.loads(noise.cache_file().read_text()).values()
    assert saved["cells"] == 2 and saved["resolves"] >= 0 and len(saved["probe_s"]) == 2
