"""Does int8 pay for itself? int8 vs fp32 time and size per model x backend x batch x form, on this CPU.

Builds its two models itself: the zoo CNN trained briefly on the bundled digits, and
`keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None)` trained briefly
on synthetic pictures (coloured shapes on noisy grey; the class is the shape's colour).
Calibration and agreement use such pictures too: fine for speed and size, says nothing about
accuracy on real photos. The exporters are called directly (fp32 and int8, TFLite and ONNX), and
beside each exported int8 file the forms it was chosen against:

- TFLite: per-tensor weights and uint8 I/O; XNNPACK (LiteRT's default) and the built-in kernels.
- ONNX Runtime: the quantizer's plain QDQ output with int8 activations (S8S8, the earlier form)
  and with uint8 ones (U8S8), QOperator U8S8, and the exported form with the input channels of
  the first convolution padded with zeros to a multiple of 4 (`pad_input_channels`), which the
  x86 int8 convolution kernel needs; measured, not exported (the README says why).

All files of a model are timed interleaved (every form once per round, the order rotating), one
thread, batch 1 and 32; a row's time is the median over rounds and its ratio the median of the
per-round int8/fp32 ratios on the same backend and kernels, so load from other work cancels out as
far as it can. Then the reasons: where the bytes of each int8 file go, ONNX Runtime's own profile
split by layer kind, and single-layer models timed on XNNPACK. Prints tables and one JSON line.
Run: `.venv/bin/python benchmarks/int8_speed.py [--rounds 9] [--out DIR]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PALETTE = np.array([[220, 40, 40], [40, 200, 60], [50, 70, 230], [230, 210, 40]])
AGREEMENT_GATE = 0.99
BATCHES = (1, 32)


def synthetic_pictures(count: int, seed: int, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Coloured circles, squares and diamonds on noisy grey, uint8 (count, size, size, 3); the label is the colour."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[:size, :size]
    pictures = np.empty((count, size, size, 3), np.uint8)
    labels = rng.integers(0, len(PALETTE), count)
    for index in range(count):
        picture = np.full((size, size, 3), float(rng.integers(60, 200))) + rng.normal(0, 25, (size, size, 3))
        x, y = rng.integers(24, size - 24, 2)
        radius = int(rng.integers(12, 24))
        shape = (
            (columns - x) ** 2 + (rows - y) ** 2 < radius**2,
            (abs(columns - x) < radius) & (abs(rows - y) < radius),
            abs(columns - x) + abs(rows - y) < radius,
        )[index % 3]
        picture[shape] = PALETTE[labels[index]] + rng.normal(0, 20, 3)
        pictures[index] = np.clip(picture, 0, 255)
    return pictures, labels


@dataclass
class Subject:
    """A model to measure, with the raw pictures it is calibrated and checked on."""

    name: str
    model: Any
    input_shape: tuple[int, ...]
    calibration_images: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: int

    def options(self) -> Any:
        from edgeship.export.base import ExportOptions
        from edgeship.manifest import InputSpec

        return ExportOptions(
            input_shape=self.input_shape,
            input_spec=InputSpec(shape=list(self.input_shape)),
            labels=[str(label) for label in range(self.classes)],
            output_kind="probabilities",
            calibration_images=self.calibration_images,
            calibration={"images": len(self.calibration_images)},
        )

    def test_inputs(self) -> np.ndarray:
        return self.options().input_spec.to_model_input(self.test_images, self.input_shape)


def zoo_cnn(root: Path, epochs: int) -> Subject:
    """The zoo CNN trained on the bundled digits; 300 training digits to calibrate, the 1,000 test digits to check."""
    import keras

    from edgeship.data import load_dataset
    from edgeship.train import train_model

    digits = load_dataset("mnist-sample")
    trained = train_model("cnn", digits, epochs=epochs, seed=0, out=root / "cnn", progress=False)
    chosen = np.sort(np.random.default_rng(0).choice(len(digits.x_train), 300, replace=False))
    return Subject("cnn", keras.models.load_model(trained.model_path), tuple(digits.x_train.shape[1:]),
                   digits.x_train[chosen], digits.x_test, digits.y_test, 10)


def mobilenet_v2(epochs: int, pictures: int) -> Subject:
    """MobileNetV2-0.35 96x96, weights=None, trained on synthetic pictures.

    Its BatchNormalization momentum is lowered from 0.999 to 0.9 so that the moving statistics
    catch up within a short training (with 0.999 the inference-mode model stays at chance).
    """
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=len(PALETTE))
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    train_images, train_labels = synthetic_pictures(pictures, seed=0)
    test_images, test_labels = synthetic_pictures(400, seed=1)
    model.fit(train_images / np.float32(255), train_labels, epochs=epochs, batch_size=32, verbose=0)
    return Subject("mobilenetv2-0.35-96", model, (96, 96, 3), train_images[:300], test_images, test_labels, len(PALETTE))


@dataclass
class Form:
    """One file of a model as one backend runs it."""

    backend: str
    kernels: str
    form: str
    precision: str
    path: Path
    exported: bool = False
    delegate: str | None = None
    quality: dict[str, float] = field(default_factory=dict)
    timings: dict[int, dict[str, Any]] = field(default_factory=dict)


def tflite_files(subject: Subject, folder: Path) -> list[Form]:
    """fp32 and the exported int8 on XNNPACK and the built-in kernels; per-tensor and uint8-I/O int8 on XNNPACK."""
    from edgeship.export.tflite import convert_int8, export_tflite_fp32, export_tflite_int8
    from edgeship.files import atomic_write_bytes

    options = subject.options()
    fp32 = export_tflite_fp32(subject.model, folder / "fp32.tflite", options).path
    int8 = export_tflite_int8(subject.model, folder / "int8.tflite", options).path
    uint8_io = export_tflite_int8(subject.model, folder / "int8_uint8io.tflite", dataclasses.replace(options, int8_io="uint8")).path
    per_tensor = folder / "int8_per_tensor.tflite"
    atomic_write_bytes(per_tensor, convert_int8(subject.model, options, per_channel=False))
    forms = []
    for kernels, delegate in (("xnnpack", "xnnpack"), ("built-in", "no-xnnpack")):
        forms.append(Form("litert", kernels, "fp32", "fp32", fp32, delegate=delegate))
        forms.append(Form("litert", kernels, "int8 per-channel, int8 I/O", "int8", int8, exported=True, delegate=delegate))
    forms.append(Form("litert", "xnnpack", "int8 per-tensor, int8 I/O", "int8", per_tensor, delegate="xnnpack"))
    forms.append(Form("litert", "xnnpack", "int8 per-channel, uint8 I/O", "int8", uint8_io, delegate="xnnpack"))
    return forms


PADDED_FORM = "QDQ U8S8, float bias, input channels padded to 4"
CHANNEL_MULTIPLE = 4
"""Input channels per group that ONNX Runtime's x86 symmetric int8 convolution (MLAS ConvSym) takes: fewer go through im2col and a generic int8 GEMM."""


