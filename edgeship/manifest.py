"""The bundle's manifest.json: the contract between export (which writes it) and the runtime (which reads it).

Pure standard library plus this package's errors, so the slim runtime can use it on a device.
A bundle is a folder: manifest.json, the model files it lists, and a golden set for self-tests.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeship.errors import BundleError
from edgeship.runtime.status import HAS_RESULT, LEGACY, STATUSES

SCHEMA = "edgeship.bundle/2"
READABLE_SCHEMAS = ("edgeship.bundle/1", SCHEMA)
"""Schema 2 speaks the one status vocabulary (edgeship.runtime.status); schema 1's ok/failed are read as pass/error.
Schema 1 inputs (grey models, scalar mean/std, no resize rule) load with the new input fields at their defaults."""
RAW_PIXEL_SCALE = 1.0 / 255.0
"""x = raw / 255: the scaling our models train with, and the default for a model without a card."""
MANIFEST_NAME = "manifest.json"

FORMATS = ("tflite", "onnx", "ort", "edgetpu")
COLORS = ("grey", "rgb")
RESIZE_METHODS = ("bilinear", "area", "nearest")
RESIZE_FITS = ("stretch", "crop", "pad")
RECIPES = ("mnist",)
"""Named recipes for pictures of another size; "mnist": the MNIST authors' normalization of digit photos."""


@dataclass
class Resize:
    """How a picture of another size is brought to the model's: the resampling method and how the aspect ratio is kept.

    fit: "stretch" (to the model's size, aspect ratio lost), "crop" (scale the short side to fit, cut the
    centre) or "pad" (scale the long side to fit, pad the rest with black). method: "bilinear",
    "area" (box averaging) or "nearest".
    """

    method: str = "bilinear"
    fit: str = "crop"

    def describe(self) -> str:
        return f"{'centre-crop' if self.fit == 'crop' else self.fit}, {self.method}"

    @classmethod
    def parse(cls, text: str) -> "Resize":
        """'bilinear', 'pad', 'area,crop' or 'nearest:stretch' -> Resize (unnamed parts keep their defaults)."""
        rule = cls()
        parts = [part.strip().lower() for part in text.replace(":", ",").split(",") if part.strip()]
        if not parts or len(parts) > 2:
            raise ValueError(f"a resize rule is METHOD,FIT, e.g. bilinear,crop; got {text!r}")
        for part in parts:
            if part in RESIZE_METHODS:
                rule.method = part
            elif part in RESIZE_FITS:
                rule.fit = part
            else:
                raise ValueError(
                    f"{part!r} is neither a resize method ({', '.join(RESIZE_METHODS)}) nor a fit ({', '.join(RESIZE_FITS)})"
                )
        return rule


def channel_count(shape: list[int], layout: str) -> int:
    """The channels of an image shape without its batch dimension: 1 for (H, W), else the layout's channel axis."""
    if len(shape) == 3:
        return shape[0] if layout == "NCHW" else shape[-1]
    return 1


