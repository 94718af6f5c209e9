"""export_bundle: one Keras classifier in, one bundle folder out (manifest.json, model files, golden.npz).

Every requested format is exported, loaded in its real interpreter and compared with the Keras
model on the dataset's test split. A format that fails is recorded with its reason and the others
go on. The whole bundle is staged beside its destination and swapped in at the end, so a re-export
replaces it as a whole and an interrupted export leaves the previous bundle (or none).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeship import __version__
from edgeship.errors import DatasetError, ExportError, ModelError, OutputError, UsageError
from edgeship.export.base import ExportOptions, FormatSkipped, ProgressCallback, check_format_options
from edgeship.native import native_output_to_log
from edgeship.export.keras_model import LoadedClassifier, fitted_input_shape, load_classifier
from edgeship.export.metadata import add_tflite_metadata
from edgeship.export.registry import FORMATS, ExportFormat, in_making_order, parse_formats
from edgeship.export.rescue import Attempt, Rescuer, RescuePolicy
from edgeship.files import atomic_directory, atomic_write_bytes, atomic_write_json, check_writable, sha256_file
from edgeship.manifest import MANIFEST_NAME, RAW_PIXEL_SCALE, Artifact, InputSpec, Manifest, Resize, TensorSpec
from edgeship.modelcard import card_path, read_card
from edgeship.reference import KerasReference
from edgeship.runtime.compare import compare, judge
from edgeship.runtime.status import ERROR, FAIL, PASS, SKIPPED, UNCHECKED
from edgeship.runtime import Classifier
from edgeship.runtime.metadata import check_against_manifest
from edgeship.runtime.backends.base import TensorInfo

log = logging.getLogger(__name__)

DEFAULT_DATASET = "mnist-sample"
GOLDEN_NAME = "golden.npz"
GOLDEN_COUNT = 100
DEFAULT_CALIBRATION_IMAGES = 300
LATENCY_SECONDS = 0.3
"""Timing budget per file when the rescue compares its steps' latency."""
TOOL_DISTRIBUTIONS = {
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos"),
    "keras": ("keras",),
    "tf2onnx": ("tf2onnx",),
    "onnx": ("onnx",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "onnxslim": ("onnxslim",),
    "ai-edge-litert": ("ai-edge-litert",),
}
TFLITE_FAMILIES = ("tflite", "edgetpu")
MEDIAPIPE_INPUT_TYPES = ("uint8", "float32")
"""What MediaPipe Tasks' ImageClassifier takes: "Requested one of these types: uint8/float32" (mediapipe 0.10.21)."""


@dataclass
class SummaryRow:
    """One line of the export table."""

    artifact: str
    status: str
    bytes: int | None
    accuracy: float | None
    agreement: float | None
    max_abs_diff: float | None
    export_seconds: float | None
    reason: str | None


@dataclass
class ExportResult:
    """The bundle written, its manifest and the summary table's rows."""

    bundle: Path
    manifest: Manifest
    rows: list[SummaryRow]

    @property
    def failed(self) -> list[SummaryRow]:
        """Formats that could not be made or run."""
        return [row for row in self.rows if row.status == ERROR]

    @property
    def gate_failed(self) -> list[SummaryRow]:
        """Files that were made but miss their gate (after any rescue)."""
        return [row for row in self.rows if row.status == FAIL]


@dataclass
class _Reference:
    """The Keras model's answers on the test split, which every artifact is compared with."""

    images: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray
    accuracy: float


def export_bundle(
    model_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    formats: str | list[str] | None = None,
    dataset: Any = None,
    calibration_images: int | None = None,
    seed: int = 0,
    input_scale: float | None = None,
    labels: list[str] | None = None,
    opset: int = 17,
    int8_io: str = "int8",
    simplify_onnx: bool = True,
    safe_mode: bool = True,
    progress: ProgressCallback | None = None,
    say: Callable[[str], None] | None = None,
    mean: float | list[float] | None = None,
    std: float | list[float] | None = None,
    color: str | None = None,
    resize: Resize | None = None,
    recipe: str | None = None,
    skip_bad_images: bool = False,
    rescue: RescuePolicy | None = None,
    onnx_calibration: str = "MinMax",
) -> ExportResult:
    """Export `model_path` to every format in `formats` (default: all) into the bundle folder `out_dir`.

    `dataset`: a name or path for edgeship.data.load_dataset, a Dataset, or None for the model
    card's dataset (else mnist-sample); an image folder is brought to the model's input size by the
    resize rule recorded. Calibration uses `calibration_images` training images drawn with `seed`
    (default: 300, or every training image when there are fewer);
    parity uses the whole test split. The preprocessing (input_scale, mean, std, color, resize,
    recipe: "mnist" or "none") comes from the model card; the options describe a model without one.
    Quantized files are judged against the accuracy budget of `rescue` (default: the int8 gate) and
    rescued when they miss it (see rescue.py).
    """
    names = parse_formats(formats)
    _check_options(calibration_images, opset, int8_io, input_scale, onnx_calibration)
    model_path, out_dir = Path(model_path), Path(out_dir)
    _refuse_foreign_folder(out_dir)
    say = say or log.info
    card = read_card(model_path)
    given = {"scale": input_scale, "mean": mean, "std": std, "color": color, "resize": resize, "recipe": recipe}
    classifier = load_classifier(model_path, safe_mode=safe_mode)
    data = _load_dataset(dataset, card, classifier, resize or (card.input.resize if card else Resize()), skip_bad_images)
    input_shape = fitted_input_shape(classifier, data.image_shape, data.name)
    input_spec = _input_spec(classifier, card, input_shape, given, data, model_path)
    class_names = _labels(classifier, card, data, labels, model_path)
    x_train, x_test, y_test, label_note = _classes_in_model(data, classifier.classes)
    if calibration_images is None:
        calibration_images = min(DEFAULT_CALIBRATION_IMAGES, len(x_train))
    if calibration_images > len(x_train):
        raise UsageError(
            f"--calibration-images {calibration_images} is more than the {len(x_train)} training images of "
            f"{data.name}; choose at most {len(x_train)}"
        )

    say(f"keras reference on {len(x_test)} test images of {data.name}")
    reference, output_kind = _keras_reference(classifier, x_test, y_test, input_spec, input_shape)
    chosen = np.sort(np.random.default_rng(seed).choice(len(x_train), size=calibration_images, replace=False))
    source_model = _source_model(classifier, card, out_dir)
    calibration = {"dataset": data.name, "split": "train", "images": int(calibration_images), "seed": int(seed)}
    options = ExportOptions(
        input_shape=input_shape,
        input_spec=input_spec,
        labels=class_names,
        output_kind=output_kind,
        calibration_images=x_train[chosen],
        calibration=calibration,
        opset=opset,
        int8_io=int8_io,
        simplify_onnx=simplify_onnx,
        model_name=source_model["architecture"] or model_path.stem,
        model_version=f"sha256:{source_model['sha256'][:16]}",
        progress=progress,
        onnx_calibration=onnx_calibration,
    )
    rescuer = Rescuer(
        rescue or RescuePolicy(),
        classifier.model,
        make=lambda export_format, model, path, file_options: _make(export_format, model, path, file_options, class_names),
        measure=lambda path, file_options: _measure(path, "candidate", file_options, reference, class_names),
        latency=lambda path: _latency_ms(path, reference.images),
        float_probabilities=lambda model: KerasReference(
            model, input_spec, input_shape, logits=output_kind == "logits"
        ).predict_proba(reference.images),
        reference_probabilities=reference.probabilities,
        say=say,
    )

    with atomic_directory(out_dir) as staging:
        made: dict[str, Artifact] = {}
        for name in in_making_order(names):
            say(f"exporting {name}")
            made[name] = _export_one(FORMATS[name], classifier.model, staging, options, reference, class_names, rescuer)
            if made[name].file:
                options.made[name] = staging / made[name].file
        artifacts = [made[name] for name in names]
        golden = _write_golden(staging, reference)
        manifest = Manifest(
            labels=class_names,
            input=input_spec,
            artifacts=artifacts,
            output_kind=output_kind,
            source_model=source_model,
            mobile=mobile_choices(artifacts, input_spec),
            dataset={
                "name": data.name,
                "source": getattr(data, "source", ""),
                "test_images": int(len(x_test)),
                "keras_accuracy": reference.accuracy,
                "calibration": calibration,
                **({"split": dict(data.split)} if getattr(data, "split", None) else {}),
                **({"classes_used": label_note} if label_note else {}),
            },
            golden=golden,
            tools=_tool_versions(artifacts),
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        atomic_write_json(staging / MANIFEST_NAME, manifest.to_dict())
    return ExportResult(bundle=out_dir, manifest=manifest, rows=[_row(artifact) for artifact in artifacts])


def _check_options(
    calibration_images: int | None, opset: int, int8_io: str, input_scale: float | None, onnx_calibration: str
) -> None:
    """Refuse option values that cannot work before any heavy work starts."""
    if calibration_images is not None and calibration_images < 1:
        raise UsageError(f"--calibration-images must be at least 1, got {calibration_images}")
    check_format_options(opset, int8_io, onnx_calibration)
    if input_scale is not None and (not np.isfinite(input_scale) or input_scale <= 0):
        raise UsageError(f"--input-scale must be a positive number, got {input_scale}")


def _refuse_foreign_folder(out_dir: Path) -> None:
    """Replacing a bundle is fine; replacing a folder of other files (or the model's own), or writing where nothing can be written, is not."""
    check_writable(out_dir, folder=True)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST_NAME).is_file():
        raise OutputError(
            f"{out_dir} exists and is not an edgeship bundle (no {MANIFEST_NAME}); "
            "choose a new folder for --out, export replaces its destination as a whole"
        )


def _load_dataset(dataset: Any, card: Any, classifier: LoadedClassifier, resize: Resize, skip_bad_images: bool) -> Any:
    """A Dataset from a name/path, a Dataset as is, or the card's dataset (else the bundled sample).

    An image folder is loaded at the model's input size and colour, with the resize rule recorded,
    and, when it is the folder the model was trained on, with the same recorded split.
    """
    if dataset is None:
        dataset = (card.dataset if card is not None and card.dataset else None) or DEFAULT_DATASET
    if not isinstance(dataset, (str, os.PathLike)):
        return dataset
    from edgeship.data import DEFAULT_IMAGE_SIZE, FolderOptions, is_image_folder, load_dataset

    if not is_image_folder(dataset):
        return load_dataset(dataset)
    split = card.split if card is not None and card.dataset and Path(card.dataset).resolve() == Path(dataset).resolve() else {}
    height, width = classifier.input_shape[:2] if len(classifier.input_shape) >= 2 else (None, None)
    recorded = split.get("image_size") or [DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE]
    size = (height or recorded[0], width or recorded[1])
    color = "rgb" if classifier.channels == 3 else "grey"
    options = FolderOptions.recorded(size, color, resize, split)
    if skip_bad_images:
        options = dataclasses.replace(options, skip_bad_images=True)
    return load_dataset(dataset, options)


OPTION_NAMES = {"scale": "--input-scale", "mean": "--mean", "std": "--std", "color": "--color", "resize": "--resize", "recipe": "--recipe"}


def _input_spec(
    classifier: LoadedClassifier, card: Any, input_shape: tuple[int, ...], given: dict[str, Any], data: Any, model_path: Path
) -> InputSpec:
    """The preprocessing contract: the card's when there is one (options may only repeat it), else the options'.

    Without a card: scale 1 when the model starts with Rescaling/Normalization (it takes raw pixels),
    else 1/255; mean 0, std 1; colour from the model's channels; the MNIST recipe when the dataset is
    MNIST digits; each overridden by the options given.
    """
    recipe = given["recipe"]
    given = {**given, "recipe": None if recipe == "none" else recipe}
    if card is not None:
        recorded = card.input
        for name, value in given.items():
            if value is None:
                continue
            if not _same(value, getattr(recorded, name)):
                raise UsageError(
                    f"{OPTION_NAMES[name]} {_shown(value)} contradicts the {name} {_shown(getattr(recorded, name))} recorded in "
                    f"{card_path(model_path).name}; drop the option or fix the card"
                )
        spec = dataclasses.replace(recorded, shape=list(input_shape), layout="NHWC", value_range=list(recorded.value_range))
    else:
        inside = classifier.preprocessing_layers
        scaling_given = any(given[name] is not None for name in ("scale", "mean", "std"))
        if inside and not scaling_given:
            note = (f"the model starts with {' and '.join(inside)}: it takes raw pixels and scales them itself, "
                    "so the scaling here is 1")
        elif scaling_given:
            note = "scaling from the export options (the model has no card)"
        else:
            note = "no model card: the default scaling x/255"
        scale = given["scale"] if given["scale"] is not None else (1.0 if inside else RAW_PIXEL_SCALE)
        grey = len(input_shape) == 2 or input_shape[-1] == 1
        if recipe is None:
            recipe_chosen = getattr(data, "recipe", None) if grey else None
        else:
            recipe_chosen = given["recipe"]
        spec = InputSpec(
            shape=list(input_shape), layout="NHWC", scale=float(scale),
            mean=given["mean"] if given["mean"] is not None else 0.0, std=given["std"] if given["std"] is not None else 1.0,
            color=given["color"], resize=given["resize"] or Resize(), recipe=recipe_chosen, note=note,
        )
    problems = spec.problems()
    if problems:
        raise UsageError(f"{problems[0]} (model input {list(input_shape)})")
    return spec


def _same(given: Any, recorded: Any) -> bool:
    """Whether an option repeats a recorded value (numbers within rounding, a scalar matching a list of equal values)."""
    if isinstance(given, (int, float, list)) and isinstance(recorded, (int, float, list)):
        given_values, recorded_values = np.atleast_1d(np.asarray(given, float)), np.atleast_1d(np.asarray(recorded, float))
        return bool(np.allclose(np.broadcast_to(given_values, np.broadcast_shapes(given_values.shape, recorded_values.shape)),
                                recorded_values, rtol=1e-6, atol=0))
    return given == recorded


def _shown(value: Any) -> str:
    if isinstance(value, Resize):
        return f"{value.method},{value.fit}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ",".join(f"{v:g}" for v in value)
    return str(value)


def _labels(classifier: LoadedClassifier, card: Any, data: Any, labels: list[str] | None, model_path: Path) -> list[str]:
    """Class names: the option's, the card's, the dataset's when the counts match, else "0".."N-1"."""
    for source, names in (("--labels", labels), (card_path(model_path).name, card.labels if card else None)):
        if names is not None:
            if len(names) != classifier.classes:
                raise ModelError(f"{source} names {len(names)} classes but the model outputs {classifier.classes}")
            return [str(name) for name in names]
    if len(data.class_names) == classifier.classes:
        return list(data.class_names)
    return [str(index) for index in range(classifier.classes)]


def _classes_in_model(data: Any, classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str | None]:
    """The dataset's images whose labels the model can output (a 5-class model on MNIST keeps digits 0-4)."""
    if int(max(data.y_train.max(), data.y_test.max())) < classes:
        return data.x_train, data.x_test, data.y_test, None
    keep_train, keep_test = data.y_train < classes, data.y_test < classes
    if not keep_train.any() or not keep_test.any():
        raise DatasetError(f"dataset {data.name} has no images with labels 0..{classes - 1}; use the model's own dataset")
    note = f"labels 0..{classes - 1} of {data.name}'s {len(data.class_names)} (the model has {classes} classes)"
    log.warning("the model has %d classes: using only %s", classes, note)
    return data.x_train[keep_train], data.x_test[keep_test], data.y_test[keep_test], note


def _keras_reference(
    classifier: LoadedClassifier, images: np.ndarray, labels: np.ndarray, spec: InputSpec, input_shape: tuple[int, ...]
) -> tuple[_Reference, str]:
    """The Keras model's probabilities on the test split, and whether it outputs probabilities or logits."""
    keras_model = KerasReference(classifier.model, spec, input_shape, path=classifier.path)
    outputs = keras_model.outputs(images)
    output_kind = keras_model.detect_output_kind(outputs, classifier.softmax_output)
    probabilities = keras_model.probabilities(outputs)
    accuracy = float((probabilities.argmax(axis=1) == labels).mean())
    return _Reference(images, labels, probabilities, accuracy), output_kind


@dataclass
class _Measured:
    """What running a file through the runtime says about it besides its figures."""

    input: TensorSpec
    output: TensorSpec
    interpreter: str


class _MetadataError(ExportError):
    """The file was made but its TFLite Metadata could not be written."""


def _make(export_format: ExportFormat, model: Any, path: Path, options: ExportOptions, class_names: list[str]) -> Any:
    """Export one file and, for TFLite files, write its TFLite Metadata (labels, normalization): the file a device gets."""
    record = export_format.export(model, path, options)
    if export_format.family in TFLITE_FAMILIES:
        try:
            record.details["metadata"] = add_tflite_metadata(
                path, options.model_name, options.model_version, class_names, options.input_spec, options.output_kind
            )
        except Exception as exc:
            log.debug("%s: metadata not written", export_format.name, exc_info=True)
            raise _MetadataError(f"exported, but its TFLite Metadata could not be written: {_reason(exc)}") from exc
    return record


def _measure(path: Path, family: str, options: ExportOptions, reference: _Reference, class_names: list[str]) -> tuple[Any, _Measured]:
    """Parity of one file, run exactly as a device will: through the slim runtime, from raw pixels,
    alone (as a bare file), so its own metadata must carry the labels and the preprocessing."""
    with native_output_to_log(f"the {family} interpreter"), Classifier.load(path) as classifier:
        check_against_manifest(classifier.runner, class_names, options.input_spec, options.output_kind)
        if classifier.labels != class_names:
            raise ExportError(f"its metadata gives the labels {classifier.labels[:5]}..., not {class_names[:5]}...")
        measured = _Measured(_tensor_spec(classifier.runner.input), _tensor_spec(classifier.runner.output), "")
        probabilities = classifier.predict_proba(reference.images)
        info = classifier.runner.info()
    measured.interpreter = f"{info.package} {info.version}"
    return compare(reference.probabilities, probabilities, reference.labels, class_names), measured


def _latency_ms(path: Path, images: np.ndarray) -> float | None:
    """Median single-image latency through the runtime (a short run: the rescue's steps are compared in one process)."""
    from edgeship.runtime.bench import time_callable

    with native_output_to_log("the interpreter"), Classifier.load(path) as classifier:
        one = images[:1]
        timing = time_callable(lambda: classifier.predict_proba(one), batch=1, seconds=LATENCY_SECONDS)
    return round(timing.p50_ms, 4)


def _export_one(
    export_format: ExportFormat,
    model: Any,
    staging: Path,
    options: ExportOptions,
    reference: _Reference,
    class_names: list[str],
    rescuer: Rescuer,
) -> Artifact:
    """Export one format, load it in its interpreter, measure parity and judge it; rescue a quantized file outside its budget."""
    artifact = Artifact(
        name=export_format.name, status=PASS, format=export_format.family, precision=export_format.precision
    )
    path = staging / export_format.filename
    started = time.perf_counter()
    try:
        record = _make(export_format, model, path, options, class_names)
    except FormatSkipped as exc:
        return _not_made(artifact, SKIPPED, str(exc), path)
    except OutputError:
        raise
    except _MetadataError as exc:
        return _not_made(artifact, ERROR, str(exc), path)
    except Exception as exc:
        log.debug("%s failed", export_format.name, exc_info=True)
        return _not_made(artifact, ERROR, _reason(exc), path)
    if not export_format.parity_measurable:
        _describe_file(artifact, path, record.details, started)
        artifact.status, artifact.reason = UNCHECKED, "parity not measured: this file runs only on its accelerator"
        return artifact
    try:
        comparison, measured = _measure(path, export_format.family, options, reference, class_names)
    except Exception as exc:
        log.debug("%s does not run", export_format.name, exc_info=True)
        artifact.details = record.details
        return _not_made(artifact, ERROR, f"exported, but its interpreter cannot run it: {_reason(exc)}", path)
    failures = judge(comparison, rescuer.policy.gate(export_format.precision))
    details = record.details
    if failures and rescuer.applies_to(export_format):
        plain = Attempt("plain", path, record, comparison, failures, measured)
        try:
            chosen, details["rescue"] = rescuer.rescue(export_format, path, options, plain)
            details = {**chosen.record.details, "rescue": details["rescue"]}
            comparison, measured, failures = chosen.comparison, chosen.measured, chosen.failures
        except OutputError:
            raise
        except Exception as exc:
            log.debug("rescuing %s failed", export_format.name, exc_info=True)
            details["rescue"] = {"error": _reason(exc)}
            failures = [*failures, f"rescue failed ({_reason(exc)})"]
            for leftover in staging.glob(f".{path.stem}.*{path.suffix}"):
                leftover.unlink()
    _describe_file(artifact, path, details, started)
    artifact.input, artifact.output = measured.input, measured.output
    artifact.details["interpreter"] = measured.interpreter
    artifact.parity = {
        "images": comparison.images,
        "accuracy": comparison.accuracy,
        "keras_accuracy": comparison.reference_accuracy,
        "accuracy_delta_pp": comparison.accuracy_delta_pp,
        "agreement": comparison.agreement,
        "max_abs_diff": comparison.max_abs_diff,
        "mean_abs_diff": comparison.mean_abs_diff,
    }
    if failures:
        artifact.status, artifact.reason = FAIL, "parity gate missed at export: " + "; ".join(failures)
    return artifact


def _describe_file(artifact: Artifact, path: Path, details: dict[str, Any], started: float) -> None:
    """The file's name, size, sha256, how it was made and how long that took."""
    artifact.export_seconds = round(time.perf_counter() - started, 3)
    artifact.file = path.name
    artifact.bytes = path.stat().st_size
    artifact.sha256 = sha256_file(path)
    artifact.details = details


def mobile_choices(artifacts: list[Artifact], spec: InputSpec) -> dict[str, Any]:
    """The files to hand to MediaPipe Tasks and Android apps: a float one and an int8 one that MediaPipe can feed.

    MediaPipe feeds a uint8 model the raw pixels untouched, so the int8 choice must have uint8
    input whose quantization is the recorded scaling itself (q = raw), as the runtime's fast path
    also checks; int8-input files are refused by MediaPipe.
    """
    made = [a for a in artifacts if a.has_file and a.format == "tflite" and a.input is not None]
    float_choice = next((a.name for a in made if a.precision == "fp32" and a.status == PASS), None)
    int8_choice, reason = None, "no full-integer TFLite file with uint8 input was exported (add tflite-int8-uint8io)"
    for artifact in made:
        if artifact.precision != "int8" or artifact.input.dtype not in MEDIAPIPE_INPUT_TYPES:
            continue
        if artifact.status != PASS:
            reason = f"{artifact.name} did not pass its gates ({artifact.status}: {artifact.reason})"
            continue
        quantization = artifact.input.quantization
        gain, offset = _gain_offset(spec)
        if quantization is not None and offset == 0 and quantization.zero_point == 0 and abs(gain / quantization.scale - 1) < 1e-6:
            int8_choice, reason = artifact.name, None
            break
        reason = (f"{artifact.name}'s uint8 input is not the raw pixel (quantization {quantization}); "
                  "MediaPipe feeds uint8 models raw pixels")
    choices: dict[str, Any] = {
        "mediapipe": {"fp32": float_choice, "int8": int8_choice},
        "note": "MediaPipe Tasks and Android's ImageClassifier take uint8 or float32 input tensors, not int8",
    }
    if reason and int8_choice is None:
        choices["mediapipe"]["int8_reason"] = reason
    return choices


def _gain_offset(spec: InputSpec) -> tuple[float, float]:
    """x = raw * gain - offset for a scalar scaling; NaN for per-channel scaling (never the identity MediaPipe needs)."""
    if isinstance(spec.mean, (list, tuple)) or isinstance(spec.std, (list, tuple)):
        means = spec.mean if isinstance(spec.mean, (list, tuple)) else [spec.mean]
        stds = spec.std if isinstance(spec.std, (list, tuple)) else [spec.std]
        if len(set(means)) > 1 or len(set(stds)) > 1:
            return float("nan"), float("nan")
        return spec.scale / stds[0], means[0] / stds[0]
    return spec.scale / spec.std, spec.mean / spec.std
def _not_made(artifact: Artifact, status: str, reason: str, path: Path) -> Artifact:
    """Record a format that was skipped or failed, leaving no stray file of it in the bundle (its sidecar files included)."""
    path.unlink(missing_ok=True)
    sidecar = (artifact.details or {}).get("required_operators") or {}
    if sidecar.get("file"):
        (path.parent / sidecar["file"]).unlink(missing_ok=True)
    artifact.status, artifact.reason, artifact.file = status, reason, None
    artifact.bytes = artifact.sha256 = artifact.input = artifact.output = artifact.parity = None
    artifact.details = {}
    return artifact


def _reason(exc: BaseException) -> str:
    """One line saying why: the exception's type and its first non-empty line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else 'no message'}"[:500]


def _write_golden(staging: Path, reference: _Reference) -> dict[str, Any]:
    """golden.npz: the first test images (uint8), the Keras probabilities and the true labels, for self-tests."""
    count = min(GOLDEN_COUNT, len(reference.images))
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        images=reference.images[:count].astype(np.uint8),
        probabilities=reference.probabilities[:count].astype(np.float32),
        labels=reference.labels[:count].astype(np.int64),
    )
    path = atomic_write_bytes(staging / GOLDEN_NAME, buffer.getvalue())
    return {"file": GOLDEN_NAME, "sha256": sha256_file(path), "count": count}


def _source_model(classifier: LoadedClassifier, card: Any, out_dir: Path) -> dict[str, Any]:
    """Where the model came from: its path relative to the bundle where possible, and its sha256."""
    model_path = classifier.path.resolve()
    try:
        recorded = os.path.relpath(model_path, out_dir.resolve())
    except ValueError:
        recorded = str(model_path)
    return {
        "file": Path(recorded).as_posix(),
        "sha256": sha256_file(model_path),
        "card": card_path(model_path).name if card is not None else None,
        "architecture": card.architecture if card is not None else "",
        "classes": classifier.classes,
    }


def _tensor_spec(tensor: TensorInfo) -> TensorSpec:
    """The manifest's record of a tensor as the runtime's backend sees it."""
    return TensorSpec(dtype=tensor.dtype.name, shape=[int(d) for d in tensor.shape], quantization=tensor.quantization)


def _tool_versions(artifacts: list[Artifact]) -> dict[str, str]:
    """Versions of the tools that made the files (installed distributions only, no imports)."""
    tools = {"edgeship": __version__}
    for tool, distributions in TOOL_DISTRIBUTIONS.items():
        for distribution in distributions:
            try:
                tools[tool] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    for artifact in artifacts:
        if artifact.has_file and artifact.details.get("compiler_version"):
            tools["edgetpu_compiler"] = artifact.details["compiler_version"]
    return tools


def _row(artifact: Artifact) -> SummaryRow:
    parity = artifact.parity or {}
    return SummaryRow(
        artifact=artifact.name,
        status=artifact.status,
        bytes=artifact.bytes,
        accuracy=parity.get("accuracy"),
        agreement=parity.get("agreement"),
        max_abs_diff=parity.get("max_abs_diff"),
        export_seconds=artifact.export_seconds,
        reason=artifact.reason,
    )
