"""The timing loop and the bench rows: every field filled, skipped rows say why, JSON written."""

from __future__ import annotations

import json
import time
from dataclasses import fields

import numpy as np

from edgeship.runtime.bench import BenchRow, bench_callable, bench_model, batch_of, machine_info, time_callable, write_bench_json


def test_time_callable_measures_a_known_sleep():
    timing = time_callable(lambda: time.sleep(0.002), batch=4, seconds=0.1, min_runs=5)
    assert timing.runs >= 5
    assert 1.9 <= timing.p50_ms <= 10 and timing.p50_ms <= timing.p90_ms <= timing.p99_ms
    assert abs(timing.throughput_ips - 4 * 1e3 / timing.mean_ms) < 1e-6


def test_bench_callable_takes_any_predict_function(test_images):
    rows = bench_callable(lambda x: x.sum(), test_images, [1, 3000], seconds=0.05, artifact="sum", format=None,
                          precision=None, backend="numpy", accelerator=None, threads=None)
    assert [row.batch for row in rows] == [1, 3000] and all(row.runs >= 10 for row in rows)
    assert batch_of(test_images[:2], 5).shape == (5, 28, 28)


def test_bench_model_rows_and_json(bundle_path, tmp_path):
    rows = bench_model(bundle_path, artifacts=["tflite-int8", "onnx", "edgetpu"], threads=[1, 2], batches=[1, 8], seconds=0.05)
    measured = [row for row in rows if row.status == "pass"]
    assert {(r.artifact, r.threads, r.batch) for r in measured} == {
        (a, t, b) for a in ("tflite-int8", "onnx") for t in (1, 2) for b in (1, 8)
    }
    for row in measured:
        assert all(getattr(row, f.name) is not None for f in fields(BenchRow) if f.name != "reason")
        assert row.file_bytes == (bundle_path / ("model_int8.tflite" if row.artifact == "tflite-int8" else "model.onnx")).stat().st_size
        assert row.throughput_ips > 0 and row.peak_rss_mb > 10
    skipped = [row for row in rows if row.status == "skipped"]
    assert len(skipped) == 1 and skipped[0].artifact == "edgetpu" and skipped[0].reason
    path = write_bench_json(tmp_path / "bench.json", rows)
    payload = json.loads(path.read_text())
    assert payload["schema"] == "edgeship.bench/2" and len(payload["rows"]) == len(rows)
    machine = payload["machine"]
    assert machine["cpu"] and machine["python"] and machine["numpy"] == np.__version__
    assert machine["backends"]["litert"].startswith("ai-edge-litert")


def test_bench_bare_file_and_delegate(bundle_path):
    rows = bench_model(bundle_path / "model_fp32.tflite", batches=[2], seconds=0.02, delegate="no-xnnpack")
    assert len(rows) == 1 and rows[0].accelerator == "no-xnnpack" and rows[0].artifact == "model_fp32.tflite"
    assert machine_info()["cpu_count"] >= 1
