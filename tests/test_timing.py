"""Timing a reader can trust: the statistics on fixed samples, repetitions interleaved in fresh workers, the
contention probe's path to the leaderboard, the input gradient, and memory under the allocator setting."""

import statistics
import subprocess
import sys
import textwrap
import time
from dataclasses import replace

import pandas as pd
import pytest
import torch

from attnzoo.benchmarks.efficiency import EfficiencyBenchmark
from attnzoo.harness.measure import layer_call, time_paired
from attnzoo.harness.records import Measurement, Outcome
from attnzoo.harness.rundir import RunStore, status_text
from attnzoo.harness.runner import run_suite
from attnzoo.harness.suite import load_suite
from attnzoo.leaderboards import timing
from attnzoo.leaderboards.publish import publish_run
from attnzoo.stats import median_interval, paired_ratios, relative_iqr
from tests.test_harness import TINY, write_suite

TIMED = {
    **TINY,
    "variants": ["vanilla", "sdpa", {"name": "s3attention", "params": {"s1": 4}}],
    "seq_lens": [32, 64],
    "benchmarks": {"efficiency": {"metrics": ["time"], "passes": ["forward"], "repetitions": 3, "min_run_time": 0.01}},
}


def test_median_interval_from_order_statistics():
    five = median_interval([5.0, 1.0, 4.0, 2.0, 3.0])
    assert (five.median, five.low, five.high) == (3.0, 1.0, 5.0)
    assert five.coverage == pytest.approx(1 - 2 / 32)  # too few values for 95%: min-max, and its coverage
    nine = median_interval(range(1, 10))
    assert (nine.median, nine.low, nine.high) == (5, 2, 8)  # P(2 <= Bin(9, 1/2) <= 7) = 0.961
    assert nine.coverage == pytest.approx(1 - 2 * 10 / 512)
    assert median_interval([7.0]).coverage == 0.0


def test_spread_and_paired_ratios():
    assert relative_iqr([10.0, 10.0, 10.0]) == 0.0
    assert relative_iqr([8.0, 9.0, 10.0, 11.0, 12.0]) == pytest.approx(0.2)
    # Pairs only rounds both were measured in: baseline / variant.
    assert paired_ratios({0: 10.0, 1: 20.0, 2: 30.0}, {0: 5.0, 2: 10.0, 3: 1.0}) == [2.0, 3.0]


def rep(value: float, contended: bool = False) -> Outcome:
    extra = {"iqr_s": 0.0, "runs": 5, "faults_per_call": 1.0, "probe_ratios": [1.0], "contended": contended}
    return Outcome("ok", [Measurement("time", value, "s", "forward", extra=extra)])


def test_aggregation_uses_clean_repetitions_and_keeps_every_value():
    aggregate = EfficiencyBenchmark().aggregate
    row = aggregate({0: rep(1.0), 1: rep(9.0, contended=True), 2: rep(2.0), 3: rep(3.0)})[0]
    assert row.value == 2.0 and not row.extra["contended"]
    assert row.extra["repetitions"] == [1.0, 9.0, 2.0, 3.0] and row.extra["rounds"] == [0, 1, 2, 3]
    assert row.extra["clean"] == [True, False, True, True]
    dirty = aggregate({0: rep(1.0, True), 1: rep(3.0, True)})[0]
    assert dirty.value == 2.0 and dirty.extra["contended"]


def test_contended_repetitions_are_counted_and_a_mostly_contended_cell_is_contended():
    aggregate = EfficiencyBenchmark().aggregate
    mostly = aggregate({r: rep(1.0 + r, contended=r > 0) for r in range(9)})[0]  # one clean repetition of nine
    assert mostly.value == 1.0 and mostly.extra["contended"] and mostly.extra["clean"].count(False) == 8
    row = {"label": "a", "seq_len": 64, "status": "ok", "value": mostly.value, "extra": mostly.extra}
    assert timing.time_text(pd.Series(row)) == "1000 *contended*"
    some = aggregate({r: rep(0.01, contended=r < 2) for r in range(9)})[0]
    assert not some.extra["contended"]
    row = {"label": "a", "seq_len": 64, "status": "ok", "value": some.value, "extra": some.extra}
    assert timing.time_text(pd.Series(row)) == "10 ±0% (2 contended)"
    once = aggregate({0: rep(0.01), 1: rep(0.02, True)})[0]
    row = {"label": "a", "seq_len": 64, "status": "ok", "value": once.value, "extra": once.extra}
    assert timing.time_text(pd.Series(row)) == "10 (once) (1 contended)"  # not a plain "(once)"


