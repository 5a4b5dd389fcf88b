"""Accuracy over sequence length: a task trained at every length of the suite, sizes that scale with n, the
table with its 'holds to' column, the speed-quality frontier, its figure and its headline column."""

import pytest

from attnzoo.benchmarks.accuracy_by_length import AccuracyByLength, _pareto
from attnzoo.harness.plan import plan
from attnzoo.harness.rundir import RunStore
from attnzoo.harness.runner import run_suite
from attnzoo.harness.suite import load_suite
from attnzoo.leaderboards.publish import publish_run
from tests.test_harness import problems, write_suite

SECTION = {
    "seeds": 2,
    "task": "recall",
    "options": {"vocab_size": 128, "train_size": 256, "val_size": 32, "test_size": 64},
    "scale": {"num_kv_pairs": {"fraction": 0.0625, "floor": 2}},
    "at": {32: {"num_kv_pairs": 4}},
    "sizes": {"linformer": {"k": {"fraction": 0.25, "floor": 4}}},
    "recipe": {"steps": 6, "batch_size": 16, "eval_every": 3, "warmup_steps": 1, "dim": 16, "ffn_dim": 32},
}
SUITE = {
    "name": "by-length",
    "variants": ["sdpa", "linformer"],
    "seq_lens": [16, 32],
    "benchmarks": {"accuracy_by_length": SECTION},
    "execution": {"timeout_s": 120},
}


def test_task_options_and_sizes_scale_with_n():
    section = AccuracyByLength.model_validate(SECTION)
    assert section.task_options(16)["num_kv_pairs"] == 2 and section.task_options(64)["num_kv_pairs"] == 4
    assert section.task_options(32)["num_kv_pairs"] == 4 and section.task_options(32)["seq_len"] == 32  # `at`
    assert section.variant_sizes("linformer", 16) == {"k": 4} and section.variant_sizes("linformer", 64) == {"k": 16}
    assert section.variant_sizes("sdpa", 64) == {}


def test_one_training_run_per_setting_length_and_seed_in_one_chain_per_setting(tmp_path):
    cells = plan(load_suite(write_suite(tmp_path, SUITE)))
    assert [(c.label, c.seq_len, c.seed) for c in cells[:4]] == [
        ("sdpa", 16, 0),
        ("sdpa", 16, 1),
        ("sdpa", 32, 0),
        ("sdpa", 32, 1),
    ]
    assert len(cells) == 8 and len({c.key for c in cells}) == 8
    assert {c.chain for c in cells} == {"accuracy_by_length/recall/sdpa", "accuracy_by_length/recall/linformer"}
    linformer = [c for c in cells if c.label == "linformer"]
    assert [c.config.sizes for c in linformer[::2]] == [{"k": 4}, {"k": 8}] and linformer[0].params == {}


def test_settings_the_task_rules_out_at_some_length_are_named_at_validate(tmp_path):
    bad = {**SECTION, "scale": {"num_kv_pairs": {"fraction": 0.5}}, "at": {}}
    found = problems(write_suite(tmp_path, {**SUITE, "benchmarks": {"accuracy_by_length": bad}}))
    assert any("benchmarks.accuracy_by_length.options: task 'recall': num_kv_pairs=8 needs seq_len" in p for p in found)


def test_pareto_keeps_what_nothing_beats_on_both():
    points = {"exact": (99.0, 3.0), "fast": (50.0, 1.0), "worse": (40.0, 2.0), "tie": (99.0, 3.0)}
    assert _pareto(points) == {"exact", "fast", "tie"}


@pytest.mark.slow
def test_a_run_trains_every_length_and_renders_its_table_frontier_figure_and_headline(tmp_path):
    path = write_suite(tmp_path, SUITE)
    run_suite(load_suite(path), path.read_text(), tmp_path / "run")
    rows = RunStore(tmp_path / "run").rows()
    assert {r["status"] for r in rows} == {"ok"} and len(rows) == 8
    assert all(r["extra"]["step_seconds"] > 0 for r in rows)
    assert {r["seq_len"]: r["extra"]["sizes"] for r in rows if r["variant"] == "linformer"} == {
        16: {"k": 4},
        32: {"k": 8},
    }
    publish_run(tmp_path / "run")
    board = (tmp_path / "run" / "leaderboard.md").read_text()
    assert "## Accuracy (%) by sequence length: recall" in board
    assert "| variant | n=16 | n=32 | holds ≥ 90% of sdpa to |" in board
    assert "### Speed-quality frontier" in board and "★" in board
    assert (
        "![accuracy vs n](accuracy_by_length.png)" in board and (tmp_path / "run" / "accuracy_by_length.png").exists()
    )
    assert "| accuracy by length |" in board.split("## Headline")[1].split("\n\n")[1].splitlines()[0].replace(
        "variant | sizes ", ""
    )
    assert "sizes that scale with n: linformer k = max(4, 0.25·n)" in board


