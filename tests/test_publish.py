"""Publishing: fixed rows in, exact markdown out (golden files); merged runs; compare's verdicts and exit codes.

Regenerate the golden files after an intended change with UPDATE_GOLDEN=1 and read the diff."""

import json
import os
from pathlib import Path

import pytest

from attnzoo.cli import main
from attnzoo.harness.rundir import RunDirError
from attnzoo.leaderboards.compare import compare
from attnzoo.leaderboards.markdown import build, markdown
from attnzoo.leaderboards.sources import load_run

GOLDEN = Path(__file__).parent / "golden"
ENV = {"torch": "2.13.0+cpu", "device_name": "Fixture CPU", "threads": 1, "code": "c0de", "cpu_capability": "AVX2"}
MANIFEST = {
    "date": "2026-01-02T03:04:05+00:00",
    "device": "cpu",
    "device_name": "Fixture CPU",
    "threads": 1,
    "torch": "2.13.0+cpu",
    "git": "0123456789abcdef",
    "numerics": {"cpu_capability": "AVX2", "blas": "OpenBLAS", "onednn": "3.0"},
}
EFFICIENCY_SUITE = """name: fixture-speed
description: Fixed rows for the golden tests.
variants: [sdpa, vanilla, {name: linformer, params: {k: 64}}, informer, s3attention, xformers]
layer: {dim: 64, heads: 2, batch: 1}
seq_lens: [1024, 4096, 16384]
benchmarks:
  efficiency: {metrics: [time, memory], passes: [forward_backward], repetitions: 5}
  approximation: {inputs: [text], seeds: 2}
execution: {on_unavailable: skip}
"""
ACCURACY_SUITE = """name: fixture-accuracy
variants: [sdpa, {name: linformer, params: {k: 64}}, s3attention]
benchmarks:
  accuracy: {seeds: 3, tasks: {listops: {seq_len: 64}, text: {seq_len: 64}}}
"""
# seconds per call at n: sdpa is quadratic, the others near-linear; repetition r scales by SPREAD[r]
SECONDS = {
    "sdpa": {1024: 0.004, 4096: 0.064, 16384: 1.0},
    "vanilla": {1024: 0.008, 4096: 0.13},
    "linformer(k=64)": {1024: 0.006, 4096: 0.02, 16384: 0.08},
    "informer": {1024: 0.01},
    "s3attention": {1024: 0.003, 4096: 0.012, 16384: 0.05},
}
SPREAD = [1.0, 1.02, 0.98, 1.01, 0.99]
FAILED = {("vanilla", 16384): "oom", ("informer", 4096): "timeout", ("informer", 16384): "skipped"}


def row(label: str, benchmark: str, n: int, **fields) -> dict:
    variant = label.split("(")[0]
    params = {"k": 64} if variant == "linformer" else {}
    base = {
        "suite": "fixture",
        "variant": variant,
        "label": label,
        "parameters": params,
        "task": None,
        "benchmark": benchmark,
        "seq_len": n,
        "seed": None,
        "key": f"{label}/{benchmark}/{n}/{fields.get('task')}/{fields.get('seed')}",
        "env": ENV,
        "metric": None,
        "pass": None,
        "input": None,
        "value": None,
        "unit": None,
        "status": "ok",
        "error": None,
        "extra": {},
    }
    return {**base, **fields}