def time_row(label: str, n: int, values: list[float], contended: bool = False) -> dict:
    extra = {
        "repetitions": values,
        "rounds": list(range(len(values))),
        "clean": [not contended] * len(values),
        "contended": contended,
    }
    return {"label": label, "seq_len": n, "status": "ok", "value": sorted(values)[len(values) // 2], "extra": extra}


def test_time_cells_carry_their_spread_and_flags():
    assert timing.time_text(pd.Series(time_row("a", 64, [0.010, 0.0101, 0.0102, 0.0099, 0.0100]))) == "10 ±1%"
    assert timing.time_text(pd.Series(time_row("a", 64, [0.009, 0.012, 0.008, 0.011, 0.010]))) == "10 ±20%†"
    assert timing.time_text(pd.Series(time_row("a", 64, [0.010, 0.020, 0.005, 0.015, 0.010]))).endswith("‡")
    assert timing.time_text(pd.Series(time_row("a", 64, [0.01] * 5, contended=True))) == "10 *contended*"
    assert timing.time_text(pd.Series(time_row("a", 64, [0.01]))) == "10 (once)"


def test_speedups_are_paired_by_round_with_an_interval():
    part = pd.DataFrame(
        [
            time_row("sdpa", 64, [0.04, 0.08, 0.04, 0.04, 0.04]),  # round 1 was slow for both
            time_row("fast", 64, [0.01, 0.02, 0.01, 0.02, 0.01]),
        ]
    )
    part["label"] = pd.Categorical(part["label"], ["sdpa", "fast"])
    table, coverage = timing.speedup_table(part, "sdpa", status_text)
    assert "| fast | 4x (2–4) |" in table and coverage == pytest.approx(1 - 2 / 32)


def test_in_process_speedups_come_first_and_only_against_their_own_baseline():
    """A row paired in its workers with sdpa gives its speed-up from those ratios, not from the cells' times in
    the same round; against another baseline (a board that names one) it falls back to rounds."""
    base = time_row("sdpa", 64, [0.04, 0.08, 0.04, 0.04, 0.04])
    row = time_row("fast", 64, [0.01, 0.02, 0.01, 0.02, 0.01])
    row["extra"] |= {"paired_with": "sdpa", "paired": [3.0, 3.1, 2.9, None, 3.0]}
    paired = timing.speedup_interval(pd.Series(row), pd.Series(base))
    assert paired.median == pytest.approx(3.0) and paired.n == 4  # the unpaired repetition is left out
    vanilla = {**base, "label": "vanilla"}
    assert timing.speedup_interval(pd.Series(row), pd.Series(vanilla)).median == 4.0  # by rounds


def test_time_paired_gives_the_ratio_of_the_two_calls():
    """Sleeps are not slowed by other processes, so their ratio is known: 4 ms over 2 ms."""
    t, ratios = time_paired(lambda: time.sleep(0.002), lambda: time.sleep(0.004), 1, min_run_time=0.2)
    assert len(ratios) >= 3 and t.runs == len(ratios)
    assert 1.6 < statistics.median(ratios) < 2.4 and 0.0018 < t.median_s < 0.004


def test_cells_carry_the_baseline_they_are_paired_with(tmp_path):
    from attnzoo.harness.plan import plan

    blocks = {**TIMED, "benchmarks": {"efficiency": {**TIMED["benchmarks"]["efficiency"], "pairing": "blocks"}}}
    cells = plan(load_suite(write_suite(tmp_path, blocks)))
    by_label = {c.label: c for c in cells if c.seq_len == 32}
    assert by_label["sdpa"].config.baseline is None  # the baseline's own cell is timed alone
    assert by_label["vanilla"].config.baseline == ("sdpa", {}, "sdpa")
    assert " vs " in by_label["vanilla"].code  # the baseline's code is part of what the cell measures
    unpaired = plan(load_suite(write_suite(tmp_path, TIMED, "rounds.yaml")))  # the default: pairing by rounds
    assert all(c.config.baseline is None for c in unpaired)
    assert {c.key for c in unpaired}.isdisjoint(c.key for c in cells)


@pytest.mark.slow
def test_repetitions_are_interleaved_and_saved(tmp_path):
    blocks = {**TIMED, "benchmarks": {"efficiency": {**TIMED["benchmarks"]["efficiency"], "pairing": "blocks"}}}
    path = write_suite(tmp_path, blocks)
    order = []
    summary = run_suite(
        load_suite(path), path.read_text(), tmp_path / "run", on_start=lambda cell, what: order.append((cell, what))
    )
    rounds = {}
    for cell, what in order:
        rounds.setdefault(what, []).append((cell.seq_len, cell.label))
    assert list(rounds) == ["repetition 1/3", "repetition 2/3", "repetition 3/3"]
    for visits in rounds.values():  # every round visits each length in turn, every variant once
        assert [n for n, _ in visits] == [32, 32, 32, 64, 64, 64]
    assert len({tuple(label for _, label in visits) for visits in rounds.values()}) > 1  # shuffled
    rows = [r for r in summary.rows if r["metric"] == "time"]
    assert len(rows) == 6 and all(len(r["extra"]["repetitions"]) == 3 for r in rows)
    paired = [r for r in rows if r["label"] != "sdpa"]
    assert all(r["extra"]["paired_with"] == "sdpa" and None not in r["extra"]["paired"] for r in paired)
    assert all(r["extra"]["faults_per_call"] >= 0 for r in rows)
    manifest = RunStore(tmp_path / "run").manifest()
    assert manifest["calibrations"]["efficiency"][0]["probe_s"] > 0
    assert "busy" in manifest["load_start"] and "loadavg" in manifest["load_end"]


@pytest.mark.slow
def test_a_slow_probe_marks_cells_contended_and_the_leaderboard_says_so(tmp_path):
    path = write_suite(tmp_path, TIMED)
    # A calibration a million times faster than the probe: every block looks measured under contention.
    rows = run_suite(load_suite(path), path.read_text(), tmp_path / "run", calibration={"probe_s": 1e-8}).rows
    times = [r for r in rows if r["metric"] == "time"]
    assert times and all(r["extra"]["contended"] for r in times)
    assert all(len(ratios) == 3 for r in times for ratios in r["extra"]["probe_ratios"])  # 1 + 2 retries
    publish_run(tmp_path / "run")
    board = (tmp_path / "run" / "leaderboard.md").read_text()
    assert board.count("*contended*") >= 6


@pytest.mark.slow
def test_a_resumed_run_keeps_finished_repetitions(tmp_path):
    path = write_suite(tmp_path, TIMED)
    seen = []

    def stop_after_eight(cell, what):
        seen.append(what)
        if len(seen) == 9:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_suite(load_suite(path), path.read_text(), tmp_path / "run", on_start=stop_after_eight)
    again = []
    rows = run_suite(
        load_suite(path), path.read_text(), tmp_path / "run", resume=True, on_start=lambda c, w: again.append(w)
    ).rows
    assert len(again) == 18 - 8  # only the repetitions not yet saved
    assert all(len(r["extra"]["repetitions"]) == 3 for r in rows if r["metric"] == "time")


def test_forward_backward_includes_the_input_gradient():
    seen = []

    class Recorder(torch.nn.Linear):
        def forward(self, x, mask=None):
            seen.append(x.requires_grad)
            return super().forward(x)

    layer = Recorder(4, 4)
    call = layer_call(layer, torch.randn(2, 3, 4), None, backward=True)
    call()
    call()
    assert seen == [True, True]


@pytest.mark.slow
def test_peak_memory_is_the_same_whatever_the_allocator_keeps(tmp_path):
    script = textwrap.dedent("""\
        import torch, attnzoo
        from attnzoo.harness.measure import keep_freed_memory, layer_call, peak_memory
        torch.manual_seed(0)
        layer = attnzoo.create_attention("vanilla", 64, 2)
        call = layer_call(layer, torch.randn(1, 1024, 64), None, backward=True)
        call()
        peak_memory(call, torch.device("cpu"))  # the profiler's first use in a process allocates for itself
        before = peak_memory(call, torch.device("cpu"))
        assert keep_freed_memory()
        call()
        print(before, peak_memory(call, torch.device("cpu")))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    before, after = map(int, done.stdout.split())
    # The n x n scores, twice over, both times (the profiler's own buffers move it by a few hundred KiB).
    assert after == pytest.approx(before, rel=0.02) and before > 8 * 1024 * 1024


def test_repetitions_saved_by_earlier_releases_still_read():
    old = {"metric": "time", "pass_": "forward", "value": 0.5, "unit": "s", "extra": {"contended": False}}
    m = Measurement.from_dict(old)
    assert (m.metric, m.pass_name, m.value, m.status) == ("time", "forward", 0.5, None)
    assert Measurement.from_dict(m.to_dict()) == m


def test_the_cpu_contention_probe_is_calibrated_for_cpu_cells_only(tmp_path):
    """A GPU cell's kernels do not compete for CPU cores, so the CPU probe would judge it on the wrong resource
    (a single-threaded calibration scaled to 16 threads read 6x slow on a GPU machine, every block contended)."""
    from attnzoo.harness.plan import plan

    cpu_cell = plan(load_suite(write_suite(tmp_path, TIMED)))[0]
    assert EfficiencyBenchmark().calibrate(cpu_cell)["probe_s"] > 0
    gpu_cell = replace(cpu_cell, layer={**cpu_cell.layer, "device": "cuda"})
    assert EfficiencyBenchmark().calibrate(gpu_cell) is None
