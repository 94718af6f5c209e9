"""LiteRT's CompiledModel on the CPU (the litert-compiled backend) beside the classic Interpreter with XNNPACK (litert).

For the seed MLP, the CNN (both trained 5 epochs on the bundled sample and exported by edgeship)
and MobileNetV2 alpha 0.35 96x96 RGB (benchmarks/mobilenetv2_rgb.py), fp32 and int8 each:
1. parity: CompiledModel's outputs against the Interpreter's on the same file and against the
   reference (the golden set, or the Keras model for MobileNetV2), judged by the same gates as
   verify and selftest;
2. speed: the runtime's bench (Classifier.predict, one thread) on both backends, interleaved over
   three rounds, the median p50 of each, and the ratio Interpreter / CompiledModel (> 1: CompiledModel
   is faster).
The runtime keeps the Interpreter as the default for .tflite files unless CompiledModel is faster
on every file here; the verdict line says which. Ends with one JSON line.
Run: `.venv/bin/python benchmarks/litert_compiled.py [--seconds 0.5] [--out DIR] [--mlp BUNDLE] [--cnn BUNDLE]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent))

BACKENDS = ("litert", "litert-compiled")
ROUNDS = 3


def bundle_for(architecture: str, root: Path, given: str | None) -> Path:
    """A bundle of the architecture: the one given, else trained and exported here (tflite-fp32 and tflite-int8)."""
    if given:
        return Path(given)
    from edgeship.data import load_dataset
    from edgeship.export import export_bundle
    from edgeship.train import train_model

    folder = root / architecture
    if not (folder / "bundle" / "manifest.json").is_file():
        dataset = load_dataset("mnist-sample")
        trained = train_model(architecture, dataset, epochs=5, seed=0, out=folder, progress=False)
        export_bundle(trained.model_path, folder / "bundle", formats="tflite-fp32,tflite-int8", dataset=dataset, say=lambda line: None)
    return folder / "bundle"


def parity(model: Path, artifact: str | None, precision: str, images, reference) -> dict:
    """CompiledModel vs the Interpreter on the same file, and vs the reference, with the precision's gate."""
    import numpy as np

    from edgeship.runtime.classifier import Classifier
    from edgeship.runtime.compare import compare, judge
    from edgeship.runtime.gates import gate_for
    from edgeship.runtime.status import FAIL, PASS, label

    options = {"artifact": artifact} if artifact else {}
    with Classifier.load(model, backend="litert", **options) as interpreter, \
            Classifier.load(model, backend="litert-compiled", **options) as compiled:
        expected, found = interpreter.predict_proba(images), compiled.predict_proba(images)
        placement = compiled.info()["placement"]
    classes = [str(index) for index in range(reference.shape[1])]
    versus_interpreter = compare(expected, found, expected.argmax(1), classes)
    versus_reference = compare(reference, found, reference.argmax(1), classes)
    failures = judge(versus_reference, gate_for(precision), accuracy=False)
    return {
        "agreement_vs_interpreter": versus_interpreter.agreement, "max_abs_diff_vs_interpreter": versus_interpreter.max_abs_diff,
        "agreement_vs_reference": versus_reference.agreement, "max_abs_diff_vs_reference": versus_reference.max_abs_diff,
        "identical_to_interpreter": bool(np.array_equal(found, expected)), "fully_accelerated": placement["fully_accelerated"],
        "gate": label(FAIL if failures else PASS, "; ".join(failures) or None),
    }


def speed(model: Path, artifact: str | None, batches: list[int], seconds: float) -> dict[tuple[str, int], float]:
    """Median over ROUNDS interleaved rounds of each backend's p50 (ms) per batch size, one thread."""
    from edgeship.runtime.bench import bench_model

    p50s: dict[tuple[str, int], list[float]] = {}
    for _ in range(ROUNDS):
        for backend in BACKENDS:
            rows = bench_model(model, artifacts=[artifact] if artifact else None, backend=backend, threads=[1],
                               batches=batches, seconds=seconds)
            for row in rows:
                p50s.setdefault((backend, row.batch), []).append(row.p50_ms)
    return {key: statistics.median(values) for key, values in p50s.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="time budget per bench row (default: 0.5 s)")
    parser.add_argument("--out", help="keep the models here (default: a temporary folder)")
    parser.add_argument("--mlp", help="an MLP bundle to reuse (default: train and export one)")
    parser.add_argument("--cnn", help="a CNN bundle to reuse (default: train and export one)")
    args = parser.parse_args()

    from mobilenetv2_rgb import make_files

    from edgeship.runtime.bundle import Bundle
    from edgeship.runtime.tables import markdown_table

    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="edgeship-compiled-"))
    cases = []
    for architecture, given in (("mlp", args.mlp), ("cnn", args.cnn)):
        bundle = bundle_for(architecture, root, given)
        golden = Bundle.open(bundle).golden(verify=False)
        for artifact, precision in (("tflite-fp32", "fp32"), ("tflite-int8", "int8")):
            cases.append((f"{architecture} {precision}", bundle, artifact, precision, golden["images"], golden["probabilities"]))
    mobilenet = make_files(root / "mobilenetv2")
    for precision in ("fp32", "int8"):
        cases.append((f"mobilenetv2 {precision}", mobilenet[precision], None, precision, mobilenet["images"], mobilenet["probabilities"]))

    batches = [1, 32]
    rows, results = [], {}
    for name, model, artifact, precision, images, reference in cases:
        print(f"  {name}", file=sys.stderr, flush=True)
        checked = parity(model, artifact, precision, images, reference)
        timed = speed(model, artifact, batches, args.seconds)
        ratios = {batch: timed[("litert", batch)] / timed[("litert-compiled", batch)] for batch in batches}
        results[name] = {**checked, **{f"p50_ms_{backend}_b{batch}": round(timed[(backend, batch)], 4)
                                       for backend in BACKENDS for batch in batches},
                         **{f"interpreter_over_compiled_b{batch}": round(ratio, 3) for batch, ratio in ratios.items()}}
        rows.append((name, checked["gate"], f"{checked['agreement_vs_interpreter']:.2%}", f"{checked['max_abs_diff_vs_interpreter']:.1e}",
                     "full" if checked["fully_accelerated"] else "partial",
                     *(f"{timed[(backend, batch)] * 1000:.0f}" for batch in batches for backend in BACKENDS),
                     *(f"{ratios[batch]:.2f}x" for batch in batches)))
    headers = ("file", "gate vs reference", "agreement vs Interpreter", "max |Δp| vs Interpreter", "XNNPACK took",
               *(f"b{batch} {label} µs" for batch in batches for label in ("Interpreter", "CompiledModel")),
               *(f"b{batch} Interpreter/Compiled" for batch in batches))
    print(markdown_table(headers, rows))
    faster = [name for name, result in results.items() if all(result[f"interpreter_over_compiled_b{b}"] > 1.0 for b in batches)]
    prefer = len(faster) == len(results)
    print(f"\nCompiledModel faster at every batch size on {len(faster)} of {len(results)} files "
          f"({', '.join(faster) or 'none'}); default backend for .tflite: {'litert-compiled' if prefer else 'litert (the Interpreter)'}")
    print(json.dumps({"benchmark": "litert_compiled", "prefer_compiled": prefer, "results": results}))


if __name__ == "__main__":
    main()
