"""Forecasting: the protocol's splits and windows, the train-only scaler, every test window scored, naive baselines
exact, a model that learns a sine, clear errors, and the suite end to end on generated series in the CSV layout."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from attnzoo.harness.plan import plan
from attnzoo.harness.runner import run_suite
from attnzoo.harness.suite import SuiteError, load_suite
from attnzoo.leaderboards.markdown import build, markdown
from attnzoo.leaderboards.sources import load_run
from attnzoo.timeseries.data import DataError, from_frame, prepare, read_csv
from attnzoo.timeseries.models import DLinear, repeat_last, seasonal_naive
from attnzoo.timeseries.train import ForecastRecipe, evaluate, fit, naive, score
from tests.test_publish import check_golden

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "timeseries"


def write_series(path: Path, values: np.ndarray, freq: str = "h", columns: list[str] | None = None) -> Path:
    columns = columns or [*(f"c{i}" for i in range(values.shape[1] - 1)), "OT"]
    frame = pd.DataFrame(values, columns=columns)
    frame.insert(0, "date", pd.date_range("2016-07-01", periods=len(values), freq=freq).astype(str))
    frame.to_csv(path, index=False)
    return path


def random_walk(rows: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, channels)).cumsum(axis=0)


def test_ett_hourly_borders_and_window_counts(tmp_path):
    series = read_csv(write_series(tmp_path / "ETTh1.csv", random_walk(14_500)))
    data = prepare(series, input_len=96, horizon=336)
    assert data.borders == {"train": (0, 8640), "val": (8640 - 96, 11520), "test": (11520 - 96, 14400)}
    assert (len(data.train), len(data.val), len(data.test)) == (8640 - 96 - 336 + 1, 2880 - 336 + 1, 2880 - 336 + 1)
    assert data.period == 24
    minute = prepare(read_csv(write_series(tmp_path / "ETTm1.csv", random_walk(57_600), freq="15min")), 96, 96)
    assert minute.borders["test"] == (4 * 11520 - 96, 4 * 14400) and minute.period == 96


def test_ratio_borders_start_val_and_test_input_len_early(tmp_path):
    series = read_csv(write_series(tmp_path / "rates.csv", random_walk(1000), freq="D"))
    data = prepare(series, input_len=24, horizon=12)
    assert data.borders == {"train": (0, 700), "val": (700 - 24, 800), "test": (800 - 24, 1000)}
    assert (len(data.train), len(data.val), len(data.test)) == (700 - 36 + 1, 124 - 36 + 1, 224 - 36 + 1)
    assert data.period == 7  # daily data


def test_scaler_is_fitted_on_the_train_rows_only(tmp_path):
    values = random_walk(1000)
    data = prepare(from_frame(_frame(values), "s"), 24, 12)
    changed = values.copy()
    changed[700:] *= 1000  # validation and test rows only
    again = prepare(from_frame(_frame(changed), "s"), 24, 12)
    np.testing.assert_allclose(again.mean, values[:700].mean(axis=0))
    np.testing.assert_allclose(again.std, values[:700].std(axis=0))
    torch.testing.assert_close(again.train.rows, data.train.rows)
    assert float(data.train.rows.mean(0).abs().max()) < 1e-5 and float(data.test.rows.mean(0).abs().max()) > 0.1


def test_every_test_window_is_scored_the_last_ending_at_the_last_row(tmp_path):
    data = prepare(from_frame(_frame(random_walk(1003)), "s"), 24, 12)
    assert len(data.test) == 200 + 24 - 36 + 1  # 1003 rows: test is the last int(0.2 * 1003) = 200
    _, y = data.test.batch(torch.tensor([len(data.test) - 1]))
    torch.testing.assert_close(y[0, -1], data.test.rows[-1])
    seen = []
    evaluate(lambda x: seen.append(len(x)) or x[:, -12:], data.test, batch_size=64)
    assert sum(seen) == len(data.test) and seen[-1] == len(data.test) % 64  # the partial last batch included


def test_one_scoring_pass_gives_every_window_and_the_released_protocol():
    """The released code's score (whole batches of 32 windows only) comes from the same pass as the every-window
    score, and equals scoring the first 32k windows on their own."""
    data = prepare(from_frame(_frame(random_walk(1003)), "s"), 24, 12)  # 189 test windows: 160 kept, 29 dropped
    torch.manual_seed(0)
    model = DLinear(24, 12)  # untrained: any model will do
    mse, mae, count, dropped = score(model, data.test)
    assert (count, len(data.test) // 32 * 32) == (189, 160)
    assert (mse, mae) == pytest.approx(evaluate(model, data.test)[:2], rel=1e-6)
    with torch.no_grad():
        x, y = data.test.batch(torch.arange(160))
        error = (model(x) - y).double()
    assert dropped == pytest.approx((float(error.square().mean()), float(error.abs().mean())), rel=1e-6)
    assert dropped[0] != pytest.approx(mse, rel=1e-5)  # the 29 windows it drops do count


def test_naive_baselines_match_an_independent_computation(tmp_path):
    data = prepare(from_frame(_frame(random_walk(1200)), "s"), 48, 24, period=12)
    rows = data.test.rows.double().numpy()
    starts = range(len(rows) - 48 - 24 + 1)
    last = np.stack([np.repeat(rows[s + 47 : s + 48], 24, axis=0) - rows[s + 48 : s + 72] for s in starts])
    season = np.stack([np.tile(rows[s + 36 : s + 48], (2, 1)) - rows[s + 48 : s + 72] for s in starts])
    assert naive(data, "repeat-last").mse == pytest.approx(float((last**2).mean()), rel=1e-5)
    assert naive(data, "seasonal-naive").mae == pytest.approx(float(np.abs(season).mean()), rel=1e-5)


def test_naive_baselines_are_exact_on_series_built_for_them():
    periodic = torch.tensor([3.0, -1.0, 2.0, 5.0, 0.5]).repeat(20)[:, None]  # period 5
    x, y = periodic[None, :40], periodic[None, 40:53]
    torch.testing.assert_close(seasonal_naive(x, 13, 5), y)
    flat = torch.full((1, 30, 2), 4.0)
    torch.testing.assert_close(repeat_last(flat, 7), torch.full((1, 7, 2), 4.0))


def test_dlinear_trend_is_a_moving_average_with_repeated_ends():
    model = DLinear(input_len=30, horizon=5)
    with torch.no_grad():
        model.trend.weight.zero_()
        model.trend.bias.zero_()
        model.seasonal.weight.zero_()
        model.seasonal.bias.zero_()
        model.trend.weight[:, 15] = 1.0  # reads the trend at step 15, the mean of rows 3..27
    x = torch.randn(2, 30, 3)
    torch.testing.assert_close(model(x), x[:, 3:28].mean(1, keepdim=True).expand(-1, 5, -1))


@pytest.mark.parametrize("name", ["sdpa", "dlinear"])
def test_a_model_learns_a_clean_sine(name):
    t = np.arange(3000)
    values = np.stack([np.sin(2 * np.pi * t / 24), np.cos(2 * np.pi * t / 24 + 1)], axis=1)
    data = prepare(from_frame(_frame(values), "sine"), 48, 24)
    before = naive(data, "repeat-last").mse
    recipe = ForecastRecipe(steps=300, eval_every=100, lr=1e-3, dim=32, ffn_dim=64, dropout=0.0)
    result = fit(data, name, {}, recipe, seed=0)
    assert result.mse < 0.01 < before and result.windows == len(data.test)


def test_unusable_series_get_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_csv(tmp_path / "missing.csv")
    frame = _frame(random_walk(100))
    with pytest.raises(DataError, match="no `date` column"):
        from_frame(frame.drop(columns="date"), "s")
    with pytest.raises(DataError, match="no target column 'OT'.*set `target:`"):
        from_frame(frame.rename(columns={"OT": "load"}), "s")
    with pytest.raises(DataError, match=r"columns \['c0'\] hold values that are not numbers"):
        from_frame(frame.assign(c0="x"), "s")
    with pytest.raises(DataError, match="val split has 34 rows, too few for input 24 \\+ horizon 24"):
        prepare(from_frame(frame, "s"), 24, 24)
    with pytest.raises(DataError, match="ett-hourly splits need 14400 rows"):
        prepare(from_frame(frame, "ETTh9"), 24, 24)


def _frame(values: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(values, columns=[*(f"c{i}" for i in range(values.shape[1] - 1)), "OT"])
    frame.insert(0, "date", pd.date_range("2020-01-01", periods=len(values), freq="h"))
    return frame


def _suite(tmp_path: Path, **forecasting) -> Path:
    write_series(tmp_path / "hourly.csv", random_walk(600, seed=1))
    write_series(tmp_path / "weekly.csv", random_walk(300, seed=2), freq="W")
    suite = {
        "name": "fc",
        "variants": ["sdpa", {"name": "linformer", "params": {"k": 8}}],
        "benchmarks": {
            "forecasting": {
                "datasets": {
                    "hourly": {"path": "hourly.csv"},
                    "weekly": {"path": "weekly.csv", "input_len": 24, "horizons": [12]},
                },
                "input_len": 48,
                "horizons": [24, 48],
                "seeds": 2,
                "recipe": {"steps": 6, "eval_every": 3, "dim": 16, "ffn_dim": 32},
                **forecasting,
            }
        },
        "execution": {"timeout_s": 120, "threads": 1},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def test_suite_plans_models_horizons_and_seeds(tmp_path):
    cells = plan(load_suite(_suite(tmp_path)))
    per_dataset_horizon = 2 * 2 + 2 + 1 + 1  # sdpa, linformer and dlinear x 2 seeds; the naive ones once
    assert len(cells) == 3 * per_dataset_horizon and len({c.key for c in cells}) == len(cells)
    weekly = [c for c in cells if c.config.dataset == "weekly"]
    assert {c.seq_len for c in weekly} == {24} and {c.config.horizon for c in weekly} == {12}
    naive = next(c for c in cells if c.config.model == "repeat-last")
    assert naive.variant is None and naive.config.recipe is None


def test_suite_errors_name_the_dataset_and_the_fix(tmp_path):
    with pytest.raises(SuiteError) as err:
        load_suite(_suite(tmp_path, horizons=[24, 500]))
    assert any("datasets.hourly: hourly: the train split has 420 rows, too few" in p for p in err.value.problems)
    path = _suite(tmp_path)
    path.write_text(path.read_text().replace("path: weekly.csv", "path: nowhere.csv"))
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    assert "suite.yaml:" in err.value.problems[0] and "nowhere.csv: no such file" in err.value.problems[0]


@pytest.mark.slow
def test_forecasting_suite_runs_and_publishes_its_table(tmp_path):
    path = _suite(tmp_path)
    summary = run_suite(load_suite(path), path.read_text(), tmp_path / "run")
    statuses = {(r["task"], r["horizon"], r["label"], r["seed"], r["metric"]): r["status"] for r in summary.rows}
    assert len(statuses) == 2 * 24 and set(statuses.values()) == {"ok"}
    board = markdown(build([load_run(tmp_path / "run")]))
    table = board[board.index("## Forecasting") :]
    assert "| dataset | horizon | metric | repeat-last | seasonal-naive | dlinear | sdpa | linformer(k=8) |" in table
    assert len([line for line in table.splitlines() if line.startswith(("| hourly |", "| weekly |"))]) == 6
    assert all(line.count("**") == 2 for line in table.splitlines() if line.startswith("| hourly |"))
    assert "seasonal period 24" in table and "seasonal period 7" in table


@pytest.mark.slow
def test_forecasting_table_matches_its_golden_file(tmp_path):
    check_golden("forecasting.md", markdown(build([load_run(_fixture_run(tmp_path))])))


def _fixture_run(tmp_path: Path) -> Path:
    """Fixed rows: two models and a baseline on one dataset, one failed cell."""
    from tests.test_publish import make_run

    suite = (
        "name: fixture-forecasting\nvariants: [sdpa, informer]\nbenchmarks:\n  forecasting:\n"
        "    datasets: {ETTh1: {path: ETTh1.csv}}\n    horizons: [96]\n    baselines: [repeat-last, dlinear]\n"
        "    seeds: 2\n"
    )
    extra = {"horizon": 96, "data": "ETTh1.csv", "channels": 7, "windows": [8449, 2785, 2785], "period": 24}
    rows = []
    values = {"repeat-last": [(1.295, 0.713)], "dlinear": [(0.40, 0.42), (0.41, 0.43)], "sdpa": [(0.9, 0.7)]}
    for label, pairs in values.items():
        for seed, (mse, mae) in enumerate(pairs):
            for metric, value in (("mse", mse), ("mae", mae)):
                rows.append(_row(label, seed, metric, value, "ok", extra))
    rows.append(_row("sdpa", 1, None, None, "timeout", {}))
    rows.append(_row("informer", 0, "mse", 0.38, "ok", extra))
    rows.append(_row("informer", 0, "mae", 0.44, "ok", extra))
    return make_run(tmp_path / "forecasting", suite, rows)


def _row(label: str, seed: int, metric: str | None, value, status: str, extra: dict) -> dict:
    return {
        "suite": "fixture-forecasting", "variant": label, "label": label, "parameters": {}, "task": "ETTh1",
        "benchmark": "forecasting", "seq_len": 96, "horizon": 96, "seed": seed, "key": f"{label}-{seed}",
        "metric": metric, "value": value, "unit": "standardised", "status": status, "extra": extra,
    }  # fmt: skip


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"the benchmark files are not at {SHARED}")
@pytest.mark.parametrize(
    "file, mse, mae", [("ETTh1", 1.295, 0.713), ("ETTh2", 0.432, 0.422), ("exchange_rate", 0.081, 0.196)]
)
def test_the_protocol_reproduces_the_published_repeat_baseline(file, mse, mae):
    """Repeat-last at input 96, horizon 96, as published in the DLinear paper's table (Zeng et al., 2023): the same
    numbers only if the splits, the scaler and the windows are the standard ones."""
    result = naive(prepare(read_csv(SHARED / f"{file}.csv"), 96, 96), "repeat-last")
    assert (result.mse, result.mae) == (pytest.approx(mse, abs=1e-3), pytest.approx(mae, abs=1e-3))  # 3 decimals


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"the benchmark files are not at {SHARED}")
def test_dlinear_trained_with_the_default_recipe_reaches_its_published_error():
    """DLinear is the baseline every backbone's table is held against: with the default recipe (Adam lr 1e-3,
    batch 32, at most 1500 steps) it reaches its paper's ETTh1-96 error (0.386/0.400 at input 96) within 0.015."""
    data = prepare(read_csv(SHARED / "ETTh1.csv"), 96, 96)
    result = fit(data, "dlinear", {}, ForecastRecipe(), seed=0)
    assert (result.mse, result.mae) == (pytest.approx(0.386, abs=0.015), pytest.approx(0.400, abs=0.015))
