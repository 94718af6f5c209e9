"""Float fallback: find the tensors int8 ruins, so the layers around them can stay in float.

Each quantized activation tensor is scored by the share of its signal that quantization loses,
measured on calibration images by each toolchain's own debugger:

- LiteRT: `tf.lite.experimental.QuantizationDebugger`, whose debug model runs every quantized op
  beside its float twin on the same (dequantized) inputs; a `layer_direct_compare_metrics` entry
  scores each op's output. Ops are kept in float through the debugger's `denylisted_nodes`
  (selective quantization), named by their output tensors.
- ONNX Runtime: `onnxruntime.quantization.qdq_loss_debug`, which saves each activation before and
  after its QuantizeLinear/DequantizeLinear pair; nodes are kept in float through quantize_static's
  `nodes_to_exclude`.

The score (`signal_lost`) is the mean over channels (the last axis) of min(1, RMS error / RMS
value): 0 when every channel survives, 1 when every channel is wiped out. It is per channel on
purpose: an outlier channel inflates a per-tensor scale until the other channels round to zero, a
loss that a whole-tensor RMSE or RMSE/scale hardly shows (the outlier dominates both).

Keeping a tensor in float means the op that makes it and every op that reads it run in float:
keeping only the producer in float would still quantize the tensor at its readers' inputs, with
the same ruinous scale.
"""

from __future__ import annotations

import csv
import io
import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.export.base import ExportOptions

RANKING_IMAGES = 64
"""Calibration images the debuggers run to score tensors (the first ones, already drawn with the export's seed)."""
ONNX_ACTIVATIONS = ("Relu", "Clip", "LeakyRelu", "HardSigmoid", "Sigmoid", "HardSwish")
"""ONNX ops that ONNX Runtime folds into the op before them: keeping their output in float means keeping that op in float too."""


@dataclass
class Candidate:
    """A quantized tensor, how much of its signal int8 loses, and the layers to keep in float to spare it."""

    tensor: str
    signal_lost: float
    layers: list[str]
    ops: list[str]