def test_the_readme_example_validates(tmp_path):
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme[readme.index("## Accuracy over sequence length") :].split("```yaml\n")[1].split("```")[0]
    path = tmp_path / "suite.yaml"
    path.write_text("name: by-length\nvariants: [sdpa, linformer, s3attention]\n" + block)
    suite = load_suite(path)
    cells = plan(suite)
    assert len(cells) == 3 * 5 * 3
    s3 = {c.seq_len: c.config.sizes for c in cells if c.variant == "s3attention"}
    assert s3[64] == {"s1": 8, "s2": 8} and s3[1024] == {"s1": 64, "s2": 64}
    assert {c.seq_len: c.config.options["num_kv_pairs"] for c in cells}[512] == 64


def test_causal_trains_the_variants_that_can_mask_the_future_causally(tmp_path):
    suite = {
        **SUITE,
        "variants": ["sdpa", "linformer"],
        "benchmarks": {"accuracy_by_length": {**SECTION, "causal": True}},
    }
    cells = plan(load_suite(write_suite(tmp_path, suite)))
    assert {c.variant: c.config.causal for c in cells} == {"sdpa": True, "linformer": False}
    assert len({c.key for c in cells}) == len(cells)


def test_a_length_curriculum_starts_each_longer_length_from_the_model_of_the_length_before(tmp_path):
    suite = {**SUITE, "benchmarks": {"accuracy_by_length": {**SECTION, "seeds": 1, "warm_steps": 2}}}
    path = write_suite(tmp_path, suite)
    cells = plan(load_suite(path))
    assert {(c.seq_len, c.config.start_from, c.config.recipe["steps"]) for c in cells} == {(16, None, 6), (32, 16, 2)}
    run_suite(load_suite(path), path.read_text(), tmp_path / "run")
    rows = RunStore(tmp_path / "run").rows()
    assert {r["status"] for r in rows} == {"ok"}
    assert {(r["seq_len"], r["extra"].get("start_from"), r["extra"]["steps"]) for r in rows} == {
        (16, None, 6),
        (32, 16, 2),
    }
    assert len(list((tmp_path / "run" / "models").glob("*.pt"))) == 4  # 2 settings x 2 lengths x 1 seed
    publish_run(tmp_path / "run")
    assert (
        "2 at each longer n starting from the model of the length before"
        in (tmp_path / "run" / "leaderboard.md").read_text()
    )


def test_a_warm_started_length_whose_earlier_model_is_gone_says_how_to_redo_it(tmp_path):
    from attnzoo.harness.benchmark import benchmarks

    suite = {**SUITE, "benchmarks": {"accuracy_by_length": {**SECTION, "seeds": 1, "warm_steps": 2}}}
    cell = next(c for c in plan(load_suite(write_suite(tmp_path, suite))) if c.seq_len == 32)
    with pytest.raises(FileNotFoundError, match="n=16 is gone; rerun that length with `attnzoo run --resume --force`"):
        benchmarks()["accuracy_by_length"].run(cell, workdir=tmp_path)


@pytest.mark.slow
def test_the_frontier_takes_its_times_from_an_efficiency_run_merged_in(tmp_path):
    from attnzoo.leaderboards.markdown import build, markdown
    from attnzoo.leaderboards.sources import load_run

    trained = {**SUITE, "benchmarks": {"accuracy_by_length": {**SECTION, "seeds": 1}}}
    path = write_suite(tmp_path, trained)
    run_suite(load_suite(path), path.read_text(), tmp_path / "trained")
    timing = {
        "name": "by-length-timing",
        "variants": ["sdpa", "linformer"],
        "layer": {"dim": 16, "heads": 2, "batch": 16},
        "seq_lens": [16, 32],
        "benchmarks": {
            "efficiency": {"metrics": ["time"], "passes": ["forward_backward"], "repetitions": 1, "min_run_time": 0.01}
        },
    }
    path = write_suite(tmp_path, timing, "timing.yaml")
    run_suite(load_suite(path), path.read_text(), tmp_path / "timed")
    alone = markdown(build([load_run(tmp_path / "trained")]))
    merged = markdown(build([load_run(tmp_path / "trained"), load_run(tmp_path / "timed")]))
    assert "Speed-quality frontier: accuracy and time per training step" in alone
    assert "Speed-quality frontier: accuracy and attention time" in merged
    assert "from the efficiency run timed merged into this board" in merged


def test_the_headline_says_how_far_each_setting_holds_and_when_it_holds_nowhere():
    from types import SimpleNamespace

    from attnzoo.benchmarks.accuracy_by_length import AccuracyByLengthBenchmark, Held

    held = {"sdpa": Held(0, 1024, [99.0, 99.5], 1024), "s3attention": Held(0, 1024, [3.0, 4.0], None)}
    rows = [SimpleNamespace(setting=k, values={"accuracy_by_length": h}) for k, h in held.items()]
    [(_, cells, _)] = AccuracyByLengthBenchmark().headline_columns(rows, board=None)
    assert cells["sdpa"].endswith("at 1024, holds to 1024") and cells["sdpa"].startswith("**")
    assert cells["s3attention"].endswith("at 1024, holds at no n")
