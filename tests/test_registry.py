"""The registry: names, parameter validation, availability, references and entry-point plugins."""

import subprocess
import sys
import types

import pytest
import torch

import attnzoo
from attnzoo.cli import main
from attnzoo.zoo import (
    DuplicateVariantError,
    ParameterError,
    UnavailableVariantError,
    UnknownVariantError,
    registry,
)


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownVariantError, match="did you mean 'skeinformer'"):
        attnzoo.create_attention("skeinfomer", 32, 2)


def test_unknown_parameter_names_the_variant_and_the_allowed_ones():
    with pytest.raises(ParameterError) as err:
        attnzoo.create_attention("nystromformer", 32, 2, num_landmark=8)
    text = str(err.value)
    assert "nystromformer: unknown parameter 'num_landmark'; did you mean 'num_landmarks'?" in text
    assert "pinv_iterations (int ≥ 1, default 6)" in text


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"num_landmarks": "8"}, "valid integer"),
        ({"num_landmarks": 0}, "greater than or equal to 1"),
        ({"num_landmarks": 8.5}, "valid integer"),
        ({"conv_kernel": True}, "valid integer"),
    ],
)
def test_ill_typed_or_out_of_bounds_parameter(params, fragment):
    with pytest.raises(ParameterError, match=fragment):
        attnzoo.create_attention("nystromformer", 32, 2, **params)


def test_shape_and_length_requirements():
    with pytest.raises(ParameterError, match="multiple of heads"):
        attnzoo.create_attention("vanilla", 30, 4)
    with pytest.raises(ParameterError, match="needs max_seq_len"):
        attnzoo.create_attention("linformer", 32, 2)


def test_duplicate_registration_is_an_error():
    with pytest.raises(DuplicateVariantError, match="already registered"):
        attnzoo.register_variant("vanilla", description="x", source="x")(torch.nn.Identity)


def test_xformers_unavailable_without_cuda_says_why():
    spec = attnzoo.variant_info("xformers")
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    assert not spec.available.ok and spec.available.reason and spec.available.fix
    with pytest.raises(UnavailableVariantError, match="unavailable here"):
        attnzoo.create_attention("xformers", 32, 2)


def test_xformers_whose_kernels_fail_is_unavailable_and_says_why(monkeypatch):
    """An xformers built for another torch imports but fails at its first call: the probe's call must say so in one
    line. The probe runs on the CPU here with a stand-in `xformers.ops`, first failing as such a wheel does, then
    working."""
    from attnzoo.zoo import exact

    ops = types.ModuleType("xformers.ops")

    def no_kernels(q, k, v):
        raise NotImplementedError("No operator found for `memory_efficient_attention_forward` with inputs:\n  query")

    ops.memory_efficient_attention = no_kernels
    monkeypatch.setitem(sys.modules, "xformers", types.ModuleType("xformers"))
    monkeypatch.setitem(sys.modules, "xformers.ops", ops)
    exact._xformers_kernels_run.cache_clear()
    failed = exact._xformers_kernels_run("cpu")
    assert not failed.ok and failed.fix
    assert "no working CUDA kernels" in failed.reason and "(No operator found for" in failed.reason
    assert "\n" not in failed.reason
    ops.memory_efficient_attention = lambda q, k, v: q
    exact._xformers_kernels_run.cache_clear()
    assert exact._xformers_kernels_run("cpu").ok
    exact._xformers_kernels_run.cache_clear()


def test_list_variants_filters_by_glob():
    assert attnzoo.list_variants("*former") == [
        "cosformer",
        "informer",
        "linformer",
        "nystromformer",
        "performer",
        "reformer",
        "skeinformer",
        "skyformer",
    ]


class Doubler(torch.nn.Module):
    """An unregistered module, reachable as tests.test_registry:Doubler."""

    def __init__(self, dim: int, heads: int, scale: float = 2.0):
        super().__init__()
        self.scale = scale

    def forward(self, x, mask=None):
        return x * self.scale


def test_module_reference_resolves_registered_and_plain_classes():
    assert attnzoo.variant_info("attnzoo.zoo.exact:VanillaAttention").name == "vanilla"
    layer = attnzoo.create_attention("tests.test_registry:Doubler", 8, 2, scale=3.0)
    assert torch.equal(layer(torch.ones(1, 2, 8)), torch.full((1, 2, 8), 3.0))
    with pytest.raises(ParameterError, match="unknown parameter 'scael'"):
        attnzoo.create_attention("tests.test_registry:Doubler", 8, 2, scael=3.0)
    with pytest.raises(UnknownVariantError, match="no attribute"):
        attnzoo.variant_info("tests.test_registry:Nope")
    with pytest.raises(ParameterError, match="required parameter 'width' is missing"):
        attnzoo.create_attention("tests.test_registry:NeedsWidth", 8, 2)


