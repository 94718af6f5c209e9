"""What the slim runtime costs over the bare interpreter it wraps, for fp32 and int8 TFLite and ONNX.

For each artifact: one image through Classifier.predict against the bare set-input / invoke /
get-output on the same model file, and the same for a batch of 1,000 images as throughput. "bare"
gets input already in the model's dtype and scale (the targets are judged on it); "bare+scaling"
also converts the raw uint8 pixels in the cheapest plain numpy way, as a caller of the bare
interpreter must (nothing for a uint8 model whose quantization is x/255). Every side uses one
thread and the backend's default CPU kernels; measurements alternate, warm-up excluded, and each
figure is the median of several repeats. Prints a table and one JSON line.

    python benchmarks/runtime_overhead.py                 # trains and exports a seed MLP bundle first
    python benchmarks/runtime_overhead.py --bundle artifacts/latest/bundle
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

ARTIFACTS = ("tflite-fp32", "tflite-int8", "onnx")
TARGET_SINGLE = 1.5
TARGET_BATCH = 0.95


def bare_litert(path: Path, model_input: np.ndarray, prepare: Callable[[], np.ndarray] | None = None) -> Callable[[], object]:
    """The bare LiteRT loop: set_tensor (of model-ready input, or of prepare()), invoke, get_tensor."""
    from edgeship.runtime.backends.litert import interpreter_module

    module, _, _ = interpreter_module()
    interpreter = module.Interpreter(model_path=str(path), num_threads=1)
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    interpreter.resize_tensor_input(input_index, list(model_input.shape))
    interpreter.allocate_tensors()

    def run() -> object:
        interpreter.set_tensor(input_index, model_input if prepare is None else prepare())
        interpreter.invoke()
        return interpreter.get_tensor(output_index)

    return run


def bare_onnxruntime(path: Path, model_input: np.ndarray, prepare: Callable[[], np.ndarray] | None = None) -> Callable[[], object]:
    """The bare ONNX Runtime call on model-ready input, or on prepare()."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    if prepare is None:
        feed = {name: model_input}
        return lambda: session.run(None, feed)
    return lambda: session.run(None, {name: prepare()})


def model_input(classifier, images: np.ndarray) -> np.ndarray:
    """The images as the bare interpreter wants them: scaled, quantized, in the model's dtype."""
    spec, tensor = classifier.input_spec, classifier.runner.input
    values = (images.astype(np.float64) * spec.scale - spec.mean) / spec.std
    if tensor.quantization is not None:
        values = np.clip(np.rint(values / tensor.quantization.scale) + tensor.quantization.zero_point,
                         np.iinfo(tensor.dtype).min, np.iinfo(tensor.dtype).max)
    return values.astype(tensor.dtype).reshape((len(images), *tensor.shape[1:]))


def caller_scaling(classifier, raw: np.ndarray) -> Callable[[], np.ndarray]:
    """What a bare-interpreter caller does to raw pixels: one numpy pass for float input, a top-bit flip for x/255 int8, none for x/255 uint8."""
    spec, tensor = classifier.input_spec, classifier.runner.input
    shape = (len(raw), *tensor.shape[1:])
    if tensor.dtype == np.float32:
        gain = np.float32(spec.scale / spec.std)
        return lambda: np.multiply(raw, gain, dtype=np.float32).reshape(shape)
    if tensor.dtype == np.uint8 and tensor.quantization.zero_point == 0:
        return lambda: raw.reshape(shape)
    if tensor.dtype == np.int8 and tensor.quantization.zero_point == -128:
        flip = np.uint8(0x80)
        return lambda: np.bitwise_xor(raw, flip).view(np.int8).reshape(shape)
    raise ValueError(f"no plain scaling for {tensor.dtype} input")


def seconds_per_call(function: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - started) / calls


