"""Classifier: the object a user holds; a bundle's artifact (or a bare .tflite/.onnx file) on one backend, fed raw pixels.

The jobs around it have their own homes: runtime/bundle.py opens the folder, checks sha256 and
chooses the artifact; runtime/preprocess.py turns raw pixels into the model's input (decided once
in load(): the fast paths are the untouched uint8 batch, the top-bit flip for int8 models with zero
point -128, and the in-place affine into the backend's buffer); runtime/postprocess.py turns raw
outputs into probabilities and top-k. Float batches are checked for NaN/Inf and for values far
outside the recorded raw pixel range (a batch already divided by 255 is the most common deployment
bug, so it is flagged).

One Classifier may be shared by threads: it holds no per-call state; LiteRT gives each thread its
own interpreter (one behind a lock with an accelerator delegate) and ONNX Runtime sessions are
thread-safe.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeship.errors import InputError, ModelError, UsageError
from edgeship.manifest import Artifact, InputSpec, TensorSpec
from edgeship.runtime.backends import SUFFIX_FORMATS, create_runner
from edgeship.runtime.backends.base import Convert, Runner, RunnerInfo, TensorInfo
from edgeship.runtime.bundle import Bundle
from edgeship.runtime.postprocess import Probabilities, Ranked, class_count, rank
from edgeship.runtime.preprocess import (
    bare_input_spec,
    check_pixel_values,
    describe_shape_error,
    image_shapes,
    input_converters,
    known_dims,
)
from edgeship.runtime.metadata import bare_preprocessing, check_against_manifest

__all__ = ["Classifier", "Ranked"]

log = logging.getLogger(__name__)

_UINT8 = np.dtype(np.uint8)
_LABELS_ARE_INT64 = np.dtype(np.intp) == np.dtype(np.int64)


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
        self._model_dims = known_dims(runner.input.shape, runner.path)
        self._image_shapes = image_shapes(input_spec, self._model_dims)
        self._single_model_shape = (1, *self._model_dims)
        # One uint8 image of these shapes takes predict's shortest path: the output needs no reshaping.
        self._fast_shapes = self._image_shapes if len(runner.output.shape) == 2 else frozenset()
        classes = class_count(runner.output.shape, runner.path)
        if classes != len(self.labels):
            raise ModelError(f"{runner.path} outputs {classes} values but there are {len(self.labels)} labels; re-export the bundle")
        self._uint8_convert, self._float_convert = input_converters(input_spec, runner.input, runner.path)
        self._infer: Callable[[np.ndarray, Convert | None], np.ndarray] = runner.infer_converted
        self._probabilities = Probabilities(runner.output.quantization, logits)

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
        mean: float | list[float] | None = None,
        std: float | list[float] | None = None,
        layout: str | None = None,
        logits: bool | None = None,
        accelerator: str | None = None,
        accelerator_options: dict[str, str] | None = None,
        require_full_acceleration: bool = False,
        color: str | None = None,
        resize: Any = None,
        recipe: str | None = None,
    ) -> "Classifier":
        """Open a bundle folder (checking sha256 unless verify=False) or a bare .tflite/.onnx file.

        `accelerator` (cpu, gpu, npu) with its options names an accelerator of the litert-compiled
        backend; `require_full_acceleration` refuses a model it does not take whole. For a bare file,
        scale/mean/std (a number, or a list per channel), layout, logits, color and the picture rules
        (resize: a manifest.Resize; recipe) describe its preprocessing.
        """
        path = Path(bundle_or_file)
        accelerators = {"threads": threads, "delegate": delegate, "delegate_options": delegate_options, "providers": providers,
                        "accelerator": accelerator, "accelerator_options": accelerator_options,
                        "require_full_acceleration": require_full_acceleration}
        bare_options = {"scale": scale, "mean": mean, "std": std, "layout": layout, "logits": logits, "color": color,
                        "resize": resize, "recipe": recipe}
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
        cls, folder: Path, name: str | None, backend: str | None, verify: bool, accelerators: dict[str, Any]
    ) -> "Classifier":
        bundle = Bundle.open(folder)
        chosen = bundle.choose(name, backend, accelerators["delegate"])
        runner = create_runner(bundle.artifact_path(chosen, verify), chosen.format, backend, **accelerators)
        runner.activate()
        try:
            # The file's own metadata (labels, normalization) must say what the manifest says; verify=False skips it too.
            if verify:
                check_against_manifest(runner, bundle.manifest.labels, bundle.manifest.input, bundle.manifest.output_kind)
        except BaseException:
            runner.release()
            raise
        return cls._build(runner, bundle.manifest.labels, bundle.manifest.input, bundle.manifest.output_kind == "logits", chosen)

    @classmethod
    def _load_bare(
        cls, path: Path, backend: str | None, accelerators: dict[str, Any], options: dict[str, Any]
    ) -> "Classifier":
        runner = create_runner(path, SUFFIX_FORMATS[path.suffix.lower()], backend, **accelerators)
        runner.activate()
        try:
            classes = class_count(runner.output.shape, path)
            # Options that cannot fit this model (std 0, a list per channel of the wrong length) are refused first.
            bare_input_spec(known_dims(runner.input.shape, path), options)
            # The file's own metadata (labels, normalization) fills in what the options leave out.
            merged, labels = bare_preprocessing(runner, options, classes, log.warning)
            spec = bare_input_spec(known_dims(runner.input.shape, path), merged)
        except BaseException:
            runner.release()
            raise
        return cls._build(runner, labels or [str(i) for i in range(classes)], spec, bool(merged.get("logits")))

    @classmethod
    def _build(cls, runner: Runner, labels: list[str], spec: InputSpec, logits: bool, artifact: Artifact | None = None) -> "Classifier":
        try:
            classifier = cls(runner, labels, spec, logits, artifact)
            if artifact is not None:
                _check_tensor(runner.path, "input", runner.input, artifact.input)
                _check_tensor(runner.path, "output", runner.output, artifact.output)
            return classifier
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
        return self._probabilities(self._forward(images))

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
            "placement": placement.to_dict() if (placement := self.runner.placement()) else None,
            "input": self.runner.input.to_dict(),
            "output": self.runner.output.to_dict(),
            **({"accelerator_details": runner_info.details} if runner_info.details else {}),
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


def _closed(source: np.ndarray, convert: Convert | None) -> np.ndarray:
    raise UsageError("this Classifier is closed; load it again")


def _check_tensor(path: Path, role: str, loaded: TensorInfo, recorded: TensorSpec | None) -> None:
    """ModelError when the file's tensor differs from what the manifest recorded at export (dtype, sizes, quantization)."""
    if recorded is None:
        return
    differences = []
    if loaded.dtype.name != recorded.dtype:
        differences.append(f"dtype {loaded.dtype.name}, recorded {recorded.dtype}")
    if list(loaded.shape[1:]) != list(recorded.shape[1:]):
        differences.append(f"shape {list(loaded.shape)}, recorded {recorded.shape}")
    quantization, expected = loaded.quantization, recorded.quantization
    if (quantization is None) != (expected is None) or (
        quantization is not None and expected is not None
        and (quantization.zero_point != expected.zero_point or not np.isclose(quantization.scale, expected.scale, rtol=1e-6))
    ):
        differences.append(f"quantization {quantization}, recorded {expected}")
    if differences:
        raise ModelError(f"{path.name}'s {role} tensor differs from the manifest ({'; '.join(differences)}); re-export the bundle")
