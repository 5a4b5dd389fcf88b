"""Every variant on a CUDA GPU: the same outputs and gradients as on the CPU, and half precision within its rounding;
each forecasting backbone around each variant, the same forecasts and gradients, and its training loop on the GPU.

Sampling variants draw on the CPU generator (attnzoo.zoo.base.Sampler), so a seed means the same samples on both
devices and their outputs compare exactly as the deterministic variants' do; reformer's rotations come from the
device's own RNG, so it is compared with exact attention instead."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from attnzoo.harness.measure import peak_memory
from attnzoo.timeseries.backbones import BACKBONES, Shape
from attnzoo.zoo.conformance import DIM, make_layer, padded_batch
from attnzoo.zoo.registry import list_variants, variant_info
from tests.test_backbones import model as backbone_model
from tests.test_backbones import train_on_sines

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda")
DEVICE_RNG = {"reformer"}  # draws on the device's RNG: no sample-for-sample comparison across devices
# float32 on a GPU sums in another order (and FFTs and matrix products use other kernels) than on a CPU.
FLOAT32_TOL = 1e-4
# A bfloat16 output carries 8 bits of mantissa (relative rounding 2^-8 per element); through projections, a
# softmax and an output projection the error grows to a few times that (0.3% to 0.9% measured on a CPU);
# float16 has 11 bits.
HALF_TOL = {torch.bfloat16: 0.02, torch.float16: 0.004}


def cuda_variants() -> list[str]:
    infos = [variant_info(name) for name in list_variants()]
    return [v.name for v in infos if "cuda" in v.capabilities.devices and v.available.ok]


# Variants whose GPU outputs compare with the CPU's sample for sample (xformers has no float32 kernels).
COMPARABLE = [v for v in cuda_variants() if v not in DEVICE_RNG and v != "xformers"]


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.detach().float().cpu(), want.detach().float().cpu()
    return float((got - want).norm() / want.norm())


def outputs_and_grads(name: str, device: torch.device, dtype: torch.dtype = torch.float32):
    """The layer's outputs at real positions and its input gradient, on `device` in `dtype`."""
    layer = make_layer(name, **variant_info(name).check_params).to(device, dtype)
    x, mask = padded_batch()
    x = x.to(device, dtype).requires_grad_(True)
    mask = mask.to(device)
    y = layer(x, mask=mask if variant_info(name).capabilities.key_padding_mask else None)
    y[mask].float().square().sum().backward()
    return y[mask], x.grad[mask]


@pytest.fixture(autouse=True)
def no_tf32():
    """Full float32 matrix products, so that float32 on the GPU is compared at float32's precision."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("name", COMPARABLE)
def test_cuda_matches_cpu(name):
    y_cpu, g_cpu = outputs_and_grads(name, torch.device("cpu"))
    y_gpu, g_gpu = outputs_and_grads(name, CUDA)
    assert y_gpu.device.type == "cuda"
    assert relative_error(y_gpu, y_cpu) < FLOAT32_TOL
    assert relative_error(g_gpu, g_cpu) < FLOAT32_TOL


@pytest.mark.parametrize("name", cuda_variants())
def test_half_precision_on_cuda(name):
    """Each half dtype a variant declares gives, on the GPU, its own float32 output up to the dtype's rounding."""
    halves = [getattr(torch, d) for d in variant_info(name).capabilities.dtypes if d != "float32"]
    if not halves:
        pytest.skip(f"{name} declares float32 only")
    reference = "sdpa" if name == "xformers" else name  # xformers has no float32 kernels to compare with
    y32, g32 = outputs_and_grads(reference, CUDA)
    for dtype in halves:
        y, g = outputs_and_grads(name, CUDA, dtype)
        assert y.dtype == dtype and torch.isfinite(y).all() and torch.isfinite(g).all()
        if name not in DEVICE_RNG:  # a half-precision draw of rotations hashes differently: nothing to compare
            assert relative_error(y, y32) < HALF_TOL[dtype], dtype
            assert relative_error(g, g32) < 2 * HALF_TOL[dtype], dtype


