"""Each approximation equals exact softmax attention where its math says it must."""

import pytest
import torch

from tests.conftest import make, rel_err


def exact(q, k, v, mask=None):
    return make("vanilla").attend(q, k, v, mask)


def ragged_mask(n: int) -> torch.Tensor:
    mask = torch.ones(2, n, dtype=torch.bool)
    mask[1, ::3] = False  # padding need not be a suffix
    return mask


def test_sdpa_equals_vanilla(qkv):
    q, k, v = qkv
    mask = ragged_mask(q.shape[2])
    torch.testing.assert_close(make("sdpa").attend(q, k, v, mask), exact(q, k, v, mask), rtol=1e-5, atol=1e-5)
    for causal in (False, True):
        x = torch.randn(2, 48, 32)
        torch.testing.assert_close(make("sdpa", causal=causal)(x), make("vanilla", causal=causal)(x))


def test_nystromformer_with_n_landmarks_is_exact(qkv):
    q, k, v = qkv
    layer = make("nystromformer", num_landmarks=q.shape[2], pinv_iterations=30)
    assert rel_err(layer.attend(q, k, v), exact(q, k, v)) < 1e-4


@pytest.mark.parametrize("masked", [False, True])
def test_nystromformer_with_at_least_n_landmarks_is_exact_softmax(masked):
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 2, 64, 16, generator=g) for _ in range(3))
    mask = ragged_mask(64) if masked else None
    for m in (64, 100):  # default pinv iterations: no approximation left to converge
        torch.testing.assert_close(
            make("nystromformer", num_landmarks=m).attend(q, k, v, mask), exact(q, k, v, mask), rtol=1e-5, atol=1e-5
        )


def test_nystromformer_error_falls_with_landmarks(qkv):
    q, k, v = qkv
    errors = [rel_err(make("nystromformer", num_landmarks=m).attend(q, k, v), exact(q, k, v)) for m in (4, 48)]
    assert errors[1] < errors[0] / 10


@pytest.mark.parametrize("masked", [False, True])
def test_skeinformer_covering_all_tokens_is_exact(qkv, masked):
    q, k, v = qkv
    mask = ragged_mask(q.shape[2]) if masked else None
    out = make("skeinformer", sample_size=q.shape[2]).attend(q, k, v, mask)
    torch.testing.assert_close(out, exact(q, k, v, mask), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("masked", [False, True])
def test_informer_with_all_queries_active_is_exact(qkv, masked):
    q, k, v = qkv
    mask = ragged_mask(q.shape[2]) if masked else None
    out = make("informer", factor=q.shape[2]).attend(q, k, v, mask)
    expected = exact(q, k, v, mask)
    real = torch.ones(2, q.shape[2], dtype=torch.bool) if mask is None else mask
    torch.testing.assert_close(out.transpose(1, 2)[real], expected.transpose(1, 2)[real], rtol=1e-4, atol=1e-5)


def test_informer_inactive_queries_get_mean_of_real_values(qkv):
    q, k, v = qkv
    mask = ragged_mask(q.shape[2])
    out = make("informer", factor=1).attend(q, k, v, mask)  # u = ceil(ln 48) = 4 active queries
    mean_v = (v * mask[:, None, :, None]).sum(2) / mask.sum(1)[:, None, None]
    matches = torch.isclose(out, mean_v[:, :, None, :], atol=1e-6).all(-1)  # (B, H, n)
    assert (matches.sum(-1) >= q.shape[2] - 4).all()


def test_linformer_with_identity_projections_is_exact(qkv):
    q, k, v = qkv
    n = q.shape[2]
    layer = make("linformer", max_seq_len=n, k=n)
    with torch.no_grad():
        layer.inner.proj_k.copy_(torch.eye(n))
        layer.inner.proj_v.copy_(torch.eye(n))
    torch.testing.assert_close(layer.attend(q, k, v), exact(q, k, v), rtol=1e-5, atol=1e-5)


def test_performer_error_shrinks_as_features_grow(qkv):
    q, k, v = (t * 0.5 for t in qkv)  # moderate logits, where FAVOR+ variance is finite and testable
    target = exact(q, k, v)
    mean_error = {
        m: sum(rel_err(make("performer", nb_features=m, seed=s).attend(q, k, v), target) for s in range(5)) / 5
        for m in (8, 64, 1024)
    }
    assert mean_error[8] > mean_error[64] > mean_error[1024]
    assert mean_error[1024] < 0.1


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("n", "window"), [(50, 8), (64, 16), (7, 8)])
def test_local_equals_the_local_attention_package_at_real_positions(causal, n, window):
    """The package's own windowing (look-around one window back, one forward unless causal, autopad), its
    rotary embeddings off; padded queries are not compared (the package fills its look-around with -1s)."""
    from local_attention import LocalAttention

    torch.manual_seed(0)
    q, k, v = torch.randn(3, 3, 2, n, 16).unbind(0)
    mask = torch.ones(3, n, dtype=torch.bool)
    mask[1, n - 5 :] = False
    reference = LocalAttention(window_size=window, causal=causal, autopad=True, use_rotary_pos_emb=False)
    ours = make("local", window_size=window, causal=causal).attend(q, k, v, mask)
    real = mask[:, None, :, None]
    torch.testing.assert_close(ours * real, reference(q, k, v, mask=mask) * real, rtol=1e-6, atol=1e-6)


