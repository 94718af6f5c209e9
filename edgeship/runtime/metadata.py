"""Read the labels and preprocessing a model file carries: TFLite Metadata, or an ONNX file's metadata_props.

A bare `.tflite` with TFLite Metadata (written by edgeship, MediaPipe's or tflite-support's
writers) or an `.onnx` exported by edgeship then runs with its own labels and normalization.

The TFLite side is a small FlatBuffers reader over the file's bytes, standard library only: the
fields it needs are a handful (the model's `metadata` and `buffers`; in the metadata the
normalization, colour space, image size, associated files and custom metadata), and every offset
is bounds-checked so that damaged metadata is one clear error instead of an IndexError from deep
inside a parser. The `flatbuffers` package would not save that work (its Python tables are
unchecked and the field numbers would still be written here, since the generated bindings ship
only with MediaPipe and tflite-support, which no device install has), and it is not installed
with tflite-runtime, which Raspberry Pi OS users run. Field numbers follow the official schemas
(tensorflow/lite/schema/schema.fbs; metadata_schema.fbs, version 1.5.0); the tests read the same
files with the official generated bindings and compare.
"""

from __future__ import annotations

import io
import json
import math
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeship.errors import ModelError

TFLITE_METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
CUSTOM_NAME = "edgeship"
CUSTOM_SCHEMA = "edgeship.metadata/1"

# schema.fbs: Model, Buffer, Metadata tables.
_MODEL_BUFFERS, _MODEL_METADATA = 4, 6
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2
_METADATA_NAME, _METADATA_BUFFER = 0, 1
# metadata_schema.fbs
_MODEL_META_NAME, _MODEL_META_DESCRIPTION, _MODEL_META_VERSION, _MODEL_META_SUBGRAPHS = 0, 1, 2, 3
_MODEL_META_FILES, _MODEL_META_MIN_PARSER = 6, 7
_SUBGRAPH_INPUTS, _SUBGRAPH_OUTPUTS, _SUBGRAPH_FILES, _SUBGRAPH_CUSTOM = 2, 3, 4, 9
_TENSOR_CONTENT, _TENSOR_PROCESS_UNITS, _TENSOR_FILES = 3, 4, 6
_CONTENT_TYPE, _CONTENT_VALUE = 0, 1
_IMAGE_COLOR, _IMAGE_SIZE = 0, 1
_SIZE_WIDTH, _SIZE_HEIGHT = 0, 1
_UNIT_TYPE, _UNIT_VALUE = 0, 1
_NORM_MEAN, _NORM_STD = 0, 1
_FILE_NAME, _FILE_TYPE, _FILE_LOCALE = 0, 2, 3
_CUSTOM_NAME, _CUSTOM_DATA = 0, 1
_IMAGE_PROPERTIES = 2
_NORMALIZATION_OPTIONS = 1
_TENSOR_AXIS_LABELS = 2
COLOR_SPACES = {0: "UNKNOWN", 1: "RGB", 2: "GRAYSCALE"}


class MetadataError(ModelError):
    """A model file's embedded metadata cannot be read (damaged or cut)."""


@dataclass
class EmbeddedMetadata:
    """What a model file says about itself; None where it says nothing."""

    source: str
    labels: list[str] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    """Normalization in raw-pixel units, per channel: x = (raw - mean) / std."""
    color: str | None = None
    size: tuple[int, int] | None = None
    """(height, width)"""
    output_kind: str | None = None
    input: dict[str, Any] | None = None
    """edgeship's own preprocessing record (scale, mean, std, layout, value_range), when the file has one."""
    name: str | None = None
    description: str | None = None
    version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def gain_offset(self) -> tuple[list[float], list[float]] | None:
        """The normalization as x = raw * gain - offset per channel, the form in which two records compare."""
        if self.input is not None:
            scale, mean, std = self.input.get("scale"), self.input.get("mean"), self.input.get("std")
            means, stds = _as_list(mean), _as_list(std)
            count = max(len(means), len(stds))
            means, stds = means * (count // len(means)), stds * (count // len(stds))
            return [scale / s for s in stds], [m / s for m, s in zip(means, stds)]
        if self.mean is not None and self.std is not None:
            return [1.0 / s for s in self.std], [m / s for m, s in zip(self.mean, self.std)]
        return None


def _as_list(value: Any) -> list[float]:
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)]


