"""Parity: run every artifact of a bundle and the source Keras model on a test split, then judge them.

Running and judging are apart, as in Polygraphy's comparator: runners (the Keras model, the slim
runtime's Classifier) only produce probabilities; `compare` turns two probability arrays into
figures; `judge` checks figures against the precision's gate. Nothing here touches a backend's
internals.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeship.errors import BundleError, DatasetError, EdgeshipError, GateFailedError, ModelError
from edgeship.files import sha256_file
from edgeship.manifest import Manifest, load_manifest
from edgeship.runtime.compare import Comparison, compare, judge
from edgeship.reference import KerasReference
from edgeship.runtime.backends import backend_module
from edgeship.runtime.gates import Gate, gate_for
from edgeship.runtime.status import FAIL, PASS, SKIPPED, label
from edgeship.runtime.tables import cell, markdown_table

log = logging.getLogger(__name__)


@dataclass
class ParityRow:
    """One line of the verify table: an artifact, its figures and its verdict."""

    artifact: str
    format: str
    precision: str
    status: str
    comparison: Comparison | None = None
    failures: list[str] = field(default_factory=list)
    reason: str | None = None
    seconds: float | None = None
    first_divergent_layer: dict[str, Any] | None = None
    flipped: list[dict[str, Any]] = field(default_factory=list)
    """Test pictures whose top-1 differs from the Keras model's (at most FLIPPED_LIMIT, the surest Keras answers first)."""
    flipped_total: int = 0

    @property
    def verdict(self) -> str:
        """The status with its symbol and reason, e.g. `❌ fail: agreement 97.00% < 99.00%`."""
        return label(self.status, "; ".join(self.failures) if self.failures else self.reason)


def dataset_for_bundle(manifest: Manifest, name: str | None = None, skip_bad_images: bool = False) -> Any:
    """The dataset to verify a bundle on: `name`, else the one it was exported with; an image folder loaded as at export.

    A folder is brought to the model's size and colour by the manifest's resize rule and, when it is
    the folder the bundle was made from, split as then (the recorded fraction and seed).
    """
    from edgeship.data import FolderOptions, is_image_folder, load_dataset
    from edgeship.runtime.preprocess import image_geometry

    recorded_name = manifest.dataset.get("name") or "mnist-sample"
    name = name or recorded_name
    if not is_image_folder(name):
        return load_dataset(name)
    same = Path(name).resolve() == Path(recorded_name).resolve()
    height, width, _ = image_geometry(manifest.input)
    split = manifest.dataset.get("split", {}) if same else {}
    options = FolderOptions.recorded((height, width), manifest.input.color, manifest.input.resize, split)
    if skip_bad_images:
        options = dataclasses.replace(options, skip_bad_images=True)
    return load_dataset(name, options)


def source_model_path(bundle: Path, manifest: Manifest, override: str | Path | None = None) -> Path:
    """The Keras model a bundle was exported from: `override`, else the manifest's record (checked by sha256)."""
    if override is not None:
        path = Path(override)
    else:
        recorded = manifest.source_model.get("file")
        if not recorded:
            raise BundleError("the manifest does not record its source model; pass --model MODEL.keras")
        path = Path(recorded) if Path(recorded).is_absolute() else (bundle / recorded)
    if not path.is_file():
        raise ModelError(f"source model {path} not found; pass --model MODEL.keras")
    expected = manifest.source_model.get("sha256")
    if override is None and expected and sha256_file(path) != expected:
        raise ModelError(f"{path} changed since the bundle was exported (sha256 differs); re-export or pass --model")
    return path


def artifact_probabilities(bundle: Path, name: str, images: np.ndarray, backend: str | None = None) -> np.ndarray:
    """A candidate runner: one artifact through the slim runtime, exactly as a device would run it."""
    from edgeship.runtime import Classifier

    with Classifier.load(bundle, artifact=name, backend=backend) as classifier:
        return classifier.predict_proba(images)


