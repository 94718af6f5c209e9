"""Labels and preprocessing inside the model files, so a bare file says how to feed it and what it answers.

TFLite files get TFLite Metadata (the `TFLITE_METADATA` buffer that LiteRT's Support Library and
MediaPipe Tasks read): name, description, version, the input's image properties (colour space,
size) and normalization in raw-pixel units, and the labels as a `labels.txt` associated file of
the output, packed as a zip after the flatbuffer. A custom metadata entry `edgeship` carries the
exact preprocessing record (scale, mean, std, layout, value range) and whether the output is
probabilities or logits, which the standard fields cannot say. ONNX files get `metadata_props`
(labels and preprocessing as JSON) and a `doc_string`.

The writer: the TFLite Metadata flatbuffer is built with the official generated schema bindings
that MediaPipe ships (`mediapipe.tasks.metadata.metadata_schema_py_generated` and
`schema_py_generated`, FlatBuffers' own Python code generated from the schemas), and inserted
into the model the way MediaPipe's `MetadataPopulator` does. Measured on Python 3.11 with the
toolkit's TensorFlow 2.21 and numpy 2: MediaPipe 1.2.3's `metadata_writers` and `MetadataPopulator`
fail to import (No module named 'mediapipe.tasks.cc'), its generated bindings import and work;
MediaPipe 0.10.21's writer works but pins numpy<2 and protobuf<5, which TensorFlow 2.21
(protobuf>=6.31) cannot share a venv with; tflite-support 0.4.4 (2023) pins protobuf<4 and its
writer fails to load here (libusb-1.0.so.0 missing). Generating bindings at build time would need
`flatc`, which no pip package provides. So the workstation extra installs MediaPipe 1.2.3 (with
OpenCV it is ~450 MB, the heavy part, never on a device) for its generated bindings, and the few
lines that assemble the metadata live here. Devices read the metadata back with the runtime's
own small reader (`edgeship.runtime.metadata`), with no dependency at all.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

from edgeship import __version__
from edgeship.errors import ExportError, missing_extra
from edgeship.files import atomic_write_bytes

TFLITE_METADATA_NAME = "TFLITE_METADATA"
TFLITE_FILE_IDENTIFIER = b"TFL3"
METADATA_FILE_IDENTIFIER = b"M001"
LABELS_FILE = "labels.txt"
CUSTOM_NAME = "edgeship"
CUSTOM_SCHEMA = "edgeship.metadata/1"
MIN_PARSER_VERSION = "1.5.0"
"""The largest schema version among the fields written: CustomMetadata was added in metadata schema 1.5.0."""
IMAGE_INPUT_NAME = "image"
PROBABILITY_OUTPUT_NAME = "probability"


def _bindings() -> tuple[Any, Any, Any]:
    """FlatBuffers, and MediaPipe's generated bindings of the TFLite Metadata and model schemas."""
    try:
        import flatbuffers
        from mediapipe.tasks.metadata import metadata_schema_py_generated as metadata_fb
        from mediapipe.tasks.metadata import schema_py_generated as model_fb
    except ImportError as exc:
        raise missing_extra(exc.name or "mediapipe", "toolkit") from exc
    return flatbuffers, metadata_fb, model_fb


def colour_space(input_spec: Any) -> str:
    """RGB or GRAYSCALE, from the channel count of the input."""
    from edgeship.runtime.preprocess import image_geometry

    channels = image_geometry(input_spec)[2]
    if channels == 3:
        return "RGB"
    if channels == 1:
        return "GRAYSCALE"
    raise ExportError(f"an input of {channels} channels has no TFLite Metadata colour space (RGB or GRAYSCALE)")


def pixel_normalization(input_spec: Any) -> tuple[list[float], list[float]]:
    """Mean and std in raw-pixel units, per channel: x = (raw*scale - mean)/std = (raw - mean/scale) / (std/scale)."""
    from edgeship.runtime.preprocess import image_geometry

    channels = image_geometry(input_spec)[2]
    means = _per_channel(input_spec.mean, channels, "mean")
    stds = _per_channel(input_spec.std, channels, "std")
    scale = float(input_spec.scale)
    return [m / scale for m in means], [s / scale for s in stds]


def _per_channel(value: Any, channels: int, name: str) -> list[float]:
    values = [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)]
    if len(values) == 1:
        return values * channels
    if len(values) != channels:
        raise ExportError(f"the input {name} has {len(values)} values for {channels} channels")
    return values