class _Buffer:
    """Bounds-checked FlatBuffers access: tables, scalars, strings and vectors by field number."""

    def __init__(self, data: bytes | memoryview, what: str) -> None:
        self.data = memoryview(data)
        self.what = what

    def fail(self, detail: str) -> MetadataError:
        return MetadataError(f"{self.what} is damaged ({detail})")

    def _read(self, fmt: str, position: int) -> Any:
        size = struct.calcsize(fmt)
        if position < 0 or position + size > len(self.data):
            raise self.fail(f"offset {position} outside its {len(self.data)} bytes")
        return struct.unpack_from(fmt, self.data, position)[0]

    def root(self) -> int:
        return self._deref(0)

    def _deref(self, position: int) -> int:
        return position + self._read("<I", position)

    def _field(self, table: int, index: int) -> int | None:
        vtable = table - self._read("<i", table)
        vtable_size = self._read("<H", vtable)
        slot = 4 + 2 * index
        if slot + 2 > vtable_size:
            return None
        offset = self._read("<H", vtable + slot)
        return table + offset if offset else None

    def scalar(self, table: int, index: int, fmt: str, default: Any = 0) -> Any:
        position = self._field(table, index)
        return default if position is None else self._read(fmt, position)

    def table(self, table: int, index: int) -> int | None:
        position = self._field(table, index)
        return None if position is None else self._deref(position)

    def _vector(self, table: int, index: int) -> tuple[int, int] | None:
        start = self.table(table, index)
        if start is None:
            return None
        length = self._read("<I", start)
        return start + 4, length

    def string(self, table: int, index: int) -> str | None:
        found = self._vector(table, index)
        if found is None:
            return None
        start, length = found
        if start + length > len(self.data):
            raise self.fail(f"a string of {length} bytes runs past the end")
        try:
            return bytes(self.data[start : start + length]).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail("a string is not UTF-8") from exc

    def tables(self, table: int, index: int) -> list[int]:
        found = self._vector(table, index)
        if found is None:
            return []
        start, length = found
        if start + 4 * length > len(self.data):
            raise self.fail(f"a vector of {length} entries runs past the end")
        return [self._deref(start + 4 * i) for i in range(length)]

    def floats(self, table: int, index: int) -> list[float]:
        found = self._vector(table, index)
        if found is None:
            return []
        start, length = found
        if start + 4 * length > len(self.data):
            raise self.fail(f"a vector of {length} floats runs past the end")
        return list(struct.unpack_from(f"<{length}f", self.data, start))

    def bytes_vector(self, table: int, index: int) -> memoryview | None:
        found = self._vector(table, index)
        if found is None:
            return None
        start, length = found
        if start + length > len(self.data):
            raise self.fail(f"a byte vector of {length} bytes runs past the end")
        return self.data[start : start + length]


def tflite_metadata_buffer(model: bytes, what: str = "the model") -> bytes | None:
    """The TFLITE_METADATA buffer of a .tflite file's bytes, or None when it has none."""
    reader = _Buffer(model, f"{what}'s flatbuffer")
    if len(model) < 8:
        raise ModelError(f"{what} is not a TFLite model: {len(model)} bytes")
    root = reader.root()
    buffers = reader.tables(root, _MODEL_BUFFERS)
    for entry in reader.tables(root, _MODEL_METADATA):
        if reader.string(entry, _METADATA_NAME) != TFLITE_METADATA_NAME:
            continue
        index = reader.scalar(entry, _METADATA_BUFFER, "<I")
        if index >= len(buffers):
            raise MetadataError(f"{what}'s metadata names buffer {index} of {len(buffers)}")
        buffer = buffers[index]
        offset = reader.scalar(buffer, _BUFFER_OFFSET, "<Q")
        if offset > 1:
            size = reader.scalar(buffer, _BUFFER_SIZE, "<Q")
            if offset + size > len(model):
                raise MetadataError(f"{what}'s metadata buffer runs past the end of the file")
            return bytes(model[offset : offset + size])
        data = reader.bytes_vector(buffer, _BUFFER_DATA)
        return None if data is None else bytes(data)
    return None


