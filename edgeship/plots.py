"""Every PNG edgeship draws, in one place so they share a look: labelled axes, units, readable at a glance.

matplotlib is imported inside each function (Agg backend), so importing this module is cheap.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from edgeship.files import atomic_path


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        from edgeship.errors import missing_extra

        raise missing_extra("matplotlib", "toolkit") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: str | os.PathLike) -> None:
    """Save a figure atomically and free it."""
    plt = _pyplot()
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, dpi=110, bbox_inches="tight")
    plt.close(figure)


def plot_training_curves(history: dict[str, list[float]], path: str | os.PathLike, title: str = "") -> None:
    """Loss and accuracy per epoch, train beside test."""
    plt = _pyplot()
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(9, 3.4))
    epochs = range(1, len(history["loss"]) + 1)
    for axis, metric, label in ((loss_axis, "loss", "loss (cross-entropy)"), (accuracy_axis, "accuracy", "accuracy")):
        axis.plot(epochs, history[metric], marker="o", label="train")
        if f"val_{metric}" in history:
            axis.plot(epochs, history[f"val_{metric}"], marker="s", label="test")
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.set_xticks(list(epochs))
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title or "training curves")
    _save(figure, path)


def plot_image_and_probabilities(
    image: Any,
    rows: Sequence[tuple[str, Sequence[float]]],
    labels: Sequence[str],
    path: str | os.PathLike,
    true_label: str | None = None,
) -> None:
    """The seed exercise's figure: one image beside a probability bar chart for each model in `rows`."""
    import numpy as np

    plt = _pyplot()
    figure, axes = plt.subplots(1, 1 + len(rows), figsize=(3.2 * (1 + len(rows)), 3.2))
    axes = np.atleast_1d(axes)
    axes[0].imshow(np.asarray(image).reshape(np.asarray(image).shape[:2]), cmap="gray_r")
    axes[0].set_title(f"input (true: {true_label})" if true_label is not None else "input")
    axes[0].axis("off")
    positions = np.arange(len(labels))
    for axis, (name, probabilities) in zip(axes[1:], rows):
        probabilities = np.asarray(probabilities, dtype=float)
        predicted = int(np.argmax(probabilities))
        colours = ["tab:blue"] * len(labels)
        colours[predicted] = "tab:red"
        axis.bar(positions, probabilities, color=colours)
        axis.set_xticks(positions, labels, rotation=45 if max(len(str(l)) for l in labels) > 2 else 0, ha="right" if max(len(str(l)) for l in labels) > 2 else "center")
        axis.set_ylim(0, 1)
        axis.set_xlabel("class")
        axis.set_ylabel("probability")
        axis.set_title(f"{name}: {labels[predicted]} ({probabilities[predicted]:.2f})")
        axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    _save(figure, path)
