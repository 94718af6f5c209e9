"""Classifier: a bundle's artifact (or a bare .tflite/.onnx file) on one backend, fed raw pixels.

Everything the hot path needs is decided once in load(): how to reshape an image batch to the
model's input, how to turn raw pixels into the model's input (scale, mean/std, quantization), and
how to read the output (dequantize, softmax for logits). A uint8 batch for a model whose uint8 input
quantization equals the recorded x/255 scaling goes to the interpreter untouched; an int8 model
with zero point -128 gets it by flipping the top bit. Float batches are checked for NaN/Inf and
for values far outside the recorded raw pixel range (a batch already divided by 255 is the most
common deployment bug, so it is flagged).

One Classifier may be shared by threads: it holds no per-call state; LiteRT gives each thread its
own interpreter (one behind a lock with an accelerator delegate) and ONNX Runtime sessions are
thread-safe.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeship.errors import BackendUnavailableError, BundleError, InputError, IntegrityError, ModelError, UsageError
from edgeship.files import sha256_file
from edgeship.manifest import Artifact, InputSpec, Manifest, load_manifest, resolve_in_bundle
from edgeship.runtime.backends import (
    FORMAT_BACKENDS,
    SUFFIX_FORMATS,
    backend_for_format,
    backend_module,
    create_runner,
    installed,
)
from edgeship.runtime.backends.base import Convert, Runner, RunnerInfo

log = logging.getLogger(__name__)

PREFERENCE = ("tflite-int8", "tflite-fp32", "onnx", "tflite-dynamic", "tflite-fp16", "onnx-int8", "edgetpu")
"""Default artifact order: the fastest faithful file first."""

_UINT8 = np.dtype(np.uint8)
_LABELS_ARE_INT64 = np.dtype(np.intp) == np.dtype(np.int64)
_RANGE_TOLERANCE = 0.01


@dataclass(frozen=True)
class Ranked:
    """One of an image's top-k classes."""

    index: int
    label: str
    probability: float