def pad_input_channels(proto: Any, multiple: int = CHANNEL_MULTIPLE) -> list[str]:
    """Pad the input of every plain Conv whose input channels are not a multiple of `multiple` with zero channels, in place; the Convs padded.

    A Pad node (constant 0) on the channel axis feeds the Conv, whose weights gain as many
    all-zero input-channel slices, so the float function is exactly the same. Per-channel weight
    scales are unchanged (a zero weight quantizes to 0) and the padded tensor shares its source's
    quantization parameters, so the int8 model computes the same integers too. Tensor names stay
    as they were; the new ones end in `_channels_padded`.
    """
    from onnx import helper, numpy_helper

    graph = proto.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    padded, nodes = [], []
    for node in graph.node:
        group = next((attribute.i for attribute in node.attribute if attribute.name == "group"), 1)
        if node.op_type == "Conv" and group == 1 and node.input[1] in initializers:
            weights = numpy_helper.to_array(initializers[node.input[1]])
            extra = -weights.shape[1] % multiple
            if extra:
                zeros = np.zeros((weights.shape[0], extra, *weights.shape[2:]), weights.dtype)
                name = node.input[1] if readers[node.input[1]] == 1 else node.input[1] + "_channels_padded"
                padded_weights = numpy_helper.from_array(np.concatenate([weights, zeros], axis=1), name)
                if name in initializers:
                    initializers[name].CopyFrom(padded_weights)
                else:
                    graph.initializer.append(padded_weights)
                pads = np.zeros(2 * weights.ndim, np.int64)
                pads[weights.ndim + 1] = extra  # the end of axis 1, the channels (ONNX Conv is NCHW)
                graph.initializer.append(numpy_helper.from_array(pads, node.name + "_channel_pads"))
                source, node.input[0], node.input[1] = node.input[0], node.input[0] + "_channels_padded", name
                nodes.append(helper.make_node("Pad", [source, node.name + "_channel_pads"], [node.input[0]],
                                              name=node.name + "_channel_pad", mode="constant"))
                padded.append(node.name)
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return padded


