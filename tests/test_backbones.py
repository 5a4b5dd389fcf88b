"""Forecasting backbones: what each computes (per-window normalisation, channel independence, patches, the
S3Attention release's Fourier head), the suite's choice of backbone with its errors, and a table per backbone."""

import math

import numpy as np
import pytest
import torch
import yaml

from attnzoo.harness.plan import plan
from attnzoo.harness.runner import run_suite
from attnzoo.harness.suite import SuiteError, load_suite
from attnzoo.leaderboards.markdown import build, markdown
from attnzoo.leaderboards.sources import load_run
from attnzoo.timeseries.backbones import BACKBONES, FourierExtrapolation, Shape, patches, tokens
from attnzoo.timeseries.backbones import build as build_backbone
from attnzoo.timeseries.data import from_frame, prepare
from attnzoo.timeseries.train import ForecastRecipe, fit
from attnzoo.zoo import create_attention
from tests.test_forecasting import _frame, _suite

SHAPE = Shape(channels=3, input_len=24, horizon=12, dim=16, depth=2, ffn_dim=32, dropout=0.0, patch_len=8, stride=4)


def model(backbone: str, shape: Shape = SHAPE, variant: str = "sdpa", **params) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_backbone(
        backbone, lambda n: create_attention(variant, shape.dim, 2, max_seq_len=n, **params), shape
    ).eval()


def released_fourier_head(y: torch.Tensor, horizon: int) -> torch.Tensor:
    """The release's formula as written there: amplitude |Y_k| / L and phase arg Y_k of the lowest 1 + 2·H
    frequencies, summed as amplitude · cos(2π f t + phase) over t in [0, L + H), the last H steps kept."""
    n = y.shape[1]
    f = np.fft.fftfreq(n)
    kept = sorted(range(n), key=lambda i: abs(f[i]))[: 1 + 2 * horizon]
    spectrum = np.fft.fft(y.double().numpy(), axis=1)[:, kept]  # (B, kept, C)
    t = np.arange(n + horizon)
    waves = (
        np.abs(spectrum)[:, :, None, :]
        / n
        * np.cos(2 * np.pi * f[kept][None, :, None, None] * t[None, None, :, None] + np.angle(spectrum)[:, :, None, :])
    )
    return torch.from_numpy(waves.sum(axis=1)[:, -horizon:]).float()


@pytest.mark.parametrize(("n", "horizon"), [(24, 12), (24, 5), (36, 60), (96, 24)])
def test_the_fourier_head_computes_the_released_formula(n, horizon):
    y = torch.randn(2, n, 3)
    torch.testing.assert_close(
        FourierExtrapolation(n, horizon)(y), released_fourier_head(y, horizon), atol=1e-4, rtol=0
    )


def test_with_every_frequency_kept_the_fourier_head_continues_the_sequence_periodically():
    y = torch.randn(2, 24, 3)
    forecast = FourierExtrapolation(24, 30)(y)  # 1 + 2·30 >= 24: every frequency
    torch.testing.assert_close(forecast, y[:, torch.arange(30) % 24], atol=1e-4, rtol=0)


def test_patch_counts_are_patchtsts():
    assert patches(336, 16, 8) == 42 and patches(512, 16, 8) == 64  # PatchTST/42 and PatchTST/64
    assert (
        tokens("patch", SHAPE) == 6 and tokens("channel-independent", SHAPE) == 24 and tokens("s3-paper", SHAPE) == 24
    )


@pytest.mark.parametrize("backbone", ["channel-independent", "patch"])
def test_channels_are_forecast_independently_and_per_window_normalisation_removes_level_and_scale(backbone):
    net, x = model(backbone), torch.randn(4, 24, 3)
    with torch.no_grad():
        y = net(x)
        changed = x.clone()
        changed[:, :, 2] = torch.randn(4, 24)
        assert torch.equal(net(changed)[:, :, :2], y[:, :, :2]) and not torch.equal(net(changed)[:, :, 2], y[:, :, 2])
        torch.testing.assert_close(net(3 * x + 5), 3 * y + 5, atol=1e-4, rtol=1e-4)


