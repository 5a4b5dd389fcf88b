"""Accuracy tasks: generators are right and deterministic, loaders read the released formats, training resumes."""

import gzip
import math
import pickle
import struct

import pytest
import torch

from attnzoo.tasks import build_task, images, listops, pathfinder, text
from attnzoo.tasks.base import PAD, Split, TaskData
from attnzoo.tasks.train import Recipe, train


def evaluate(tokens: list[str]) -> int:
    """An independent stack evaluator of ListOps token sequences."""
    stack: list = []
    for t in tokens:
        if t in ("(", ")"):
            continue
        if t == "]":
            args = []
            while not isinstance(stack[-1], str):
                args.append(stack.pop())
            stack.append(listops.OPERATORS[stack.pop()](args[::-1]))
        else:
            stack.append(t if t.startswith("[") else int(t))
    return stack[0]


def test_listops_values_lengths_and_determinism():
    sequences, labels = listops.generate(200, seed=3, min_len=16, max_len=64, max_depth=4, max_args=4)
    assert all(16 <= len(s) <= 64 for s in sequences)
    assert [evaluate(s) for s in sequences] == labels
    assert listops.generate(200, seed=3, min_len=16, max_len=64, max_depth=4, max_args=4)[0] == sequences
    assert len(set(labels)) > 5


def test_listops_reads_lra_tsv(tmp_path):
    rows = ["( [MAX 2 9 ( [MIN 4 7 ] ) 0 ] )", "[SM 5 6 ]", "[MED 1 3 8 ]"]
    for name in ("train", "val", "test"):
        (tmp_path / f"basic_{name}.tsv").write_text(
            "Source\tTarget\n" + "".join(f"{r}\t{evaluate(r.split())}\n" for r in rows)
        )
    data = listops.build(seq_len=16, path=str(tmp_path))
    assert data.train.labels.tolist() == [9, 1, 3]
    assert data.train.tokens.shape == (3, 16) and (data.train.tokens[1, 4:] == PAD).all()
    with pytest.raises(FileNotFoundError, match="basic_train.tsv"):
        listops.build(path=str(tmp_path / "absent"))


def test_splits_are_disjoint_seeded_and_stable():
    a, b = (
        listops.build(seq_len=32, size=300, max_depth=3, max_args=3),
        listops.build(seq_len=32, size=300, max_depth=3, max_args=3),
    )
    assert torch.equal(a.test.tokens, b.test.tokens)
    assert len(a.train) + len(a.val) + len(a.test) == 300


def test_pathfinder_classes_are_balanced_and_have_the_same_number_of_paths():
    data = pathfinder.build(resolution=12, contour_length=8, size=200, seed=1)
    assert data.train.tokens.shape[1] == 144 and data.num_classes == 2
    all_labels = torch.cat([data.train.labels, data.val.labels, data.test.labels])
    assert all_labels.sum() == 100
    dots = (data.train.tokens == pathfinder.DOT_VALUE + 1).sum(1).float()
    assert dots.min() >= 2  # both endpoint dots are drawn
    ink = (data.train.tokens > 1).sum(1).float()
    pos, neg = ink[data.train.labels == 1].mean(), ink[data.train.labels == 0].mean()
    assert abs(pos - neg) / neg < 0.1  # no "more ink" shortcut
    assert torch.equal(
        pathfinder.build(resolution=12, contour_length=8, size=200, seed=1).test.tokens, data.test.tokens
    )


def write_idx(path, array: torch.Tensor) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.dim()) + struct.pack(f">{array.dim()}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.to(torch.uint8).numpy().tobytes())


def test_fashion_mnist_from_idx_files(tmp_path):
    g = torch.Generator().manual_seed(0)
    for prefix, count in (("train", 50), ("t10k", 20)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", torch.randint(0, 256, (count, 28, 28), generator=g))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", torch.arange(count) % 10)
    data = images.fashion_mnist(resolution=14, val_size=10, path=str(tmp_path))
    assert data.train.tokens.shape == (40, 196) and len(data.test) == 20
    assert data.train.tokens.min() >= 1 and data.train.tokens.max() <= 256
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        images.fashion_mnist(path=str(tmp_path / "nowhere"))


def test_the_default_image_task_needs_nothing_but_pip(monkeypatch, tmp_path):
    monkeypatch.setattr(images, "FASHION_MNIST_DIR", tmp_path / "no-debian-package")
    data = build_task("image", {})
    assert data.train.tokens.shape[1] == 64 and data.num_classes == 10 and "scikit-learn" in data.note
    assert len(data.train) + len(data.val) + len(data.test) == 1797
    assert torch.equal(build_task("image", {}).test.tokens, data.test.tokens)
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        build_task("image", {"source": "fashion-mnist"})


def test_cifar10_batches_to_grey_pixels(tmp_path):
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": torch.full((4, 3072), 100, dtype=torch.uint8).numpy(), b"labels": [0, 1, 2, 3]}
        (tmp_path / name).write_bytes(pickle.dumps(batch))
    data = images.cifar10(str(tmp_path), val_size=4)
    assert data.train.tokens.shape == (16, 1024) and (data.train.tokens == 101).all()


def test_text_and_retrieval_loaders_read_their_tsv_formats(tmp_path):
    for name in ("train", "val", "test"):
        (tmp_path / f"{name}.tsv").write_text("label\ttext\n1\tA fine film.\n0\tDull.\n")
    imdb = text.text(seq_len=8, path=str(tmp_path))
    assert imdb.train.labels.tolist() == [1, 0]
    assert imdb.train.tokens[0].tolist() == [b + 1 for b in b"A fine f"]
    for name in ("new_aan_pairs.train.tsv", "new_aan_pairs.eval.tsv", "new_aan_pairs.test.tsv"):
        (tmp_path / name).write_text("1.0\tid1\tid2\tfirst paper\tsecond paper\n0.0\tid3\tid4\tx\ty\n")
    aan = text.retrieval(seq_len=6, path=str(tmp_path))
    assert aan.two_tower and aan.train.tokens.shape == (2, 2, 6) and aan.train.labels.tolist() == [1, 0]


def test_bbc_text_and_stand_in_retrieval():
    data = build_task("text", {"seq_len": 64})
    assert data.num_classes == 5 and data.train.tokens.shape[1] == 64 and 1500 < len(data.train) < 1700
    pairs = build_task("retrieval", {"seq_len": 32, "pairs": 100})
    assert pairs.two_tower and "stand-in" in pairs.note and pairs.train.tokens.shape[1:] == (2, 32)


def tiny_task() -> TaskData:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, 20, (96, 16), generator=g)
    labels = ((tokens < 10).sum(1) > 7).long()  # a bag-of-tokens rule that mean pooling can read
    parts = [Split(tokens[i::3], labels[i::3]) for i in range(3)]
    return TaskData("tiny", *parts, num_classes=2, vocab_size=21, seq_len=16)


