"""The workstation bench: the runtime's timing loop over every artifact, plus the source Keras model as a reference row.

The loop itself lives in `edgeship.runtime.bench`, so a device runs the same code; this module only
adds what needs TensorFlow (the Keras rows) and gathers one JSON for the report.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from edgeship.errors import EdgeshipError
from edgeship.manifest import Manifest, load_manifest
from edgeship.reference import KerasReference
from edgeship.runtime.bench import BenchRow, bench_callable, bench_options, golden_images
from edgeship.runtime.options import BenchOptions, ModelOptions

log = logging.getLogger(__name__)


def keras_rows(model_path: Path, manifest: Manifest, images: np.ndarray, batches: list[int], seconds: float) -> list[BenchRow]:
    """Reference rows for the Keras model: `model(x)` for batch 1 (what an interactive user calls), `predict` above."""
    reference = KerasReference.load(model_path, manifest)
    fields = {
        "artifact": "keras", "format": "keras", "precision": "fp32", "backend": "tensorflow", "accelerator": None,
        "threads": None, "load_seconds": round(reference.load_seconds, 4), "file_bytes": model_path.stat().st_size,
        "package": "tensorflow", "version": reference.tensorflow_version,
    }
    rows = []
    for batch in batches:
        rows += bench_callable(reference.call if batch == 1 else reference.predict_proba, images, [batch], seconds, **fields)
    return rows


def bench_bundle(
    model: ModelOptions,
    bench: BenchOptions,
    keras: bool = True,
    keras_model: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[BenchRow]:
    """Every artifact x backend x delegate x threads x batch through the runtime, after the Keras reference rows.

    keras=True adds the source model's rows: `keras_model`, else the one the bundle's manifest records
    (left out with a warning when it has moved).
    """
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    rows: list[BenchRow] = []
    if keras:
        manifest = load_manifest(model.model)
        source = Path(keras_model) if keras_model else source_model_or_none(model.model, manifest)
        if source is not None:
            say("  keras reference")
            rows += keras_rows(source, manifest, golden_images(model.model), bench.batches, bench.seconds)
    return rows + bench_options(model, bench, progress=say)


def source_model_or_none(bundle: Path, manifest: Manifest) -> Path | None:
    """The bundle's source Keras model when it is still where the manifest says, else None (the row is left out)."""
    from edgeship.parity import source_model_path

    try:
        return source_model_path(bundle, manifest)
    except EdgeshipError as exc:
        log.warning("no Keras reference row: %s", exc)
        return None
