"""Every PNG edgeship draws, in one place so they share a look: labelled axes, units, readable at a glance.

matplotlib is imported inside each function (Agg backend), so importing this module is cheap.
"""

from __future__ import annotations

import math
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


def _plain_log_ticks(axis: Any, label_minor: bool = False) -> None:
    """Log-scale ticks written as plain numbers (100, 200) rather than powers of ten; minor ones too when the span is short."""
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axis.set_major_formatter(plain)
    axis.set_minor_formatter(plain if label_minor else FuncFormatter(lambda value, _: ""))


def _save(figure: Any, path: str | os.PathLike) -> None:
    """Save a figure atomically and free it."""
    plt = _pyplot()
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, dpi=110, bbox_inches="tight")
    plt.close(figure)


def plot_sample_grid(images: Any, labels: Any, class_names: Sequence[str], path: str | os.PathLike, title: str, columns: int = 8) -> None:
    """A grid of images (grey, or RGB in colour), each titled with its label (and class name where it is not the digit itself)."""
    plt = _pyplot()
    count = len(images)
    rows = -(-count // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.3, rows * 1.5), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.set_axis_off()
        if index >= count:
            continue
        label = int(labels[index])
        class_name = class_names[label]
        axis.imshow(images[index], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        axis.set_title(str(label) if class_name == str(label) else f"{label} {class_name}", fontsize=9)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    _save(figure, path)


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
    """The seed exercise's figure: one image (grey, or RGB in colour) beside a probability bar chart for each model in `rows`."""
    import numpy as np

    plt = _pyplot()
    figure, axes = plt.subplots(1, 1 + len(rows), figsize=(3.2 * (1 + len(rows)), 3.2))
    axes = np.atleast_1d(axes)
    pixels = np.asarray(image)
    if pixels.ndim == 3 and pixels.shape[-1] == 3:
        axes[0].imshow(pixels, interpolation="nearest")
    else:
        axes[0].imshow(pixels.reshape(pixels.shape[:2]), cmap="gray_r")
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


def plot_latency(rows: Sequence[dict[str, Any]], path: str | os.PathLike, title: str = "") -> None:
    """Horizontal bars of p50 latency per image (ms, log scale) with a p90 whisker, grouped by machine.

    Each row: {"machine", "label", "p50_ms", "p90_ms"}; one bar a row.
    """
    import numpy as np

    plt = _pyplot()
    machines = list(dict.fromkeys(row["machine"] for row in rows))
    colours = {machine: plt.cm.tab10(index % 10) for index, machine in enumerate(machines)}
    figure, axis = plt.subplots(figsize=(8, 0.32 * len(rows) + 1.4))
    positions = np.arange(len(rows))[::-1]
    p50 = np.array([row["p50_ms"] for row in rows])
    p90 = np.array([row["p90_ms"] for row in rows])
    axis.barh(positions, p50, xerr=[np.zeros_like(p50), np.maximum(p90 - p50, 0)], capsize=2,
              color=[colours[row["machine"]] for row in rows])
    axis.set_yticks(positions, [row["label"] for row in rows])
    axis.set_xscale("log")
    _plain_log_ticks(axis.xaxis)
    axis.set_xlabel("latency per call, ms (bar: p50, whisker: p90; log scale)")
    for machine in machines:
        axis.barh([], [], color=colours[machine], label=machine)
    axis.legend(loc="lower right", fontsize=8)
    axis.grid(axis="x", alpha=0.3, which="both")
    axis.set_title(title or "latency per artifact and backend")
    _save(figure, path)


def plot_accuracy_vs_size(points: Sequence[dict[str, Any]], path: str | os.PathLike, reference_accuracy: float | None = None) -> None:
    """Scatter of test accuracy against file size (KiB), one labelled point an artifact."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 4))
    groups: dict[tuple[float, float], list[dict[str, Any]]] = {}
    for point in points:
        # Artifacts within ~1% of each other's size at the same accuracy (e.g. fp32 TFLite and ONNX) share one label.
        key = (round(math.log(point["bytes"]) * 50), round(point["accuracy"] * 100, 2))
        groups.setdefault(key, []).append(point)
    for members in groups.values():
        names = [member["name"] for member in members]
        size_kib, accuracy = members[0]["bytes"] / 1024, members[0]["accuracy"] * 100
        axis.scatter([member["bytes"] / 1024 for member in members], [accuracy] * len(members), s=40)
        axis.annotate(", ".join(names), (size_kib, accuracy), textcoords="offset points", xytext=(6, 4), fontsize=8)
    if reference_accuracy is not None:
        axis.axhline(reference_accuracy * 100, linestyle="--", color="grey", label="Keras model")
        axis.legend(loc="lower right")
    axis.set_xscale("log")
    _plain_log_ticks(axis.xaxis, label_minor=True)
    axis.set_xlabel("file size, KiB (log scale)")
    axis.margins(x=0.25, y=0.2)
    axis.set_ylabel("test accuracy, %")
    axis.grid(alpha=0.3, which="both")
    axis.set_title("accuracy vs file size")
    _save(figure, path)


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str], path: str | os.PathLike, title: str) -> None:
    """A confusion matrix with counts in each cell (rows: true class, columns: predicted)."""
    import numpy as np

    plt = _pyplot()
    counts = np.asarray(matrix)
    figure, axis = plt.subplots(figsize=(5.6, 5))
    image = axis.imshow(counts, cmap="Blues")
    positions = np.arange(len(labels))
    axis.set_xticks(positions, labels, rotation=45 if max(len(str(l)) for l in labels) > 2 else 0)
    axis.set_yticks(positions, labels)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    threshold = counts.max() / 2
    for (row, column), count in np.ndenumerate(counts):
        if count:
            axis.text(column, row, str(count), ha="center", va="center", fontsize=7, color="white" if count > threshold else "black")
    figure.colorbar(image, ax=axis, label="images")
    axis.set_title(title)
    _save(figure, path)


def plot_flipped_pictures(images: Any, flipped: Sequence[dict[str, Any]], path: str | os.PathLike, title: str, columns: int = 6) -> None:
    """The test pictures an artifact labels differently from Keras, each captioned with both answers and their probabilities."""
    plt = _pyplot()
    count = len(images)
    rows = max(1, -(-count // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.8, rows * 2.4), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.set_axis_off()
        if index >= count:
            continue
        picture, flip = images[index], flipped[index]
        colour = picture.ndim == 3 and picture.shape[-1] == 3
        axis.imshow(picture if colour else picture.reshape(picture.shape[:2]), cmap=None if colour else "gray", vmin=0, vmax=255,
                    interpolation="nearest")
        axis.set_title(
            f"#{flip['index']}\nKeras {flip['keras_label']} ({flip['keras_probability']:.0%})\n"
            f"file {flip['artifact_label']} ({flip['artifact_probability']:.0%})",
            fontsize=7,
        )
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    _save(figure, path)


def plot_rescue_steps(series: dict[str, Sequence[dict[str, Any]]], path: str | os.PathLike, reference_accuracy: float | None = None) -> None:
    """Test accuracy against the number of layers kept in float, one line per rescued artifact (hollow marker: equalized model)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 4))
    for name, steps in series.items():
        layers = [len(step["float_layers"]) for step in steps]
        accuracy = [step["accuracy"] * 100 for step in steps]
        line = axis.plot(layers, accuracy, marker="o", label=name)[0]
        for count, value, step in zip(layers, accuracy, steps):
            if step.get("equalized"):
                axis.scatter([count], [value], s=110, facecolors="none", edgecolors=line.get_color())
    if reference_accuracy is not None:
        axis.axhline(reference_accuracy * 100, linestyle="--", color="grey", label="Keras model")
    axis.set_xlabel("layers kept in float")
    axis.set_ylabel("test accuracy, %")
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    axis.set_title("int8 rescue: accuracy vs layers kept in float (ring: equalized model)")
    _save(figure, path)