def padded_int8(subject: Subject, fp32: Path, folder: Path) -> Path | None:
    """The exported int8 form of the float model with `pad_input_channels` applied after pre-processing; None when no Conv needs it."""
    import onnx

    from edgeship.export.onnx_int8 import prepare, quantize_prepared

    work = folder / "padded"
    work.mkdir(exist_ok=True)
    prepared = onnx.load(prepare(onnx.load(fp32), work))
    if not pad_input_channels(prepared):
        return None
    onnx.checker.check_model(prepared, full_check=True)
    onnx.save(prepared, work / "prepared_padded.onnx")
    path = folder / "int8_channels_padded.onnx"
    onnx.save(quantize_prepared(work / "prepared_padded.onnx", path, subject.options()), path)
    return path


def onnx_files(subject: Subject, folder: Path) -> list[Form]:
    """fp32, the exported int8, the quantizer's plain outputs the exporter was chosen against, and the exported form with padded channels."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgeship.export.onnx import INPUT_NAME, export_onnx
    from edgeship.export.onnx_int8 import export_onnx_int8

    options = subject.options()
    fp32 = export_onnx(subject.model, folder / "fp32.onnx", options).path
    int8 = export_onnx_int8(subject.model, folder / "int8.onnx", options).path
    prepared = folder / "prepared.onnx"
    quant_pre_process(str(fp32), str(prepared))
    inputs = options.calibration_inputs()

    class Pictures(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(inputs[index : index + 1] for index in range(len(inputs)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    forms = [Form("onnxruntime", "cpu", "fp32", "fp32", fp32),
             Form("onnxruntime", "cpu", "QDQ U8S8, float bias, compact", "int8", int8, exported=True)]
    for form, quant_format, activations in (
        ("QDQ S8S8 (plain quantizer)", QuantFormat.QDQ, QuantType.QInt8),
        ("QDQ U8S8 (plain quantizer)", QuantFormat.QDQ, QuantType.QUInt8),
        ("QOperator U8S8", QuantFormat.QOperator, QuantType.QUInt8),
    ):
        path = folder / (form.split(" (")[0].replace(" ", "_") + ".onnx")
        quantize_static(str(prepared), str(path), Pictures(), quant_format=quant_format, per_channel=True,
                        activation_type=activations, weight_type=QuantType.QInt8)
        forms.append(Form("onnxruntime", "cpu", form, "int8", path))
    padded = padded_int8(subject, fp32, folder)
    if padded is not None:
        forms.append(Form("onnxruntime", "cpu", PADDED_FORM, "int8", padded))
    return forms


def open_runner(form: Form, threads: int) -> Any:
    from edgeship.runtime.backends import create_runner

    if form.backend == "litert":
        return create_runner(form.path, "tflite", backend="litert", threads=threads, delegate=form.delegate).activate()
    return create_runner(form.path, "onnx", backend="onnxruntime", threads=threads).activate()


def model_input(runner: Any, inputs: np.ndarray) -> np.ndarray:
    """Float inputs as this file takes them: quantized with its own input scale and zero point for an int8/uint8 input."""
    spec = runner.input
    if spec.quantization is None:
        return inputs.astype(spec.dtype)
    limits = np.iinfo(spec.dtype)
    quantized = np.round(inputs / spec.quantization.scale) + spec.quantization.zero_point
    return np.clip(quantized, limits.min, limits.max).astype(spec.dtype)


def probabilities(runner: Any, outputs: np.ndarray) -> np.ndarray:
    spec = runner.output
    if spec.quantization is None:
        return outputs.astype(np.float32)
    return (outputs.astype(np.float32) - spec.quantization.zero_point) * np.float32(spec.quantization.scale)


def time_interleaved(calls: list[Callable[[], Any]], rounds: int, seconds_per_call: float) -> list[list[float]]:
    """ms per call for each callable, one measurement per round, all callables in every round, the order rotating."""
    repeats = []
    for call in calls:
        call()
        started = time.perf_counter()
        call()
        repeats.append(max(1, round(seconds_per_call / max(time.perf_counter() - started, 1e-6))))
    times: list[list[float]] = [[] for _ in calls]
    for round_index in range(rounds):
        order = list(range(len(calls)))
        shift = round_index % len(calls)
        for index in order[shift:] + order[:shift]:
            call, count = calls[index], repeats[index]
            started = time.perf_counter()
            for _ in range(count):
                call()
            times[index].append((time.perf_counter() - started) * 1e3 / count)
    return times


def measure(subject: Subject, forms: list[Form], threads: int, rounds: int, seconds_per_call: float) -> None:
    """Fill every form's rows: agreement with Keras on the test pictures, then interleaved times at each batch."""
    test_inputs = subject.test_inputs()
    reference = subject.model.predict(test_inputs, batch_size=64, verbose=0)
    runners = [open_runner(form, threads) for form in forms]
    for form, runner in zip(forms, runners):
        predicted = probabilities(runner, runner.infer(model_input(runner, test_inputs)))
        form.quality = {
            "agreement": float((predicted.argmax(1) == reference.argmax(1)).mean()),
            "accuracy_delta_pp": 100 * float((predicted.argmax(1) == subject.test_labels).mean() - (reference.argmax(1) == subject.test_labels).mean()),
        }
    for batch in BATCHES:
        batches = [model_input(runner, test_inputs[:batch]) for runner in runners]
        calls = [lambda runner=runner, inputs=inputs: runner.infer_converted(inputs, None) for runner, inputs in zip(runners, batches)]
        times = time_interleaved(calls, rounds, seconds_per_call)
        for form, form_times in zip(forms, times):
            baseline = next(i for i, other in enumerate(forms) if other.precision == "fp32" and (other.backend, other.kernels) == (form.backend, form.kernels))
            ratios = [mine / fp32 for mine, fp32 in zip(form_times, times[baseline])]
            form.timings[batch] = {"ms": statistics.median(form_times), "ratio": statistics.median(ratios), "ratio_range": [min(ratios), max(ratios)]}
    for runner in runners:
        runner.release()