def signal_lost(reference: np.ndarray, quantized: np.ndarray) -> float:
    """Mean over channels (last axis) of min(1, RMS error / RMS value); channels that are always zero are left out.

    Rows holding a non-finite value are left out too: LiteRT's debugger can hand over a float
    tensor that was never written (seen on MobileNetV2), and garbage must not rank a layer.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        reference = np.asarray(reference, dtype=np.float64)
        quantized = np.asarray(quantized, dtype=np.float64)
    channels = reference.shape[-1] if reference.ndim else 1
    reference, quantized = reference.reshape(-1, channels), quantized.reshape(-1, channels)
    finite = np.isfinite(reference).all(axis=1) & np.isfinite(quantized).all(axis=1)
    reference, quantized = reference[finite], quantized[finite]
    if not len(reference):
        return 0.0
    error = np.sqrt(np.mean((quantized - reference) ** 2, axis=0))
    signal = np.sqrt(np.mean(reference**2, axis=0))
    live = signal > 1e-6 * max(float(signal.max(initial=0.0)), 1e-30)
    if not live.any():
        return 0.0
    return float(np.mean(np.minimum(error[live] / signal[live], 1.0)))


def rank_tflite(model: Any, options: ExportOptions, float_layers: tuple[str, ...]) -> list[Candidate]:
    """Quantized tensors of the tflite-int8 conversion (with `float_layers` in float), worst first."""
    from edgeship.export.tflite import quantization_debugger
    from edgeship.native import native_output_to_log

    images = options.calibration_inputs()[:RANKING_IMAGES]

    def debug_dataset() -> Any:
        for index in range(len(images)):
            yield [images[index : index + 1]]

    def lost(float_values: np.ndarray, quantized_values: np.ndarray, scale: float, zero_point: int) -> float:
        return signal_lost(float_values, (quantized_values.astype(np.float32) - zero_point) * scale)

    debugger = quantization_debugger(
        model, replace(options, progress=None), float_layers, debug_dataset=debug_dataset, metrics={"signal_lost": lost}
    )
    with native_output_to_log("the TFLite quantization debugger"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    dump.seek(0)
    producers, consumers = _tflite_graph(debugger.calibrated_model)
    candidates = []
    for row in csv.DictReader(dump):
        tensor = row["tensor_name"]
        producer = producers.get(tensor, (tensor, row["op_name"]))
        unit = [producer, *consumers.get(tensor, [])]
        layers = list(dict.fromkeys(name for name, _ in unit))
        if set(layers) <= set(float_layers):
            continue
        candidates.append(Candidate(tensor, round(float(row["signal_lost"]), 4), layers, [op for _, op in unit]))
    return sorted(candidates, key=lambda candidate: -candidate.signal_lost)


def _tflite_graph(content: bytes) -> tuple[dict[str, tuple[str, str]], dict[str, list[tuple[str, str]]]]:
    """By tensor name: the op making it and the ops reading it, each as (denylist name = its first output's name, op name)."""
    from edgeship.quantdebug import interpreter_ops
    from edgeship.runtime.backends.litert import interpreter_module

    module, _, _ = interpreter_module()
    interpreter = module.Interpreter(model_content=content)
    names = {detail["index"]: detail["name"] for detail in interpreter.get_tensor_details()}
    producers: dict[str, tuple[str, str]] = {}
    consumers: dict[str, list[tuple[str, str]]] = {}
    for op in interpreter_ops(interpreter):
        if not len(op["outputs"]) or op["outputs"][0] not in names:
            continue
        node = (names[op["outputs"][0]], op["op_name"])
        for index in op["outputs"]:
            if index in names:
                producers[names[index]] = node
        for index in op["inputs"]:
            if index in names:
                consumers.setdefault(names[index], []).append(node)
    return producers, consumers


def rank_onnx(model: Any, options: ExportOptions, float_layers: tuple[str, ...]) -> list[Candidate]:
    """QDQ-quantized activations of the onnx-int8 conversion (with `float_layers` excluded), worst first."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    from edgeship.export.onnx import INPUT_NAME
    from edgeship.export.onnx_int8 import float_onnx, prepare, quantize_prepared
    from edgeship.native import native_output_to_log

    images = options.calibration_inputs()[:RANKING_IMAGES]

    class Images(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{INPUT_NAME: images[index : index + 1]} for index in range(len(images))])

        def get_next(self) -> dict[str, Any] | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory(prefix="edgeship-onnx-rank-") as name:
        folder = Path(name)
        prepared = prepare(float_onnx(model, options)[0], folder)
        quantize_prepared(prepared, folder / "int8.onnx", replace(options, float_layers=float_layers, progress=None))
        with native_output_to_log("onnxruntime qdq_loss_debug"):
            modify_model_output_intermediate_tensors(str(folder / "int8.onnx"), str(folder / "int8_saved.onnx"))
            quantized_activations = collect_activations(str(folder / "int8_saved.onnx"), Images())
        matched = create_activation_matching(quantized_activations)
        graph = onnx.load(prepared).graph
    producers = {output: node for node in graph.node for output in node.output}
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for tensor in node.input:
            readers.setdefault(tensor, []).append(node)
    candidates = []
    for tensor, pair in matched.items():
        unit = []
        producer = producers.get(tensor)
        while producer is not None:
            unit.append(producer)
            if producer.op_type not in ONNX_ACTIVATIONS or not producer.input:
                break
            producer = producers.get(producer.input[0])
        unit += readers.get(tensor, [])
        layers = list(dict.fromkeys(node.name for node in unit if node.name))
        if not layers or set(layers) <= set(float_layers):
            continue
        lost = signal_lost(np.concatenate(pair["pre_qdq"]), np.concatenate(pair["post_qdq"]))
        candidates.append(Candidate(tensor, round(lost, 4), layers, [node.op_type for node in unit]))
    return sorted(candidates, key=lambda candidate: -candidate.signal_lost)