def compare(functions: list[Callable[[], object]], calls: int, repeats: int) -> list[float]:
    """Median seconds per call of each function, measured in turn, repeat after repeat, after a warm-up."""
    for function in functions:
        seconds_per_call(function, max(1, calls // 10))
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(repeats):
        for function, measured in zip(functions, times):
            measured.append(seconds_per_call(function, calls))
    return [statistics.median(measured) for measured in times]


def build_bundle(folder: Path) -> Path:
    """Train the seed MLP on the bundled sample and export the three artifacts measured here."""
    from edgeship.data import load_dataset
    from edgeship.export import export_bundle
    from edgeship.train import train_model

    dataset = load_dataset("mnist-sample")
    trained = train_model("mlp", dataset, epochs=1, seed=0, out=folder / "run", progress=False)
    return export_bundle(trained.model_path, folder / "bundle", formats=list(ARTIFACTS), dataset=dataset).bundle


def measure(bundle: Path, images: np.ndarray, repeats: int) -> list[dict]:
    from edgeship.runtime import Classifier

    rows = []
    for name in ARTIFACTS:
        with Classifier.load(bundle, artifact=name, threads=1) as classifier:
            make_bare = bare_litert if classifier.runner.backend == "litert" else bare_onnxruntime
            row = {"artifact": name, "backend": classifier.runner.backend}
            for label, batch, calls in (("single", images[:1], 20000), ("batch1000", images[:1000], 30)):
                bare = make_bare(classifier.runner.path, model_input(classifier, batch))
                bare_scaling = make_bare(classifier.runner.path, model_input(classifier, batch), caller_scaling(classifier, batch))
                source = batch[0] if label == "single" else batch
                bare_seconds, scaling_seconds, runtime_seconds = compare(
                    [bare, bare_scaling, lambda: classifier.predict(source)], calls, repeats
                )
                if label == "single":
                    row.update(single_bare_us=bare_seconds * 1e6, single_bare_scaling_us=scaling_seconds * 1e6,
                               single_runtime_us=runtime_seconds * 1e6, single_ratio=runtime_seconds / bare_seconds,
                               single_ratio_vs_scaling=runtime_seconds / scaling_seconds)
                else:
                    row.update(batch_bare_ips=len(batch) / bare_seconds, batch_bare_scaling_ips=len(batch) / scaling_seconds,
                               batch_runtime_ips=len(batch) / runtime_seconds, batch_ratio=bare_seconds / runtime_seconds,
                               batch_ratio_vs_scaling=scaling_seconds / runtime_seconds)
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="a bundle with tflite-fp32, tflite-int8 and onnx (default: export one)")
    parser.add_argument("--repeats", type=int, default=7, help="repeats per measurement, median taken (default 7)")
    args = parser.parse_args(argv)

    from edgeship.data import load_dataset

    images = load_dataset("mnist-sample").x_test
    images = np.concatenate([images] * (1000 // len(images) + 1))[:1000]
    with tempfile.TemporaryDirectory() as scratch:
        bundle = args.bundle or build_bundle(Path(scratch))
        rows = measure(bundle, images, args.repeats)

    print(f"{'':<25} {'one image, us per call':^36}   {'batch of 1000, images/s':^44}")
    print(f"{'artifact':<12} {'backend':<12} {'bare':>6} {'+scale':>7} {'runtime':>8} {'ratio':>6} {'vs+sc':>6}   "
          f"{'bare':>10} {'+scale':>10} {'runtime':>10} {'ratio':>5} {'vs+sc':>5}")
    for row in rows:
        print(f"{row['artifact']:<12} {row['backend']:<12} {row['single_bare_us']:>6.2f} {row['single_bare_scaling_us']:>7.2f} "
              f"{row['single_runtime_us']:>8.2f} {row['single_ratio']:>5.2f}x {row['single_ratio_vs_scaling']:>5.2f}x   "
              f"{row['batch_bare_ips']:>10,.0f} {row['batch_bare_scaling_ips']:>10,.0f} {row['batch_runtime_ips']:>10,.0f} "
              f"{row['batch_ratio']:>4.2f}x {row['batch_ratio_vs_scaling']:>4.2f}x")
    missed = [f"{r['artifact']} one image {r['single_ratio']:.2f}x" for r in rows if r["single_ratio"] > TARGET_SINGLE]
    missed += [f"{r['artifact']} batch {r['batch_ratio']:.2f}x" for r in rows if r["batch_ratio"] < TARGET_BATCH]
    passed = not missed
    print(f"targets vs bare: one image <= {TARGET_SINGLE}x, batch-1000 throughput >= {TARGET_BATCH}x: "
          + ("met" if passed else "missed by " + ", ".join(missed)))
    print(json.dumps({"benchmark": "runtime_overhead", "rows": rows, "targets_met": passed}, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