def parse_tflite_metadata(metadata: bytes, associated: dict[str, bytes], what: str = "the model") -> EmbeddedMetadata:
    """The fields edgeship uses from a TFLite Metadata flatbuffer, with its labels file from `associated`."""
    reader = _Buffer(metadata, f"{what}'s TFLite Metadata")
    if len(metadata) < 8 or bytes(metadata[4:8]) != METADATA_IDENTIFIER:
        raise MetadataError(f"{what}'s TFLite Metadata is damaged (no {METADATA_IDENTIFIER.decode()} identifier)")
    root = reader.root()
    found = EmbeddedMetadata(
        source="TFLite Metadata",
        name=reader.string(root, _MODEL_META_NAME),
        description=reader.string(root, _MODEL_META_DESCRIPTION),
        version=reader.string(root, _MODEL_META_VERSION),
    )
    found.details["min_parser_version"] = reader.string(root, _MODEL_META_MIN_PARSER)
    subgraphs = reader.tables(root, _MODEL_META_SUBGRAPHS)
    if not subgraphs:
        return found
    subgraph = subgraphs[0]
    inputs, outputs = reader.tables(subgraph, _SUBGRAPH_INPUTS), reader.tables(subgraph, _SUBGRAPH_OUTPUTS)
    if inputs:
        _read_image_input(reader, inputs[0], found)
    if outputs:
        label_files = [
            (reader.string(entry, _FILE_NAME), reader.string(entry, _FILE_LOCALE))
            for entry in reader.tables(outputs[0], _TENSOR_FILES)
            if reader.scalar(entry, _FILE_TYPE, "<B") == _TENSOR_AXIS_LABELS
        ]
        if label_files:
            # The first labels file without a locale (MediaPipe's default), else the first one.
            name = next((n for n, locale in label_files if not locale), label_files[0][0]) or ""
            if name not in associated:
                raise MetadataError(
                    f"{what}'s metadata names the labels file {name!r}, which is not packed in the file "
                    f"(it has: {', '.join(associated) or 'none'})"
                )
            found.labels = _labels(associated[name], what)
    for entry in reader.tables(subgraph, _SUBGRAPH_CUSTOM):
        if reader.string(entry, _CUSTOM_NAME) == CUSTOM_NAME:
            _read_custom(bytes(reader.bytes_vector(entry, _CUSTOM_DATA) or b""), found, what)
    return found


