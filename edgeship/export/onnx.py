"""ONNX exporter: tf2onnx on a `tf.function` with an explicit input signature, opset 17 by default.

`tf2onnx.convert.from_keras` does not work with Keras 3 models (onnx/tensorflow-onnx#2329), so the
model's inference call is wrapped in a `tf.function` and converted with `from_function`, as Keras'
own ONNX export does. The batch dimension stays dynamic and is named `batch`; labels and input
preprocessing go into `metadata_props` (see `edgeship.export.metadata`) and a description into
`doc_string`, so a bare .onnx file still says how to feed it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeship.errors import ExportError, missing_extra
from edgeship.export.base import ExportOptions, ExportRecord, check_format_options
from edgeship.export.metadata import describe, onnx_metadata
from edgeship.native import native_output_to_log
from edgeship.files import atomic_write_bytes


INPUT_NAME = "image"
BATCH_DIM = "batch"


def import_tf2onnx() -> Any:
    """tf2onnx and onnx, or the error naming the extra to install."""
    try:
        import onnx  # noqa: F401
        import tf2onnx
    except ImportError as exc:
        raise missing_extra(exc.name or "tf2onnx", "toolkit") from exc
    return tf2onnx


def convert_to_onnx(model: Any, options: ExportOptions) -> tuple[Any, dict[str, Any]]:
    """The model as a checked ONNX ModelProto (simplified when onnxslim is there) and facts about the conversion."""
    import onnx
    import tensorflow as tf

    tf2onnx = import_tf2onnx()
    check_format_options(options.opset, options.int8_io)
    signature = [tf.TensorSpec((None, *options.input_shape), tf.float32, name=INPUT_NAME)]
    output_name = options.output_kind

    @tf.function(input_signature=signature)
    def serve(image: Any) -> dict[str, Any]:
        return {output_name: model(image, training=False)}

    with native_output_to_log("tf2onnx"):
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=signature, opset=options.opset)
    freeze_captured_constants(proto, serve.get_concrete_function())
    refuse_unconverted_ops(proto)
    details: dict[str, Any] = {"converter": "tf2onnx.convert.from_function", "opset": options.opset}
    if options.simplify_onnx:
        proto, details["simplified"] = simplify(proto)
    name_batch_dimension(proto)
    add_metadata(proto, options)
    onnx.checker.check_model(proto, full_check=True)
    return proto, details


def freeze_captured_constants(proto: Any, concrete: Any) -> None:
    """Turn graph inputs that are tensors the traced function captured (not the image) into initializers.

    tf2onnx freezes captured variables but leaves captured constant tensors as extra graph inputs,
    e.g. the variance a Keras 3 Normalization layer holds after adapt(); the model would then take
    two inputs. Their values are known at export, so they become constants as in the Keras model.
    """
    from onnx import numpy_helper

    captured = {
        placeholder.name: value.numpy()
        for value, placeholder in zip(concrete.captured_inputs, concrete.graph.internal_captures)
        if value.dtype.name != "resource"
    }
    for graph_input in list(proto.graph.input):
        if graph_input.name in captured:
            proto.graph.initializer.append(numpy_helper.from_array(captured[graph_input.name], graph_input.name))
            proto.graph.input.remove(graph_input)


def refuse_unconverted_ops(proto: Any) -> None:
    """Fail when tf2onnx left TensorFlow ops in the graph.

    `from_function` converts with continue_on_error=True, so an op it cannot map is only logged
    and stays in the graph under its TensorFlow name (onnx/tensorflow-onnx#599, #1186); this
    turns that into a clear failure of the format.
    """
    import onnx.defs

    unknown = sorted(
        {node.op_type for node in proto.graph.node if not onnx.defs.has(node.op_type, node.domain or "")}
    )
    if unknown:
        raise ExportError(f"tf2onnx could not convert these ops: {', '.join(unknown)}")


def simplify(proto: Any) -> tuple[Any, dict[str, Any]]:
    """Fold constants and fuse ops with onnxslim when it is installed; the record says what happened."""
    try:
        import onnxslim
    except ImportError:
        return proto, {"tool": None, "reason": "onnxslim is not installed"}
    nodes_before = len(proto.graph.node)
    try:
        slimmed = onnxslim.slim(proto)
    except Exception as exc:
        raise ExportError(f"onnxslim failed ({type(exc).__name__}: {exc}); re-export with --no-simplify") from exc
    return slimmed, {
        "tool": f"onnxslim {onnxslim.__version__}",
        "nodes_before": nodes_before,
        "nodes_after": len(slimmed.graph.node),
    }


def name_batch_dimension(proto: Any) -> None:
    """Give the first dimension of every graph input and output the same symbolic name, `batch`."""
    for value in (*proto.graph.input, *proto.graph.output):
        dimension = value.type.tensor_type.shape.dim[0]
        dimension.ClearField("dim_value")
        dimension.dim_param = BATCH_DIM


def add_metadata(proto: Any, options: ExportOptions) -> None:
    """Store labels, preprocessing and output kind in metadata_props (replacing any earlier values) and a doc_string."""
    values = onnx_metadata(options.labels, options.input_spec, options.output_kind)
    proto.doc_string = describe(options.model_name, options.labels, options.input_spec)
    kept = [prop for prop in proto.metadata_props if prop.key not in values and prop.key != "input"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in values.items():
        proto.metadata_props.add(key=key, value=value)


def export_onnx(model: Any, path: Path, options: ExportOptions) -> ExportRecord:
    """Float32 ONNX with a dynamic batch, checked by onnx.checker."""
    proto, details = convert_to_onnx(model, options)
    atomic_write_bytes(path, proto.SerializeToString())
    return ExportRecord(path, details)
