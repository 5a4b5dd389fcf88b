"""Multi-query associative recall (MQAR), as Zoology defines it (Arora, Eyuboglu et al., "Zoology: Measuring and
Improving Recall in Efficient Language Models", 2023; `zoology/data/multiquery_ar.py`).

An example of length n: `num_kv_pairs` key-value pairs laid out k v k v ... (keys unique within the example, drawn
from [1, V/2); values from [V/2, V)), then the query region, where each key is queried once, at an even offset
2·g after the pairs, the gaps g drawn without replacement with p(g) ∝ a·(g+1)^(a−1) (`power_a`; small a puts most
queries close to the pairs, as repeated bigrams cluster in text). The label of a query position is its key's
value; every other position is unscored. The answer is never the token after its query, so a model that sees the
whole sequence (non-causal attention) learns the same task as a causal one.

Deviation, so that recall is the only way to the answer: the tokens at non-query positions are random, as in
Zoology, but never one of the example's own keys or values (Zoology draws them from the whole vocabulary, so a key
can appear a second time and a value can appear after its query). Token 0 is padding here and is never drawn.
"""

from __future__ import annotations

from typing import Any

import torch

from attnzoo.tasks.base import IGNORE, Split, TaskData
from attnzoo.tasks.registry import register_task

CHUNK = 2048  # examples generated at a time (the per-example draws without replacement are (chunk, V/2) tensors)


def option_problems(o: dict[str, Any]) -> list[str]:
    """What Zoology asserts of an MQAR setting, as problems naming the option."""
    n, kv, vocab = o["seq_len"], o["num_kv_pairs"], o["vocab_size"]
    problems = []
    if n % 2:
        problems.append(f"task 'recall': seq_len={n} must be even (queries sit at even offsets)")
    if vocab <= n:
        problems.append(f"task 'recall': vocab_size={vocab} must exceed seq_len={n}")
    if 4 * kv > n:
        problems.append(f"task 'recall': num_kv_pairs={kv} needs seq_len of at least 4·{kv} = {4 * kv}")
    if kv < 1 or kv > vocab // 2 - 1:
        problems.append(f"task 'recall': num_kv_pairs={kv} must be between 1 and vocab_size/2 - 1 = {vocab // 2 - 1}")
    if not 0 < o["power_a"] <= 1:
        problems.append(f"task 'recall': power_a={o['power_a']} must be in (0, 1] (1: gaps uniform)")
    return problems


def gap_weights(space: int, power_a: float) -> torch.Tensor:
    """p(g) ∝ a·(g+1)^(a−1) for g in [0, space)."""
    g = torch.arange(1, space + 1, dtype=torch.float64)
    p = power_a * g ** (power_a - 1)
    return p / p.sum()


def _distinct(count: int, low: int, high: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(count, size) draws from [low, high), distinct within each row, uniformly."""
    return torch.rand(count, high - low, generator=generator).argsort(dim=1)[:, :size] + low


def mqar(
    count: int, seq_len: int, num_kv_pairs: int, vocab_size: int, power_a: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tokens, labels, gaps): (count, n) inputs, (count, n) labels (IGNORE where unscored), and (count, kv) gaps,
    gaps[:, j] the gap of the j-th key in the order the gaps were drawn."""
    parts = [
        _mqar(min(CHUNK, count - start), seq_len, num_kv_pairs, vocab_size, power_a, generator)
        for start in range(0, count, CHUNK)
    ]
    return tuple(torch.cat(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]


def _mqar(count, seq_len, kv, vocab, power_a, generator):
    half, context = vocab // 2, 2 * kv
    keys = _distinct(count, 1, half, kv, generator)
    values = _distinct(count, half, vocab, kv, generator)
    space = (seq_len - context) // 2
    weights = gap_weights(space, power_a).to(torch.float32).expand(count, space)
    gaps = torch.multinomial(weights, kv, replacement=False, generator=generator)  # drawn in order, as Zoology
    tokens = torch.randint(1, vocab, (count, seq_len), generator=generator)
    banned = torch.zeros(count, vocab, dtype=torch.bool)
    banned.scatter_(1, torch.cat([keys, values], dim=1), True)
    while (clash := banned.gather(1, tokens)).any():  # no key or value of the example's own as filler
        tokens[clash] = torch.randint(1, vocab, (int(clash.sum()),), generator=generator)
    tokens[:, 0:context:2], tokens[:, 1:context:2] = keys, values
    where = context + 2 * gaps
    tokens.scatter_(1, where, keys)
    labels = torch.full((count, seq_len), IGNORE, dtype=torch.long)
    labels.scatter_(1, where, values)
    return tokens, labels, gaps


@register_task("recall", check=option_problems)
def recall(
    seq_len: int = 64,
    num_kv_pairs: int = 4,
    vocab_size: int = 256,
    power_a: float = 0.01,
    train_size: int = 20_000,
    val_size: int = 500,
    test_size: int = 1_000,
    seed: int = 0,
) -> TaskData:
    """MQAR: train, validation and test examples from one seeded stream; accuracy over the query positions."""
    if problems := option_problems(locals()):
        raise ValueError("; ".join(problems))
    generator = torch.Generator().manual_seed(seed)
    splits = []
    for size in (train_size, val_size, test_size):
        tokens, labels, _ = mqar(size, seq_len, num_kv_pairs, vocab_size, power_a, generator)
        splits.append(Split(tokens, labels))
    note = f"MQAR, {num_kv_pairs} key-value pairs, vocabulary {vocab_size}, power_a {power_a}"
    return TaskData("recall", *splits, vocab_size, vocab_size, seq_len, note=note, per_token=True)