def test_local_with_a_window_covering_the_sequence_is_exact_softmax(qkv):
    q, k, v = qkv
    mask = ragged_mask(q.shape[2])
    window = make("local", window_size=q.shape[2]).attend(q, k, v, mask)
    torch.testing.assert_close(window, exact(q, k, v, mask), rtol=1e-5, atol=1e-5)


def _linear_by_matrix(q, k, v, mask, causal):
    phi = lambda x: torch.nn.functional.elu(x) + 1  # noqa: E731
    weights = phi(q) @ phi(k).transpose(-1, -2) * mask[:, None, None, :]
    return weights.tril() if causal else weights


@pytest.mark.parametrize("causal", [False, True])
def test_linear_is_the_normalised_feature_map_attention_written_as_a_matrix(causal):
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 2, 150, 16).unbind(0)  # 150: causal chunks of 64 with a partial last one
    mask = torch.ones(2, 150, dtype=torch.bool)
    mask[1, 100:] = False
    weights = _linear_by_matrix(q, k, v, mask, causal)
    expected = weights @ v / (weights.sum(-1, keepdim=True) + 1e-6)
    got = make("linear", causal=causal).attend(q, k, v, mask)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_linear_lra_code_form_is_the_nystromformer_lra_computation():
    """attention_linear.py of the Nyströmformer LRA code: no normaliser, phi(Q) and phi(K) each over n^(1/4)."""
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 2, 81, 16).unbind(0)
    mask = torch.ones(2, 81, dtype=torch.bool)
    mask[0, 70:] = False
    expected = _linear_by_matrix(q, k, v, mask, False) @ (v * mask[:, None, :, None]) / 81**0.5
    got = make("linear", form="lra-code").attend(q, k, v, mask)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_causal_performer_is_its_feature_attention_over_earlier_keys(qkv):
    """phi(Q) phi(K)^T restricted to j <= i and normalised per row: the package's causal prefix sums, with key
    features that depend on their own key alone."""
    from performer_pytorch.performer_pytorch import softmax_kernel

    from attnzoo.zoo.performer import causal_key_features

    q, k, v = qkv
    layer = make("performer", causal=True, nb_features=64)
    projection = layer.fast.projection_matrix
    phi_q = softmax_kernel(q, projection_matrix=projection, is_query=True)
    weights = (phi_q @ causal_key_features(k, projection).transpose(-1, -2)).tril()
    expected = weights @ v / (weights.sum(-1, keepdim=True) + 1e-6 * phi_q.sum(-1, keepdim=True))
    torch.testing.assert_close(layer.attend(q, k, v), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_cosformer_is_relu_attention_reweighted_by_the_cosine_of_the_distance(causal):
    """relu(q_i)·relu(k_j) cos(π/2 · (i - j) / M), M the real length, over the (earlier) real keys, normalised;
    the release's sine/cosine split computes this in linear time. Compared at real positions."""
    import math

    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 2, 150, 16).unbind(0)
    mask = torch.ones(2, 150, dtype=torch.bool)
    mask[1, 100:] = False
    length = mask.sum(1).float()[:, None, None, None]
    i = torch.arange(1, 151).float()
    weights = torch.relu(q) @ torch.relu(k).transpose(-1, -2) * mask[:, None, None, :]
    weights = weights * torch.cos(math.pi / 2 * (i[:, None] - i[None, :]) / length)
    weights = weights.tril() if causal else weights
    expected = weights @ v / weights.sum(-1, keepdim=True).clamp_min(1e-6)
    real = mask[:, None, :, None]
    got = make("cosformer", causal=causal).attend(q, k, v, mask)
    torch.testing.assert_close(got * real, expected * real, rtol=1e-5, atol=1e-5)