def preprocessing_record(input_spec: Any, output_kind: str) -> dict[str, Any]:
    """The exact preprocessing and output kind, as edgeship's runtime reads them back from a bare file."""
    mean, std = pixel_normalization(input_spec)
    return {
        "schema": CUSTOM_SCHEMA,
        "input": input_spec.to_dict(),
        "color": colour_space(input_spec),
        "normalization_in_pixels": {"mean": mean, "std": std},
        "output_kind": output_kind,
        "labels_file": LABELS_FILE,
    }


def describe(name: str, labels: list[str], input_spec: Any) -> str:
    """One paragraph a person reads in a model viewer: what the model does and how to feed it."""
    from edgeship.runtime.preprocess import image_geometry

    height, width, channels = image_geometry(input_spec)
    mean, std = pixel_normalization(input_spec)
    shown = ", ".join(labels[:10]) + (", ..." if len(labels) > 10 else "")
    return (
        f"{name}: an image classifier of {len(labels)} classes ({shown}). Input: {height}x{width} "
        f"{colour_space(input_spec).lower()} pixels 0..255, normalized as (pixel - mean) / std with mean {_short(mean)} "
        f"and std {_short(std)}. Made by edgeship {__version__}."
    )


def _short(values: list[float]) -> str:
    unique = sorted(set(values))
    return f"{values[0]:.6g}" if len(unique) == 1 else "[" + ", ".join(f"{v:.6g}" for v in values) + "]"


def _labels_text(labels: list[str]) -> bytes:
    bad = [label for label in labels if "\n" in label or "\r" in label]
    if bad:
        raise ExportError(f"labels cannot contain line breaks (they go one a line into {LABELS_FILE}): {bad[0]!r}")
    return ("\n".join(labels) + "\n").encode("utf-8")


def tflite_metadata_buffer(
    name: str, version: str, labels: list[str], input_spec: Any, output_kind: str, input_is_uint8: bool
) -> bytes:
    """The TFLite Metadata flatbuffer (file identifier M001) for a one-input image classifier."""
    from edgeship.runtime.preprocess import image_geometry

    flatbuffers, metadata_fb, _ = _bindings()
    height, width, _channels = image_geometry(input_spec)
    mean, std = pixel_normalization(input_spec)

    image = metadata_fb.TensorMetadataT()
    image.name = IMAGE_INPUT_NAME
    image.description = "Input image to be classified."
    image.content = metadata_fb.ContentT()
    image.content.contentPropertiesType = metadata_fb.ContentProperties.ImageProperties
    image.content.contentProperties = metadata_fb.ImagePropertiesT()
    image.content.contentProperties.colorSpace = getattr(metadata_fb.ColorSpaceType, colour_space(input_spec))
    image.content.contentProperties.defaultSize = metadata_fb.ImageSizeT()
    image.content.contentProperties.defaultSize.width = width
    image.content.contentProperties.defaultSize.height = height
    normalization = metadata_fb.ProcessUnitT()
    normalization.optionsType = metadata_fb.ProcessUnitOptions.NormalizationOptions
    normalization.options = metadata_fb.NormalizationOptionsT()
    normalization.options.mean, normalization.options.std = mean, std
    image.processUnits = [normalization]
    # As MediaPipe's writer does: the value range the tensor holds after normalization (uint8: 0..255).
    image.stats = metadata_fb.StatsT()
    if input_is_uint8:
        image.stats.min, image.stats.max = [0.0], [255.0]
    else:
        image.stats.min = [(0.0 - m) / s for m, s in zip(mean, std)]
        image.stats.max = [(255.0 - m) / s for m, s in zip(mean, std)]

    scores = metadata_fb.TensorMetadataT()
    scores.name = PROBABILITY_OUTPUT_NAME
    scores.description = "Probabilities of the labels respectively." if output_kind == "probabilities" else "Logits of the labels respectively."
    scores.content = metadata_fb.ContentT()
    scores.content.contentPropertiesType = metadata_fb.ContentProperties.FeatureProperties
    scores.content.contentProperties = metadata_fb.FeaturePropertiesT()
    scores.stats = metadata_fb.StatsT()
    label_file = metadata_fb.AssociatedFileT()
    label_file.name = LABELS_FILE
    label_file.description = "Labels for categories that the model can recognize."
    label_file.type = metadata_fb.AssociatedFileType.TENSOR_AXIS_LABELS
    scores.associatedFiles = [label_file]

    custom = metadata_fb.CustomMetadataT()
    custom.name = CUSTOM_NAME
    custom.data = list(json.dumps(preprocessing_record(input_spec, output_kind), sort_keys=True).encode("utf-8"))

    subgraph = metadata_fb.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [image]
    subgraph.outputTensorMetadata = [scores]
    subgraph.customMetadata = [custom]

    model = metadata_fb.ModelMetadataT()
    model.name = name
    model.description = describe(name, labels, input_spec)
    model.version = version
    model.author = f"edgeship {__version__}"
    model.subgraphMetadata = [subgraph]
    model.minParserVersion = MIN_PARSER_VERSION

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), METADATA_FILE_IDENTIFIER)
    return bytes(builder.Output())