@dataclass
class InputSpec:
    """What the model takes and how to get there from raw pixels: x = (raw * scale - mean) / std, per channel.

    `shape` excludes the batch dimension, e.g. [28, 28] or [28, 28, 1] (NHWC) or [1, 28, 28] (NCHW).
    `mean` and `std` are one number, or a list with one value per channel (RGB order).
    `value_range` is the range of the raw pixels the scaling expects (uint8: [0, 255]).
    `color` is the picture mode the model takes ("grey" or "rgb"; read from the shape when not given).
    `resize` is the rule for pictures of another size; `recipe` ("mnist") replaces it for digit photos.
    `note` says where the scaling comes from when that is not obvious (e.g. a Rescaling layer inside the model).
    """

    shape: list[int]
    layout: str = "NHWC"
    scale: float = RAW_PIXEL_SCALE
    mean: float | list[float] = 0.0
    std: float | list[float] = 1.0
    value_range: list[float] = field(default_factory=lambda: [0.0, 255.0])
    color: str | None = None
    resize: Resize = field(default_factory=Resize)
    recipe: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.resize, dict):
            self.resize = Resize(**{key: value for key, value in self.resize.items() if key in ("method", "fit")})
        if self.color is None and isinstance(self.shape, list) and self.layout in ("NHWC", "NCHW"):
            channels = channel_count(self.shape, self.layout)
            self.color = {1: "grey", 3: "rgb"}.get(channels)

    @property
    def channels(self) -> int:
        return channel_count(self.shape, self.layout)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def problems(self) -> list[str]:
        """What is wrong with the preprocessing fields, each starting with the field's name and giving the bad value (empty when all is well)."""
        found = []
        channels = self.channels
        for name in ("mean", "std"):
            value = getattr(self, name)
            values = value if isinstance(value, list) else [value]
            if not values or not all(_is_number(v) for v in values):
                found.append(f"{name} must be a finite number or a list of them, got {value!r}")
            elif isinstance(value, list) and len(value) != channels:
                found.append(
                    f"{name} lists {len(value)} values but the model takes {channels} channel{'s' if channels != 1 else ''}: "
                    f"give one value, or one per channel"
                )
            elif name == "std" and any(v == 0 for v in values):
                found.append(f"std must not be 0 (x is divided by it), got {value!r}")
        if not _is_number(self.scale) or self.scale == 0:
            found.append(f"scale must be a finite number other than 0, got {self.scale!r}")
        if self.color not in (*COLORS, None) or (self.color is None and channels in (1, 3)):
            found.append(f"color must be one of {', '.join(COLORS)}, got {self.color!r}")
        elif self.color is not None and {"grey": 1, "rgb": 3}[self.color] != channels:
            found.append(f"color {self.color} does not fit the model's {channels} input channel{'s' if channels != 1 else ''}")
        if self.resize.method not in RESIZE_METHODS or self.resize.fit not in RESIZE_FITS:
            found.append(
                f"resize must have a method in {', '.join(RESIZE_METHODS)} and a fit in {', '.join(RESIZE_FITS)}, "
                f"got {self.resize.method!r}, {self.resize.fit!r}"
            )
        if self.recipe is not None and self.recipe not in RECIPES:
            found.append(f"recipe must be one of {', '.join(RECIPES)} or null, got {self.recipe!r}")
        elif self.recipe == "mnist" and self.color != "grey":
            found.append("recipe mnist makes grey pictures; it needs a grey model, not an rgb one")
        return found

    def to_model_input(self, raw: Any, input_shape: tuple[int, ...]) -> Any:
        """Raw pixels -> the float32 batch a float model takes, shaped (N, *input_shape): see runtime.preprocess."""
        from edgeship.runtime.preprocess import to_model_input

        return to_model_input(raw, self, input_shape)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "input") -> "InputSpec":
        _require(raw, ("shape",), where)
        values = {key: raw[key] for key in raw if key in cls.__dataclass_fields__}
        resize = values.get("resize")
        if resize is not None and not (isinstance(resize, dict) and set(resize) <= {"method", "fit"}):
            raise BundleError(f"{where}.resize must be {{\"method\": ..., \"fit\": ...}}, got {resize!r}; re-export the bundle")
        if resize is None:
            values.pop("resize", None)
        spec = cls(**values)
        if not isinstance(spec.shape, list) or not spec.shape or not all(_is_int(d) and d > 0 for d in spec.shape):
            raise BundleError(f"{where}.shape must be a list of positive integers, got {spec.shape!r}; re-export the bundle")
        if spec.layout not in ("NHWC", "NCHW"):
            raise BundleError(f"{where}.layout must be NHWC or NCHW, got {spec.layout!r}; re-export the bundle")
        problems = spec.problems()
        if problems:
            raise BundleError(f"{where}.{problems[0]}; re-export the bundle")
        bounds = spec.value_range
        if not (isinstance(bounds, list) and len(bounds) == 2 and all(_is_number(b) for b in bounds) and bounds[0] < bounds[1]):
            raise BundleError(f"{where}.value_range must be [low, high] with low < high, got {bounds!r}; re-export the bundle")
        return spec