def efficiency_rows(slow: dict | None = None) -> list[dict]:
    """`slow`: (label, n) -> factor applied to that cell's times."""
    rows = []
    for label in ["sdpa", "vanilla", "linformer(k=64)", "informer", "s3attention", "xformers"]:
        for n in (1024, 4096, 16384):
            if label == "xformers":
                rows.append(row(label, "efficiency", n, status="unavailable", error="xformers is not installed"))
                continue
            if (label, n) in FAILED:
                rows.append(row(label, "efficiency", n, status=FAILED[label, n], error=f"{FAILED[label, n]} at {n}"))
                continue
            t = SECONDS[label][n] * (slow or {}).get((label, n), 1.0)
            shift = len(label)  # each variant's repetitions vary in its own order, so ratios spread too
            reps = [t * SPREAD[(r + shift) % 5] for r in range(5)]
            extra = {"repetitions": reps, "rounds": list(range(5)), "clean": [True] * 5}
            rows.append(
                row(
                    label,
                    "efficiency",
                    n,
                    metric="time",
                    value=t,
                    unit="s",
                    extra=extra,
                    **{"pass": "forward_backward"},
                )
            )
            memory = (n * n * 8 if label in ("sdpa", "vanilla") else n * 4096) + 2**20
            rows.append(
                row(label, "efficiency", n, metric="memory", value=memory, unit="bytes", **{"pass": "forward_backward"})
            )
    for label, error in [("linformer(k=64)", 0.5), ("informer", 0.7)]:
        for n in (1024, 4096):
            rows.append(
                row(label, "approximation", n, metric="rel_error", input="text", value=error, extra={"std": 0.01})
            )
    rows.append(
        row(
            "s3attention",
            "approximation",
            1024,
            metric="rel_error",
            status="unsupported",
            error="s3attention is not a softmax approximation",
        )
    )
    return rows


def accuracy_rows() -> list[dict]:
    values = {"sdpa": (40, 70), "linformer(k=64)": (38, 66), "s3attention": (42, 72)}
    rows = []
    for label, (listops, text) in values.items():
        for seed in range(3):
            for task, v in (("listops", listops), ("text", text)):
                extra = {"chance": 0.1 if task == "listops" else 0.25, "data": "fixture", "sizes": [10, 2, 2]}
                rows.append(
                    row(
                        label,
                        "accuracy",
                        64,
                        task=task,
                        seed=seed,
                        metric="accuracy",
                        value=(v + seed) / 100,
                        unit="fraction",
                        extra=extra,
                    )
                )
    return rows