def test_skyformers_inverse_iteration_converges_to_the_inverse():
    """On the kind of matrix it inverts: a Gaussian kernel matrix with the ridge, symmetrically normalised."""
    from attnzoo.zoo.skyformer import RIDGE, iterative_inverse, rbf

    torch.manual_seed(0)
    x = torch.randn(2, 16, 8) / 8**0.25
    kernel = rbf(x, x) + RIDGE * torch.eye(16)
    scale = kernel.sum(-1).rsqrt()
    kernel = scale[..., :, None] * kernel * scale[..., None, :]
    torch.testing.assert_close(iterative_inverse(kernel, 30), torch.linalg.inv(kernel), rtol=1e-3, atol=1e-3)


def test_skyformer_error_against_gaussian_kernel_attention_falls_with_landmarks(qkv):
    """Skyformer approximates exp(-|q' - k'|²/2) V with q' = q / p^(1/4), k' = k / p^(1/4) (no normalisation)."""
    from attnzoo.zoo.skyformer import rbf

    q, k, v = qkv
    scale = q.shape[-1] ** -0.25
    exact_rbf = rbf(q * scale, k * scale) @ v
    errors = {
        m: sum(rel_err(make("skyformer", nb_features=m, seed=s).attend(q, k, v), exact_rbf) for s in range(5)) / 5
        for m in (4, 16, 64)
    }
    assert errors[64] < errors[16] < errors[4], errors