class Classifier:
    """Predict classes of raw-pixel images with one exported model; build with Classifier.load()."""

    def __init__(
        self,
        runner: Runner,
        labels: list[str],
        input_spec: InputSpec,
        logits: bool = False,
        artifact: Artifact | None = None,
    ) -> None:
        runner.activate()
        self.runner = runner
        self.labels = list(labels)
        self.input_spec = input_spec
        self.logits = logits
        self.artifact = artifact
        self._model_dims = _known_dims(runner.input.shape, runner.path)
        self._image_shapes = _image_shapes(input_spec, self._model_dims)
        self._single_model_shape = (1, *self._model_dims)
        # One uint8 image of these shapes takes predict's shortest path: the output needs no reshaping.
        self._fast_shapes = self._image_shapes if len(runner.output.shape) == 2 else frozenset()
        classes = _class_count(runner.output.shape, runner.path)
        if classes != len(self.labels):
            raise ModelError(f"{runner.path} outputs {classes} values but there are {len(self.labels)} labels; re-export the bundle")
        self._uint8_convert, self._float_convert = _input_converters(input_spec, runner)
        self._infer: Callable[[np.ndarray, Convert | None], np.ndarray] = runner.infer_converted
        quantization = runner.output.quantization
        self._output_scale = None if quantization is None else np.float32(quantization.scale)
        self._output_zero_point = None if quantization is None else np.float32(quantization.zero_point)

    @classmethod
    def load(
        cls,
        bundle_or_file: str | Path,
        artifact: str | None = None,
        backend: str | None = None,
        threads: int | None = None,
        delegate: str | None = None,
        providers: list[str] | None = None,
        verify: bool = True,
        delegate_options: dict[str, Any] | None = None,
        scale: float | None = None,
        mean: float | None = None,
        std: float | None = None,
        layout: str | None = None,
        logits: bool | None = None,
    ) -> "Classifier":
        """Open a bundle folder (checking sha256 unless verify=False) or a bare .tflite/.onnx file."""
        path = Path(bundle_or_file)
        accelerators = {"threads": threads, "delegate": delegate, "delegate_options": delegate_options, "providers": providers}
        bare_options = {"scale": scale, "mean": mean, "std": std, "layout": layout, "logits": logits}
        if path.is_dir():
            given = [f"{name}" for name, value in bare_options.items() if value is not None]
            if given:
                raise UsageError(
                    f"{', '.join(given)} apply to a bare .tflite/.onnx file; a bundle's manifest records its own preprocessing"
                )
            return cls._load_bundle(path, artifact, backend, verify, accelerators)
        if path.suffix.lower() in SUFFIX_FORMATS:
            if not path.is_file():
                if path.exists():
                    raise ModelError(f"{path} is not a regular file; give a .tflite/.onnx model file or a bundle folder")
                raise ModelError(f"model file {path} not found; check the path, or give the bundle folder that holds it")
            if artifact is not None:
                raise UsageError("artifact names a file inside a bundle; give the bundle folder, not a model file")
            return cls._load_bare(path, backend, accelerators, bare_options)
        if not path.exists():
            raise ModelError(f"{path} not found; give a bundle folder or a .tflite/.onnx file")
        raise ModelError(f"{path} is neither a bundle folder nor a .tflite/.onnx file")

    @classmethod
    def _load_bundle(
        cls, bundle: Path, name: str | None, backend: str | None, verify: bool, accelerators: dict[str, Any]
    ) -> "Classifier":
        manifest = load_manifest(bundle)
        chosen = choose_artifact(manifest, name, backend, accelerators["delegate"])
        path = resolve_in_bundle(bundle, chosen.file or "")
        if not path.is_file():
            raise ModelError(f"{chosen.file} is missing from the bundle {bundle}; copy the whole bundle folder")
        if verify:
            verify_file(path, chosen.sha256 or "")
        runner = create_runner(path, chosen.format, backend, **accelerators)
        return cls._build(runner, manifest.labels, manifest.input, manifest.output_kind == "logits", chosen)

    @classmethod
    def _load_bare(
        cls, path: Path, backend: str | None, accelerators: dict[str, Any], options: dict[str, Any]
    ) -> "Classifier":
        runner = create_runner(path, SUFFIX_FORMATS[path.suffix.lower()], backend, **accelerators)
        runner.activate()
        try:
            spec = bare_input_spec(_known_dims(runner.input.shape, path), options)
            classes = _class_count(runner.output.shape, path)
        except BaseException:
            runner.release()
            raise
        return cls._build(runner, [str(i) for i in range(classes)], spec, bool(options["logits"]))

    @classmethod
    def _build(cls, runner: Runner, *args: Any) -> "Classifier":
        try:
            return cls(runner, *args)
        except BaseException:
            runner.release()
            raise

    def predict(self, images: Any) -> np.ndarray:
        """Class indices (int64, one per image) for one image (H, W) or a batch (N, H, W) of raw pixels."""
        if images.__class__ is np.ndarray and images.shape in self._fast_shapes and images.dtype == _UINT8:
            labels = self._infer(images.reshape(self._single_model_shape), self._uint8_convert).argmax(axis=1)
        else:
            labels = self._forward(images).argmax(axis=1)
        return labels if _LABELS_ARE_INT64 else labels.astype(np.int64)

    def predict_proba(self, images: Any) -> np.ndarray:
        """Class probabilities, float32 (N, classes): dequantized, softmax applied to logits."""
        outputs = self._forward(images)
        if self._output_scale is not None:
            outputs = (outputs.astype(np.float32) - self._output_zero_point) * self._output_scale
        elif outputs.dtype != np.float32:
            outputs = outputs.astype(np.float32)
        return softmax(outputs) if self.logits else outputs

    def top_k(self, images: Any, k: int = 3) -> list[list[Ranked]]:
        """The k most probable classes of each image, most probable first."""
        if not isinstance(k, int) or not 1 <= k <= len(self.labels):
            raise UsageError(f"k must be between 1 and {len(self.labels)} (the number of classes), got {k!r}")
        return rank(self.predict_proba(images), self.labels, k)

    def info(self) -> dict[str, Any]:
        """What runs: artifact, file, backend, version, threads, accelerator, input and output tensors."""
        runner_info: RunnerInfo = self.runner.info()
        return {
            "artifact": self.artifact.name if self.artifact else None,
            "format": self.artifact.format if self.artifact else SUFFIX_FORMATS.get(self.runner.path.suffix.lower()),
            "precision": self.artifact.precision if self.artifact else None,
            "file": str(self.runner.path),
            "backend": runner_info.backend,
            "package": runner_info.package,
            "version": runner_info.version,
            "threads": runner_info.threads,
            "accelerator": runner_info.accelerator,
            "input": self.runner.input.to_dict(),
            "output": self.runner.output.to_dict(),
        }

    def close(self) -> None:
        """Release the interpreter or session; later calls raise UsageError."""
        self.runner.release()
        self._infer = _closed

    def __enter__(self) -> "Classifier":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _forward(self, images: Any) -> np.ndarray:
        """Raw model outputs (N, classes) for raw-pixel images."""
        if images.__class__ is np.ndarray and images.dtype == _UINT8:
            if images.shape in self._image_shapes:
                outputs = self._infer(images.reshape(self._single_model_shape), self._uint8_convert)
            else:
                outputs = self._infer(self._model_shaped(images), self._uint8_convert)
        else:
            outputs = self._forward_other(images)
        return outputs if outputs.ndim == 2 else outputs.reshape(len(outputs), -1)

    def _forward_other(self, images: Any) -> np.ndarray:
        try:
            array = np.asarray(images)
        except (ValueError, TypeError) as exc:
            raise InputError(f"images must be an array of one image or of a batch of equal-sized images ({exc})") from exc
        if array.dtype == _UINT8:
            return self._infer(self._model_shaped(array), self._uint8_convert)
        if array.dtype.kind not in "fiu":
            raise InputError(f"images must be numbers (uint8 raw pixels or floats in raw pixel units), got dtype {array.dtype}")
        batch = self._model_shaped(array)
        check_pixel_values(batch, self.input_spec.value_range)
        return self._infer(batch, self._float_convert)

    def _model_shaped(self, images: np.ndarray) -> np.ndarray:
        """A view of one image or a batch in the model's input shape; refuses other shapes."""
        shape = images.shape
        if shape in self._image_shapes:
            return images.reshape(self._single_model_shape)
        if shape[1:] in self._image_shapes:
            if shape[0] == 0:
                raise InputError("the batch is empty; give at least one image")
            return images.reshape((shape[0], *self._model_dims))
        raise InputError(describe_shape_error(shape, self.input_spec))