def populate_tflite(model_bytes: bytes, metadata: bytes, associated_files: dict[str, bytes]) -> bytes:
    """The model with `metadata` as its TFLITE_METADATA buffer (replacing an earlier one) and the files zipped after it.

    What MediaPipe's MetadataPopulator does: unpack the model with the generated object API, add a
    buffer and a `Metadata` entry naming it, pack it again; then append a zip archive (stored,
    uncompressed) of the associated files, which readers find from the end of the file.
    """
    flatbuffers, _, model_fb = _bindings()
    if model_bytes[4:8] != TFLITE_FILE_IDENTIFIER:
        raise ExportError("the converter's output is not a TFLite flatbuffer (no TFL3 identifier)")
    model = model_fb.ModelT.InitFromObj(model_fb.Model.GetRootAsModel(model_bytes, 0))
    buffer = model_fb.BufferT()
    buffer.data = list(metadata)
    model.metadata = model.metadata or []
    model.buffers = model.buffers or []
    existing = [entry for entry in model.metadata if entry.name.decode("utf-8") == TFLITE_METADATA_NAME]
    if existing:
        model.buffers[existing[0].buffer] = buffer
    else:
        model.buffers.append(buffer)
        entry = model_fb.MetadataT()
        entry.name = TFLITE_METADATA_NAME
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)
    builder = flatbuffers.Builder(len(model_bytes) + len(metadata) + 1024)
    builder.Finish(model.Pack(builder), TFLITE_FILE_IDENTIFIER)
    packed = io.BytesIO(bytes(builder.Output()))
    packed.seek(0, io.SEEK_END)
    with zipfile.ZipFile(packed, "a", compression=zipfile.ZIP_STORED) as archive:
        for file_name, content in associated_files.items():
            archive.writestr(zipfile.ZipInfo(file_name, date_time=(1980, 1, 1, 0, 0, 0)), content)
    return packed.getvalue()


def tflite_input_is_uint8(model_bytes: bytes) -> bool:
    """Whether the model's (first subgraph's first) input tensor is uint8."""
    _, _, model_fb = _bindings()
    model = model_fb.Model.GetRootAsModel(model_bytes, 0)
    subgraph = model.Subgraphs(0)
    return subgraph.Tensors(subgraph.Inputs(0)).Type() == model_fb.TensorType.UINT8


def add_tflite_metadata(path: Path, name: str, version: str, labels: list[str], input_spec: Any, output_kind: str) -> dict[str, Any]:
    """Rewrite the .tflite at `path` with TFLite Metadata and its labels file; returns what the manifest records."""
    model_bytes = Path(path).read_bytes()
    metadata = tflite_metadata_buffer(name, version, labels, input_spec, output_kind, tflite_input_is_uint8(model_bytes))
    written = populate_tflite(model_bytes, metadata, {LABELS_FILE: _labels_text(labels)})
    atomic_write_bytes(path, written)
    return {
        "standard": "TFLite Metadata",
        "min_parser_version": MIN_PARSER_VERSION,
        "associated_files": [LABELS_FILE],
        "bytes_added": len(written) - len(model_bytes),
        "writer": "mediapipe.tasks.metadata generated bindings",
    }


def onnx_metadata(labels: list[str], input_spec: Any, output_kind: str) -> dict[str, str]:
    """The metadata_props an edgeship ONNX file carries: labels and preprocessing as JSON, output kind, producer."""
    return {
        "labels": json.dumps(labels),
        "preprocessing": json.dumps(preprocessing_record(input_spec, output_kind), sort_keys=True),
        "output_kind": output_kind,
        "producer": f"edgeship {__version__}",
    }