def make_run(path: Path, suite: str, rows: list[dict], **manifest) -> Path:
    path.mkdir(parents=True)
    (path / "suite.yaml").write_text(suite)
    (path / "manifest.json").write_text(json.dumps({**MANIFEST, "suite": suite.split()[1], **manifest}))
    (path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; if intended, regenerate with UPDATE_GOLDEN=1 and read the diff"


@pytest.fixture
def speed_run(tmp_path):
    return make_run(tmp_path / "speed", EFFICIENCY_SUITE, efficiency_rows())


@pytest.fixture
def accuracy_run(tmp_path):
    return make_run(tmp_path / "accuracy", ACCURACY_SUITE, accuracy_rows())


def test_efficiency_leaderboard_matches_its_golden_file(speed_run):
    board = markdown(build([load_run(speed_run)]))
    check_golden("efficiency.md", board)
    assert sum("xformers" in line for line in board.splitlines()) == 1  # unavailable: one line, not a row per table
    assert "s3attention: unsupported — s3attention is not a softmax approximation" in board
    headline = board[board.index("## Headline") : board.index("Sizes:")]
    assert "| vanilla |  | 0.487x (0.482–0.507) at 4096 |" in headline  # paired per round, with its interval
    assert "4096 (OOM at 16384)" in headline and "1024 (timeout at 4096)" in headline
    best = "| s3attention | r=8, s1=8, s2=8, stem_kernel=3 | **20.2x (19.4–20.4) at 16384**"
    assert best in headline  # the best speed-up in bold, the sizes it ran with shown


def test_single_variant_run_renders(tmp_path):
    rows = [r for r in efficiency_rows() if r["label"] == "s3attention" and r["benchmark"] == "efficiency"]
    run = make_run(tmp_path / "one", EFFICIENCY_SUITE.replace("[sdpa, vanilla", "[s3attention, vanilla"), rows)
    check_golden("single.md", markdown(build([load_run(run)])))


def test_merged_runs_cite_each_run_and_join_in_one_headline(speed_run, accuracy_run):
    board = markdown(build([load_run(speed_run), load_run(accuracy_run)]))
    check_golden("merged.md", board)
    assert "merged from 2 runs" in board and "## fixture-accuracy (accuracy)" in board
    s3 = next(line for line in board.splitlines() if line.startswith("| s3attention |"))
    assert "20.2x" in s3 and "58.0 (" in s3  # speed from one run, accuracy from the other


def test_speed_columns_from_different_machines_are_flagged(speed_run, tmp_path):
    rows = [{**r, "key": "gpu/" + r["key"]} for r in efficiency_rows() if r["label"] in ("sdpa", "s3attention")]
    rows += [{**r, "seq_len": 65536, "key": "gpu/64k/" + r["key"]} for r in rows if r["seq_len"] == 16384]
    gpu = make_run(tmp_path / "gpu", EFFICIENCY_SUITE, rows, device_name="Fixture GPU", device="cuda")
    board = markdown(build([load_run(speed_run), load_run(gpu)]))
    assert "**The speed columns come from runs on different machines" in board
    s3 = next(line for line in board.splitlines() if line.startswith("| s3attention |"))
    assert "at 65536" in s3 and s3.endswith("| gpu |")  # the longest common length, and the run named
    assert "**CPU and GPU results**" in board


def test_a_variant_that_has_not_trained_every_task_has_no_average_yet(tmp_path):
    rows = [r for r in accuracy_rows() if not (r["label"] == "s3attention" and r["task"] == "text")]
    board = build([load_run(make_run(tmp_path / "partial", ACCURACY_SUITE, rows))])
    averages = {h.setting: h.values.get("accuracy") for h in board.headline}
    assert averages["s3attention"] is None and len(averages["sdpa"].accuracy) == 3
    # a run still in progress: no variant has reached the suite's second task, so nobody has an average
    listops = [r for r in accuracy_rows() if r["task"] == "listops"]
    board = build([load_run(make_run(tmp_path / "running", ACCURACY_SUITE, listops))])
    assert all("accuracy" not in h.values for h in board.headline)


def test_runs_from_directories_of_the_same_name_are_told_apart(tmp_path):
    first = make_run(tmp_path / "a" / "speed", EFFICIENCY_SUITE, efficiency_rows())
    rows = [{**r, "key": "b/" + r["key"]} for r in efficiency_rows()]
    second = make_run(tmp_path / "b" / "speed", EFFICIENCY_SUITE, rows)
    board = markdown(build([load_run(first), load_run(second)]))
    assert "## fixture-speed (a-speed)" in board and "## fixture-speed (b-speed)" in board


def test_a_cell_in_two_runs_must_be_resolved_explicitly(speed_run, tmp_path):
    copy = make_run(tmp_path / "copy", EFFICIENCY_SUITE, efficiency_rows())
    with pytest.raises(RunDirError, match="--prefer first or --prefer last"):
        build([load_run(speed_run), load_run(copy)])
    assert build([load_run(speed_run), load_run(copy)], prefer="last").df["run"].eq(1).all()


def test_leaderboard_command_writes_markdown_figures_csv_and_json(speed_run, accuracy_run, tmp_path, capsys):
    out = tmp_path / "published"
    assert main(["leaderboard", str(speed_run), str(accuracy_run), "-o", str(out), "--format", "md,csv,json"]) == 0
    board = (out / "leaderboard.md").read_text()
    images = [line[line.index("(") + 1 : -1] for line in board.splitlines() if line.startswith("![")]
    assert {"speed-time.png", "speed-speedup.png", "bubble.png"} <= set(images)
    assert all((out / image).stat().st_size > 1000 for image in images)  # relative links that resolve
    headline = json.loads((out / "leaderboard.json").read_text())["headline"]
    assert {h["setting"]: h["longest_n"] for h in headline}["vanilla"] == 4096
    assert "speedup_low" in (out / "headline.csv").read_text().splitlines()[0]
    s3 = {h["setting"]: h for h in headline}["s3attention"]
    assert s3["runs"] == "efficiency: speed; accuracy: accuracy"  # the runs by name, not a dict of indices
    assert main(["leaderboard", str(speed_run), str(accuracy_run)]) == 2  # merging needs -o
    assert "name its directory with -o DIR" in capsys.readouterr().err


def test_compare_passes_identical_runs(speed_run, tmp_path, capsys):
    same = make_run(tmp_path / "same", EFFICIENCY_SUITE, efficiency_rows())
    changes = compare(load_run(speed_run), load_run(same))
    assert {c.verdict for c in changes} == {"same"}
    assert main(["compare", str(speed_run), str(same), "--fail-on-regression"]) == 0


def test_compare_catches_a_slowdown_and_fails_the_gate(speed_run, tmp_path, capsys):
    slow = make_run(tmp_path / "slow", EFFICIENCY_SUITE, efficiency_rows(slow={("s3attention", 4096): 1.5}))
    changes = compare(load_run(speed_run), load_run(slow))
    worse = [c for c in changes if c.verdict == "worse"]
    assert [c.cell for c in worse] == ["s3attention n=4096 fwd+bwd time"]
    assert worse[0].change == pytest.approx(0.5) and worse[0].p < 0.05
    assert main(["compare", str(speed_run), str(slow), "--format", "md", "--fail-on-regression"]) == 1
    comment = capsys.readouterr().out
    assert comment.index("### Regressions") < comment.index("<details>")  # regressions first, the rest folded
    assert main(["compare", str(speed_run), str(slow)]) == 0  # without the gate a regression is reported only


def test_compare_counts_a_new_failure_and_a_small_change_as_what_they_are(speed_run, tmp_path):
    rows = efficiency_rows(slow={("sdpa", 1024): 1.03})  # 3%: under the 5% threshold
    rows = [r for r in rows if not (r["label"] == "s3attention" and r["seq_len"] == 16384)]
    rows.append(row("s3attention", "efficiency", 16384, status="oom", error="oom"))
    changes = {
        c.cell: c.verdict
        for c in compare(load_run(speed_run), load_run(make_run(tmp_path / "n", EFFICIENCY_SUITE, rows)))
    }
    assert changes["sdpa n=1024 fwd+bwd time"] == "same"
    assert any(cell.startswith("s3attention n=16384") and v == "worse" for cell, v in changes.items())


def test_merged_headline_has_one_row_per_variant_with_the_sizes_behind_each_column(speed_run, tmp_path):
    """linformer timed at k=64 and trained at k=32: one row that says so; informer trained on another task set:
    its average is marked as such and never bold; a forecasting baseline (no headline column) adds no row."""
    trained = [
        {**r, "label": "linformer(k=32)", "parameters": {"k": 32}, "key": "k32/" + r["key"]}
        if r["label"] == "linformer(k=64)"
        else r
        for r in accuracy_rows()
    ]
    suite = ACCURACY_SUITE.replace("k: 64", "k: 32")
    accuracy = make_run(tmp_path / "accuracy", suite, trained)
    other = [
        {**r, "label": "informer", "variant": "informer", "key": "informer/" + r["key"], "value": 0.99}
        for r in accuracy_rows()
        if r["label"] == "sdpa" and r["task"] == "listops"
    ]
    extra = {"data": "fixture", "channels": 7, "windows": [9, 3, 3], "horizon": 96, "period": 24}
    baseline = row("repeat-last", "forecasting", 96, task="E", metric="mse", value=1.3, seed=0, horizon=96, extra=extra)
    forecast_suite = ACCURACY_SUITE.replace("fixture-accuracy", "fixture-other").replace(", text: {seq_len: 64}", "")
    listops_only = make_run(tmp_path / "other", forecast_suite.replace("[sdpa, ", "[informer, "), [*other, baseline])
    board = markdown(build([load_run(speed_run), load_run(accuracy), load_run(listops_only)]))
    headline = board[board.index("## Headline") : board.index("Sizes:")].splitlines()[4:-1]
    names = [line.split(" | ")[0].removeprefix("| ") for line in headline]
    assert sorted(names) == ["informer", "linformer", "s3attention", "sdpa", "vanilla"], names
    linformer = headline[names.index("linformer")]
    assert "| k=64 (efficiency, approximation); k=32 (accuracy) |" in linformer
    assert "12.4x" in linformer and "53.0 (" in linformer  # its speed and its accuracy, in one row
    informer = headline[names.index("informer")]
    assert "over listops" in informer and "**" not in informer.split(" | ")[-2]  # 99% on one task: not the best
    assert "**58.0" in headline[names.index("s3attention")]
    assert "repeat-last" not in "\n".join(headline)


def test_runs_sharing_only_cells_that_measured_nothing_merge(speed_run, tmp_path):
    unmeasured = [
        {**r, "key": "other/" + r["key"]} if r["status"] not in ("unsupported", "unavailable") else r
        for r in efficiency_rows()
    ]
    other = make_run(tmp_path / "other", EFFICIENCY_SUITE, unmeasured)
    board = build([load_run(speed_run), load_run(other)])  # the same unsupported / unavailable cells: no conflict
    assert len(board.df[board.df["status"] == "unsupported"]) == 1


def test_compare_says_when_a_run_was_measured_on_a_busy_machine(speed_run, tmp_path, capsys):
    busy = make_run(tmp_path / "busy", EFFICIENCY_SUITE, efficiency_rows(), load_start={"busy": 0.6})
    assert main(["compare", str(speed_run), str(busy), "--format", "md"]) == 0
    report = capsys.readouterr().out
    assert "**New ran on a busy machine** (60% at its start went to other work)" in report
    assert "Base ran on a busy machine" not in report


def test_results_loads_runs_as_the_leaderboard_reads_them(speed_run, accuracy_run):
    import attnzoo

    df = attnzoo.results(str(speed_run), str(accuracy_run))
    times = df.query("metric == 'time'").pivot_table("value", "setting", "seq_len")
    assert times.loc["s3attention", 16384] == pytest.approx(0.05)
    assert set(df["run"]) == {0, 1} and {"setting", "variant", "status", "extra", "task"} <= set(df.columns)
    assert len(df) == len(efficiency_rows()) + len(accuracy_rows())


def test_a_variant_whose_settings_have_no_headline_values_still_renders(tmp_path):
    rows = [
        row(label, "efficiency", 1024, status="error", error="boom", parameters={"k": k}, variant="linformer")
        for label, k in (("linformer(k=64)", 64), ("linformer(k=32)", 32))
    ]
    board = build([load_run(make_run(tmp_path / "errors", EFFICIENCY_SUITE, rows))])
    assert [h.setting for h in board.headline] == ["linformer(k=64)", "linformer(k=32)"]
    assert "boom" in markdown(board)


def test_compare_leaves_out_the_roofline_bound_which_moves_with_each_runs_roofs(tmp_path):
    def with_bound(bound: float) -> list[dict]:
        extra_rows = [
            row("sdpa", "efficiency", 1024, metric="roofline", value=bound, unit="s", **{"pass": "forward_backward"})
        ]
        return efficiency_rows() + [{**r, "key": r["key"] + "/roofline"} for r in extra_rows]

    base = load_run(make_run(tmp_path / "a", EFFICIENCY_SUITE, with_bound(0.010)))
    new = load_run(make_run(tmp_path / "b", EFFICIENCY_SUITE, with_bound(0.013)))  # other roofs: a 30% other bound
    changes = compare(base, new)
    assert {c.verdict for c in changes} == {"same"} and not any(c.metric == "roofline" for c in changes)