def rank(probabilities: np.ndarray, labels: list[str], k: int) -> list[list[Ranked]]:
    """The k most probable classes of each row, most probable first (ties: the lower index first)."""
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [
        [Ranked(int(index), labels[index], float(row[index])) for index in indices]
        for row, indices in zip(probabilities, order)
    ]


def _closed(source: np.ndarray, convert: Convert | None) -> np.ndarray:
    raise UsageError("this Classifier is closed; load it again")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32, shifted by the row maximum for stability."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32, copy=False)


def check_pixel_values(batch: np.ndarray, value_range: list[float]) -> None:
    """Refuse NaN/Inf and values far outside the raw pixel range; warn about batches that look already scaled."""
    low, high = float(value_range[0]), float(value_range[1])
    if batch.dtype.kind == "f" and not np.isfinite(batch).all():
        raise InputError("images contain NaN or infinite values; give finite raw pixel values")
    smallest, largest = float(batch.min()), float(batch.max())
    slack = _RANGE_TOLERANCE * (high - low)
    if smallest < low - slack or largest > high + slack:
        raise InputError(
            f"pixel values span [{smallest:g}, {largest:g}], far outside the expected raw pixel range [{low:g}, {high:g}]; "
            "give raw pixels (e.g. uint8 0..255): the runtime applies the model's scaling itself"
        )
    if high > 1.0 and 0.0 < largest <= 1.0:
        log.warning(
            "all pixel values are <= 1 but the model expects raw pixels in [%g, %g] and scales them itself; "
            "were these images already divided by 255?",
            low,
            high,
        )


def describe_shape_error(shape: tuple[int, ...], spec: InputSpec) -> str:
    """The message for an image batch of the wrong shape: what came, what fits, and no silent resizing."""
    height, width, channels = image_geometry(spec)
    if channels == 1:
        fits = f"one ({height}, {width}) image or a batch (N, {height}, {width}) / (N, {height}, {width}, 1)"
        kind = f"{height}x{width} grayscale"
    else:
        dims = ", ".join(str(d) for d in spec.shape)
        fits = f"one ({dims}) image or a batch (N, {dims})"
        kind = f"{height}x{width} {channels}-channel ({spec.layout})"
    return f"images have shape {tuple(shape)}; this model takes {kind} images: {fits}; edgeship does not resize or convert arrays silently"


