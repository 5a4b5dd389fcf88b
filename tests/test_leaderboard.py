"""Accuracy tables with honest uncertainty, and provenance that tells machines apart, on fixed rows."""

import json
import math

import pytest

from attnzoo.benchmarks.accuracy import detectable_difference, indistinguishable, mean_interval
from attnzoo.harness.environment import manifest, row_environment
from attnzoo.leaderboards.markdown import render

ENV = {"torch": "2.13.0+cpu", "device_name": "AMD EPYC", "threads": 2, "code": "abc", "cpu_capability": "AVX2"}


def acc_row(label: str, task: str, seed: int, value: float, env: dict = ENV, status: str = "ok") -> dict:
    extra = {"chance": 0.5, "data": "fixture", "sizes": [10, 2, 2]}
    return {
        "suite": "fixture",
        "label": label,
        "variant": label,
        "task": task,
        "benchmark": "accuracy",
        "seed": seed,
        "seq_len": 16,
        "metric": "accuracy",
        "pass": None,
        "input": None,
        "value": value / 100 if value is not None else None,
        "status": status,
        "error": None,
        "extra": extra if status == "ok" else {},
        "env": env,
    }


def fixture_rows() -> list[dict]:
    rows = []
    samples = {  # label -> task -> accuracy (%) for seeds 0, 1, 2
        "best": {"a": [60, 61, 62], "b": [80, 80, 80]},
        "close": {"a": [59, 61, 63], "b": [70, 71, 72]},
        "far": {"a": [40, 41, 42], "b": [79, 80, 81]},
    }
    for label, tasks in samples.items():
        for task, values in tasks.items():
            rows += [acc_row(label, task, seed, v) for seed, v in enumerate(values)]
    return rows


def table_line(board: str, label: str) -> str:
    """The label's row in the accuracy table (the headline has one too)."""
    section = board[board.index("## Accuracy") :]
    return next(line for line in section.splitlines() if line.startswith(f"| {label} |"))


def test_mean_interval_is_the_student_t_interval():
    mean, low, high = mean_interval([50.0, 52.0, 54.0])
    half = 4.302652729911275 * 2 / math.sqrt(3)  # t(0.975, 2) · s / sqrt(k), s = 2
    assert (mean, low, high) == pytest.approx((52.0, 52.0 - half, 52.0 + half))
    assert math.isnan(mean_interval([50.0])[1])


def test_accuracy_intervals_stay_within_what_an_accuracy_can_be():
    """Three seeds near a bound give a t-interval past it; the table shows it clipped, the mean untouched."""
    assert mean_interval([95.3, 99.6, 98.5]) == pytest.approx((97.8, 92.25, 100.0), abs=0.01)
    assert mean_interval([0.0, 0.0, 0.6])[1] == 0.0


def test_ties_with_the_best_are_marked_and_the_rest_are_not():
    assert indistinguishable([60, 61, 62], [59, 61, 63])
    assert not indistinguishable([60, 61, 62], [40, 41, 42])
    assert indistinguishable([80, 80, 80], [80, 80, 80]) and not indistinguishable([80, 80, 80], [79, 79, 79])
    board = render(fixture_rows(), {"device": "cpu"})
    assert table_line(board, "best").startswith("| best | **61.0 (58.5–63.5)** | **80.0 (80.0–80.0)** |")
    assert "61.0 (56.0–66.0) ≈" in table_line(board, "close")  # task a: a tie, task b: clearly behind
    assert "71.0 (68.5–73.5) |" in table_line(board, "close")
    far = table_line(board, "far")
    assert "≈" in far.split("|")[3] and "≈" not in far.split("|")[2]  # b: 80 ± 1 vs 80 is a tie, a is not
    # The average, seed by seed: best (70, 70.5, 71), far (59.5, 60.5, 61.5).
    assert table_line(board, "best").endswith("| **70.5 (69.3–71.7)** |")
    assert "With 3 seeds the test is weak" in board


def test_detectable_difference_shrinks_with_seeds():
    three, ten = detectable_difference(1.0, 3), detectable_difference(1.0, 10)
    assert three == pytest.approx(3.03, abs=0.01)  # (t.975 + t.80 at 4 df) · sqrt(2/3)
    assert ten < three / 2


def test_a_failed_seed_is_counted_and_keeps_the_average_honest():
    rows = fixture_rows()
    rows[0] = acc_row("best", "a", 0, None, status="oom")
    board = render(rows, {"device": "cpu"})
    assert "(2/3 seeds)" in table_line(board, "best")
    assert "only seeds that finished every task" in board


def test_provenance_is_recorded_and_mixed_machines_are_stated():
    full = manifest("cpu", 1)
    numerics = full["numerics"]
    assert numerics["cpu_capability"] and "blas" in numerics and "deterministic_algorithms" in numerics
    assert row_environment(full)["cpu_capability"] == numerics["cpu_capability"]
    json.dumps(full)  # the manifest is plain JSON
    board = render(fixture_rows(), full)
    assert f"torch CPU capability {numerics['cpu_capability']}" in board and "Mixed environments" not in board
    rows = fixture_rows()
    rows[-1] = {**rows[-1], "env": {**ENV, "cpu_capability": "AVX512"}}
    board = render(rows, full)
    assert "**Mixed environments.** These rows were measured in 2 environments" in board
    assert "cpu_capability: AVX2, AVX512" in board


def test_a_run_resumed_across_code_versions_says_so_and_names_the_revisions():
    """Same machine, two code versions: not a kernels warning, but the revisions a reader can diff."""
    rows = fixture_rows()
    rows[0] = {**rows[0], "env": {**ENV, "code": "old", "git": "aaaaaaaaaaaa"}}
    rows[-1] = {**rows[-1], "env": {**ENV, "code": "new", "git": "bbbbbbbbbbbb+dirty"}}
    board = render(rows, manifest("cpu", 1))
    assert "Mixed environments" not in board
    assert "**Resumed across code versions.** These rows come from 3 versions" in board
    assert "aaaaaaaaaa, " in board and "bbbbbbbbbb+dirty" in board


def test_one_seed_marks_no_best_and_says_it_supports_no_ordering():
    rows = [acc_row(label, task, 0, value) for label, value in (("x", 60), ("y", 50)) for task in ("a", "b")]
    board = render(rows, {"device": "cpu"})
    assert table_line(board, "x") == "| x | 60.0 | 60.0 | 60.0 |"  # no bold, and no ≈ on the others
    assert table_line(board, "y") == "| y | 50.0 | 50.0 | 50.0 |"
    assert "One seed per variant: no interval and no ordering" in board and "Welch" not in board
    headline = board[board.index("## Headline") : board.index("Sizes:")]
    assert "**" not in headline
