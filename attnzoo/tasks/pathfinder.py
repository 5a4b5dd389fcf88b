"""Pathfinder-style images: two endpoint dots, dashed curved paths, distractor paths. Label: are the dots joined?

Our own generator (the LRA images come from the Pathfinder generator of Linsley et al.); images become pixel
sequences of resolution² tokens."""

from __future__ import annotations

import math
import random

import torch

from attnzoo.tasks.base import TaskData, split
from attnzoo.tasks.registry import register_task

PATH_VALUE, DOT_VALUE = 160, 255
TRIES = 100  # draws of a path, and starts of an image, before the settings are declared too crowded


def _path(rng: random.Random, res: int, length: int, curvature: float) -> list[tuple[int, int]]:
    """Pixel positions of a smooth random walk of `length` unit steps that stays inside the image."""
    margin = 1.5
    x, y = rng.uniform(margin, res - 1 - margin), rng.uniform(margin, res - 1 - margin)
    angle = rng.uniform(0, 2 * math.pi)
    points = [(round(x), round(y))]
    for _ in range(length):
        angle += rng.gauss(0, curvature)
        nx, ny = x + math.cos(angle), y + math.sin(angle)
        if not (margin <= nx <= res - 1 - margin and margin <= ny <= res - 1 - margin):
            angle += math.pi  # turn back at the border
            nx, ny = x + math.cos(angle), y + math.sin(angle)
        x, y = nx, ny
        if (round(x), round(y)) != points[-1]:
            points.append((round(x), round(y)))
    return points


def _draw(image: torch.Tensor, points: list[tuple[int, int]], dash: int, gap: int) -> None:
    for i, (px, py) in enumerate(points):
        if i % (dash + gap) < dash:
            image[py, px] = PATH_VALUE


def _dot_pixels(point: tuple[int, int]) -> set[tuple[int, int]]:
    x, y = point
    return {(px, py) for px in (x - 1, x) for py in (y - 1, y) if px >= 0 and py >= 0}


def _dot(image: torch.Tensor, point: tuple[int, int]) -> None:
    for x, y in _dot_pixels(point):
        image[y, x] = DOT_VALUE


def _ink(points: list[tuple[int, int]]) -> set[tuple[int, int]]:
    """A path's pixels and its end dots."""
    return set(points).union(_dot_pixels(points[0]), _dot_pixels(points[-1]))


def _draw_apart(rng: random.Random, count: int, res: int, length: int, curvature: float) -> list[list] | None:
    """`count` paths, each drawn again until no pixel of it touches (diagonals too) a path drawn before; None
    when one cannot be placed."""
    paths: list[list[tuple[int, int]]] = []
    near: set[tuple[int, int]] = set()  # pixels of earlier paths and every pixel touching them
    for _ in range(count):
        draws = (_path(rng, res, length, curvature) for _ in range(TRIES))
        path = next((p for p in draws if not near & _ink(p)), None)
        if path is None:
            return None
        paths.append(path)
        near |= {(x + dx, y + dy) for x, y in _ink(path) for dx in (-1, 0, 1) for dy in (-1, 0, 1)}
    return paths


def _paths_apart(rng: random.Random, count: int, res: int, length: int, curvature: float) -> list[list]:
    """`count` paths that do not touch (touching paths would look joined and make the label a coin toss); the
    image starts over when one cannot be placed."""
    for _ in range(TRIES):
        if (paths := _draw_apart(rng, count, res, length, curvature)) is not None:
            return paths
    raise ValueError(
        f"pathfinder: {count} paths of length {length} do not fit apart in a {res}x{res} image; "
        "lower contour_length or distractors, or raise resolution"
    )


def sample(
    rng: random.Random,
    res: int,
    length: int,
    distractors: int,
    connected: bool,
    curvature: float = 0.35,
    dash: int = 2,
    gap: int = 1,
) -> torch.Tensor:
    """One (res, res) uint8 image of 2 + distractors paths that do not touch; the dots sit on the two ends of one path
    when `connected`, else on ends of two different paths. Both classes have the same number of paths, so counting
    cannot tell them apart."""
    image = torch.zeros(res, res, dtype=torch.uint8)
    paths = _paths_apart(rng, 2 + distractors, res, length, curvature)
    for p in paths:
        _draw(image, p, dash, gap)
    first = paths[0]
    _dot(image, first[0])
    _dot(image, first[-1] if connected else paths[1][-1])
    return image


@register_task("pathfinder")
def build(
    resolution: int = 16,
    contour_length: int = 14,
    distractors: int = 1,
    size: int = 6000,
    seed: int = 0,
    curvature: float = 0.35,
    dash: int = 2,
    gap: int = 1,
) -> TaskData:
    """size images (80/10/10); gap=0 draws solid paths."""
    rng = random.Random(seed)
    labels = torch.tensor([i % 2 for i in range(size)])
    images = torch.stack(
        [sample(rng, resolution, contour_length, distractors, bool(c), curvature, dash, gap) for c in labels]
    )
    tokens = images.flatten(1).long() + 1  # pixel intensity v -> token v + 1 (0 is padding)
    train, val, test = split(tokens, labels, (0.1, 0.1), seed)
    return TaskData(
        "pathfinder",
        train,
        val,
        test,
        2,
        257,
        resolution * resolution,
        note=f"generated ({resolution}x{resolution}, contour {contour_length}, {distractors} distractors)",
    )