DIAGNOSIS_IMAGES = 50
FLIPPED_LIMIT = 100


def flipped_pictures(
    reference: np.ndarray, candidate: np.ndarray, indices: np.ndarray, labels: list[str], limit: int = FLIPPED_LIMIT
) -> tuple[list[dict[str, Any]], int]:
    """The pictures whose top-1 the artifact changed: index in the dataset's test split, both labels and both probabilities.

    The ones Keras was surest of come first: those are the flips a user would least expect.
    """
    keras_top1, artifact_top1 = reference.argmax(axis=1), candidate.argmax(axis=1)
    changed = np.flatnonzero(keras_top1 != artifact_top1)
    order = changed[np.argsort(-reference[changed, keras_top1[changed]], kind="stable")][:limit]
    pictures = [
        {
            "index": int(indices[row]),
            "keras_label": labels[int(keras_top1[row])],
            "keras_probability": round(float(reference[row, keras_top1[row]]), 4),
            "artifact_label": labels[int(artifact_top1[row])],
            "artifact_probability": round(float(candidate[row, artifact_top1[row]]), 4),
        }
        for row in order
    ]
    return pictures, int(len(changed))


def _diagnose_int8(bundle: Path, manifest: Manifest, artifact: Any, images: np.ndarray) -> dict[str, Any] | None:
    """The first op of a failing int8 file that strays from the bundle's float32 file of the same family.

    TFLite files are traced with the interpreter's preserved tensors, ONNX files with ONNX Runtime's
    qdq_loss_debug. A file made from the equalized model is not traced: its channels are rescaled by
    design, so its tensors cannot be compared with the float file's one for one.
    """
    from edgeship.manifest import resolve_in_bundle
    from edgeship.quantdebug import first_divergent_layer, layer_errors, onnx_layer_errors

    rescue = artifact.details.get("rescue") or {}
    chosen = next((step for step in rescue.get("steps", []) if step["step"] == rescue.get("chosen")), None)
    if chosen and chosen.get("equalized"):
        log.warning("%s was made from the equalized model: its layers are not traced against the float file", artifact.name)
        return None
    fp32 = next((a for a in manifest.artifacts if a.has_file and a.format == artifact.format and a.precision == "fp32"), None)
    if fp32 is None:
        log.warning("no %s fp32 artifact in the bundle to compare %s with, layer by layer", artifact.format, artifact.name)
        return None
    trace = layer_errors if artifact.format == "tflite" else onnx_layer_errors
    try:
        layers = trace(resolve_in_bundle(bundle, fp32.file), resolve_in_bundle(bundle, artifact.file), images, manifest.input)
    except EdgeshipError as exc:
        log.warning("cannot trace %s layer by layer: %s", artifact.name, exc)
        return None
    return first_divergent_layer(layers)


