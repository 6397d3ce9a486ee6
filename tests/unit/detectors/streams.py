"""Seeded input streams for each kind of detector input, with a change half-way."""

from __future__ import annotations

import random
from typing import Any

from detectors.base import InputKind


def stream(kind: InputKind, n: int, seed: int = 0, *, categories: int = 4) -> list[Any]:
    rng = random.Random(f"{kind}/{seed}")
    half = n // 2
    if kind == "numeric":
        return [rng.gauss(3.0 if i >= half else 0.0, 1.0) for i in range(n)]
    if kind == "binary":
        return [rng.random() < (0.4 if i >= half else 0.1) for i in range(n)]
    if kind == "categorical":
        names = [f"c{k}" for k in range(categories)]
        return [rng.choice(names[: max(1, len(names) // 2)] if i < half else names) for i in range(n)]
    return [
        {
            "a": rng.gauss(0, 1),
            "b": rng.gauss(10, 2) * (8 if i % 97 == 0 else 1),
            "c": float(rng.randint(0, 3)),
        }
        for i in range(n)
    ]