@pytest.mark.slow
def test_training_is_deterministic_and_resumes_exactly(tmp_path):
    recipe = Recipe(steps=200, batch_size=8, eval_every=50, warmup_steps=10, lr=3e-3, dim=16, ffn_dim=32)
    task = tiny_task()
    outcome = lambda r: (r.test_accuracy, r.best_val_accuracy, r.best_step)  # noqa: E731
    reference = train(task, "s3attention", {}, recipe, seed=0)
    assert outcome(train(task, "s3attention", {}, recipe, seed=0)) == outcome(reference)

    def interrupt(message):
        if message["step"] == 100:
            raise KeyboardInterrupt

    checkpoint = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train(task, "s3attention", {}, recipe, seed=0, checkpoint=checkpoint, progress=interrupt)
    resumed = train(task, "s3attention", {}, recipe, seed=0, checkpoint=checkpoint)
    assert outcome(resumed) == outcome(reference)
    assert reference.best_val_accuracy > 0.7  # the recipe really learns


def test_pathfinder_paths_never_touch_so_the_label_is_in_the_image():
    """With solid paths, every image is exactly two 8-connected blobs of ink, and the dots share a blob iff the
    label says joined."""
    from scipy import ndimage

    data = pathfinder.build(resolution=10, contour_length=8, distractors=0, gap=0, size=300, seed=2)
    for tokens, label in zip(data.train.tokens, data.train.labels, strict=True):
        image = (tokens - 1).reshape(10, 10)
        blobs, count = ndimage.label((image > 0).numpy(), structure=[[1, 1, 1]] * 3)
        assert count == 2
        dotted = {int(b) for b in blobs[(image == pathfinder.DOT_VALUE).numpy()]}
        assert (len(dotted) == 1) == bool(label)


def test_pathfinder_settings_too_crowded_to_draw_are_an_error():
    with pytest.raises(ValueError, match="do not fit apart in a 6x6 image"):
        pathfinder.build(resolution=6, contour_length=8, distractors=3, size=10)


def test_validate_finds_missing_task_files_relative_to_the_suite(tmp_path):
    from attnzoo.harness.suite import load_suite
    from tests.test_harness import problems, write_suite

    lra = tmp_path / "lra"
    lra.mkdir()
    for name in ("basic_train.tsv", "basic_val.tsv"):  # basic_test.tsv is missing
        (lra / name).write_text("Source\tTarget\n( MAX 1 2 )\t2\n")
    tasks = {"listops": {"seq_len": 32, "path": "lra"}, "text": {"seq_len": 32, "path": "${NO_SUCH_DIR}/imdb"}}
    suite = {
        "name": "paths",
        "variants": ["sdpa"],
        "benchmarks": {"accuracy": {"seeds": 1, "recipe": {"steps": 2}, "tasks": tasks}},
    }
    found = problems(write_suite(tmp_path, suite))
    assert len(found) == 2, found
    assert "benchmarks.accuracy.tasks.listops: task 'listops' reads files that are not there:" in found[0]
    assert str(lra / "basic_test.tsv") in found[0] and "basic_val" not in found[0]
    assert "task 'text'" in found[1] and "imdb/train.tsv" in found[1]
    (lra / "basic_test.tsv").write_text("Source\tTarget\n( MAX 1 2 )\t2\n")
    del tasks["text"]
    assert load_suite(write_suite(tmp_path, suite)).name == "paths"  # relative to the suite, not the cwd


def test_training_reports_steps_and_loss_before_its_first_validation(monkeypatch):
    from attnzoo.tasks.train import StepReport

    monkeypatch.setattr(StepReport, "interval_s", 0.0)
    messages = []
    recipe = Recipe(steps=6, batch_size=8, eval_every=6, warmup_steps=1, dim=16, ffn_dim=32)
    train(tiny_task(), "sdpa", {}, recipe, seed=0, progress=messages.append)
    assert [m["step"] for m in messages[:5]] == [1, 2, 3, 4, 5] and messages[0]["val"] is None
    assert all(math.isfinite(m["loss"]) for m in messages) and messages[-1]["val"] is not None
