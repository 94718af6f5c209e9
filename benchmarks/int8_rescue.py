"""The int8 rescue on the seed MLP, the zoo CNN, the seed MLP with 4 outlier hidden units, and MobileNetV2 with and without an outlier channel.

For each model and each int8 format (tflite-int8, onnx-int8) it exports four ways, the MLPs and
the CNN on the bundled sample (5 epochs, seed 0), MobileNetV2-0.35 96x96 on a folder of tinted
shapes that tools/shapes.py draws (900 pictures, 720 train / 180 test, 15 epochs; synthetic
pictures: the figures say what int8 does to this model, not how well it sees real photos; its
outlier copy is made by tools/outliers.py), and reads the figures the manifest records (agreement with Keras,
accuracy, file size, median single-image latency through the runtime, all measured in this run):

- plain: no rescue;
- equalized: the rescue forced to run (an unreachable budget) so the equalized file is measured
  even where the plain one needs no help, and the fallback's steps after it;
- default: what `edgeship export` does (rescue only when the plain file misses the budget),
  and the outlier model with equalization turned off, to measure the float fallback alone.

Prints one table and one JSON line. Latencies are single-image p50 in ms taken during export
(0.3 s a file): compare them within a row, not across machines. Run:
`.venv/bin/python benchmarks/int8_rescue.py [--out DIR] [--max-float-layers 3] [--no-mobilenet]`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's tools/ (kept out of the wheel)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FORMATS = ("tflite-int8", "onnx-int8")


def steps_of(manifest, name: str) -> list[dict]:
    artifact = manifest.artifact(name)
    rescue = artifact.details.get("rescue")
    if rescue and rescue.get("steps"):
        return rescue["steps"]
    return [{"step": "plain", "equalized": False, "float_layers": [], "accuracy": artifact.parity["accuracy"],
             "agreement": artifact.parity["agreement"], "bytes": artifact.bytes, "latency_ms": None, "within_budget": True}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--max-float-layers", type=int, default=3, help="layer limit of the forced fallback (default: 3)")
    parser.add_argument("--no-mobilenet", action="store_true", help="leave out MobileNetV2 (about 10 of the 15 minutes)")
    args = parser.parse_args()

    from edgeship.data import load_dataset
    from edgeship.export import export_bundle
    from edgeship.export.rescue import RescuePolicy
    from edgeship.runtime.tables import cell, markdown_table
    from edgeship.train import train_model
    from tools.outliers import outlier_copy, outlier_mlp, outlier_mobilenetv2

    dataset = load_dataset("mnist-sample")
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="edgeship-rescue-"))
    models = {}
    for architecture in ("mlp", "cnn"):
        models[architecture] = train_model(architecture, dataset, epochs=5, seed=0, out=root / architecture, progress=False).model_path
    models["mlp-outlier"] = outlier_copy(models["mlp"], root / "mlp-outlier", outlier_mlp)
    datasets = dict.fromkeys(models, dataset)
    if not args.no_mobilenet:
        from edgeship.data import FolderOptions
        from tools.shapes import write_shapes_folder

        pictures = load_dataset(write_shapes_folder(root / "shapes", per_class=300), FolderOptions(image_size=(96, 96)))
        models["mobilenetv2"] = train_model("mobilenetv2", pictures, epochs=15, seed=0, out=root / "mobilenetv2", progress=False).model_path
        models["mobilenetv2-outlier"] = outlier_copy(models["mobilenetv2"], root / "mobilenetv2-outlier", outlier_mobilenetv2)
        datasets["mobilenetv2"] = datasets["mobilenetv2-outlier"] = pictures

    formats = ",".join(FORMATS)
    forced = RescuePolicy(min_agreement=1.01, max_float_layers=args.max_float_layers)
    results: dict[str, dict] = {}
    for name, path in models.items():
        data = datasets[name]
        runs = {
            "plain": export_bundle(path, root / name / "plain", formats=formats, dataset=data, rescue=RescuePolicy(enabled=False),
                                   say=lambda line: None),
            "forced": export_bundle(path, root / name / "forced", formats=formats, dataset=data, rescue=forced, say=lambda line: None),
            "default": export_bundle(path, root / name / "default", formats=formats, dataset=data, say=lambda line: None),
            "fallback": export_bundle(path, root / name / "fallback", formats=formats, dataset=data,
                                      rescue=RescuePolicy(equalize=False), say=lambda line: None),
        }
        results[name] = {}
        for artifact in FORMATS:
            forced_steps = {step["step"]: step for step in steps_of(runs["forced"].manifest, artifact)}
            fallback_steps = steps_of(runs["fallback"].manifest, artifact)
            default = runs["default"].manifest.artifact(artifact)
            results[name][artifact] = {
                "plain": forced_steps["plain"],
                "equalized": forced_steps.get("equalized"),
                "equalization_kept_when_forced": runs["forced"].manifest.artifact(artifact).details["rescue"]["equalization"].get("kept"),
                "fallback_alone": fallback_steps[-1],
                "default": {"status": default.status, "chosen": (default.details.get("rescue") or {}).get("chosen", "plain"),
                            "agreement": default.parity["agreement"], "bytes": default.bytes},
            }

    rows = []
    for name, per_format in results.items():
        for artifact, figures in per_format.items():
            plain, equalized, fallback, default = figures["plain"], figures["equalized"], figures["fallback_alone"], figures["default"]
            rows.append((
                name, artifact,
                f"{plain['agreement']:.1%} · {plain['bytes'] / 1024:.0f} KiB · {cell(plain['latency_ms'], '.3f')} ms",
                f"{equalized['agreement']:.1%} · {equalized['bytes'] / 1024:.0f} KiB · {cell(equalized['latency_ms'], '.3f')} ms"
                if equalized else "–",
                f"{fallback['agreement']:.1%} ({len(fallback['float_layers'])} in float) · {fallback['bytes'] / 1024:.0f} KiB · "
                f"{cell(fallback['latency_ms'], '.3f')} ms" if fallback["step"] != "plain" else "not needed",
                f"{default['status']} ({default['chosen']}, {default['agreement']:.1%})",
            ))
    print(markdown_table(
        ("model", "format", "plain int8: agreement · size · p50", "equalized (forced)", "float fallback alone", "export's choice"), rows
    ))
    print(json.dumps({"benchmark": "int8_rescue", "results": results}, default=str))


if __name__ == "__main__":
    main()