def tflite_bytes(path: Path) -> dict[str, int]:
    """Where a .tflite file's bytes go: constant tensors by role, per-channel quantization parameters, tensor names, the rest."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    operator_names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = flatbuffer_utils.read_model(str(path))
    graph = model.subgraphs[0]
    parts = {"weights": 0, "biases": 0, "quantization parameters": 0, "tensor names": 0}
    for operator in graph.operators:
        kind = operator_names[model.operatorCodes[operator.opcodeIndex].builtinCode]
        for slot, tensor_index in enumerate(operator.inputs):
            if tensor_index < 0:
                continue
            data = model.buffers[graph.tensors[tensor_index].buffer].data
            if data is not None and kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and slot in (1, 2):
                parts["weights" if slot == 1 else "biases"] += len(data)
    for tensor in graph.tensors:
        parts["tensor names"] += len(tensor.name)
        quantization = tensor.quantization
        if quantization is not None and quantization.scale is not None:
            # The schema stores a float32 scale and an int64 zero point per channel.
            parts["quantization parameters"] += 4 * len(quantization.scale) + 8 * len(quantization.zeroPoint)
    parts["rest"] = path.stat().st_size - sum(parts.values())
    return parts


def onnx_bytes(path: Path) -> dict[str, int]:
    """Where an .onnx file's bytes go: weights, biases, scales and zero points, names (every mention), the rest."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    initializers = {tensor.name: numpy_helper.to_array(tensor).nbytes for tensor in graph.initializer}
    consumers = {name: (node, slot) for node in graph.node for slot, name in enumerate(node.input)}
    weight_slots = {"Conv": (1, 2), "Gemm": (1, 2), "MatMul": (1, None), "QLinearConv": (3, 8), "QGemm": (3, 6), "QLinearMatMul": (3, None)}
    parts = {"weights": 0, "biases": 0, "quantization parameters": 0, "tensor names": 0}
    for node in graph.node:
        for slot, name in enumerate(node.input):
            if name not in initializers:
                continue
            if node.op_type == "DequantizeLinear" and slot == 0:
                consumer, consumer_slot = consumers.get(node.output[0], (node, 1))
                slot, node_type = consumer_slot, consumer.op_type
            else:
                node_type = node.op_type
            weights, biases = weight_slots.get(node_type, (None, None))
            part = "weights" if slot == weights else "biases" if slot == biases else None
            if part is None and (node.op_type.startswith("Q") or node.op_type == "DequantizeLinear"):
                part = "quantization parameters"
            if part is not None:
                parts[part] += initializers.pop(name)
    # Every mention of a name is stored: a tensor's name once where it is made and once per use.
    mentions = [name for node in graph.node for name in (node.name, *node.input, *node.output)]
    mentions += [value.name for value in (*graph.initializer, *graph.value_info, *graph.input, *graph.output)]
    parts["tensor names"] = sum(len(name) for name in mentions)
    parts["rest"] = path.stat().st_size - sum(parts.values())
    return parts