@dataclass
class Quantization:
    """Affine quantization of a tensor: real = (q - zero_point) * scale."""

    scale: float
    zero_point: int


@dataclass
class TensorSpec:
    """An artifact's own input or output tensor as its interpreter sees it."""

    dtype: str
    shape: list[int]
    quantization: Quantization | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str) -> "TensorSpec":
        _require(raw, ("dtype", "shape"), where)
        if not isinstance(raw["shape"], list) or not all(_is_int(d) for d in raw["shape"]):
            raise BundleError(f"{where}.shape must be a list of integers, got {raw['shape']!r}; re-export the bundle")
        quantization = raw.get("quantization")
        if quantization is not None:
            _require(quantization, ("scale", "zero_point"), f"{where}.quantization")
            scale, zero_point = quantization["scale"], quantization["zero_point"]
            if not _is_number(scale) or scale <= 0 or not _is_int(zero_point):
                raise BundleError(
                    f"{where}.quantization must have a positive scale and an integer zero_point, got {quantization!r}; re-export the bundle"
                )
            quantization = Quantization(float(scale), int(zero_point))
        return cls(dtype=str(raw["dtype"]), shape=list(raw["shape"]), quantization=quantization)


@dataclass
class Artifact:
    """One exported file (or one format that failed or was skipped, with the reason)."""

    name: str
    status: str
    format: str
    precision: str
    file: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    input: TensorSpec | None = None
    output: TensorSpec | None = None
    reason: str | None = None
    parity: dict[str, Any] | None = None
    export_seconds: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def has_file(self) -> bool:
        """Exported: the file is in the bundle (its parity passed, failed or could not be measured here)."""
        return self.status in HAS_RESULT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str) -> "Artifact":
        _require(raw, ("name", "status", "format", "precision"), where)
        if isinstance(raw["status"], str):
            raw = {**raw, "status": LEGACY.get(raw["status"], raw["status"])}
        if raw["status"] not in STATUSES:
            raise BundleError(f"{where}.status must be one of {', '.join(STATUSES)}, got {raw['status']!r}")
        if raw["format"] not in FORMATS:
            raise BundleError(f"{where}.format must be one of {', '.join(FORMATS)}, got {raw['format']!r}")
        values = {key: raw[key] for key in raw if key in cls.__dataclass_fields__}
        if raw["status"] in HAS_RESULT:
            _require(raw, ("file", "bytes", "sha256", "input", "output"), where)
            values["file"] = check_relative_file(raw["file"], f"{where}.file")
            check_sha256(raw["sha256"], f"{where}.sha256")
            values["input"] = TensorSpec.from_dict(raw["input"], f"{where}.input")
            values["output"] = TensorSpec.from_dict(raw["output"], f"{where}.output")
        return cls(**values)


