"""`edgeship export` through the real command line: the summary table, exit codes, one-line errors."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys

import pytest

from edgeship.cli import main
from edgeship.runtime.options import positive_number
from edgeship.errors import ExportError
from edgeship.export import FORMATS


def edgeship(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeship.cli", *arguments], capture_output=True, text=True, timeout=300)


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The summary table's rows by format: the cells after the format name."""
    rows = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells and cells[0] in FORMATS:
            rows[cells[0]] = cells[1:]
    return rows


def test_export_prints_the_summary_table_and_writes_the_bundle(mlp_run, tmp_path):
    out = tmp_path / "bundle"
    result = edgeship("export", str(mlp_run.model_path), "--formats", "tflite-fp32,tflite-int8,onnx", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "| artifact | status | bytes | accuracy | agreement | max abs Δp | export s |" in result.stdout
    rows = table_rows(result.stdout)
    assert list(rows) == ["tflite-fp32", "tflite-int8", "onnx"]
    assert all(cells[0] == "✅ pass" for cells in rows.values())
    manifest = json.loads((out / "manifest.json").read_text())
    assert rows["tflite-int8"][1] == f"{manifest['artifacts'][1]['bytes']:,}"
    assert float(rows["tflite-fp32"][2]) == pytest.approx(manifest["dataset"]["keras_accuracy"], abs=1e-4)
    assert rows["tflite-fp32"][3] == "100.00%"
    assert "calibrating tflite-int8 300/300" in result.stderr
    assert "Keras accuracy 0.9" in result.stdout


def test_unknown_format_is_one_line_listing_the_valid_ones(mlp_run, tmp_path):
    result = edgeship("export", str(mlp_run.model_path), "--formats", "tflite-fp32,coreml", "--out", str(tmp_path / "b"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "edgeship: error: unknown format 'coreml'; valid formats: "
        "tflite-fp32, tflite-fp16, tflite-dynamic, tflite-int8, tflite-int8-uint8io, tflite-int16x8, onnx, onnx-int8, "
        "onnx-ort, onnx-ort-int8, edgetpu"
    ]
    assert not (tmp_path / "b").exists()


def test_a_non_classifier_is_one_line_exit_2_and_no_bundle(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(4), keras.layers.Reshape((2, 2))])
    model.save(tmp_path / "model.keras")
    result = edgeship("export", str(tmp_path / "model.keras"), "--out", str(tmp_path / "b"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not a classifier: its output has shape (None, 2, 2)" in lines[0]
    assert not (tmp_path / "b").exists()


def test_a_text_file_is_one_line_exit_2_and_no_bundle(tmp_path):
    (tmp_path / "model.keras").write_text("hello")
    result = edgeship("export", str(tmp_path / "model.keras"), "--out", str(tmp_path / "b"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"edgeship: error: {tmp_path / 'model.keras'} is not a Keras model (a .keras file is a zip archive); "
        "give a .keras file saved with model.save()"
    ]
    assert not (tmp_path / "b").exists()


def test_a_failed_format_shows_in_the_table_and_exits_2(mlp_run, tmp_path, monkeypatch, capsys):
    def broken(model, path, options):
        raise ExportError("unsupported op FancyOp")

    monkeypatch.setitem(FORMATS, "onnx", dataclasses.replace(FORMATS["onnx"], exporter=broken))
    code = main(["export", str(mlp_run.model_path), "--formats", "onnx,tflite-fp32", "--out", str(tmp_path / "b")])
    captured = capsys.readouterr()
    assert code == 2
    rows = table_rows(captured.out)
    assert rows["onnx"][0] == "⚠️ error: ExportError: unsupported op FancyOp"
    assert rows["tflite-fp32"][0] == "✅ pass"
    assert captured.err.strip().splitlines()[-1] == (
        f"edgeship: error: 1 of 2 formats failed (onnx); the others are in {tmp_path / 'b'}"
    )
    assert (tmp_path / "b" / "model_fp32.tflite").is_file()


def test_input_scale_option_for_a_model_without_a_card(tmp_path, capsys):
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.save(tmp_path / "user.keras")
    code = main(["export", str(tmp_path / "user.keras"), "--formats", "tflite-fp32", "--input-scale", "1/2", "--labels", ",".join("abcdefghij")])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["input"]["scale"] == 0.5 and manifest["input"]["shape"] == [28, 28, 1]
    assert manifest["labels"] == list("abcdefghij")


def test_parse_scale_takes_numbers_and_fractions():
    assert positive_number("1/255") == pytest.approx(1 / 255)
    assert positive_number(" 0.5 ") == 0.5
    for bad in ("0", "-1", "abc", "1/0"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_number(bad)


def test_help_lists_every_registered_format(capsys):
    from edgeship.cli import main

    with pytest.raises(SystemExit):
        main(["export", "--help"])
    help_text = "".join(capsys.readouterr().out.split())
    assert ",".join(FORMATS) in help_text


def test_a_dataset_that_does_not_fit_the_model_is_one_line_exit_2(mlp_run, sample_dataset, tmp_path):
    import numpy as np

    np.savez(
        tmp_path / "small.npz",
        x_train=sample_dataset.x_train[:200, ::2, ::2], y_train=sample_dataset.y_train[:200],
        x_test=sample_dataset.x_test[:50, ::2, ::2], y_test=sample_dataset.y_test[:50],
    )
    result = edgeship("export", str(mlp_run.model_path), "--dataset", str(tmp_path / "small.npz"), "--out", str(tmp_path / "b"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "has images of shape (14, 14), but model.keras takes (28, 28)" in lines[0]
    assert not (tmp_path / "b").exists()