def image_geometry(spec: InputSpec) -> tuple[int, int, int]:
    """(height, width, channels) from an input spec's shape and layout."""
    shape = list(spec.shape)
    if len(shape) == 2:
        return shape[0], shape[1], 1
    if len(shape) == 3:
        if spec.layout == "NCHW":
            return shape[1], shape[2], shape[0]
        return shape[0], shape[1], shape[2]
    raise ModelError(f"input shape {shape} is not an image (H, W), (H, W, C) or (C, H, W)")


def _image_shapes(spec: InputSpec, model_dims: tuple[int, ...]) -> frozenset[tuple[int, ...]]:
    """The shapes one image may have: for grayscale (H, W), (H, W, 1) and (1, H, W); else the spec's own."""
    height, width, channels = image_geometry(spec)
    if math.prod(spec.shape) != math.prod(model_dims):
        raise ModelError(f"the manifest's input shape {spec.shape} does not fit the model's input {list(model_dims)}; re-export the bundle")
    if channels == 1:
        return frozenset({(height, width), (height, width, 1), (1, height, width)})
    return frozenset({tuple(spec.shape)})


def _known_dims(shape: tuple[int, ...], path: Path) -> tuple[int, ...]:
    dims = tuple(shape[1:])
    if not dims or any(d <= 0 for d in dims):
        raise ModelError(f"{path} has a tensor of shape {list(shape)}; edgeship needs fixed sizes beyond the batch dimension")
    return dims


def _class_count(shape: tuple[int, ...], path: Path) -> int:
    """The classes of an output shaped (N, classes), or (N, classes, 1, 1) and the like; anything else is not a classifier."""
    dims = _known_dims(shape, path)
    classes = math.prod(dims)
    if classes < 2 or sum(d > 1 for d in dims) > 1:
        raise ModelError(
            f"{path} is not a classifier: its output has shape {list(shape)}; "
            "edgeship runs models whose one output is (batch, classes) with at least 2 classes"
        )
    return classes


def _input_converters(spec: InputSpec, runner: Runner) -> tuple[Convert | None, Convert]:
    """The converters for uint8 and for other batches, from raw pixels to the model's input dtype."""
    target = runner.input.dtype
    gain, offset = spec.scale / spec.std, spec.mean / spec.std
    if target.kind == "f":
        float_convert = _affine(gain, offset, target)
        return float_convert, float_convert
    if target.kind not in "iu":
        raise ModelError(f"{runner.path} takes {target.name} input; edgeship feeds float or 8-bit integer models")
    quantization = runner.input.quantization
    if quantization is None:
        if (gain, offset) != (1.0, 0.0):
            raise ModelError(
                f"{runner.path} takes {target.name} input without quantization parameters, i.e. raw values; "
                "its scaling must be 1 with mean 0 and std 1"
            )
        step, zero_point = 1.0, 0
    else:
        step, zero_point = quantization.scale, quantization.zero_point
    general = _quantize(gain / step, offset / step, zero_point, target)
    if offset == 0 and abs(gain / step - 1.0) < 1e-6:
        if target == np.uint8 and zero_point == 0:
            return None, general
        if target == np.int8 and zero_point == -128:
            return _flip_top_bit, general
    return general, general


def _affine(gain: float, offset: float, target: np.dtype) -> Convert:
    """out = raw * gain - offset, computed in the output's float type; the cast and the scaling run in place in `out`."""
    gain_value, offset_value = target.type(gain), target.type(offset)

    def convert(source: np.ndarray, out: np.ndarray) -> None:
        np.copyto(out, source, casting="unsafe")
        np.multiply(out, gain_value, out=out)
        if offset:
            np.subtract(out, offset_value, out=out)

    return convert


def _quantize(gain: float, offset: float, zero_point: int, target: np.dtype) -> Convert:
    """out = clip(round(raw * gain - offset) + zero_point) in the integer type: the model's input quantization."""
    bounds = np.iinfo(target)

    def convert(source: np.ndarray, out: np.ndarray) -> None:
        values = source.astype(np.float32) * np.float32(gain)
        if offset:
            values -= np.float32(offset)
        np.rint(values, out=values)
        values += np.float32(zero_point)
        np.clip(values, bounds.min, bounds.max, out=values)
        out[...] = values

    return convert


