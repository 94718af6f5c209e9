"""Write a bundle's probabilities on test images as JSON, through the slim runtime's Classifier.

arm64_check.py runs it twice, with the dev venv on x86 and with the emulated Bookworm python on
arm64, and compares the two files. It imports only numpy and edgeship.runtime (plus edgeship.data
on x86, to pick the test images), as a device install would.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from edgeship.runtime import Classifier

BACKEND_DISTRIBUTIONS = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime", "tensorflow": "tensorflow"}


def test_images(args: argparse.Namespace) -> np.ndarray:
    """The images to classify: a saved .npy, or the first N test images of the bundled MNIST sample (saved for the other machine)."""
    if args.images:
        return np.load(args.images)
    from edgeship.data import load_dataset

    images = load_dataset("mnist-sample").x_test[: args.sample]
    if args.save_images:
        np.save(args.save_images, images)
    return images


def interpreter_in_use() -> str:
    """Which TFLite interpreter package the runtime loaded, with its version."""
    for module, distribution in BACKEND_DISTRIBUTIONS.items():
        if module in sys.modules:
            return f"{distribution} {importlib.metadata.version(distribution)}"
    return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--artifacts", required=True, help="comma-separated artifact names")
    parser.add_argument("--images", help="a .npy of uint8 images (N, 28, 28)")
    parser.add_argument("--sample", type=int, default=1000, help="without --images: the first N test images of mnist-sample")
    parser.add_argument("--save-images", help="without --images: save the chosen images here as .npy")
    parser.add_argument("--json", required=True, help="where to write the probabilities")
    args = parser.parse_args()
    images = test_images(args)
    payload = {"machine": platform.machine(), "python": platform.python_version(), "numpy": np.__version__, "artifacts": {}}
    for name in args.artifacts.split(","):
        with Classifier.load(args.bundle, artifact=name, threads=1) as classifier:
            start = time.perf_counter()
            probabilities = classifier.predict_proba(images)
            seconds = time.perf_counter() - start
        payload["artifacts"][name] = {"backend": interpreter_in_use(), "seconds": seconds, "probabilities": probabilities.astype(np.float32).tolist()}
    output = Path(args.json)
    temporary = output.with_name(f".{output.name}.tmp")
    temporary.write_text(json.dumps(payload) + "\n", encoding="utf-8")
    os.replace(temporary, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
