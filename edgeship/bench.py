"""The workstation bench: the runtime's timing loop over every artifact, plus the source Keras model as a reference row.

The loop itself lives in `edgeship.runtime.bench`, so a device runs the same code; this module only
adds what needs TensorFlow (the Keras rows) and gathers one JSON for the report.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeship.errors import EdgeshipError
from edgeship.manifest import Manifest, load_manifest
from edgeship.runtime.bench import BenchRow, bench_callable, bench_model, bench_payload, golden_images

log = logging.getLogger(__name__)


def keras_rows(model_path: Path, manifest: Manifest, images: np.ndarray, batches: list[int], seconds: float) -> list[BenchRow]:
    """Reference rows for the Keras model: `model(x)` for batch 1 (what an interactive user calls), `predict` above."""
    import keras
    import tensorflow as tf

    started = time.perf_counter()
    model = keras.saving.load_model(model_path, compile=False)
    load_seconds = time.perf_counter() - started
    spec = manifest.input
    shape = tuple(model.input_shape[1:])

    def scaled(raw: np.ndarray) -> np.ndarray:
        return ((raw.astype(np.float32) * np.float32(spec.scale) - np.float32(spec.mean)) / np.float32(spec.std)).reshape((len(raw), *shape))

    def call_once(raw: np.ndarray) -> Any:
        return model(scaled(raw), training=False)

    def predict(raw: np.ndarray) -> Any:
        return model.predict(scaled(raw), batch_size=len(raw), verbose=0)

    fields = {
        "artifact": "keras", "format": "keras", "precision": "fp32", "backend": "tensorflow", "accelerator": None,
        "threads": None, "load_seconds": round(load_seconds, 4), "file_bytes": model_path.stat().st_size,
        "package": "tensorflow", "version": tf.__version__,
    }
    rows = []
    for batch in batches:
        rows += bench_callable(call_once if batch == 1 else predict, images, [batch], seconds, **fields)
    return rows


def bench_bundle(
    bundle: str | Path,
    threads: list[int],
    batches: list[int],
    seconds: float = 1.0,
    keras_model: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every artifact × backend × threads × batch through the runtime, and the Keras reference; the bench JSON payload."""
    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    rows = bench_model(bundle, threads=threads, batches=batches, seconds=seconds, progress=say)
    if keras_model is not None:
        say("  keras reference")
        rows = keras_rows(Path(keras_model), manifest, golden_images(bundle), batches, seconds) + rows
    return bench_payload(rows)


def source_model_or_none(bundle: Path, manifest: Manifest) -> Path | None:
    """The bundle's source Keras model when it is still where the manifest says, else None (the row is left out)."""
    from edgeship.parity import source_model_path

    try:
        return source_model_path(bundle, manifest)
    except EdgeshipError as exc:
        log.warning("no Keras reference row: %s", exc)
        return None