@dataclass
class VerifyReport:
    """The verify table and what it was measured on."""

    bundle: str
    dataset: str
    images: int
    reference_accuracy: float
    rows: list[ParityRow]

    @property
    def passed(self) -> bool:
        return all(row.status != FAIL for row in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_bundle(
    bundle: str | Path,
    dataset: Any,
    max_images: int | None = None,
    gates: dict[str, Gate] | None = None,
    model_path: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    backend: str | None = None,
) -> VerifyReport:
    """Run the Keras model and every artifact on the dataset's test split and judge each artifact.

    `backend` runs each artifact on that backend (e.g. litert-compiled) instead of its format's default;
    artifacts it cannot run are skipped.
    """
    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    images, labels = dataset.x_test, dataset.y_test
    indices = np.arange(len(labels))
    expected = tuple(manifest.input.shape[:2]) if manifest.input.layout == "NHWC" else tuple(manifest.input.shape[-2:])
    if tuple(images.shape[1:3]) != expected:
        raise DatasetError(
            f"{dataset.name} has {images.shape[1]}x{images.shape[2]} images; this bundle's model takes "
            f"{expected[0]}x{expected[1]}: give the dataset it was exported with ({manifest.dataset.get('name', '?')})"
        )
    classes = len(manifest.labels)
    if labels.max(initial=0) >= classes:
        # A model of fewer classes than the dataset is judged on the classes it has, as at export.
        keep = labels < classes
        images, labels, indices = images[keep], labels[keep], indices[keep]
        if not len(labels):
            raise DatasetError(f"no test image of {dataset.name} has a label below {classes}, the model's class count")
    if max_images is not None:
        images, labels, indices = images[:max_images], labels[:max_images], indices[:max_images]
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    say(f"  keras reference on {len(images)} test images")
    reference = KerasReference.load(source_model_path(bundle, manifest, model_path), manifest).predict_proba(images)
    rows = []
    for artifact in manifest.artifacts:
        if artifact.status not in (PASS, FAIL):
            # Not exported (error, skipped), or a file only its accelerator runs (unchecked): nothing to measure here.
            rows.append(ParityRow(artifact.name, artifact.format, artifact.precision, artifact.status, reason=artifact.reason))
            continue
        if backend is not None and artifact.format not in backend_module(backend).FORMATS:
            rows.append(ParityRow(artifact.name, artifact.format, artifact.precision, SKIPPED,
                                  reason=f"the {backend} backend does not run {artifact.format} files"))
            continue
        say(f"  {artifact.name} on {len(images)} test images")
        started = time.perf_counter()
        candidate = artifact_probabilities(bundle, artifact.name, images, backend)
        comparison = compare(reference, candidate, labels, manifest.labels)
        gate = (gates or {}).get(artifact.precision) or gate_for(artifact.precision)
        failures = judge(comparison, gate)
        row = ParityRow(
            artifact.name, artifact.format, artifact.precision, FAIL if failures else PASS,
            comparison=comparison, failures=failures, seconds=round(time.perf_counter() - started, 3),
        )
        row.flipped, row.flipped_total = flipped_pictures(reference, candidate, indices, manifest.labels)
        if failures and artifact.format in ("tflite", "onnx") and artifact.precision == "int8":
            row.first_divergent_layer = _diagnose_int8(bundle, manifest, artifact, images[:DIAGNOSIS_IMAGES])
        rows.append(row)
    return VerifyReport(str(bundle), dataset.name, int(len(images)), float((reference.argmax(1) == labels).mean()), rows)


def format_table(report: VerifyReport) -> str:
    """The verify table as Markdown, one row an artifact."""
    rows = []
    for row in report.rows:
        c = row.comparison
        figures = [None] * 6 if c is None else [
            cell(c.accuracy, ".4f"), cell(c.accuracy_delta_pp, "+.2f"), cell(c.agreement, ".2%"), cell(c.max_abs_diff, ".2e"),
            cell(c.mean_abs_diff, ".2e"), f"{c.worst_class} ({c.worst_class_delta_pp:+.1f})",
        ]
        rows.append((row.artifact, row.precision, *figures, row.verdict))
    table = markdown_table(
        ("artifact", "precision", "accuracy", "Δ acc (pp)", "agreement", "max abs Δp", "mean abs Δp", "worst class (pp)", "status"), rows
    )
    return f"Keras reference accuracy: {report.reference_accuracy:.4f} on {report.images} images of {report.dataset}\n\n{table}"


def raise_if_failed(report: VerifyReport) -> None:
    """GateFailedError naming every failing artifact and its numbers."""
    failing = []
    for row in report.rows:
        if row.status != FAIL:
            continue
        text = f"{row.artifact}: {', '.join(row.failures)}"
        layer = row.first_divergent_layer
        if layer:
            text += f" (first divergent op: {layer['op']} {layer['tensor']!r}, RMSE/scale {layer['rmse_over_scale']:.3g} > {layer['bound']})"
        failing.append(text)
    if failing:
        raise GateFailedError("parity gate failed for " + "; ".join(failing))
