"""Multi-query associative recall: the data is what Zoology defines, recall is the only way to the answers, and a
small exact-attention model learns it."""

import pytest
import torch
from scipy import stats

from attnzoo.harness.suite import load_suite
from attnzoo.tasks import IGNORE, build_task, check_options
from attnzoo.tasks.recall import gap_weights, mqar
from attnzoo.tasks.train import Recipe, build_model, train, warm_start
from tests.test_harness import problems, write_suite

N, KV, V = 64, 4, 256


def examples(count: int = 500, seed: int = 0, power_a: float = 0.01, n: int = N, kv: int = KV, vocab: int = V):
    return mqar(count, n, kv, vocab, power_a, torch.Generator().manual_seed(seed))


def test_keys_and_values_are_disjoint_and_keys_unique_within_an_example():
    tokens, labels, _ = examples()
    keys, values = tokens[:, 0 : 2 * KV : 2], tokens[:, 1 : 2 * KV : 2]
    assert ((keys >= 1) & (keys < V // 2)).all() and ((values >= V // 2) & (values < V)).all()
    assert all(len(set(row.tolist())) == KV for row in keys)
    assert all(len(set(row.tolist())) == KV for row in values)


def test_every_key_is_queried_once_after_its_pair_and_no_answer_is_visible_after_its_query():
    tokens, labels, _ = examples()
    for row, label in zip(tokens, labels, strict=True):
        pairs = dict(zip(row[0 : 2 * KV : 2].tolist(), row[1 : 2 * KV : 2].tolist(), strict=True))
        queries = (label != IGNORE).nonzero().flatten().tolist()
        assert len(queries) == KV and all(q >= 2 * KV and q % 2 == 0 for q in queries)
        assert sorted(row[queries].tolist()) == sorted(pairs)  # each key queried exactly once
        assert [label[q].item() for q in queries] == [pairs[row[q].item()] for q in queries]  # its own value
        rest = row[2 * KV :].tolist()
        for key, value in pairs.items():
            assert row[: 2 * KV].tolist().count(key) == 1 and rest.count(key) == 1  # once stored, once queried
            assert value not in rest  # never visible after its query (nor anywhere past the pairs)


def test_the_same_seed_gives_the_same_examples():
    assert all(torch.equal(a, b) for a, b in zip(examples(seed=3), examples(seed=3), strict=True))
    assert not torch.equal(examples(seed=3)[0], examples(seed=4)[0])


@pytest.mark.parametrize("power_a", [0.01, 0.5])
def test_query_gaps_follow_the_power_law(power_a):
    """The first gap drawn in each example follows p(g) ∝ a·(g+1)^(a−1) (later ones are drawn without
    replacement); a uniform draw fails the same test."""
    n, kv = 256, 8
    _, _, gaps = examples(count=4000, seed=1, power_a=power_a, n=n, kv=kv, vocab=512)
    space = (n - 2 * kv) // 2
    expected = gap_weights(space, power_a) * 4000
    observed = torch.bincount(gaps[:, 0], minlength=space).double()
    bins = torch.linspace(0, space, 9).long()  # eight bins of gaps, each expecting well over 5
    binned = lambda t: torch.stack([t[a:b].sum() for a, b in zip(bins, bins[1:], strict=False)])  # noqa: E731
    assert stats.chisquare(binned(observed), binned(expected)).pvalue > 0.001
    uniform = torch.bincount(
        torch.randint(0, space, (4000,), generator=torch.Generator().manual_seed(0)), minlength=space
    )
    assert power_a == 0.5 or stats.chisquare(binned(uniform.double()), binned(expected)).pvalue < 1e-6


def test_settings_zoology_rules_out_are_named_at_validate(tmp_path):
    assert check_options("recall", {"seq_len": 63, "num_kv_pairs": 20, "vocab_size": 60}) == [
        "task 'recall': seq_len=63 must be even (queries sit at even offsets)",
        "task 'recall': vocab_size=60 must exceed seq_len=63",
        "task 'recall': num_kv_pairs=20 needs seq_len of at least 4·20 = 80",
    ]
    suite = {
        "name": "recall",
        "variants": ["sdpa"],
        "benchmarks": {"accuracy": {"seeds": 1, "tasks": {"recall": {"seq_len": 64, "vocab_size": 32}}}},
    }
    found = problems(write_suite(tmp_path, suite))
    assert found == [
        f"{tmp_path / 'suite.yaml'}:9: benchmarks.accuracy.tasks.recall: task 'recall': vocab_size=32 must exceed "
        "seq_len=64"
    ]
    suite["benchmarks"]["accuracy"]["tasks"]["recall"]["vocab_size"] = 128
    assert load_suite(write_suite(tmp_path, suite)).name == "recall"


def test_chance_is_one_value_in_the_value_vocabulary_at_most():
    task = build_task("recall", {"seq_len": N, "train_size": 10, "val_size": 10, "test_size": 2000})
    assert task.per_token and task.chance() < 0.05  # values are spread over V/2 = 128 tokens


@pytest.mark.slow
def test_a_small_exact_attention_model_learns_recall():
    """Two layers of sdpa at dim 64 learn MQAR at n = 32 with 2 pairs (chance: about 3%). With 1 head and lr 3e-3
    the same model memorises its 4,000 examples instead (train loss 0.08, test 51%), as Zoology's users report."""
    options = {"seq_len": 32, "num_kv_pairs": 2, "vocab_size": 64, "train_size": 4000, "val_size": 200}
    task = build_task("recall", {**options, "test_size": 400})
    recipe = Recipe(steps=1500, batch_size=64, lr=1e-3, warmup_steps=30, eval_every=250, dim=64, heads=2, dropout=0)
    result = train(task, "sdpa", {}, recipe, seed=0)
    assert result.test_accuracy > 0.9, result


def test_warm_start_copies_each_tensor_whole_or_into_its_leading_block_when_it_grew_with_n():
    short = build_task("recall", {"seq_len": 16, "num_kv_pairs": 2, "vocab_size": 64, "train_size": 8})
    long = build_task("recall", {"seq_len": 32, "num_kv_pairs": 2, "vocab_size": 64, "train_size": 8})
    recipe = Recipe(dim=16, ffn_dim=32, heads=2)
    torch.manual_seed(0)
    before = build_model(short, "linformer", {"k": 4}, recipe)
    torch.manual_seed(1)
    after = build_model(long, "linformer", {"k": 4}, recipe)
    fresh = {k: v.clone() for k, v in after.state_dict().items()}
    warm_start(after, before.state_dict())
    old, new = before.state_dict(), after.state_dict()
    assert torch.equal(new["encoder.tokens.weight"], old["encoder.tokens.weight"])
    assert torch.equal(new["encoder.positions.weight"][:16], old["encoder.positions.weight"])
    assert torch.equal(new["encoder.positions.weight"][16:], fresh["encoder.positions.weight"][16:])
    grown = [k for k in old if old[k].shape != new[k].shape]
    assert "encoder.positions.weight" in grown and all(torch.equal(new[k], old[k]) for k in old if k not in grown)


def test_the_short_convolution_is_causal():
    from attnzoo.tasks.model import ShortConv

    conv, x = ShortConv(8, 3), torch.randn(2, 10, 8)
    changed = x.clone()
    changed[:, 6:] += 1
    assert torch.equal(conv(x)[:, :6], conv(changed)[:, :6]) and not torch.equal(conv(x)[:, 6:], conv(changed)[:, 6:])