class NeedsWidth(torch.nn.Module):
    def __init__(self, dim: int, heads: int, width: int):
        super().__init__()

    def forward(self, x, mask=None):
        return x


PLUGIN = """
import torch
import attnzoo
from attnzoo.zoo.params import VariantParams


class HalfParams(VariantParams):
    factor: float = 0.5


@attnzoo.register_variant("halver", description="scales x", source="a test plugin", params=HalfParams)
class Halver(torch.nn.Module):
    def __init__(self, dim, heads, max_seq_len=None, factor=0.5):
        super().__init__()
        self.factor = factor

    def forward(self, x, mask=None):
        return x * self.factor
"""


@pytest.fixture
def plugin_dist(tmp_path, monkeypatch):
    """A real installed distribution on sys.path: a module plus dist-info with entry points, one broken."""
    (tmp_path / "zoo_plugin_demo.py").write_text(PLUGIN)
    info = tmp_path / "zoo_plugin_demo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-plugin-demo\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[attnzoo.variants]\nhalver = zoo_plugin_demo\nbroken = zoo_plugin_missing_module:Thing\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.reload_plugins()
    yield tmp_path
    registry.unregister_variant("halver")
    registry.reload_plugins()


def test_entry_point_plugin_is_discovered_and_a_broken_one_reported(plugin_dist):
    layer = attnzoo.create_attention("halver", 8, 2, factor=0.25)
    assert torch.equal(layer(torch.ones(1, 3, 8)), torch.full((1, 3, 8), 0.25))
    assert "halver" in attnzoo.list_variants()
    assert attnzoo.variant_info("halver").plugin.startswith("halver")
    errors = registry.plugin_errors()
    assert "ModuleNotFoundError" in errors["broken"]
    with pytest.raises(UnknownVariantError, match="plugin 'broken' failed to load"):
        attnzoo.create_attention("broken", 8, 2)
    attnzoo.create_attention("vanilla", 8, 2)  # the others still work


def test_cli_list_and_show(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "skeinformer" in out and "xformers" in out
    assert main(["show", "performer"]) == 0
    out = capsys.readouterr().out
    assert "nb_features" in out and "deviations" in out
    assert main(["show", "performr"]) == 2
    assert "did you mean 'performer'" in capsys.readouterr().err
    assert main(["show", "s3-paper"]) == 0  # a forecasting backbone: what it computes and its deviations
    out = " ".join(capsys.readouterr().out.split())
    assert "forecasting backbone" in out and "sqrt(var + 1)" in out and "Deviations: the release builds" in out


@pytest.mark.slow
def test_console_script_runs():
    done = subprocess.run([sys.executable, "-m", "attnzoo.cli", "show", "nope"], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "unknown attention variant 'nope'" in " ".join(done.stderr.split())


def test_wording_of_cross_parameter_errors_and_plurals():
    from pydantic import model_validator

    from attnzoo.leaderboards.markdown import sentence
    from attnzoo.leaderboards.tables import plural
    from attnzoo.zoo.params import VariantParams

    class Pair(VariantParams):
        low: int = 1
        high: int = 2

        @model_validator(mode="after")
        def ordered(self):
            if self.low > self.high:
                raise ValueError("low must not exceed high")
            return self

    attnzoo.register_variant("pair_demo", description="d", source="s", params=Pair)(lambda **_: torch.nn.Identity())
    try:
        with pytest.raises(attnzoo.VariantError) as err:
            attnzoo.create_attention("pair_demo", 8, 2, low=3, high=1)
        assert str(err.value).splitlines()[0] == "pair_demo: low must not exceed high"  # no pydantic internals
        with pytest.raises(attnzoo.VariantError) as err:
            attnzoo.create_attention("pair_demo", 8, 2, zzz=1)
        assert "did you mean" not in str(err.value)  # nothing resembles 'zzz'
    finally:
        attnzoo.zoo.registry.unregister_variant("pair_demo")
    assert (plural(1, "layer"), plural(2, "layer")) == ("1 layer", "2 layers")
    assert sentence("A description ") == "A description." and sentence("Done!") == "Done!"
