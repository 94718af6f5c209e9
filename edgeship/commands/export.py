"""`edgeship export`: a Keras classifier to a bundle of TFLite/ONNX files, each checked against the model."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

HELP = "export a .keras classifier to TFLite/ONNX/Edge TPU files in a bundle with manifest.json and parity figures"

ONNX_CALIBRATIONS = ("MinMax", "Entropy", "Percentile")
"""ONNX Runtime's CalibrationMethod names; any letter case is taken."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edgeship.export.registry import FORMATS
    from edgeship.runtime.options import channel_values, positive_number, resize_rule

    parser.add_argument("model", help="the .keras model file (a card model.edgeship.json beside it supplies labels and scaling)")
    parser.add_argument("--formats", help=f"comma-separated formats (default: all): {', '.join(FORMATS)}")
    parser.add_argument("--out", help="bundle folder to write or replace (default: 'bundle' beside the model)")
    parser.add_argument("--dataset", help="calibration and parity data: mnist-sample, mnist, fashion_mnist or a path: .npz, IDX folder or "
                        "image folder, brought to the model's size (default: the card's, else mnist-sample)")
    parser.add_argument("--calibration-images", type=int, help="training images to calibrate int8 formats on (default: 300, or all when fewer)")
    parser.add_argument("--seed", type=int, default=0, help="seed for choosing the calibration images (default: 0)")
    parser.add_argument(
        "--input-scale", type=positive_number,
        help="raw pixel -> model input factor for a model without a card, e.g. 1/255 (default: 1/255; 1.0 when the model starts with Rescaling)",
    )
    parser.add_argument("--mean", type=channel_values, help="then subtract this, one number or one per channel, e.g. 0.485,0.456,0.406 (default: 0)")
    parser.add_argument("--std", type=channel_values, help="then divide by this, one number or one per channel, e.g. 0.229,0.224,0.225 (default: 1)")
    parser.add_argument("--color", choices=("grey", "rgb"), help="the picture colour the model takes (default: from its channels)")
    parser.add_argument("--resize", type=resize_rule, metavar="METHOD,FIT",
                        help="how predict brings pictures of another size to the model's, and how an image folder is loaded: "
                        "bilinear|area|nearest, crop|pad|stretch (default: the card's, else bilinear,crop)")
    parser.add_argument("--recipe", choices=("mnist", "none"), help="mnist: the MNIST recipe for digit photos (default: the card's, else mnist for MNIST digits)")
    parser.add_argument("--skip-bad-images", action="store_true", help="skip unreadable pictures of an image folder instead of stopping")
    parser.add_argument("--labels", help="comma-separated class names for a model without a card (default: the dataset's)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset, 13..18 (default: 17)")
    parser.add_argument(
        "--int8-io", choices=("uint8", "int8"), default="int8",
        help="input/output type of tflite-int8 and edgetpu (default: int8: XNNPACK runs it end to end, ~2.7x the "
        "throughput of uint8 I/O at batch 256; with scale 1/255 the input is the raw pixel with its top bit flipped; "
        "uint8 takes raw pixels as they are)",
    )
    parser.add_argument(
        "--onnx-calibration", choices=ONNX_CALIBRATIONS, default="MinMax",
        type=lambda text: next((name for name in ONNX_CALIBRATIONS if name.lower() == text.lower()), text),
        help="ONNX Runtime's calibration method for onnx-int8 (default: MinMax, as TFLite)",
    )
    parser.add_argument(
        "--accuracy-budget", type=float, default=0.5, metavar="PP",
        help="accuracy a quantized file may lose against the Keras model, in percentage points, with at least 99%% "
        "top-1 agreement (default: 0.5, the int8 gate); a file outside it is rescued by cross-layer equalization, "
        "then by keeping its worst layers in float",
    )
    parser.add_argument("--no-rescue", action="store_true", help="keep plain quantized files even when they miss the budget")
    parser.add_argument("--no-equalize", action="store_true", help="rescue by float fallback alone, without cross-layer equalization")
    parser.add_argument(
        "--max-float-layers", type=int, default=8,
        help="most layers the rescue may keep in float in one int8 file (default: 8)",
    )
    parser.add_argument(
        "--allow-failed", action="store_true",
        help="exit 0 even when a file misses its gate after any rescue (it is still written, with status fail)",
    )
    parser.add_argument("--no-simplify", action="store_true", help="keep the ONNX graph as tf2onnx wrote it (no onnxslim)")
    parser.add_argument(
        "--no-safe-mode", action="store_true",
        help="let Keras load a model that runs Python code stored in the file (Lambda layers): "
        "loading a malicious file can run any command as you, so this is only for files you trust",
    )


