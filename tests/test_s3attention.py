"""S3Attention's own properties: the smoother's math, the branches, padding, persistence, no n x n anywhere."""

import io

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import attnzoo
from attnzoo.zoo import ParameterError
from attnzoo.zoo.s3attention import direct_circular_convolution, incoherence, sampled_positions, token_branch
from attnzoo.zoo.s3attention.smoother import StemConv
from tests.conftest import make


def merge(t: torch.Tensor) -> torch.Tensor:
    """(B, H, n, p) -> the branches' heads-merged (B, n, H·p)."""
    return t.transpose(1, 2).flatten(2)


def test_fourier_conv_is_a_circular_convolution_of_the_segment_average():
    layer = make("s3attention", max_seq_len=32, r=4)
    fourier = layer.smoother.fourier
    x = torch.randn(2, 20, 32)
    expected = direct_circular_convolution(fourier.segment_average(x).repeat_interleave(8, dim=-1), fourier.filters())
    torch.testing.assert_close(fourier(x), expected, rtol=1e-4, atol=1e-5)
    assert torch.allclose(fourier.segment_average(x)[..., 1], x[..., 8:16].mean(-1))


@pytest.mark.parametrize("kernel, n", [(1, 7), (3, 7), (5, 7), (5, 2), (3, 1)])
def test_stem_is_conv1d_with_the_same_gradients(kernel, n):
    """StemConv computes Conv1d(padding=k//2) channels-last, with hand-written gradients for z, weight and bias."""
    conv = torch.nn.Conv1d(6, 4, kernel, padding=kernel // 2).double()
    z = torch.randn(2, n, 6, dtype=torch.double, requires_grad=True)
    taps = lambda: conv.weight.permute(2, 1, 0)  # noqa: E731
    expected = conv(z.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(StemConv.apply(z, taps(), conv.bias), expected)
    assert torch.autograd.gradcheck(lambda z, w, b: StemConv.apply(z, w, b), (z, taps(), conv.bias))


def test_token_branch_with_every_position_sampled_is_exact_attention(qkv):
    q, k, v = qkv
    mask = torch.ones(2, q.shape[2], dtype=torch.bool)
    mask[0, 30:] = False
    exact = make("vanilla").attend(q, k, v, mask)
    every = torch.arange(q.shape[2])
    # Positions beyond the input's length are ignored rather than wrapped around.
    for index in (every, torch.cat([every, torch.tensor([100, 200])])):
        positions, valid = sampled_positions(index, q.shape[2], mask)
        out = token_branch(merge(q), merge(k[:, :, positions]), merge(v[:, :, positions]), valid, heads=q.shape[1])
        torch.testing.assert_close(out, merge(exact), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("masked", [False, True])
def test_forward_equals_the_kernel_on_full_projections(masked):
    """forward projects only the sampled rows/channels of K and V; that must not change a single output."""
    layer = make("s3attention", max_seq_len=64, s1=16)
    x = torch.randn(2, 50, 32)
    mask = torch.arange(50)[None, :] < torch.tensor([[50], [31]]) if masked else None
    reference = layer.project_out(layer.attend(*layer.projections(layer.smoother(x, mask)), mask))
    torch.testing.assert_close(layer(x, mask=mask), reference, rtol=1e-5, atol=1e-5)


def test_padded_batch_equals_each_sequence_alone_in_eval_mode():
    layer = make("s3attention", max_seq_len=64, s1=32)
    lengths = [64, 41, 17]
    x = torch.randn(3, 64, 32)
    mask = torch.arange(64)[None, :] < torch.tensor(lengths)[:, None]
    batch = layer(x, mask=mask)
    for i, n in enumerate(lengths):
        torch.testing.assert_close(batch[i, :n], layer(x[i : i + 1, :n])[0], rtol=1e-5, atol=1e-5)


def test_training_statistics_ignore_padded_tokens():
    layer = make("s3attention", max_seq_len=64).train()
    x = torch.randn(2, 64, 32)
    mask = torch.ones(2, 64, dtype=torch.bool)
    mask[1, 20:] = False
    layer(x, mask=mask)
    other = make("s3attention", max_seq_len=64).train()
    other(torch.where(mask[..., None], x, 1e3), mask=mask)
    torch.testing.assert_close(layer.smoother.norm.running_mean, other.smoother.norm.running_mean)
    torch.testing.assert_close(layer.smoother.norm.running_var, other.smoother.norm.running_var)


def test_state_dict_round_trip_reproduces_outputs():
    layer = make("s3attention", max_seq_len=64, seed=1)
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    fresh = make("s3attention", max_seq_len=64, seed=2, weights_seed=5)
    x = torch.randn(2, 64, 32)
    assert not torch.allclose(fresh(x), layer(x))
    fresh.load_state_dict(torch.load(buffer))
    assert torch.equal(fresh.token_index, layer.token_index)
    torch.testing.assert_close(fresh(x), layer(x))


def test_resample_redraws_in_training_and_holds_still_in_eval():
    layer = make("s3attention", max_seq_len=64, sampling="resample", s1=4)
    x = torch.randn(1, 64, 32)
    assert torch.equal(layer(x), layer(x))
    layer.train()
    assert not torch.allclose(layer(x), layer(x))


def test_official_preset_runs_and_fixes_its_choices():
    layer = make("s3attention", max_seq_len=64, preset="official", s1=4)
    assert layer.smoother.fourier.groups is None and layer.smoother.stem.kernel_size == (1,)
    assert isinstance(layer.smoother.activation, torch.nn.ELU) and layer.s2 == 4
    assert layer(torch.randn(2, 64, 32)).shape == (2, 64, 32)
    with pytest.raises(ParameterError, match="preset 'official' fixes stem_kernel=1"):
        attnzoo.create_attention("s3attention", 32, 2, max_seq_len=64, preset="official", stem_kernel=3)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"s2": 17}, "exceeds the head width"),
        ({"r": 5}, "must divide dim"),
        ({"stem_kernel": 2}, "must be odd"),
        ({"sampling": "sometimes"}, "'fixed' or 'resample'"),
    ],
)
def test_bad_parameters_are_clear_errors(params, message):
    with pytest.raises(ParameterError, match=message):
        attnzoo.create_attention("s3attention", 32, 2, max_seq_len=64, **params)