_TOP_BIT = np.uint8(0x80)


def _flip_top_bit(source: np.ndarray, out: np.ndarray) -> None:
    """uint8 raw pixels to int8 with zero point -128: q = raw - 128, i.e. the top bit flipped."""
    np.bitwise_xor(source, _TOP_BIT, out=out.view(np.uint8))


def bare_input_spec(model_dims: tuple[int, ...], options: dict[str, Any]) -> InputSpec:
    """The input spec for a bare model file: its own input shape, the layout given or read from that shape, scaling from options."""
    layout = options.get("layout")
    if layout is None:
        layout = "NCHW" if len(model_dims) == 3 and model_dims[0] in (1, 3, 4) and model_dims[-1] not in (1, 3, 4) else "NHWC"
    if layout not in ("NHWC", "NCHW"):
        raise UsageError(f"layout must be NHWC or NCHW, got {layout!r}")
    if len(model_dims) not in (2, 3):
        raise ModelError(f"model input {list(model_dims)} is not an image (H, W), (H, W, C) or (C, H, W)")
    if len(model_dims) == 3:
        channels = model_dims[0] if layout == "NCHW" else model_dims[-1]
        if channels not in (1, 3, 4):
            raise UsageError(f"layout {layout} does not fit the model input {list(model_dims)}: it would have {channels} channels")
    spec = InputSpec(shape=list(model_dims), layout=layout)
    for name in ("scale", "mean", "std"):
        value = options.get(name)
        if value is not None:
            if not isinstance(value, (int, float)) or not math.isfinite(value) or (name != "mean" and value == 0):
                raise UsageError(f"{name} must be a finite number{'' if name == 'mean' else ' other than 0'}, got {value!r}")
            setattr(spec, name, float(value))
    return spec


def verify_file(path: Path, expected: str) -> None:
    """IntegrityError unless the file's sha256 is the one the manifest recorded."""
    actual = sha256_file(path)
    if actual != expected:
        raise IntegrityError(
            f"{path.name} does not match its manifest (sha256 {actual[:12]}... but the manifest records {expected[:12]}...); "
            "it was changed or damaged in transit: copy the bundle again, or pass --no-verify (verify=False) to run it anyway"
        )


def choose_artifact(manifest: Manifest, name: str | None, backend: str | None, delegate: str | None) -> Artifact:
    """The artifact named, else the first in PREFERENCE whose backend is installed (edgetpu only with its delegate)."""
    if name is not None:
        chosen = manifest.artifact(name)
        if not chosen.ok:
            runnable = ", ".join(a.name for a in manifest.artifacts if a.ok) or "none"
            raise BundleError(f"artifact {name!r} was not exported ({chosen.reason or chosen.status}); this bundle has: {runnable}")
        if backend is not None and chosen.format not in backend_module(backend).FORMATS:
            raise UsageError(f"the {backend} backend cannot run {name} ({chosen.format}); use {backend_for_format(chosen.format)}")
        return chosen
    candidates = [a for a in manifest.artifacts if a.ok and a.format in FORMAT_BACKENDS]
    if backend is not None:
        formats = backend_module(backend).FORMATS
        candidates = [a for a in candidates if a.format in formats]
    if delegate == "edgetpu":
        candidates = [a for a in candidates if a.format == "edgetpu"]
        if not candidates:
            reasons = "; ".join(f"{a.name}: {a.reason}" for a in manifest.artifacts if a.format == "edgetpu" and a.reason)
            raise BundleError(
                "this bundle has no exported edgetpu artifact" + (f" ({reasons})" if reasons else "")
                + "; re-export it where edgetpu_compiler is installed, or name an artifact with --artifact"
            )
    else:
        candidates = [a for a in candidates if a.format != "edgetpu"]
    runnable = [a for a in candidates if installed(FORMAT_BACKENDS[a.format])]
    if not runnable:
        names = ", ".join(f"{a.name} ({a.format})" for a in candidates) or "none that fit the options given"
        raise BackendUnavailableError(
            f"no backend installed here runs this bundle's artifacts: {names}; "
            "install one with pip install 'edgeship[litert]' or 'edgeship[onnx]'"
        )
    rank = {artifact_name: position for position, artifact_name in enumerate(PREFERENCE)}
    return min(runnable, key=lambda a: rank.get(a.name, len(rank)))
