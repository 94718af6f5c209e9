"""Soak: 200,000 single-image predictions through Classifier.predict per artifact, with the process's memory watched.

After a warm-up of 10,000 predictions the resident set size (RSS, from /proc/self/statm) is the
baseline; it is sampled every 10,000 predictions after that. The figure judged is the growth from
the baseline to the end (limit 5 MB); the peak growth is shown beside it. Images cycle through the
bundled sample's 1,000 real test digits in three forms: (28, 28) uint8, (1, 28, 28) uint8 and
(28, 28) float32 raw pixels. Prints a table and one JSON line; exits 1 when a figure is over the limit.

    python benchmarks/soak.py                        # trains and exports a seed MLP bundle first
    python benchmarks/soak.py --bundle artifacts/latest/bundle --predictions 50000
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ARTIFACTS = ("tflite-int8", "tflite-fp32", "onnx")
WARM_UP = 10_000
SAMPLE_EVERY = 10_000
LIMIT_MB = 5.0


def rss_mb() -> float:
    """The resident set size of this process now, in MB (Linux /proc; elsewhere the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as stream:
            resident_pages = int(stream.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1e6 if sys.platform == "darwin" else peak / 1e3


def build_bundle(folder: Path) -> Path:
    """Train the seed MLP on the bundled sample and export the artifacts soaked here."""
    from edgeship.data import load_dataset
    from edgeship.export import export_bundle
    from edgeship.train import train_model

    dataset = load_dataset("mnist-sample")
    trained = train_model("mlp", dataset, epochs=5, seed=0, out=folder / "run", progress=False)
    return export_bundle(trained.model_path, folder / "bundle", formats=list(ARTIFACTS), dataset=dataset).bundle


def image_forms(images: np.ndarray) -> list[np.ndarray]:
    """Each test digit as (28, 28) uint8, (1, 28, 28) uint8 or (28, 28) float32, in turn."""
    forms = []
    for index, image in enumerate(images):
        turn = index % 3
        forms.append(image if turn == 0 else image[None] if turn == 1 else image.astype(np.float32))
    return forms


def soak(bundle: Path, artifact: str, forms: list[np.ndarray], predictions: int) -> dict:
    """Warm up, then run `predictions` single-image predictions, sampling RSS; the row for this artifact."""
    from edgeship.runtime import Classifier

    with Classifier.load(bundle, artifact=artifact, threads=1) as classifier:
        count = len(forms)
        for index in range(WARM_UP):
            classifier.predict(forms[index % count])
        gc.collect()
        baseline = rss_mb()
        samples = [baseline]
        started = time.perf_counter()
        for index in range(predictions):
            classifier.predict(forms[index % count])
            if (index + 1) % SAMPLE_EVERY == 0:
                samples.append(rss_mb())
        seconds = time.perf_counter() - started
        gc.collect()
        final = rss_mb()
        backend = classifier.info()["backend"]
    growth = final - baseline
    return {
        "artifact": artifact,
        "backend": backend,
        "predictions": predictions,
        "seconds": round(seconds, 2),
        "us_per_prediction": round(seconds / predictions * 1e6, 2),
        "rss_after_warm_up_mb": round(baseline, 2),
        "rss_end_mb": round(final, 2),
        "growth_mb": round(growth, 3),
        "peak_growth_mb": round(max(samples) - baseline, 3),
        "within_limit": growth <= LIMIT_MB,
    }


def format_table(rows: list[dict]) -> str:
    lines = [
        "| artifact | backend | predictions | s | µs/predict | RSS after warm-up MB | RSS end MB | growth MB | peak growth MB | ≤ 5 MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['artifact']} | {row['backend']} | {row['predictions']:,} | {row['seconds']:.1f} | {row['us_per_prediction']:.1f} "
            f"| {row['rss_after_warm_up_mb']:.1f} | {row['rss_end_mb']:.1f} | {row['growth_mb']:+.2f} | {row['peak_growth_mb']:+.2f} "
            f"| {'yes' if row['within_limit'] else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="a bundle with tflite-int8, tflite-fp32 and onnx (default: export one)")
    parser.add_argument("--predictions", type=int, default=200_000, help="single-image predictions per artifact (default: 200,000)")
    parser.add_argument("--artifacts", default=",".join(ARTIFACTS), help=f"comma-separated (default: {','.join(ARTIFACTS)})")
    args = parser.parse_args(argv)

    from edgeship.data import load_dataset

    forms = image_forms(load_dataset("mnist-sample").x_test)
    with tempfile.TemporaryDirectory() as scratch:
        bundle = args.bundle or build_bundle(Path(scratch))
        rows = [soak(bundle, name.strip(), forms, args.predictions) for name in args.artifacts.split(",") if name.strip()]
    print(format_table(rows))
    print(json.dumps({"benchmark": "soak", "limit_mb": LIMIT_MB, "warm_up": WARM_UP, "rows": rows}))
    return 0 if all(row["within_limit"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