def layer_kind(node: Any, input_channels: int | None) -> str:
    attributes = {attribute.name: attribute for attribute in node.attribute}
    group = attributes["group"].i if "group" in attributes else 1
    kernel = list(attributes["kernel_shape"].ints) if "kernel_shape" in attributes else []
    if group > 1:
        return "depthwise conv"
    if input_channels is not None and input_channels <= 4:
        return "stem conv (<= 4 input channels)"
    if kernel == [1, 1]:
        return "pointwise conv (1x1)"
    return "other conv"


def onnx_profiles_by_kind(paths: dict[str, Path], inputs: np.ndarray, runs: int = 20) -> dict[str, dict[str, float]]:
    """ONNX Runtime's own profile of each file (1 thread, the runtime's default optimisations), µs per run by layer kind.

    The sessions run in turn, one call each, so that they share whatever load the machine has.
    """
    import onnx
    import onnxruntime

    with tempfile.TemporaryDirectory(prefix="edgeship-profile-") as folder:
        sessions, optimized = {}, {}
        for name, path in paths.items():
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
            options.log_severity_level = 3  # saving an NCHWc-optimised graph warns that it is machine-specific; it is only read here
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(folder) / f"profile-{name}")
            options.optimized_model_filepath = optimized[name] = str(Path(folder) / f"optimized-{name}.onnx")
            sessions[name] = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for _ in range(runs):
            for session in sessions.values():
                session.run(None, {session.get_inputs()[0].name: inputs})
        profiles = {}
        for name, session in sessions.items():
            events = json.loads(Path(session.end_profiling()).read_text())
            nodes = {node.name: node for node in onnx.load(optimized[name]).graph.node}
            profiles[name] = kinds_of(events, nodes)
    return profiles


