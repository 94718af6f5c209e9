"""Run an exported file in its real interpreter (LiteRT or ONNX Runtime) to measure parity at export time.

Each runner is built once, describes its own input and output tensors (dtype, shape, quantization)
for the manifest, and turns float model inputs into dequantized float outputs, quantizing the input
with the file's own parameters when the file takes integers.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.errors import missing_extra
from edgeship.manifest import Quantization, TensorSpec

BATCH = 256


class ArtifactRunner:
    """An interpreter built once for one file: describe its tensors, run float batches."""

    interpreter: str = ""

    def input_spec(self) -> TensorSpec:
        raise NotImplementedError

    def output_spec(self) -> TensorSpec:
        raise NotImplementedError

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Float32 model inputs (N, ...) -> float32 outputs (N, classes), in batches."""
        return np.concatenate([self._run_batch(inputs[start : start + BATCH]) for start in range(0, len(inputs), BATCH)])

    def _run_batch(self, inputs: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def quantize(values: np.ndarray, quantization: Quantization, dtype: np.dtype) -> np.ndarray:
    """real -> q = round(real / scale) + zero_point, clipped to the integer type."""
    limits = np.iinfo(dtype)
    q = np.round(values / np.float32(quantization.scale)) + quantization.zero_point
    return np.clip(q, limits.min, limits.max).astype(dtype)


def dequantize(values: np.ndarray, quantization: Quantization) -> np.ndarray:
    """q -> real = (q - zero_point) * scale."""
    return ((values.astype(np.float32) - np.float32(quantization.zero_point)) * np.float32(quantization.scale)).astype(np.float32)


class LiteRTRunner(ArtifactRunner):
    """A .tflite file in ai_edge_litert's Interpreter (tensorflow.lite's where LiteRT is not installed)."""

    def __init__(self, path: Path) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter

            self.interpreter = f"ai_edge_litert {metadata.version('ai-edge-litert')}"
        except ImportError:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
            self.interpreter = f"tensorflow.lite {tf.__version__}"
        self._interpreter = Interpreter(model_path=str(path))
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = None

    @staticmethod
    def _spec(details: dict[str, Any]) -> TensorSpec:
        scale, zero_point = details["quantization"]
        dtype = np.dtype(details["dtype"])
        quantization = Quantization(float(scale), int(zero_point)) if np.issubdtype(dtype, np.integer) and scale else None
        shape = details.get("shape_signature", details["shape"])
        return TensorSpec(dtype=dtype.name, shape=[int(d) for d in shape], quantization=quantization)

    def input_spec(self) -> TensorSpec:
        return self._spec(self._input)

    def output_spec(self) -> TensorSpec:
        return self._spec(self._output)

    def _run_batch(self, inputs: np.ndarray) -> np.ndarray:
        if self._batch != len(inputs):
            self._interpreter.resize_tensor_input(self._input["index"], [len(inputs), *inputs.shape[1:]])
            self._interpreter.allocate_tensors()
            self._batch = len(inputs)
        spec = self.input_spec()
        if spec.quantization is not None:
            inputs = quantize(inputs, spec.quantization, np.dtype(spec.dtype))
        self._interpreter.set_tensor(self._input["index"], inputs.astype(np.dtype(spec.dtype), copy=False))
        self._interpreter.invoke()
        outputs = self._interpreter.get_tensor(self._output["index"])
        quantization = self.output_spec().quantization
        return dequantize(outputs, quantization) if quantization is not None else outputs.astype(np.float32)


class OnnxRunner(ArtifactRunner):
    """A .onnx file in an ONNX Runtime CPU InferenceSession."""

    def __init__(self, path: Path) -> None:
        try:
            import onnxruntime
        except ImportError as exc:
            raise missing_extra("onnxruntime", "onnx") from exc
        self.interpreter = f"onnxruntime {onnxruntime.__version__}"
        self._session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0]
        self._output = self._session.get_outputs()[0]

    @staticmethod
    def _spec(node: Any) -> TensorSpec:
        dtype = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int8)": "int8"}.get(node.type, node.type)
        return TensorSpec(dtype=dtype, shape=[d if isinstance(d, int) else -1 for d in node.shape])

    def input_spec(self) -> TensorSpec:
        return self._spec(self._input)

    def output_spec(self) -> TensorSpec:
        return self._spec(self._output)

    def _run_batch(self, inputs: np.ndarray) -> np.ndarray:
        return np.asarray(self._session.run([self._output.name], {self._input.name: inputs})[0], dtype=np.float32)


def open_runner(path: Path, family: str) -> ArtifactRunner:
    """The runner for a file of `family` (tflite or onnx)."""
    return LiteRTRunner(path) if family == "tflite" else OnnxRunner(path)
