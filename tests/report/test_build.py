"""The report: valid PNGs, and Markdown tables that say what the JSON says."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from PIL import Image

from edgeship.errors import UsageError
from edgeship.report import build_report


def test_every_figure_is_a_real_png_of_a_readable_size(pipeline_run):
    _, out = pipeline_run
    report = json.loads((out / "report.json").read_text())
    base = {"curves", "accuracy_vs_size", "confusion", "latency", "sample_prediction"}
    assert base <= set(report["figures"])
    assert all(name.startswith("flipped_") for name in set(report["figures"]) - base)
    for relative in report["figures"].values():
        with Image.open(out / relative) as image:
            assert image.format == "PNG" and image.width >= 400 and image.height >= 250
        assert f"]({relative})" in (out / "report.md").read_text()


def test_markdown_tables_match_the_json(pipeline_run):
    _, out = pipeline_run
    report = json.loads((out / "report.json").read_text())
    markdown = (out / "report.md").read_text()
    for row in report["parity"]["rows"]:
        line = next(line for line in markdown.splitlines() if line.startswith(f"| {row['artifact']} | {row['precision']} |"))
        assert f"{row['comparison']['accuracy']:.4f}" in line and f"{row['comparison']['agreement']:.2%}" in line
    latency_lines = [line for line in markdown.splitlines() if re.match(r"\| .+ \| (keras|tflite-\w+|onnx) \| ", line)]
    assert len(latency_lines) == len(report["bench"])
    for row, line in zip(report["bench"], latency_lines):
        assert f"| {row['batch']} | {row['p50_ms']:.3f} | {row['p90_ms']:.3f} | {row['p99_ms']:.3f} |" in line
    assert f"{report['model']['test_accuracy']:.4f}" in markdown


def test_a_device_bench_merges_beside_the_workstation_rows(pipeline_run, tmp_path):
    _, out = pipeline_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    device = json.loads((run / "bench.json").read_text())
    device["machine"] = {**device["machine"], "label": "Raspberry Pi 4 (arm64)"}
    device["rows"] = [row for row in device["rows"] if row["artifact"] == "tflite-int8"]
    (tmp_path / "pi.json").write_text(json.dumps(device))
    build_report(run, merge=[tmp_path / "pi.json"])
    report = json.loads((run / "report.json").read_text())
    labels = {row["machine_label"] for row in report["bench"]}
    assert "Raspberry Pi 4 (arm64)" in labels and len(labels) == 2
    assert "| Raspberry Pi 4 (arm64) | tflite-int8 |" in (run / "report.md").read_text()


def test_a_merge_file_that_is_not_a_bench_is_refused(pipeline_run, tmp_path):
    _, out = pipeline_run
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(UsageError, match="is not a bench JSON"):
        build_report(out, merge=[tmp_path / "x.json"])


def test_a_folder_without_a_run_is_refused(tmp_path):
    with pytest.raises(UsageError, match="is not a run folder"):
        build_report(tmp_path / "missing")


def _run_folder(tmp_path, bundle, dataset, name):
    """A run folder of a bundle, its verify.json and a short bench.json (no training files)."""
    from edgeship.bench import bench_bundle
    from edgeship.parity import verify_bundle
    from edgeship.runtime.bench import bench_payload
    from edgeship.runtime.options import BenchOptions, ModelOptions

    run = tmp_path / name
    shutil.copytree(bundle, run / "bundle")
    report = verify_bundle(run / "bundle", dataset, max_images=300, model_path=_source(bundle), progress=lambda line: None)
    (run / "verify.json").write_text(json.dumps(report.to_dict()))
    rows = bench_bundle(ModelOptions(run / "bundle", threads=[1]), BenchOptions([1], 0.05), keras=False, progress=lambda line: None)
    (run / "bench.json").write_text(json.dumps(bench_payload(rows)))
    return run


def _source(bundle):
    from edgeship.manifest import load_manifest
    from edgeship.parity import source_model_path

    return source_model_path(bundle, load_manifest(bundle))


def test_the_rescue_is_drawn_as_accuracy_against_layers_in_float(outlier_fallback_bundle, sample_dataset, tmp_path):
    run = _run_folder(tmp_path, outlier_fallback_bundle.bundle, sample_dataset, "rescued")
    written = build_report(run)
    with Image.open(written["rescue_steps"]) as image:
        assert image.format == "PNG" and image.width >= 400
    markdown = (run / "report.md").read_text()
    assert "## int8 rescue" in markdown and "![accuracy vs layers kept in float](figures/rescue_steps.png)" in markdown
    steps = outlier_fallback_bundle.manifest.artifact("onnx-int8").details["rescue"]["steps"]
    last = steps[-1]
    assert f"| onnx-int8 | {last['step']} (kept) | no | {len(last['float_layers'])} | {last['accuracy']:.4f} |" in markdown
    assert "| onnx-int8 | plain | no | 0 |" in markdown


def test_flipped_pictures_are_drawn_as_a_grid(outlier_plain_bundle, sample_dataset, tmp_path):
    run = _run_folder(tmp_path, outlier_plain_bundle.bundle, sample_dataset, "plain")
    written = build_report(run)
    assert {"flipped_tflite-int8", "flipped_onnx-int8"} <= set(written)
    assert not any(name.startswith("flipped_tflite-fp32") for name in written)
    with Image.open(written["flipped_tflite-int8"]) as image:
        assert image.format == "PNG" and image.height >= 300
    markdown = (run / "report.md").read_text()
    assert "## Pictures labelled differently from Keras" in markdown
    assert "![tflite-int8 flipped pictures](figures/flipped_tflite_int8.png)" in markdown