def test_transformer_ls_is_one_softmax_over_the_window_and_the_compressed_keys():
    """Written out per query: its segment's window (w/2 either side of the segment, real keys only) and the r
    keys the dynamic projection compresses the real sequence into, in one softmax."""
    from einops import rearrange

    torch.manual_seed(0)
    n, w, r = 40, 8, 4
    layer = make("transformer-ls", window_size=w, num_landmarks=r)
    x = torch.randn(2, n, 32)
    mask = torch.ones(2, n, dtype=torch.bool)
    mask[1, 29:] = False
    split = lambda t: rearrange(t, "b n (h p) -> b h n p", h=2)  # noqa: E731
    q = split(layer.to_q(x)) / 16**0.5
    k, v = split(layer.norm_keys(layer.to_k(x))), split(layer.norm_keys(layer.to_v(x)))
    weights = layer.to_projection(x).masked_fill(~mask[:, :, None], float("-inf")).softmax(dim=1)
    weights = rearrange(weights, "b n (h r) -> b h r n", h=2)
    kc, vc = (split(layer.norm_compressed(rearrange(weights @ t, "b h r p -> b r (h p)"))) for t in (k, v))
    expected = torch.zeros(2, 2, n, 16)
    for i in range(n):
        start = i // w * w
        window = [j for j in range(start - w // 2, start + w + w // 2) if 0 <= j < n]
        for bi in range(2):
            keys = [j for j in window if mask[bi, j]]
            scores = torch.cat(
                [
                    q[bi, :, i : i + 1] @ kc[bi].transpose(-1, -2),
                    q[bi, :, i : i + 1] @ k[bi, :, keys].transpose(-1, -2),
                ],
                -1,
            )
            probs = scores.softmax(-1)
            expected[bi, :, i] = (probs[..., :r] @ vc[bi] + probs[..., r:] @ v[bi, :, keys])[:, 0]
    got = layer(x, mask)
    want = layer.to_out(rearrange(expected, "b h n p -> b n (h p)"))
    torch.testing.assert_close(got * mask[..., None], want * mask[..., None], rtol=1e-5, atol=1e-5)


def _bigbird_pattern(layer, blocks: int, heads: int, w: int) -> torch.Tensor:
    """The dense (heads, n, n) pattern of a draw: global first and last query blocks see everything; every other
    query block sees the key blocks listed for it."""
    index, ok = layer.key_blocks(blocks, heads, torch.device("cpu"))
    allowed = torch.zeros(heads, blocks * w, blocks * w, dtype=torch.bool)
    allowed[:, :w], allowed[:, -w:] = True, True
    for h in range(heads):
        for row in range(blocks - 2):
            for slot, block in enumerate(index[h, row].tolist()):
                if ok[h, row, slot]:
                    allowed[h, (row + 1) * w : (row + 2) * w, block * w : (block + 1) * w] = True
    return allowed


def test_bigbird_is_softmax_over_its_block_pattern():
    torch.manual_seed(0)
    layer = make("bigbird", block_size=4, num_random_blocks=2, seed=3)
    q, k, v = torch.randn(3, 2, 2, 40, 16).unbind(0)
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[1, 30:] = False
    state = layer.sampler.generator.get_state()
    got = layer.attend(q, k, v, mask)
    layer.sampler.generator.set_state(state)  # the same draw again
    allowed = _bigbird_pattern(layer, 10, 2, 4)[None] & mask[:, None, None, :]
    scores = (q @ k.transpose(-1, -2) / 4).masked_fill(~allowed, float("-inf"))
    real = mask[:, None, :, None]
    torch.testing.assert_close(got * real, (scores.softmax(-1) @ v) * real, rtol=1e-5, atol=1e-5)


def test_bigbird_random_blocks_are_distinct_and_outside_each_rows_window_and_the_global_blocks():
    layer = make("bigbird", num_random_blocks=3, seed=0)
    index, ok = layer.key_blocks(16, 2, torch.device("cpu"))
    for h in range(2):
        for row in range(14):
            block = row + 1
            chosen = index[h, row, 5:].tolist()
            assert len(set(chosen)) == 3 and not set(chosen) & {0, 15, block - 1, block, block + 1}
            assert ok[h, row, 5:].all()
    counts = torch.bincount(index[..., 5:].flatten(), minlength=16)
    assert counts[0] == counts[15] == 0 and (counts[1:15] > 0).all()  # every middle block is drawn somewhere


def test_bigbird_memory_grows_linearly_with_n_forward_and_backward():
    """Its key blocks are picked by indexing: a gather on an expanded (query block x key block) view made the
    backward's memory quadratic in n (1.1 GiB at n = 16384 where it is now 0.3)."""
    from attnzoo.harness.measure import layer_call, peak_memory

    def peak(n: int) -> int:
        layer = make("bigbird", max_seq_len=n, block_size=16, seed=0).train()
        call = layer_call(layer, torch.randn(1, n, layer.dim), None, backward=True)
        call()
        return peak_memory(call, torch.device("cpu"))

    assert peak(4096) < 2.3 * peak(2048)
