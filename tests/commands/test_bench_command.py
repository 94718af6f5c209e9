"""`edgeship bench`: the runtime's bench under the full CLI."""

from __future__ import annotations

import json

from edgeship.cli import main


def test_bench_writes_rows(mlp_bundle, tmp_path, capsys):
    bundle_path = mlp_bundle.bundle
    out = tmp_path / "bench.json"
    assert main(["bench", str(bundle_path), "--artifact", "onnx", "--batch", "2", "--seconds", "0.02", "--json", str(out)]) == 0
    assert "| onnx | onnxruntime | cpu |" in capsys.readouterr().out
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 1 and rows[0]["batch"] == 2 and rows[0]["p99_ms"] > 0


def test_bench_unknown_artifact(mlp_bundle, capsys):
    bundle_path = mlp_bundle.bundle
    assert main(["bench", str(bundle_path), "--artifact", "tflite-int4"]) == 2
    assert "no artifact 'tflite-int4'" in capsys.readouterr().err
