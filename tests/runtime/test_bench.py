"""The timing loop and the bench rows: every field filled, skipped rows say why, JSON written."""

from __future__ import annotations

import json
import time
from dataclasses import fields

import numpy as np

from edgeship.runtime.bench import (
    BenchRow,
    CpuWatch,
    batch_of,
    bench_callable,
    bench_model,
    machine_info,
    time_callable,
    write_bench_json,
)


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
        assert all(getattr(row, f.name) is not None for f in fields(BenchRow) if f.name not in ("reason", "cpu_mhz", "cpu_max_mhz", "input"))
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


def test_the_cold_first_call_is_timed_apart_and_cv_beside_the_percentiles():
    calls = []

    def slow_first() -> None:
        time.sleep(0.03 if not calls else 0.002)
        calls.append(1)

    timing = time_callable(slow_first, batch=1, seconds=0.1, min_runs=5)
    assert timing.first_ms >= 25 and timing.p99_ms < 25
    assert 0 <= timing.cv < 1
    steady = time_callable(lambda: time.sleep(0.002), batch=1, seconds=0.1)
    jumpy = time_callable(lambda: time.sleep(0.002 if len(calls) % 2 else 0.01) or calls.append(1), batch=1, seconds=0.1)
    assert jumpy.cv > steady.cv


def write_cpu(root, number, current_khz, max_khz=1_800_000):
    folder = root / f"cpu{number}" / "cpufreq"
    folder.mkdir(parents=True)
    (folder / "scaling_cur_freq").write_text(f"{current_khz}\n")
    (folder / "cpuinfo_max_freq").write_text(f"{max_khz}\n")


def test_cpu_clock_and_throttling_seen_during_a_row_are_flagged(tmp_path):
    root = tmp_path / "cpu"
    write_cpu(root, 0, 1_800_000)
    write_cpu(root, 1, 1_790_000)
    watch = CpuWatch(str(root), vcgencmd=None)
    watch.look()
    assert watch.flags() == [] and watch.rated == 1_800_000
    (root / "cpu1" / "cpufreq" / "scaling_cur_freq").write_text("600000\n")  # the clock drops mid-run
    watch.look()
    assert watch.flags() == ["CPU clock 600 of 1800 MHz"]
    # On a Raspberry Pi `vcgencmd get_throttled` reports throttling: bits 0-3 now, 16-19 since boot.
    tool = tmp_path / "bin" / "vcgencmd"
    tool.parent.mkdir()
    state = tmp_path / "throttled"
    state.write_text("0x0")
    tool.write_text(f"#!/bin/sh\necho throttled=$(cat {state})\n")
    tool.chmod(0o755)
    pi = CpuWatch(str(tmp_path / "none"), vcgencmd=str(tool))
    state.write_text("0x40004")  # throttled now, and throttling has occurred
    pi.look()
    assert pi.flags() == ["throttled now"]
    state.write_text("0x50000")  # under-voltage happened during the run, nothing now
    later = CpuWatch(str(tmp_path / "none"), vcgencmd=str(tool))
    state.write_text("0x50000")
    assert later.throttled_start == 0x50000
    state.write_text("0x70000")
    later.look()
    assert later.flags() == ["frequency capped during the run"]
    assert CpuWatch(str(tmp_path / "none"), vcgencmd=None).flags() == []


def test_budget_ms_fails_rows_over_it_and_exits_1(bundle_path, tmp_path):
    import subprocess
    import sys

    command = [sys.executable, "-m", "edgeship.runtime", "bench", str(bundle_path), "--artifact", "onnx", "--batch", "1",
               "--seconds", "0.05"]
    over = subprocess.run([*command, "--budget-ms", "0.000001", "--json", str(tmp_path / "over.json")], capture_output=True, text=True)
    assert over.returncode == 1, over.stderr
    assert "latency budget exceeded by onnx (onnxruntime, 1 threads, batch 1): p99" in over.stderr
    row = json.loads((tmp_path / "over.json").read_text())["rows"][0]
    assert row["status"] == "fail" and "> budget 1e-06 ms" in row["reason"] and row["cv"] is not None and row["first_ms"] > 0
    assert "❌ fail: p99" in over.stdout
    within = subprocess.run([*command, "--budget-ms", "10000"], capture_output=True, text=True)
    assert within.returncode == 0, within.stderr
    refused = subprocess.run([*command, "--budget-ms", "0"], capture_output=True, text=True)
    assert refused.returncode == 2 and "--budget-ms must be positive" in refused.stderr
