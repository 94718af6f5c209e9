"""What the slim runtime costs over the bare interpreter it wraps, for fp32 and int8 TFLite and ONNX.

For each artifact: one image through Classifier.predict against the bare set-input / invoke /
get-output on the same model file with input already in the model's dtype and scale (the least a
caller could do), and the same for a batch of 1,000 images as throughput. Both sides use one thread
and the backend's default CPU kernels; measurements alternate between the two, warm-up excluded,
and each figure is the median of several repeats. Prints a table and one JSON line.

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


def bare_litert(path: Path, model_input: np.ndarray) -> Callable[[], object]:
    """The bare LiteRT loop on model-ready input: set_tensor, invoke, get_tensor."""
    from edgeship.runtime.backends.litert import interpreter_module

    module, _, _ = interpreter_module()
    interpreter = module.Interpreter(model_path=str(path), num_threads=1)
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    interpreter.resize_tensor_input(input_index, list(model_input.shape))
    interpreter.allocate_tensors()

    def run() -> object:
        interpreter.set_tensor(input_index, model_input)
        interpreter.invoke()
        return interpreter.get_tensor(output_index)

    return run


def bare_onnxruntime(path: Path, model_input: np.ndarray) -> Callable[[], object]:
    """The bare ONNX Runtime call on model-ready input."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: model_input}
    return lambda: session.run(None, feed)


def model_input(classifier, images: np.ndarray) -> np.ndarray:
    """The images as the bare interpreter wants them: scaled, quantized, in the model's dtype."""
    spec, tensor = classifier.input_spec, classifier.runner.input
    values = (images.astype(np.float64) * spec.scale - spec.mean) / spec.std
    if tensor.quantization is not None:
        values = np.clip(np.rint(values / tensor.quantization.scale) + tensor.quantization.zero_point,
                         np.iinfo(tensor.dtype).min, np.iinfo(tensor.dtype).max)
    return values.astype(tensor.dtype).reshape((len(images), *tensor.shape[1:]))


def seconds_per_call(function: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - started) / calls


def compare(bare: Callable[[], object], runtime: Callable[[], object], calls: int, repeats: int) -> tuple[float, float]:
    """Median seconds per call of each, measured alternately after a warm-up."""
    seconds_per_call(bare, max(1, calls // 10))
    seconds_per_call(runtime, max(1, calls // 10))
    bare_times, runtime_times = [], []
    for _ in range(repeats):
        bare_times.append(seconds_per_call(bare, calls))
        runtime_times.append(seconds_per_call(runtime, calls))
    return statistics.median(bare_times), statistics.median(runtime_times)


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
                source = batch[0] if label == "single" else batch
                bare_seconds, runtime_seconds = compare(bare, lambda: classifier.predict(source), calls, repeats)
                if label == "single":
                    row.update(single_bare_us=bare_seconds * 1e6, single_runtime_us=runtime_seconds * 1e6,
                               single_ratio=runtime_seconds / bare_seconds)
                else:
                    row.update(batch_bare_ips=len(batch) / bare_seconds, batch_runtime_ips=len(batch) / runtime_seconds,
                               batch_ratio=bare_seconds / runtime_seconds)
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

    print(f"{'artifact':<12} {'backend':<12} {'bare 1 img':>11} {'runtime':>9} {'ratio':>6}   "
          f"{'bare img/s':>11} {'runtime':>11} {'ratio':>6}")
    for row in rows:
        print(f"{row['artifact']:<12} {row['backend']:<12} {row['single_bare_us']:>9.2f}us {row['single_runtime_us']:>7.2f}us "
              f"{row['single_ratio']:>5.2f}x   {row['batch_bare_ips']:>11,.0f} {row['batch_runtime_ips']:>11,.0f} "
              f"{row['batch_ratio']:>5.2f}x")
    passed = all(r["single_ratio"] <= TARGET_SINGLE and r["batch_ratio"] >= TARGET_BATCH for r in rows)
    print(f"targets: single-image ratio <= {TARGET_SINGLE}x, batch-1000 throughput ratio >= {TARGET_BATCH}x: "
          f"{'met' if passed else 'NOT met'}")
    print(json.dumps({"benchmark": "runtime_overhead", "rows": rows, "targets_met": passed}, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