def _read_image_input(reader: _Buffer, tensor: int, found: EmbeddedMetadata) -> None:
    content = reader.table(tensor, _TENSOR_CONTENT)
    if content is not None and reader.scalar(content, _CONTENT_TYPE, "<B") == _IMAGE_PROPERTIES:
        image = reader.table(content, _CONTENT_VALUE)
        if image is not None:
            found.color = COLOR_SPACES.get(reader.scalar(image, _IMAGE_COLOR, "<b"), "UNKNOWN")
            size = reader.table(image, _IMAGE_SIZE)
            if size is not None:
                width, height = reader.scalar(size, _SIZE_WIDTH, "<I"), reader.scalar(size, _SIZE_HEIGHT, "<I")
                if width and height:
                    found.size = (height, width)
    for unit in reader.tables(tensor, _TENSOR_PROCESS_UNITS):
        if reader.scalar(unit, _UNIT_TYPE, "<B") != _NORMALIZATION_OPTIONS:
            continue
        options = reader.table(unit, _UNIT_VALUE)
        if options is None:
            continue
        mean, std = reader.floats(options, _NORM_MEAN), reader.floats(options, _NORM_STD)
        if not mean or not std or len(mean) != len(std) and 1 not in (len(mean), len(std)):
            raise reader.fail(f"normalization has {len(mean)} means and {len(std)} stds")
        if not all(math.isfinite(v) for v in mean + std) or any(s == 0 for s in std):
            raise reader.fail(f"normalization mean {mean} / std {std} is not finite or divides by 0")
        count = max(len(mean), len(std))
        found.mean = mean * (count // len(mean))
        found.std = std * (count // len(std))


def _labels(raw: bytes, what: str) -> list[str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MetadataError(f"{what}'s labels file is not UTF-8 text") from exc
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _read_custom(raw: bytes, found: EmbeddedMetadata, what: str) -> None:
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetadataError(f"{what}'s edgeship metadata is not valid JSON ({exc})") from exc
    _take_record(record, found, what)


def _take_record(record: Any, found: EmbeddedMetadata, what: str) -> None:
    """Take edgeship's preprocessing record (custom metadata or ONNX `preprocessing`) after checking its shape."""
    if not isinstance(record, dict) or not isinstance(record.get("input"), dict):
        raise MetadataError(f"{what}'s edgeship metadata has no input record")
    spec = record["input"]
    for key, default in (("scale", 1.0), ("mean", 0.0), ("std", 1.0)):
        value = spec.get(key, default)
        usable = _numbers(value) and all(math.isfinite(v) for v in _as_list(value))
        if not usable or (key != "mean" and 0.0 in _as_list(value)):
            raise MetadataError(f"{what}'s edgeship metadata has an unusable {key}: {value!r}")
    found.input = spec
    kind = record.get("output_kind")
    if kind is not None:
        if kind not in ("probabilities", "logits"):
            raise MetadataError(f"{what}'s edgeship metadata has output_kind {kind!r}")
        found.output_kind = kind


def _numbers(value: Any) -> bool:
    items = value if isinstance(value, (list, tuple)) else [value]
    return bool(items) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items)


def read_tflite(path: Path) -> EmbeddedMetadata | None:
    """The metadata of a .tflite file, None when it has none; MetadataError when it is damaged."""
    model = Path(path).read_bytes()
    what = Path(path).name
    buffer = tflite_metadata_buffer(model, what)
    if buffer is None:
        return None
    associated: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as archive:
            associated = {info.filename: archive.read(info) for info in archive.infolist()}
    except zipfile.BadZipFile:
        associated = {}
    except (OSError, ValueError, zipfile.LargeZipFile) as exc:
        raise MetadataError(f"{what}'s packed files are damaged ({exc})") from exc
    return parse_tflite_metadata(buffer, associated, what)


def from_onnx_properties(properties: dict[str, str], description: str, what: str) -> EmbeddedMetadata | None:
    """The metadata of an ONNX file from its metadata_props and doc_string, None when it has no labels or preprocessing."""
    if "labels" not in properties and "preprocessing" not in properties and "input" not in properties:
        return None
    found = EmbeddedMetadata(source="ONNX metadata_props", description=description or None)
    if "labels" in properties:
        try:
            labels = json.loads(properties["labels"])
        except json.JSONDecodeError as exc:
            raise MetadataError(f"{what}'s metadata_props 'labels' is not JSON ({exc})") from exc
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise MetadataError(f"{what}'s metadata_props 'labels' must be a JSON list of strings")
        found.labels = labels
    if "preprocessing" in properties:
        try:
            record = json.loads(properties["preprocessing"])
        except json.JSONDecodeError as exc:
            raise MetadataError(f"{what}'s metadata_props 'preprocessing' is not JSON ({exc})") from exc
        _take_record(record, found, what)
        normalization = record.get("normalization_in_pixels") or {}
        found.mean, found.std = normalization.get("mean"), normalization.get("std")
        found.color = record.get("color")
    elif "input" in properties:
        # Files exported before the preprocessing key: the input record alone.
        try:
            spec = json.loads(properties["input"])
        except json.JSONDecodeError as exc:
            raise MetadataError(f"{what}'s metadata_props 'input' is not JSON ({exc})") from exc
        _take_record({"input": spec, "output_kind": properties.get("output_kind")}, found, what)
    if found.output_kind is None and properties.get("output_kind") in ("probabilities", "logits"):
        found.output_kind = properties["output_kind"]
    return found


PREPROCESSING_OPTIONS = ("scale", "mean", "std")


def read_embedded(runner: Any) -> EmbeddedMetadata | None:
    """The metadata of an activated runner's file: TFLite Metadata, or ONNX metadata_props; None when it has none."""
    if runner.path.suffix.lower() in (".onnx", ".ort"):
        properties, description = runner.model_metadata()
        return from_onnx_properties(properties, description, runner.path.name)
    return read_tflite(runner.path)


def _effective(scale: float, mean: Any, std: Any) -> tuple[list[float], list[float]]:
    means, stds = _as_list(mean), _as_list(std)
    count = max(len(means), len(stds))
    means, stds = means * (count // len(means)), stds * (count // len(stds))
    return [scale / s for s in stds], [m / s for m, s in zip(means, stds)]


def _same(first: tuple[list[float], list[float]], second: tuple[list[float], list[float]]) -> bool:
    """Whether two normalizations (gain, offset per channel, one value standing for all) agree to float32 precision."""
    for a, b in zip(first, second):
        count = max(len(a), len(b))
        a, b = a * (count // len(a)), b * (count // len(b))
        if len(a) != len(b) or not all(math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-7) for x, y in zip(a, b)):
            return False
    return True


def _describe(gain_offset: tuple[list[float], list[float]]) -> str:
    gain, offset = gain_offset
    show = lambda values: f"{values[0]:.6g}" if len(set(values)) == 1 else "[" + ", ".join(f"{v:.6g}" for v in values) + "]"
    return f"x = raw * {show(gain)} - {show(offset)}"


def _file_options(found: EmbeddedMetadata) -> dict[str, Any]:
    """The Classifier options a file's metadata stands for: scale, mean, std, layout, logits."""
    options: dict[str, Any] = {}
    if found.input is not None:
        for key in ("scale", "mean", "std"):
            if key in found.input:
                options[key] = found.input[key]
        if found.input.get("layout") in ("NHWC", "NCHW"):
            options["layout"] = found.input["layout"]
    elif found.mean is not None and found.std is not None:
        # Standard TFLite Metadata: x = (raw - mean) / std in pixel units, i.e. scale 1 with those mean and std.
        options["scale"] = 1.0
        options["mean"] = found.mean[0] if len(set(found.mean)) == 1 else list(found.mean)
        options["std"] = found.std[0] if len(set(found.std)) == 1 else list(found.std)
    if found.output_kind is not None:
        options["logits"] = found.output_kind == "logits"
    return options


def bare_preprocessing(
    runner: Any, options: dict[str, Any], classes: int, warn: Any
) -> tuple[dict[str, Any], list[str] | None]:
    """Merge a bare file's own metadata with the options given: the options win, with a warning where they differ.

    Returns the options to build the input spec with and the labels (None: the file names none).
    Damaged metadata is refused unless the preprocessing is given as options; then it is ignored
    with one warning, since nothing it says can be trusted.
    """
    given = {key: value for key, value in options.items() if value is not None}
    try:
        found = read_embedded(runner)
        if found is not None and found.labels is not None and len(found.labels) != classes:
            raise MetadataError(
                f"{runner.path.name}'s metadata names {len(found.labels)} labels but the model outputs {classes} classes"
            )
    except MetadataError as exc:
        if not any(key in given for key in PREPROCESSING_OPTIONS):
            raise MetadataError(
                f"{exc}; re-export the file, or give its preprocessing yourself (--scale/--mean/--std) to run it without its metadata"
            ) from exc
        warn(f"{exc}; ignoring the file's metadata and using the options given")
        return given, None
    if found is None:
        return given, None
    from_file = _file_options(found)
    merged = {**from_file, **given}
    if any(key in given for key in PREPROCESSING_OPTIONS) and any(key in from_file for key in PREPROCESSING_OPTIONS):
        wanted = _effective(given.get("scale", 1.0 / 255.0), given.get("mean", 0.0), given.get("std", 1.0))
        recorded = _effective(from_file.get("scale", 1.0), from_file.get("mean", 0.0), from_file.get("std", 1.0))
        for key in PREPROCESSING_OPTIONS:
            merged.pop(key, None)
            if key in given:
                merged[key] = given[key]
        if not _same(wanted, recorded):
            warn(
                f"the preprocessing given ({_describe(wanted)}) differs from {runner.path.name}'s {found.source} "
                f"({_describe(recorded)}); using the options given"
            )
    for key, label in (("layout", "layout"), ("logits", "logits")):
        if key in given and key in from_file and given[key] != from_file[key]:
            warn(f"{label} {given[key]!r} given, but {runner.path.name}'s metadata says {from_file[key]!r}; using the option")
    return merged, found.labels


def check_against_manifest(runner: Any, labels: list[str], input_spec: Any, output_kind: str) -> None:
    """Refuse a bundle file whose own metadata disagrees with the manifest (labels, normalization, output kind)."""
    from edgeship.errors import BundleError

    name = runner.path.name
    try:
        found = read_embedded(runner)
    except MetadataError as exc:
        raise BundleError(f"{exc}; re-export the bundle") from exc
    if found is None:
        return
    problems = []
    if found.labels is not None and found.labels != list(labels):
        problems.append(f"labels {found.labels[:5]}... vs the manifest's {list(labels)[:5]}...")
    options = _file_options(found)
    if any(key in options for key in PREPROCESSING_OPTIONS):
        recorded = _effective(options.get("scale", 1.0), options.get("mean", 0.0), options.get("std", 1.0))
        manifest = _effective(input_spec.scale, input_spec.mean, input_spec.std)
        if not _same(recorded, manifest):
            problems.append(f"normalization {_describe(recorded)} vs the manifest's {_describe(manifest)}")
    if found.output_kind is not None and found.output_kind != output_kind:
        problems.append(f"output {found.output_kind} vs the manifest's {output_kind}")
    if problems:
        raise BundleError(f"{name}'s {found.source} disagrees with manifest.json: {'; '.join(problems)}; re-export the bundle")
