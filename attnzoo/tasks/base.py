"""What every accuracy task produces: token-id tensors with seeded train/val/test splits."""

from __future__ import annotations

from dataclasses import dataclass

import torch

PAD = 0  # token id 0 is padding in every task; real tokens start at 1
IGNORE = -100  # the label of a position a per-token task does not score


@dataclass
class Split:
    tokens: torch.Tensor  # (N, n) long, or (N, 2, n) for two-document tasks
    labels: torch.Tensor  # (N,) long; or (N, n) for a per-token task, IGNORE where a position is not scored

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> Split:
        return Split(self.tokens[index], self.labels[index])


@dataclass
class TaskData:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    vocab_size: int  # including PAD
    seq_len: int
    two_tower: bool = False
    note: str = ""  # e.g. that the data is a stand-in
    per_token: bool = False  # a label per position (IGNORE where unscored) instead of one per sequence

    def chance(self) -> float:
        """Accuracy of always predicting the test set's most frequent class (over the scored positions)."""
        labels = self.test.labels[self.test.labels != IGNORE]
        return float(torch.bincount(labels, minlength=self.num_classes).max() / max(len(labels), 1))


def pad_to(ids: list[int], n: int) -> list[int]:
    """Truncate or right-pad with PAD to exactly n ids."""
    return ids[:n] + [PAD] * max(0, n - len(ids))


def split(tokens: torch.Tensor, labels: torch.Tensor, fractions: tuple[float, float], seed: int) -> tuple[Split, ...]:
    """Seeded shuffle into train/val/test; fractions are (val, test) of the whole."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_val, n_test = int(fractions[0] * len(order)), int(fractions[1] * len(order))
    parts = order[n_val + n_test :], order[:n_val], order[n_val : n_val + n_test]
    return tuple(Split(tokens[p], labels[p]) for p in parts)


def limit(s: Split, size: int | None, seed: int) -> Split:
    """A seeded subset of at most `size` examples (None keeps all)."""
    if size is None or size >= len(s):
        return s
    return s.subset(torch.randperm(len(s), generator=torch.Generator().manual_seed(seed))[:size])
