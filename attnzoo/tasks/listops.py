"""ListOps: nested MIN / MAX / MED / SM (sum mod 10) over digits; the label is the value, 0-9.

Our generator follows the LRA grammar (operators, bracketing, depth and argument limits, a length range); the
loader reads the LRA release TSVs (header ``Source<TAB>Target``)."""

from __future__ import annotations

import csv
import random
import statistics
from pathlib import Path

import torch

from attnzoo.tasks.base import TaskData, limit, pad_to, split
from attnzoo.tasks.registry import in_path, register_task

OPERATORS = {
    "[MIN": min,
    "[MAX": max,
    "[MED": lambda args: int(statistics.median(args)),
    "[SM": lambda args: sum(args) % 10,
}
# The LRA files also bracket with "(" and ")"; they are in the vocabulary so their files load unchanged.
VOCAB = ["<pad>", *OPERATORS, "]", "(", ")", *map(str, range(10))]
TOKEN_ID = {t: i for i, t in enumerate(VOCAB)}


def _tree(rng: random.Random, depth: int, max_depth: int, max_args: int, leaf_p: float) -> tuple[list[str], int]:
    if depth > 0 and (depth >= max_depth or rng.random() < leaf_p):
        digit = rng.randrange(10)
        return [str(digit)], digit
    op = rng.choice(list(OPERATORS))
    tokens, values = [op], []
    for _ in range(rng.randint(2, max_args)):
        sub_tokens, value = _tree(rng, depth + 1, max_depth, max_args, leaf_p)
        tokens += sub_tokens
        values.append(value)
    return tokens + ["]"], OPERATORS[op](values)


def generate(
    count: int, seed: int, min_len: int, max_len: int, max_depth: int = 10, max_args: int = 10, leaf_p: float = 0.45
) -> tuple[list[list[str]], list[int]]:
    """`count` expressions whose token length lies in [min_len, max_len] (rejection sampling), and their values."""
    rng = random.Random(seed)
    sequences, labels = [], []
    attempts = 0
    while len(sequences) < count:
        attempts += 1
        if attempts > 1000 * count:
            raise ValueError(
                f"cannot generate ListOps in [{min_len}, {max_len}] with depth {max_depth}, "
                f"args {max_args}; widen the length range"
            )
        tokens, value = _tree(rng, 0, max_depth, max_args, leaf_p)
        if min_len <= len(tokens) <= max_len:
            sequences.append(tokens)
            labels.append(value)
    return sequences, labels


def encode(sequences: list[list[str]], n: int) -> torch.Tensor:
    return torch.tensor([pad_to([TOKEN_ID[t] for t in s], n) for s in sequences])


@register_task("listops", files=in_path("basic_train.tsv", "basic_val.tsv", "basic_test.tsv"))
def build(
    seq_len: int = 256,
    size: int = 6000,
    min_len: int | None = None,
    max_depth: int = 6,
    max_args: int = 5,
    seed: int = 0,
    path: str | None = None,
    train_size: int | None = None,
) -> TaskData:
    """Generated data (size examples, 80/10/10), or the LRA release directory `path` (basic_{train,val,test}.tsv)."""
    if path:
        parts = [load_tsv(Path(path) / f"basic_{name}.tsv", seq_len) for name in ("train", "val", "test")]
        train, val, test = parts
        note = f"LRA release files from {path}"
    else:
        sequences, labels = generate(size, seed, min_len or seq_len // 4, seq_len, max_depth, max_args)
        train, val, test = split(encode(sequences, seq_len), torch.tensor(labels), (0.1, 0.1), seed)
        note = "generated (LRA grammar)"
    return TaskData("listops", limit(train, train_size, seed), val, test, 10, len(VOCAB), seq_len, note=note)


def load_tsv(path: Path, seq_len: int):
    from attnzoo.tasks.base import Split

    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (expected the LRA release's ListOps TSV with Source/Target)")
    with path.open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    unknown = {t for r in rows for t in r["Source"].split() if t not in TOKEN_ID}
    if unknown:
        raise ValueError(f"{path}: tokens outside the ListOps vocabulary: {sorted(unknown)[:5]}")
    return Split(encode([r["Source"].split() for r in rows], seq_len), torch.tensor([int(r["Target"]) for r in rows]))