def test_the_s3_paper_backbone_removes_the_level_but_not_the_scale():
    """Its normaliser is sqrt(var + 1), as released: a shift moves the forecast with it, a scale does not."""
    net, x = model("s3-paper", variant="s3attention"), torch.randn(4, 24, 3)
    with torch.no_grad():
        y = net(x)
        torch.testing.assert_close(net(x + 5), y + 5, atol=1e-4, rtol=1e-4)
        assert not torch.allclose(net(3 * x), 3 * y, atol=1e-2)


def train_on_sines(backbone: str, variant: str = "sdpa", device: str = "cpu"):
    """40 steps on two daily sines (input 48, horizon 24), patches of 16 every 8."""
    t = np.arange(2000)
    values = np.stack([np.sin(2 * np.pi * t / 24), np.cos(2 * np.pi * t / 24 + 1)], axis=1)
    data = prepare(from_frame(_frame(values), "sine"), 48, 24)
    recipe = ForecastRecipe(steps=40, eval_every=20, dim=16, ffn_dim=32, heads=2)
    return data, fit(data, variant, {}, recipe, seed=0, device=device, backbone=backbone, patch_len=16, stride=8)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_forecasts_the_horizon_and_trains(backbone):
    data, result = train_on_sines(backbone)
    assert math.isfinite(result.mse) and result.steps == 40 and result.windows == len(data.test)
    assert result.dropped is not None and result.windows // 32 * 32 < result.windows


def test_epochs_validate_once_an_epoch_and_stop_after_the_last():
    values = np.random.default_rng(0).normal(size=(1000, 2)).cumsum(axis=0)
    data = prepare(from_frame(_frame(values), "walk"), 24, 12)  # 700 train rows: 665 windows, 21 batches of 32
    recipe = ForecastRecipe(steps=10_000, epochs=2, patience=5, dim=16, ffn_dim=32, optimizer="adamw")
    result = fit(data, "sdpa", {}, recipe, seed=0, backbone="s3-paper")
    assert result.steps == 2 * 21 and result.best_step in (21, 42)


def test_the_first_releases_cells_keep_their_keys(tmp_path):
    """An `encoder` cell's identity has no backbone and its recipe none of the fields added since, so published
    runs resume and merge."""
    cells = plan(load_suite(_suite(tmp_path)))
    sdpa = next(c for c in cells if c.config.model == "sdpa")
    assert "backbone" not in sdpa.config.identity()["config"]
    assert not {"optimizer", "epochs"} & set(sdpa.config.identity()["config"]["recipe"])
    other = plan(load_suite(_suite(tmp_path, backbone="channel-independent")))
    assert {c.key for c in other if c.variant}.isdisjoint({c.key for c in cells if c.variant})
    assert {c.key for c in other if not c.variant} == {c.key for c in cells if not c.variant}  # baselines: shared


def test_backbone_errors_are_named_before_anything_runs(tmp_path):
    with pytest.raises(SuiteError) as err:
        load_suite(_suite(tmp_path, backbone="chanel-independent"))
    assert any(
        "suite.yaml:" in p and "unknown backbone 'chanel-independent': did you mean 'channel-independent'?" in p
        for p in err.value.problems
    )
    with pytest.raises(SuiteError) as err:
        load_suite(_suite(tmp_path, backbone="patch", patch_len=50))
    assert any("patch_len=50 exceeds weekly's input length 24" in p for p in err.value.problems)
    assert not any("max_seq_len" in p for p in err.value.problems)  # the one cause, not its echo in every variant
    with pytest.raises(SuiteError) as err:  # head width 16 / 4 = 4 < s3attention's s2 = 8
        path = _suite(tmp_path, backbone="s3-paper", recipe={"steps": 6, "dim": 16, "heads": 4, "ffn_dim": 32})
        path.write_text(path.read_text().replace("- sdpa", "- s3attention"))
        load_suite(path)
    assert any("s2=8 exceeds the head width 4" in p for p in err.value.problems)


