"""recommend: the fastest candidate that passed parity and the machine's selftest, a runner-up, and every exclusion with its reason.

The run folder is written here in the shapes verify, bench and `device run` write, with figures
chosen so each rule decides one candidate.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeship.cli import main
from edgeship.errors import UsageError
from edgeship.recommend import format_recommendations, recommend


def bench_row(artifact, backend, p50, p99=None, threads=1, batch=1, accelerator=None, status="ok", file_bytes=1000, fmt=None, reason=None):
    return {"artifact": artifact, "format": fmt or ("onnx" if backend == "onnxruntime" else "tflite"), "backend": backend,
            "accelerator": accelerator, "threads": threads, "batch": batch, "status": status, "p50_ms": p50,
            "p99_ms": p99 if p99 is not None else (p50 * 2 if p50 else None), "throughput_ips": (1000 * batch / p50) if p50 else None,
            "file_bytes": file_bytes, "reason": reason}


def parity_row(artifact, status="pass", agreement=1.0, failures=()):
    return {"artifact": artifact, "status": status, "failures": list(failures), "reason": None, "comparison": {"agreement": agreement}}


@pytest.fixture
def run(tmp_path) -> Path:
    run = tmp_path / "run"
    (run / "devices" / "pi").mkdir(parents=True)
    (run / "devices" / "down").mkdir(parents=True)
    (run / "verify.json").write_text(json.dumps({"rows": [
        parity_row("tflite-int8", agreement=0.993), parity_row("tflite-fp32"), parity_row("onnx"),
        parity_row("tflite-fp16", status="fail", agreement=0.98, failures=["agreement 98.00% < 99.50%"]),
    ]}))
    (run / "bench.json").write_text(json.dumps({"machine": {"cpu": "Xeon", "machine": "x86_64"}, "rows": [
        bench_row("keras", "tensorflow", 5.0, threads=None, fmt="keras"),
        bench_row("tflite-int8", "litert", 0.05, accelerator="xnnpack", file_bytes=100),
        bench_row("tflite-int8", "litert", 0.04, threads=2, accelerator="xnnpack", file_bytes=100),
        bench_row("tflite-fp32", "litert", 0.08, accelerator="xnnpack", file_bytes=400),
        bench_row("tflite-fp16", "litert", 0.01, accelerator="xnnpack"),
        bench_row("onnx", "onnxruntime", 0.06, accelerator="cpu", file_bytes=400),
        bench_row("onnx", "onnxruntime", 0.5, batch=32, accelerator="cpu"),
    ]}))
    (run / "devices" / "pi" / "bench.json").write_text(json.dumps({"machine": {"label": "pi (Cortex-A72, aarch64)", "device": "pi"}, "rows": [
        bench_row("tflite-int8", "litert", 0.9, p99=9.0, accelerator="xnnpack"),
        bench_row("tflite-fp32", "litert", 1.5, accelerator="xnnpack"),
        bench_row("tflite-fp32", "litert", 1.2, accelerator="no-xnnpack"),
        bench_row("onnx", "onnxruntime", 2.0, accelerator="cpu"),
        bench_row("tflite-fp16", "litert", None, status="skipped", batch=0, reason="needs a GPU delegate"),
    ]}))
    (run / "devices" / "pi" / "selftest.json").write_text(json.dumps({"rows": [
        {"artifact": "tflite-int8", "status": "pass", "agreement": 1.0, "failures": []},
        {"artifact": "tflite-fp32", "status": "pass", "agreement": 1.0, "failures": []},
        {"artifact": "onnx", "status": "fail", "agreement": 0.9, "failures": ["agreement 90.00% < 99.90%"]},
    ]}))
    (run / "devices" / "pi" / "device.json").write_text(json.dumps({"remote_bundle": ".edgeship/bundles/run-bundle"}))
    (run / "devices" / "down" / "device.json").write_text(json.dumps({"status": "error", "reason": "cannot connect to 10.0.0.9:22"}))
    return run


def by_machine(recommendations):
    return {rec.machine.split(" ")[0]: rec for rec in recommendations}


def test_fastest_that_passes_with_runner_up_and_reasons(run):
    recs = by_machine(recommend(run))
    workstation, pi, down = recs["Xeon"], recs["pi"], recs["down"]
    assert (workstation.choice.artifact, workstation.choice.threads) == ("tflite-int8", 2)
    assert workstation.runner_up.artifact == "onnx"  # the runner-up is another artifact
    assert workstation.python == f"Classifier.load({str(run / 'bundle')!r}, artifact='tflite-int8', threads=2)"
    reasons = dict(workstation.excluded)
    assert reasons["tflite-fp16 · litert xnnpack · 1 thread"] == "parity: agreement 98.00% < 99.50%"
    assert reasons["keras · tensorflow · default threads"].startswith("the Keras reference")
    assert pi.choice.artifact == "tflite-int8" and pi.runner_up.label == "tflite-fp32 · litert no-xnnpack · 1 thread"
    assert pi.python == "Classifier.load('.edgeship/bundles/run-bundle', artifact='tflite-int8', threads=1)"
    pi_reasons = dict(pi.excluded)
    assert pi_reasons["onnx · onnxruntime cpu · 1 thread"] == "selftest here: fail: agreement 90.00% < 99.90%"
    assert pi_reasons["tflite-fp16 · litert"] == "cannot run here: needs a GPU delegate"
    assert down.choice is None and "cannot connect to 10.0.0.9:22" in down.note


def test_latency_budget_agreement_floor_batch_and_preference(run):
    pi = by_machine(recommend(run, max_latency_ms=5))["pi"]
    assert pi.choice.accelerator == "no-xnnpack" and dict(pi.excluded)["tflite-int8 · litert xnnpack · 1 thread"] == "p99 9.000 ms > 5 ms"
    assert pi.python.endswith("artifact='tflite-fp32', threads=1, delegate='no-xnnpack')")
    workstation = by_machine(recommend(run, min_agreement=0.995))["Xeon"]
    assert workstation.choice.artifact == "onnx"
    assert "parity agreement 99.30% < 99.50%" in dict(workstation.excluded).values()
    batch32 = by_machine(recommend(run, batch=32))
    assert batch32["Xeon"].choice.batch == 32 and batch32["pi"].choice is None and "no bench rows at batch 32" in batch32["pi"].note
    assert by_machine(recommend(run, prefer="size"))["Xeon"].choice.file_bytes == 100
    text = format_recommendations(recommend(run))
    assert "| pi (Cortex-A72, aarch64) | tflite-int8 · litert xnnpack · 1 thread | 0.900 / 9.000 |" in text


def test_command_line_and_bad_options(run, tmp_path, capsys):
    assert main(["recommend", str(run), "--json", str(tmp_path / "rec.json")]) == 0
    assert "Classifier.load(" in capsys.readouterr().out
    assert json.loads((tmp_path / "rec.json").read_text())[0]["choice"]["artifact"] == "tflite-int8"
    assert main(["recommend", str(run), "--max-latency-ms", "0.001"]) == 1
    assert "no machine has a candidate" in capsys.readouterr().err
    with pytest.raises(UsageError, match="--min-agreement is a fraction"):
        recommend(run, min_agreement=99)
    (run / "verify.json").unlink()
    with pytest.raises(UsageError, match="has no verify.json"):
        recommend(run)
