"""Pathfinder-style images: two endpoint dots, dashed curved paths, distractor paths. Label: are the dots joined?

Our own generator (the LRA images come from the Pathfinder generator of Linsley et al.); images become pixel
sequences of resolution² tokens."""

from __future__ import annotations

import math
import random

import torch

from attnzoo.tasks.base import TaskData, split

PATH_VALUE, DOT_VALUE = 160, 255


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


def _dot(image: torch.Tensor, point: tuple[int, int]) -> None:
    x, y = point
    image[max(0, y - 1) : y + 1, max(0, x - 1) : x + 1] = DOT_VALUE


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
    """One (res, res) uint8 image of 2 + distractors paths; the dots sit on the two ends of one path when `connected`,
    else on ends of two different paths. Both classes have the same number of paths, so counting cannot tell them
    apart."""
    image = torch.zeros(res, res, dtype=torch.uint8)
    paths = [_path(rng, res, length, curvature) for _ in range(2 + distractors)]
    for p in paths:
        _draw(image, p, dash, gap)
    first = paths[0]
    _dot(image, first[0])
    _dot(image, first[-1] if connected else paths[1][-1])
    return image


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