class LargestTensor(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.largest, self.op = 0, None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.numel() > self.largest:
                self.largest, self.op = t.numel(), func
        return out


def test_no_n_by_n_tensor_in_forward_or_backward():
    n = 4096
    torch.manual_seed(0)
    layer = attnzoo.create_attention("s3attention", 64, 2, max_seq_len=n)
    x = torch.randn(1, n, 64, requires_grad=True)
    mask = torch.ones(1, n, dtype=torch.bool)
    with LargestTensor() as probe:
        layer(x, mask=mask).square().sum().backward()
    assert probe.largest < n * n / 8, f"{probe.op} made a tensor of {probe.largest} elements"
    assert probe.largest >= n * 64  # the probe saw the (n, dim) activations, so it was really watching


def test_incoherence_spans_its_range():
    n, rank = 64, 4
    hadamard = torch.ones(1, 1)
    while hadamard.shape[0] < n:  # Sylvester's construction: orthogonal ±1 columns
        hadamard = torch.cat([torch.cat([hadamard, hadamard], 1), torch.cat([hadamard, -hadamard], 1)])
    spread = hadamard[:, :rank] * torch.tensor([3.0, 2.0, 1.0, 0.5])  # every token carries equal energy
    assert incoherence(spread, rank) == pytest.approx(1.0)
    spiky = torch.zeros(n, rank)
    spiky[torch.arange(rank), torch.arange(rank)] = 1.0
    assert incoherence(spiky, rank) == pytest.approx(n / rank)
    with pytest.raises(ValueError, match="rank must be in"):
        incoherence(spiky, 10)