def kinds_of(events: list[dict[str, Any]], nodes: dict[str, Any]) -> dict[str, float]:
    """Profile events by layer kind, µs per run: each node's median over the runs (robust to other work on the machine), summed."""
    durations: dict[str, list[float]] = {}
    kind_of: dict[str, str] = {}
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        name = event["name"][: -len("_kernel_time")]
        node = nodes.get(name)
        kind = "channel padding (Pad)" if node is not None and node.op_type == "Pad" else "other ops"
        if node is not None and node.op_type in ("Conv", "QLinearConv"):
            shape = next(iter(event["args"]["input_type_shape"][0].values()))
            channels_last = any(a.name == "channels_last" and a.i for a in node.attribute)
            kind = layer_kind(node, shape[-1] if channels_last else shape[1])
        durations.setdefault(name, []).append(event["dur"])
        kind_of[name] = kind
    kinds: dict[str, float] = {}
    for name, node_durations in durations.items():
        kinds[kind_of[name]] = kinds.get(kind_of[name], 0.0) + statistics.median(node_durations)
    return kinds


LAYERS = {
    "stem conv 3x3, 1 -> 16 channels, 28x28": ((28, 28, 1), lambda k: k.layers.Conv2D(16, 3, activation="relu")),
    "stem conv 3x3/2, 3 -> 16 channels, 96x96": ((96, 96, 3), lambda k: k.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu6")),
    "depthwise conv 3x3, 48 channels, 48x48": ((48, 48, 48), lambda k: k.layers.DepthwiseConv2D(3, padding="same", activation="relu6")),
    "pointwise conv 1x1, 16 -> 48 channels, 48x48": ((48, 48, 16), lambda k: k.layers.Conv2D(48, 1, activation="relu6")),
    "pointwise conv 1x1, 48 -> 16 channels, 48x48": ((48, 48, 48), lambda k: k.layers.Conv2D(16, 1)),
}


def tflite_layer_kinds(folder: Path, threads: int, rounds: int, seconds_per_call: float) -> list[dict[str, Any]]:
    """One-layer models (random weights, calibrated on random pixels) timed fp32 vs int8 on XNNPACK at batch 32."""
    import keras

    rows = []
    for index, (name, (shape, layer)) in enumerate(LAYERS.items()):
        keras.utils.set_random_seed(index)
        model = keras.Sequential([keras.Input(shape), layer(keras)])
        pixels = np.random.default_rng(index).integers(0, 256, (64, *shape), dtype=np.uint8)
        subject = Subject(f"layer{index}", model, shape, pixels, pixels[:32], np.zeros(32, np.int64), 1)
        files = tflite_files_fp32_int8(subject, folder / f"layer{index}")
        runners = [open_runner(Form("litert", "xnnpack", "", "", path, delegate="xnnpack"), threads) for path in files]
        inputs = subject.test_inputs()
        batches = [model_input(runner, inputs) for runner in runners]
        calls = [lambda runner=runner, batch=batch: runner.infer_converted(batch, None) for runner, batch in zip(runners, batches)]
        fp32_times, int8_times = time_interleaved(calls, rounds, seconds_per_call)
        rows.append({"layer": name, "fp32_ms": statistics.median(fp32_times), "int8_ms": statistics.median(int8_times),
                     "ratio": statistics.median([q / f for q, f in zip(int8_times, fp32_times)])})
        for runner in runners:
            runner.release()
    return rows


def tflite_files_fp32_int8(subject: Subject, folder: Path) -> tuple[Path, Path]:
    from edgeship.export.tflite import export_tflite_fp32, export_tflite_int8

    folder.mkdir(parents=True, exist_ok=True)
    options = subject.options()
    return (export_tflite_fp32(subject.model, folder / "fp32.tflite", options).path,
            export_tflite_int8(subject.model, folder / "int8.tflite", options).path)


def forms_table(subject: Subject, forms: list[Form]) -> str:
    from edgeship.runtime.tables import markdown_table

    fp32_bytes = {form.backend: form.path.stat().st_size for form in forms if form.precision == "fp32"}
    rows = []
    for form in forms:
        quality = form.quality
        passes = quality["agreement"] >= AGREEMENT_GATE
        size = form.path.stat().st_size
        for batch in BATCHES:
            row = form.timings[batch]
            rows.append([
                form.backend, form.kernels, form.form + (" ⬅ exported" if form.exported else ""), batch,
                f"{row['ms']:.3f}", f"{row['ratio']:.2f}x" if form.precision == "int8" else "1",
                f"{quality['agreement']:.2%}" + ("" if passes else " ❌"), f"{quality['accuracy_delta_pp']:+.1f}",
                f"{size / 1024:,.1f}", f"{size / fp32_bytes[form.backend]:.1%}",
            ])
    return markdown_table(["backend", "kernels", "form", "batch", "ms/batch", "time vs fp32", "agreement",
                           "accuracy Δ pp", "KiB", "size vs fp32"], rows)


def verdict_rows(subject: Subject, forms: list[Form]) -> list[list[Any]]:
    """The numbers to hold, per exported int8 file: faster than its fp32 file at every batch (1 thread), at most 30% of its size."""
    from edgeship.runtime.status import FAIL, PASS, label

    rows = []
    for form in forms:
        if not form.exported or form.kernels == "built-in":
            continue
        fp32 = next(other for other in forms if other.precision == "fp32" and other.backend == form.backend)
        size = form.path.stat().st_size / fp32.path.stat().st_size
        ratios = [form.timings[batch]["ratio"] for batch in BATCHES]
        slower = [f"batch {batch}: {ratio:.2f}x fp32 time" for batch, ratio in zip(BATCHES, ratios) if ratio >= 1]
        misses = slower + ([f"size {size:.1%} > 30%"] if size > 0.30 else [])
        rows.append([subject.name, form.backend, *(f"{ratio:.2f}x" for ratio in ratios), f"{size:.1%}",
                     label(FAIL, "; ".join(misses)) if misses else label(PASS)])
    return rows


def profile_table(profile: dict[str, dict[str, float]]) -> str:
    """Per layer kind: fp32 µs, then µs and the ratio to fp32 of every int8 form profiled; a total row."""
    from edgeship.runtime.tables import markdown_table

    forms = [name for name in profile if name != "fp32"]
    kinds = sorted(set().union(*profile.values()))
    totals = {name: sum(kinds_us.values()) for name, kinds_us in profile.items()}

    def row(label: str, values: dict[str, float]) -> list[Any]:
        cells: list[Any] = [label, f"{values['fp32']:,.0f}"]
        for name in forms:
            cells += [f"{values[name]:,.0f}", f"{values[name] / values['fp32']:.2f}" if values["fp32"] else None]
        return cells

    rows = [row(kind, {name: profile[name].get(kind, 0.0) for name in profile}) for kind in kinds]
    rows.append(row("total", totals))
    headers = ["layer kind", "fp32 µs"] + [part for name in forms for part in (f"{name} µs", f"{name} / fp32")]
    return markdown_table(headers, rows)


def bytes_table(breakdowns: dict[str, dict[str, int]]) -> str:
    from edgeship.runtime.tables import markdown_table

    parts = list(next(iter(breakdowns.values())))
    files = list(breakdowns)
    return markdown_table(["part", *files], [[part, *(f"{breakdowns[f][part] / 1024:,.1f} KiB" for f in files)] for part in parts]
                          + [["total", *(f"{sum(breakdowns[f].values()) / 1024:,.1f} KiB" for f in files)]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="timing rounds; every form is timed once a round (default: 9)")
    parser.add_argument("--seconds", type=float, default=0.05, help="time per measurement, repeating short calls (default: 0.05)")
    parser.add_argument("--threads", type=int, default=1, help="threads per interpreter/session (default: 1)")
    parser.add_argument("--cnn-epochs", type=int, default=2, help="training epochs of the zoo CNN (default: 2)")
    parser.add_argument("--mobilenet-epochs", type=int, default=3, help="training epochs of MobileNetV2 (default: 3)")
    parser.add_argument("--pictures", type=int, default=2000, help="synthetic training pictures for MobileNetV2 (default: 2000)")
    parser.add_argument("--out", help="keep the files here (default: a temporary folder)")
    args = parser.parse_args()

    from edgeship.runtime.bench import machine_info
    from edgeship.runtime.tables import markdown_table

    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="edgeship-int8-speed-"))
    load_before = os.getloadavg()
    summary: dict[str, Any] = {}
    verdicts: list[list[Any]] = []
    for subject in (zoo_cnn(root, args.cnn_epochs), mobilenet_v2(args.mobilenet_epochs, args.pictures)):
        folder = root / subject.name
        folder.mkdir(parents=True, exist_ok=True)
        forms = tflite_files(subject, folder) + onnx_files(subject, folder)
        measure(subject, forms, args.threads, args.rounds, args.seconds)
        exported = {form.backend: form for form in forms if form.exported}
        fp32 = {form.backend: form for form in forms if form.precision == "fp32"}
        breakdowns = {"tflite fp32": tflite_bytes(fp32["litert"].path), "tflite int8": tflite_bytes(exported["litert"].path),
                      "onnx fp32": onnx_bytes(fp32["onnxruntime"].path), "onnx int8": onnx_bytes(exported["onnxruntime"].path),
                      "onnx S8S8 plain": onnx_bytes(next(f.path for f in forms if f.form.startswith("QDQ S8S8")))}
        batch = subject.test_inputs()[:32]
        profiled = {"fp32": fp32["onnxruntime"].path, "int8": exported["onnxruntime"].path}
        padded = next((form for form in forms if form.form == PADDED_FORM), None)
        if padded is not None:
            profiled["int8 padded"] = padded.path
        profile = onnx_profiles_by_kind(profiled, batch)
        keras_accuracy = float((subject.model.predict(subject.test_inputs(), verbose=0).argmax(1) == subject.test_labels).mean())
        print(f"\n## {subject.name} ({subject.model.count_params():,} parameters, Keras test accuracy {keras_accuracy:.2%}, "
              f"{args.threads} thread, median of {args.rounds} interleaved rounds)\n")
        print(forms_table(subject, forms))
        print("\nWhere the bytes go (the exported files, and the quantizer's plain S8S8 output):\n")
        print(bytes_table(breakdowns))
        print("\nONNX Runtime's profile at batch 32, µs per run by layer kind (each node's median over the runs; int8 padded: input channels padded to 4):\n")
        print(profile_table(profile))
        verdicts += verdict_rows(subject, forms)
        summary[subject.name] = {
            "parameters": subject.model.count_params(), "keras_accuracy": keras_accuracy,
            "forms": [{"backend": f.backend, "kernels": f.kernels, "form": f.form, "precision": f.precision, "exported": f.exported,
                       "bytes": f.path.stat().st_size, **f.quality,
                       **{f"batch{b}": f.timings[b] for b in BATCHES}} for f in forms],
            "bytes": breakdowns, "onnxruntime_profile_us": profile,
        }
    layers = tflite_layer_kinds(root / "layers", args.threads, args.rounds, args.seconds)
    print("\nOne-layer models on XNNPACK, batch 32 (random weights):\n")
    print(markdown_table(["layer", "fp32 ms", "int8 ms", "int8 / fp32"],
                         [[row["layer"], f"{row['fp32_ms']:.3f}", f"{row['int8_ms']:.3f}", f"{row['ratio']:.2f}"] for row in layers]))
    print("\nNumbers to hold: the exported int8 file vs its fp32 file on the same backend (time ratios: medians over rounds):\n")
    print(markdown_table(["model", "backend", *(f"time, batch {batch}" for batch in BATCHES), "size", "verdict"], verdicts))
    machine = machine_info()
    load_after = os.getloadavg()
    print(f"\nmachine: {machine['cpu']}, {machine['cpu_count']} cores; load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after: timings on a shared machine, compare the ratios")
    print(json.dumps({"benchmark": "int8_speed", "machine": machine["cpu"], "cores": machine["cpu_count"],
                      "load_average": [load_before[0], load_after[0]], "threads": args.threads, "rounds": args.rounds,
                      "models": summary, "tflite_layers": layers}))


if __name__ == "__main__":
    main()
