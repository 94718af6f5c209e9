"""Model output -> answers: the class count of an output tensor, dequantization, softmax for logits, top-k."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeship.errors import ModelError
from edgeship.manifest import Quantization
from edgeship.runtime.preprocess import known_dims


@dataclass(frozen=True)
class Ranked:
    """One of an image's top-k classes."""

    index: int
    label: str
    probability: float


def class_count(shape: tuple[int, ...], path: Any) -> int:
    """The classes of an output shaped (N, classes), or (N, classes, 1, 1) and the like; anything else is not a classifier."""
    dims = known_dims(shape, path)
    classes = math.prod(dims)
    if classes < 2 or sum(d > 1 for d in dims) > 1:
        raise ModelError(
            f"{path} is not a classifier: its output has shape {list(shape)}; "
            "edgeship runs models whose one output is (batch, classes) with at least 2 classes"
        )
    return classes


class Probabilities:
    """Raw outputs (N, classes) -> float32 probabilities: dequantized by the output's quantization, softmax for logits."""

    def __init__(self, quantization: Quantization | None, logits: bool) -> None:
        self.scale = None if quantization is None else np.float32(quantization.scale)
        self.zero_point = None if quantization is None else np.float32(quantization.zero_point)
        self.logits = logits

    def __call__(self, outputs: np.ndarray) -> np.ndarray:
        if self.scale is not None:
            outputs = (outputs.astype(np.float32) - self.zero_point) * self.scale
        elif outputs.dtype != np.float32:
            outputs = outputs.astype(np.float32)
        return softmax(outputs) if self.logits else outputs


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32, shifted by the row maximum for stability."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32, copy=False)


def rank(probabilities: np.ndarray, labels: list[str], k: int) -> list[list[Ranked]]:
    """The k most probable classes of each row, most probable first (ties: the lower index first)."""
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [
        [Ranked(int(index), labels[index], float(row[index])) for index in indices]
        for row, indices in zip(probabilities, order)
    ]
