"""Cross-backend bench of the seed MLP and the CNN: every artifact × backend × threads × batch, plus the Keras model.

Trains both models on the bundled sample (5 epochs, seed 0), exports every format, benches them
with the runtime's timing loop and prints, per model, the bench table and ratios measured in this
run: int8 vs fp32 file size, single-image speed-up of each artifact over the Keras model, and
int8 vs fp32 speed per backend. Ends with one JSON line. Run: `make bench` or
`.venv/bin/python benchmarks/cross_backend.py [--seconds 1.0] [--out DIR]`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def p50(rows: list[dict], artifact: str, batch: int, threads: int | None = 1) -> float | None:
    for row in rows:
        if row["status"] == "pass" and row["artifact"] == artifact and row["batch"] == batch and row["threads"] in (threads, None):
            return row["p50_ms"]
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time budget per row (default: 1.0 s)")
    parser.add_argument("--out", help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()

    from edgeship.bench import bench_bundle
    from edgeship.runtime.options import BenchOptions, ModelOptions
    from edgeship.data import load_dataset
    from edgeship.export import export_bundle
    from edgeship.runtime.bench import BenchRow, format_bench_table, machine_info
    from edgeship.train import train_model

    dataset = load_dataset("mnist-sample")
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="edgeship-bench-"))
    summary = {}
    for architecture in ("mlp", "cnn"):
        run = root / architecture
        trained = train_model(architecture, dataset, epochs=5, seed=0, out=run, progress=False)
        exported = export_bundle(trained.model_path, run / "bundle", dataset=dataset, say=lambda line: None)
        rows = [asdict(row) for row in bench_bundle(ModelOptions(run / "bundle", threads=[1, 2]), BenchOptions([1, 32, 256], args.seconds),
                                                    keras_model=trained.model_path, progress=lambda line: None)]
        sizes = {a.name: a.bytes for a in exported.manifest.artifacts if a.has_file}
        keras_single = p50(rows, "keras", 1, None)
        ratios = {
            "int8_size_vs_fp32": round(sizes["tflite-int8"] / sizes["tflite-fp32"], 3),
            "onnx_int8_size_vs_fp32": round(sizes["onnx-int8"] / sizes["onnx"], 3),
            "tflite_int8_vs_fp32_speedup_b1": round(p50(rows, "tflite-fp32", 1) / p50(rows, "tflite-int8", 1), 2),
            "onnx_int8_vs_fp32_speedup_b256": round(p50(rows, "onnx", 256) / p50(rows, "onnx-int8", 256), 2),
            "tflite_int8_vs_keras_speedup_b1": round(keras_single / p50(rows, "tflite-int8", 1), 1),
            "onnx_vs_keras_speedup_b1": round(keras_single / p50(rows, "onnx", 1), 1),
        }
        summary[architecture] = {"test_accuracy": trained.metrics["test_accuracy"], "parameters": trained.metrics["parameters"],
                                 "bytes": sizes, "ratios": ratios}
        print(f"\n## {architecture} ({trained.metrics['parameters']:,} parameters, test accuracy {trained.metrics['test_accuracy']:.4f})\n")
        print(format_bench_table([BenchRow(**row) for row in rows]))
        print("\n" + "\n".join(f"- {name}: {value}" for name, value in ratios.items()))
    machine = machine_info()
    print(f"\nmachine: {machine['cpu']}, {machine['cpu_count']} cores, {machine['platform']}")
    print(json.dumps({"benchmark": "cross_backend", "machine": machine["cpu"], **summary}))


if __name__ == "__main__":
    main()
