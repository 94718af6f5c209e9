"""`edgeship predict`: classify images with a bundle or a bare model file, through the slim runtime."""

from __future__ import annotations

import argparse

HELP = "classify images (PNG/JPEG/.npy/.npz) with a bundle or a .tflite/.onnx file; --plot draws image and probabilities"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edgeship.runtime.cli import add_predict_arguments

    add_predict_arguments(parser)
    parser.add_argument("--plot", metavar="FILE.png", help="draw each image beside its probability bar chart (several images: FILE-0.png, ...)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgeship.files import check_writable
    from edgeship.runtime.cli import run_predict

    if args.plot:
        check_writable(args.plot)
    images, results, model = run_predict(args)
    if args.plot:
        from edgeship.plots import plot_image_and_probabilities

        target = Path(args.plot)
        for position, (image, result) in enumerate(zip(images, results)):
            path = target if len(results) == 1 else target.with_name(f"{target.stem}-{position}{target.suffix or '.png'}")
            title = model["artifact"] or Path(args.model).name
            plot_image_and_probabilities(image, [(title, result["probabilities"])], model["labels"], path)
            print(f"wrote {path} ({result['image']})")
    return 0