def test_reformer_on_cuda_is_seeded_and_near_exact_attention():
    """Rotations drawn on the GPU: two layers under one seed agree, and the output is as near softmax attention
    as on the CPU (with one hash bucket per 4 of the 40 tokens, it is not exact anywhere)."""
    first, _ = outputs_and_grads("reformer", CUDA)
    again, _ = outputs_and_grads("reformer", CUDA)
    assert torch.equal(first, again)
    exact_gpu, _ = outputs_and_grads("vanilla", CUDA)
    error_gpu = relative_error(first, exact_gpu)
    error_cpu = relative_error(outputs_and_grads("reformer", torch.device("cpu"))[0], exact_gpu)
    assert error_gpu < 2 * error_cpu + 0.05


def test_xformers_equals_sdpa():
    if "xformers" not in cuda_variants():
        pytest.skip(f"xformers: {variant_info('xformers').available}")
    for dtype in (torch.float16, torch.bfloat16):
        y_x, g_x = outputs_and_grads("xformers", CUDA, dtype)
        y_s, g_s = outputs_and_grads("sdpa", CUDA, dtype)
        assert relative_error(y_x, y_s) < HALF_TOL[dtype]  # two kernels, each within its rounding of float32
        assert relative_error(g_x, g_s) < 2 * HALF_TOL[dtype]


def test_cuda_peak_memory_is_the_quadratic_score_matrix():
    """The memory metric on CUDA: textbook attention holds (B, h, n, n) scores, so its peak grows with n² and
    is at least the one score matrix; fused sdpa's is far less."""
    n, batch, heads = 2048, 1, 2

    def peak(name: str) -> int:
        layer = make_layer(name, max_seq_len=n).to(CUDA)
        x = torch.randn(batch, n, DIM, device=CUDA)
        with torch.no_grad():
            return peak_memory(lambda: layer(x), CUDA)

    score_bytes = batch * heads * n * n * 4
    assert peak("vanilla") >= score_bytes
    assert peak("sdpa") < score_bytes / 4


FORECAST_SHAPE = Shape(
    channels=3, input_len=48, horizon=24, dim=16, depth=2, ffn_dim=32, dropout=0.0, patch_len=8, stride=4
)


def forecast_on(model: torch.nn.Module, x: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The forecast and the input gradient on `device`; sampling variants draw the same samples on either device."""
    x = x.detach().to(device).requires_grad_(True)  # a leaf of its own on either device
    torch.manual_seed(1)
    y = model.to(device)(x)
    y.square().sum().backward()
    return y, x.grad


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("name", COMPARABLE)
def test_forecasting_backbones_on_cuda_match_cpu(backbone, name):
    """Each backbone (its normalisation, its heads, the Fourier extrapolation's FFTs) around each variant: the
    same forecast and gradient on the GPU as on the CPU."""
    model = backbone_model(backbone, FORECAST_SHAPE, name, **variant_info(name).check_params)
    x = torch.randn(4, FORECAST_SHAPE.input_len, FORECAST_SHAPE.channels)
    y_cpu, g_cpu = forecast_on(copy.deepcopy(model), x, torch.device("cpu"))
    y_gpu, g_gpu = forecast_on(model, x, CUDA)
    assert y_gpu.device.type == "cuda"
    assert relative_error(y_gpu, y_cpu) < FLOAT32_TOL
    assert relative_error(g_gpu, g_cpu) < FLOAT32_TOL


@pytest.mark.parametrize("backbone", BACKBONES)
def test_forecasting_trains_and_scores_on_cuda(backbone):
    """The training loop's device path: batches, validation and the test score all on the GPU."""
    data, result = train_on_sines(backbone, "s3attention", device="cuda")
    assert math.isfinite(result.mse) and result.steps == 40 and result.windows == len(data.test)
