"""Compare a candidate's probabilities with a reference's on the same images, and judge the figures against a gate.

Pure numpy, in the runtime so the device has it too: export (parity at export time), verify,
selftest, the arm64 check and training's own metrics (the confusion matrix) all use it. Running
models is not done here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeship.runtime.gates import Gate


@dataclass
class Comparison:
    """How a candidate's probabilities compare with the reference's on the same labelled images."""

    images: int
    accuracy: float
    reference_accuracy: float
    accuracy_delta_pp: float
    agreement: float
    max_abs_diff: float
    mean_abs_diff: float
    worst_class: str
    worst_class_delta_pp: float
    per_class_delta_pp: list[float]
    confusion_matrix: list[list[int]]


def compare(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray, class_names: list[str]) -> Comparison:
    """Accuracy, Δ accuracy (percentage points), top-1 agreement, |Δp| and the class that lost most."""
    reference_top1, candidate_top1 = reference.argmax(axis=1), candidate.argmax(axis=1)
    difference = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    per_class = []
    for index in range(len(class_names)):
        members = labels == index
        if not members.any():
            per_class.append(0.0)
            continue
        delta = (candidate_top1[members] == index).mean() - (reference_top1[members] == index).mean()
        per_class.append(round(float(delta) * 100, 3))
    worst = int(np.argmin(per_class))
    accuracy = float((candidate_top1 == labels).mean())
    reference_accuracy = float((reference_top1 == labels).mean())
    return Comparison(
        images=int(len(labels)),
        accuracy=accuracy,
        reference_accuracy=reference_accuracy,
        accuracy_delta_pp=round((accuracy - reference_accuracy) * 100, 3),
        agreement=float((candidate_top1 == reference_top1).mean()),
        max_abs_diff=float(difference.max()),
        mean_abs_diff=float(difference.mean()),
        worst_class=class_names[worst],
        worst_class_delta_pp=per_class[worst],
        per_class_delta_pp=per_class,
        confusion_matrix=confusion_matrix(labels, candidate_top1, len(class_names)),
    )


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int) -> list[list[int]]:
    """Counts of (true class, predicted class)."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts.tolist()


def judge(comparison: Comparison, gate: Gate, accuracy: bool = True) -> list[str]:
    """The ways a comparison misses its gate, each naming the number and the bound (empty: it passes).

    accuracy=False leaves the accuracy-drop bound out: on a golden set of a hundred images one
    flipped picture is a whole point, so the device's selftest judges agreement and |Δp| only.
    """
    failures = []
    if comparison.agreement < gate.min_agreement:
        failures.append(f"agreement {comparison.agreement:.2%} < {gate.min_agreement:.2%}")
    if gate.max_abs_diff is not None and comparison.max_abs_diff > gate.max_abs_diff:
        failures.append(f"max |Δp| {comparison.max_abs_diff:.2e} > {gate.max_abs_diff:.0e}")
    drop = -comparison.accuracy_delta_pp
    if accuracy and gate.max_accuracy_drop_pp is not None and drop > gate.max_accuracy_drop_pp:
        failures.append(f"accuracy drop {drop:.2f} pp > {gate.max_accuracy_drop_pp} pp")
    return failures