@dataclass
class Manifest:
    """Everything a device needs to run a bundle, and how it was made."""

    labels: list[str]
    input: InputSpec
    artifacts: list[Artifact]
    output_kind: str = "probabilities"
    source_model: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    golden: dict[str, Any] | None = None
    tools: dict[str, str] = field(default_factory=dict)
    created: str = ""
    mobile: dict[str, Any] = field(default_factory=dict)
    """Which files to hand to mobile runtimes (MediaPipe Tasks / Android): {"mediapipe": {"fp32": name, "int8": name}}."""
    schema: str = SCHEMA

    def artifact(self, name: str) -> Artifact:
        """The artifact called `name`, or a BundleError listing the ones there are."""
        for artifact in self.artifacts:
            if artifact.name == name:
                return artifact
        names = ", ".join(a.name for a in self.artifacts) or "none"
        raise BundleError(f"no artifact {name!r} in this bundle; it has: {names}")

    def to_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        return {"schema": payload.pop("schema"), **payload}

    @classmethod
    def from_dict(cls, raw: Any) -> "Manifest":
        if not isinstance(raw, dict):
            raise BundleError("manifest.json must hold a JSON object; re-export the bundle")
        schema = raw.get("schema")
        if schema not in READABLE_SCHEMAS:
            raise BundleError(
                f"manifest.json has schema {schema!r}, this edgeship reads {' and '.join(READABLE_SCHEMAS)}; "
                "re-export the bundle with this version or upgrade edgeship"
            )
        _require(raw, ("labels", "input", "artifacts"), "manifest")
        labels = raw["labels"]
        if not isinstance(labels, list) or len(labels) < 2:
            raise BundleError("manifest.labels must list at least 2 class names; re-export the bundle")
        if raw.get("output_kind", "probabilities") not in ("probabilities", "logits"):
            raise BundleError("manifest.output_kind must be 'probabilities' or 'logits'")
        if not isinstance(raw["artifacts"], list):
            raise BundleError("manifest.artifacts must be a list; re-export the bundle")
        artifacts = [Artifact.from_dict(a, f"artifacts[{i}]") for i, a in enumerate(raw["artifacts"])]
        golden = raw.get("golden")
        if golden is not None:
            _require(golden, ("file", "sha256"), "golden")
            golden = {**golden, "file": check_relative_file(golden["file"], "golden.file")}
            check_sha256(golden["sha256"], "golden.sha256")
        return cls(
            labels=[str(label) for label in labels],
            input=InputSpec.from_dict(raw["input"]),
            artifacts=artifacts,
            output_kind=raw.get("output_kind", "probabilities"),
            source_model=raw.get("source_model", {}),
            dataset=raw.get("dataset", {}),
            golden=golden,
            tools=raw.get("tools", {}),
            created=raw.get("created", ""),
            mobile=raw.get("mobile") if isinstance(raw.get("mobile"), dict) else {},
        )


def _require(raw: Any, keys: tuple[str, ...], where: str) -> None:
    """Raise BundleError naming the first missing field."""
    if not isinstance(raw, dict):
        raise BundleError(f"{where} must be a JSON object in manifest.json; re-export the bundle")
    for key in keys:
        if key not in raw or raw[key] is None:
            raise BundleError(f"manifest.json is missing the field {where}.{key}; re-export the bundle")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_sha256(value: Any, where: str) -> str:
    """Refuse a recorded sha256 that is not 64 hex digits, so a damaged manifest cannot pass for a checksum mismatch."""
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value.lower()):
        raise BundleError(f"{where} must be 64 hex digits, got {value!r}; re-export the bundle")
    return value


def check_relative_file(name: Any, where: str) -> str:
    """Refuse a file name that is absolute or climbs out of the bundle, before anything is opened.

    Backslashes are refused too: on Windows they separate folders, so "..\\x" would climb out there.
    """
    if not isinstance(name, str) or not name or "\x00" in name:
        raise BundleError(f"{where} must be a file name inside the bundle, got {name!r}")
    path = Path(name)
    if path.is_absolute() or "\\" in name or ".." in path.parts or ":" in path.parts[0]:
        raise BundleError(f"{where} = {name!r} points outside the bundle; a bundle may only name its own files")
    return name


def resolve_in_bundle(bundle: Path, name: str) -> Path:
    """The real path of a bundle file, refusing symlinks that lead out of the bundle."""
    root = bundle.resolve()
    path = (bundle / check_relative_file(name, "file")).resolve()
    if root != path and root not in path.parents:
        raise BundleError(f"{name!r} resolves to {path}, outside the bundle {root}; refusing to open it")
    return path


def load_manifest(bundle: str | os.PathLike) -> Manifest:
    """Read and validate `bundle`/manifest.json."""
    folder = Path(bundle)
    if not folder.is_dir():
        raise BundleError(f"{folder} is not a bundle folder; give the folder that holds manifest.json")
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(f"{folder} has no {MANIFEST_NAME}; export a bundle with `edgeship export` or give a .tflite/.onnx file")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON ({exc}); re-export the bundle") from exc
    return Manifest.from_dict(raw)
