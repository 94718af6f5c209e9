"""`edgeship pipeline`: every stage in one run folder, ending with the report and a results table."""

from __future__ import annotations

import json
import subprocess
import sys


def test_pipeline_runs_every_stage_and_ends_with_the_report(pipeline_run):
    result, out = pipeline_run
    assert result.returncode == 0, result.stderr[-3000:]
    for step in range(1, 7):
        assert f"[{step}/6]" in result.stderr
    assert f"report: {out / 'report.md'}" in result.stdout
    summary = result.stdout.split("| artifact | size (KiB) |")[1]
    for name in ("tflite-fp32", "tflite-int8", "onnx"):
        assert f"| {name} |" in summary
    assert summary.count("✅ pass") == 3
    assert {"model.keras", "metrics.json", "bundle", "verify.json", "bench.json", "report.md", "report.json"} <= {p.name for p in out.iterdir()}
    verify = json.loads((out / "verify.json").read_text())
    assert [row["artifact"] for row in verify["rows"]] == ["tflite-fp32", "tflite-int8", "onnx"]
    assert all(row["status"] == "pass" for row in verify["rows"]) and verify["images"] == 300
    bench = json.loads((out / "bench.json").read_text())
    assert {(row["artifact"], row["batch"]) for row in bench["rows"]} == {
        (name, batch) for name in ("keras", "tflite-fp32", "tflite-int8", "onnx") for batch in (1, 16)
    }


def test_pipeline_refuses_bad_options_before_any_work(tmp_path):
    for arguments, words in (
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--threads", "0"], "--threads takes comma-separated positive integers"),
        (["--batch", "x"], "--batch takes comma-separated positive integers"),
    ):
        result = subprocess.run([sys.executable, "-m", "edgeship.cli", "pipeline", "--out", str(tmp_path / "run"), *arguments],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and words in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "run").exists()