class ProgressLine:
    """Progress on stderr: calibration counts rewritten in place on a terminal (the final count otherwise).

    It writes to its own duplicate of the stderr descriptor, because the converters' C++ output
    (descriptors 1 and 2) is sent to the debug log while they run, calibration included.
    """

    def __init__(self) -> None:
        try:
            self.stream = os.fdopen(os.dup(sys.stderr.fileno()), "w", encoding="utf-8", errors="replace")
            self.owned = True
        except (AttributeError, OSError, ValueError):
            self.stream, self.owned = sys.stderr, False
        self.live = self.stream.isatty()

    def __enter__(self) -> "ProgressLine":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stream.flush()
        if self.owned:
            self.stream.close()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.live:
            self.stream.write(f"\r  {stage} {done}/{total}" + ("\n" if done == total else ""))
            self.stream.flush()
        elif done == total:
            self.say(f"{stage} {total}/{total}")

    def say(self, line: str) -> None:
        self.stream.write(f"  {line}\n")
        self.stream.flush()


def format_table(rows: list[Any]) -> str:
    """The summary as a Markdown table: one row an artifact."""
    from edgeship.runtime.status import label
    from edgeship.runtime.tables import cell, markdown_table

    return markdown_table(
        ("artifact", "status", "bytes", "accuracy", "agreement", "max abs Δp", "export s"),
        [
            (row.artifact, label(row.status, row.reason), cell(row.bytes, ","), cell(row.accuracy, ".4f"),
             cell(row.agreement, ".2%"), cell(row.max_abs_diff, ".2e"), cell(row.export_seconds, ".2f"))
            for row in rows
        ],
    )


def rescue_lines(manifest: Any) -> list[str]:
    """One line an artifact the rescue worked on: which step was kept and how agreement moved."""
    lines = []
    for artifact in manifest.artifacts:
        rescue = artifact.details.get("rescue")
        if not rescue or "steps" not in rescue:
            continue
        steps = {step["step"]: step for step in rescue["steps"]}
        chosen, plain = steps[rescue["chosen"]], steps["plain"]
        floats = f", {len(rescue['float_layers'])} layer(s) in float" if rescue["float_layers"] else ""
        verdict = "back within budget" if rescue["rescued"] else "still outside budget"
        lines.append(
            f"{artifact.name}: {verdict} with {rescue['chosen']}{floats} (agreement {plain['agreement']:.2%} -> "
            f"{chosen['agreement']:.2%}, {len(rescue['steps']) - 1} rescue step(s))"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgeship.errors import ExportError, GateFailedError
    from edgeship.export import export_bundle, parse_formats
    from edgeship.export.rescue import RescuePolicy

    formats = parse_formats(args.formats) if args.formats is not None else None
    out = Path(args.out) if args.out else Path(args.model).parent / "bundle"
    labels = [label.strip() for label in args.labels.split(",")] if args.labels else None
    rescue = RescuePolicy(
        enabled=not args.no_rescue, equalize=not args.no_equalize, accuracy_budget_pp=args.accuracy_budget, max_float_layers=args.max_float_layers
    )
    with ProgressLine() as progress:
        result = export_bundle(
            args.model,
            out,
            formats=formats,
            dataset=args.dataset,
            calibration_images=args.calibration_images,
            seed=args.seed,
            input_scale=args.input_scale,
            labels=labels,
            opset=args.opset,
            int8_io=args.int8_io,
            simplify_onnx=not args.no_simplify,
            safe_mode=not args.no_safe_mode,
            progress=progress,
            say=progress.say,
            mean=args.mean,
            std=args.std,
            color=args.color,
            resize=args.resize,
            recipe=args.recipe,
            skip_bad_images=args.skip_bad_images,
            rescue=rescue,
            onnx_calibration=args.onnx_calibration,
        )
    dataset = result.manifest.dataset
    print(
        f"Keras accuracy {dataset['keras_accuracy']:.4f} on {dataset['test_images']} test images of {dataset['name']}; "
        f"int8 calibrated on {dataset['calibration']['images']} training images (seed {dataset['calibration']['seed']})"
    )
    print(format_table(result.rows))
    for line in rescue_lines(result.manifest):
        print(line)
    print(f"wrote {result.bundle}/manifest.json")
    if result.failed:
        names = ", ".join(row.artifact for row in result.failed)
        raise ExportError(
            f"{len(result.failed)} of {len(result.rows)} formats failed ({names}); the others are in {result.bundle}"
        )
    if result.gate_failed and not args.allow_failed:
        names = ", ".join(row.artifact for row in result.gate_failed)
        raise GateFailedError(
            f"{names} missed the parity gate at export (see the table; rescue "
            f"{'was off' if args.no_rescue else 'did not bring it back'}); the bundle is in {result.bundle}, "
            "pass --allow-failed to accept it"
        )
    return 0