@pytest.mark.slow
def test_a_run_with_two_backbones_has_a_table_for_each_with_the_baselines(tmp_path):
    path = _suite(tmp_path, backbone="channel-independent", seeds=1)
    suite = yaml.safe_load(path.read_text())
    suite["benchmarks"]["forecasting"]["datasets"]["weekly"]["backbone"] = "s3-paper"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    summary = run_suite(load_suite(path), path.read_text(), tmp_path / "run")
    assert {r["status"] for r in summary.rows} == {"ok"}
    board = markdown(build([load_run(tmp_path / "run")]))
    for name in ("channel-independent", "s3-paper"):
        section = board.split(f"## Forecasting, backbone `{name}`")[1].split("## ")[0]
        assert "| repeat-last | seasonal-naive | dlinear | sdpa | linformer(k=8) |" in section
        assert "Does attention help? The best attention model beats the best baseline" in section
    assert "| weekly | 12 | sdpa |" in board.split("released protocol")[-1]


def test_a_dataset_may_set_its_own_recipe_fields_and_bad_ones_are_named(tmp_path):
    path = _suite(tmp_path)
    suite = yaml.safe_load(path.read_text())
    suite["benchmarks"]["forecasting"]["datasets"]["weekly"]["recipe"] = {"dim": 32, "heads": 4}
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    cells = plan(load_suite(path))
    dims = {(c.config.dataset, c.config.recipe["dim"]) for c in cells if c.variant}
    assert dims == {("hourly", 16), ("weekly", 32)}
    suite["benchmarks"]["forecasting"]["datasets"]["weekly"]["recipe"] = {"dim": 0, "step": 5}
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    assert any(
        "datasets.weekly.recipe: dim: Input should be greater than or equal to 1" in p for p in err.value.problems
    )
    assert any("datasets.weekly.recipe: step: Extra inputs are not permitted" in p for p in err.value.problems)


def test_dlinear_may_keep_one_recipe_across_backbones_whose_recipes_differ(tmp_path):
    """With `baseline_recipe`, DLinear trains the same in an encoder suite and in an s3-paper suite with a slower
    recipe; without it DLinear trains as the variants do."""
    own = {"steps": 6, "eval_every": 3, "dim": 16, "ffn_dim": 32}
    slow = {"steps": 6, "epochs": 2, "lr": 1e-4, "optimizer": "adamw", "dim": 16, "ffn_dim": 32}

    def dlinear(**forecasting):
        cells = plan(load_suite(_suite(tmp_path, **forecasting)))
        return {str(c.config.identity()): c.config.recipe for c in cells if c.config.model == "dlinear"}

    encoder = dlinear()
    assert dlinear(backbone="s3-paper", recipe=slow, baseline_recipe=own) == encoder
    plain = dlinear(backbone="s3-paper", recipe=slow)
    assert plain.keys().isdisjoint(encoder) and {r["lr"] for r in plain.values()} == {1e-4}
    suite = load_suite(_suite(tmp_path, backbone="s3-paper", recipe=slow, baseline_recipe=own))
    ((benchmark, section),) = suite.benchmarks.sections()
    assert "DLinear: Adam lr 0.001" in benchmark.setup(suite, section)


def test_sampled_channels_train_on_single_channel_series_and_score_every_channel(monkeypatch):
    import attnzoo.timeseries.train as train

    seen = []

    def recording(*args, **kwargs):
        net = build_backbone(*args, **kwargs)
        net.register_forward_pre_hook(lambda module, inputs: seen.append((module.training, inputs[0].shape[2])))
        return net

    monkeypatch.setattr(train, "build", recording)
    values = np.random.default_rng(0).normal(size=(1000, 3)).cumsum(axis=0)
    data = prepare(from_frame(_frame(values), "walk"), 24, 12)
    recipe = ForecastRecipe(steps=4, eval_every=2, dim=16, ffn_dim=32, sample_channels=True)
    fit(data, "sdpa", {}, recipe, seed=0, backbone="channel-independent")
    assert {c for training, c in seen if training} == {1} and {c for training, c in seen if not training} == {3}
    assert "sample_channels" in recipe.identity() and "sample_channels" not in ForecastRecipe().identity()
