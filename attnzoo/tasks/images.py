"""Pixel-sequence classification of real images. Grey levels become tokens 1-256.

- ``digits`` (the default; needs nothing beyond pip): the 1,797 8x8 handwritten digits of the UCI optical
  recognition set, as scikit-learn ships them inside its wheel.
- ``fashion-mnist``: the four IDX files, from Debian's dataset-fashion-mnist or a directory given as ``path``.
- CIFAR-10 (the ``cifar10`` task): the python-pickle batches, from a directory the user points at."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import torch
import torch.nn.functional as F

from attnzoo.tasks.base import Split, TaskData, limit
from attnzoo.tasks.registry import in_path, register_task

DEFAULT_RESOLUTION = {"digits": 8, "fashion-mnist": 14}  # the native 8x8; Fashion-MNIST's 28 halved
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_PARTS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
MISSING_FASHION = (
    "Fashion-MNIST not found in {dir}: install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu) "
    "or point the task's `path` at a directory holding the four *-idx*-ubyte.gz files"
)


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file (gzip or plain) as a uint8 tensor of its stated shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return torch.frombuffer(bytearray(data[4 + 4 * ndim :]), dtype=torch.uint8).reshape(shape)


def _tokens(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """(N, H, W) uint8 -> (N, resolution²) tokens, area-resized."""
    if images.shape[-1] != resolution:
        images = F.interpolate(images[:, None].float(), size=(resolution, resolution), mode="area")[:, 0]
        images = images.round().clamp(0, 255).to(torch.uint8)
    return images.flatten(1).long() + 1


def _finish(name, train_x, train_y, test_x, test_y, resolution, train_size, val_size, test_size, seed, note):
    tokens = _tokens(train_x, resolution)
    order = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(seed))
    val = Split(tokens[order[:val_size]], train_y[order[:val_size]].long())
    train = limit(Split(tokens[order[val_size:]], train_y[order[val_size:]].long()), train_size, seed)
    test = limit(Split(_tokens(test_x, resolution), test_y.long()), test_size, seed)
    return TaskData(name, train, val, test, 10, 257, resolution * resolution, note=note)


def _fashion_files(o: dict) -> list[list[Path]]:
    root = Path(o["path"]) if o["path"] else FASHION_MNIST_DIR
    return [[root / f"{part}.gz", root / part] for part in FASHION_PARTS] if o["source"] == "fashion-mnist" else []


@register_task(
    "image", length=lambda o: (o["resolution"] or DEFAULT_RESOLUTION[o["source"]]) ** 2, files=_fashion_files
)
def image(
    source: str = "digits",
    resolution: int | None = None,
    train_size: int | None = None,
    val_size: int | None = None,
    test_size: int | None = None,
    seed: int = 0,
    path: str | None = None,
) -> TaskData:
    """The `image` task: ``source`` digits or fashion-mnist (needs its files); resolution defaults per source."""
    if source == "digits":
        if path is not None:
            raise ValueError("source 'digits' ships with scikit-learn and takes no path; use source: fashion-mnist")
        return digits(resolution or DEFAULT_RESOLUTION[source], train_size, val_size or 300, test_size, seed)
    if source == "fashion-mnist":
        resolution = resolution or DEFAULT_RESOLUTION[source]
        return fashion_mnist(resolution, train_size, val_size or 2000, test_size, seed, path)
    raise ValueError(f"unknown image source {source!r}; use 'digits' (ships with pip) or 'fashion-mnist'")


def digits(
    resolution: int = 8, train_size: int | None = None, val_size: int = 300, test_size: int | None = None, seed: int = 0
) -> TaskData:
    """scikit-learn's bundled digits (no download): 17 grey levels scaled to 0-255, a seeded 80/20 test split."""
    from sklearn.datasets import load_digits

    data = load_digits()
    pixels = (torch.from_numpy(data.images) * (255 / 16)).round().to(torch.uint8)
    labels = torch.from_numpy(data.target)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1234))  # fixed test set
    n_test = len(order) // 5
    test, rest = order[:n_test], order[n_test:]
    return _finish(
        "image",
        pixels[rest],
        labels[rest],
        pixels[test],
        labels[test],
        resolution,
        train_size,
        val_size,
        test_size,
        seed,
        f"handwritten digits (UCI, shipped by scikit-learn), {resolution}x{resolution} grey pixels",
    )


def fashion_mnist(
    resolution: int = 14,
    train_size: int | None = None,
    val_size: int = 2000,
    test_size: int | None = None,
    seed: int = 0,
    path: str | None = None,
) -> TaskData:
    root = Path(path) if path else FASHION_MNIST_DIR
    files = {}
    for part in FASHION_PARTS:
        found = [p for p in (root / f"{part}.gz", root / part) if p.exists()]
        if not found:
            raise FileNotFoundError(MISSING_FASHION.format(dir=root))
        files[part] = read_idx(found[0])
    return _finish(
        "image",
        files["train-images-idx3-ubyte"],
        files["train-labels-idx1-ubyte"],
        files["t10k-images-idx3-ubyte"],
        files["t10k-labels-idx1-ubyte"],
        resolution,
        train_size,
        val_size,
        test_size,
        seed,
        f"Fashion-MNIST, {resolution}x{resolution} grey pixels",
    )


@register_task("cifar10", files=in_path(*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"))
def cifar10(
    path: str,
    resolution: int = 32,
    train_size: int | None = None,
    val_size: int = 5000,
    test_size: int | None = None,
    seed: int = 0,
) -> TaskData:
    """CIFAR-10 "python version" batches (data_batch_1..5, test_batch) in `path`, to grey as LRA does."""
    root = Path(path)

    def load(names):
        xs, ys = [], []
        for name in names:
            file = root / name
            if not file.exists():
                raise FileNotFoundError(f"{file}: no such file; point `path` at the extracted cifar-10-batches-py")
            with file.open("rb") as f:
                batch = pickle.load(f, encoding="bytes")
            xs.append(torch.tensor(batch[b"data"]).reshape(-1, 3, 32, 32))
            ys.append(torch.tensor(batch[b"labels"]))
        rgb = torch.cat(xs).float()
        grey = (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]).round().to(torch.uint8)
        return grey, torch.cat(ys)

    train_x, train_y = load([f"data_batch_{i}" for i in range(1, 6)])
    test_x, test_y = load(["test_batch"])
    return _finish(
        "image",
        train_x,
        train_y,
        test_x,
        test_y,
        resolution,
        train_size,
        val_size,
        test_size,
        seed,
        f"CIFAR-10 grey, {resolution}x{resolution}",
    )
