"""Parity: a good bundle passes every gate; a broken int8 file is caught, named, and traced to its first divergent op."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgeship.errors import GateFailedError, UsageError
from edgeship.files import sha256_file
from edgeship.runtime.compare import compare, judge
from edgeship.parity import format_table, raise_if_failed, verify_bundle
from edgeship.runtime.gates import Gate, gate_for, parse_gate_overrides


@pytest.fixture(scope="module")
def good_report(mlp_bundle, sample_dataset):
    return verify_bundle(mlp_bundle.bundle, sample_dataset, progress=lambda line: None)


def test_every_exported_artifact_passes_its_gate(good_report):
    by_name = {row.artifact: row for row in good_report.rows}
    assert good_report.passed and good_report.images == 1000
    assert {"tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8", "onnx", "onnx-int8"} <= {
        name for name, row in by_name.items() if row.status == "pass"
    }
    for name in ("tflite-fp32", "onnx"):
        assert by_name[name].comparison.agreement >= 0.999
        assert by_name[name].comparison.max_abs_diff <= 1e-4
    int8 = by_name["tflite-int8"].comparison
    assert int8.agreement >= 0.99 and abs(int8.accuracy_delta_pp) <= 0.5
    assert np.array(int8.confusion_matrix).sum() == 1000
    assert by_name["edgetpu"].status == "skipped" and "edgetpu_compiler" in by_name["edgetpu"].reason
    table = format_table(good_report)
    assert "| tflite-int8 | int8 |" in table and "✅ pass" in table and "⏭️ skipped: " in table and "❌" not in table


def test_compare_counts_disagreements_and_class_losses():
    reference = np.eye(3, dtype=np.float32)[[0, 1, 2, 2]]
    candidate = np.eye(3, dtype=np.float32)[[0, 1, 1, 2]]
    labels = np.array([0, 1, 2, 2])
    result = compare(reference, candidate, labels, ["a", "b", "c"])
    assert result.agreement == 0.75 and result.accuracy == 0.75 and result.reference_accuracy == 1.0
    assert result.accuracy_delta_pp == -25.0 and result.max_abs_diff == 1.0
    assert result.worst_class == "c" and result.worst_class_delta_pp == -50.0
    assert judge(result, Gate(min_agreement=0.99, max_abs_diff=1e-4, max_accuracy_drop_pp=0.5)) == [
        "agreement 75.00% < 99.00%", "max |Δp| 1.00e+00 > 1e-04", "accuracy drop 25.00 pp > 0.5 pp",
    ]


def test_gate_overrides_parse_and_refuse_nonsense():
    gates = parse_gate_overrides(["int8:min_agreement=0.9", "fp32:max_abs_diff=1e-3"])
    assert gates["int8"].min_agreement == 0.9 and gates["fp32"].max_abs_diff == 1e-3
    assert gates["fp16"] == gate_for("fp16")
    with pytest.raises(UsageError, match="use PRECISION:KEY=VALUE"):
        parse_gate_overrides(["int4:min_agreement=1"])
    with pytest.raises(UsageError, match="is not a number"):
        parse_gate_overrides(["int8:min_agreement=high"])


@pytest.fixture(scope="module")
def blank_calibrated_bundle(tmp_path_factory, mlp_bundle, mlp_run):
    """The MLP bundle with its int8 file replaced by one calibrated on blank images (manifest updated to match)."""
    import keras

    from edgeship.export.base import ExportOptions
    from edgeship.export.tflite import export_tflite_int8
    from edgeship.manifest import load_manifest

    bundle = tmp_path_factory.mktemp("broken") / "bundle"
    shutil.copytree(mlp_bundle.bundle, bundle)
    manifest = load_manifest(bundle)
    options = ExportOptions(
        input_shape=(28, 28), input_spec=manifest.input, labels=manifest.labels, output_kind="probabilities",
        calibration_images=np.zeros((50, 28, 28), dtype=np.uint8),
    )
    int8_path = bundle / manifest.artifact("tflite-int8").file
    export_tflite_int8(keras.saving.load_model(mlp_run.model_path), int8_path, options)
    raw = json.loads((bundle / "manifest.json").read_text())
    from edgeship.runtime.backends import create_runner

    with create_runner(int8_path, "tflite") as runner:
        tensors = {"input": runner.input.to_dict(), "output": runner.output.to_dict()}
    for artifact in raw["artifacts"]:
        if artifact["name"] == "tflite-int8":
            artifact["sha256"], artifact["bytes"] = sha256_file(int8_path), int8_path.stat().st_size
            artifact.update(tensors)
    raw["source_model"]["file"] = str(mlp_run.model_path)
    (bundle / "manifest.json").write_text(json.dumps(raw))
    return bundle


def test_blank_calibration_fails_the_int8_gate_and_names_the_first_divergent_op(blank_calibrated_bundle, sample_dataset):
    report = verify_bundle(blank_calibrated_bundle, sample_dataset, max_images=300, progress=lambda line: None)
    row = next(row for row in report.rows if row.artifact == "tflite-int8")
    assert row.status == "fail" and not report.passed
    assert row.comparison.agreement < 0.9
    assert row.first_divergent_layer["rmse_over_scale"] > row.first_divergent_layer["bound"]
    assert all(r.status == "pass" for r in report.rows if r.artifact in ("tflite-fp32", "onnx"))
    with pytest.raises(GateFailedError, match=r"tflite-int8: agreement .*first divergent op: RESHAPE"):
        raise_if_failed(report)


def test_verify_command_exits_1_naming_the_failing_artifact(blank_calibrated_bundle, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "edgeship.cli", "verify", str(blank_calibrated_bundle), "--max-images", "200", "--json", str(tmp_path / "v.json")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1, result.stderr
    assert "parity gate failed for tflite-int8" in result.stderr.splitlines()[-1]
    assert "❌ fail" in result.stdout
    saved = json.loads((tmp_path / "v.json").read_text())
    assert {row["artifact"]: row["status"] for row in saved["rows"]}["tflite-int8"] == "fail"


def test_verify_command_passes_a_good_bundle(mlp_bundle):
    result = subprocess.run(
        [sys.executable, "-m", "edgeship.cli", "verify", str(mlp_bundle.bundle), "--max-images", "200"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    measured = [a for a in mlp_bundle.manifest.artifacts if a.status == "pass"]
    assert len(measured) >= 6 and result.stdout.count("✅ pass") == len(measured)


def test_a_dataset_of_another_image_size_is_refused(mlp_bundle):
    from edgeship.data import Dataset
    from edgeship.errors import DatasetError

    other = Dataset("big", np.zeros((4, 32, 32), np.uint8), np.zeros(4, np.int64), np.zeros((4, 32, 32), np.uint8), np.zeros(4, np.int64))
    with pytest.raises(DatasetError, match="has 32x32 images; this bundle's model takes 28x28"):
        verify_bundle(mlp_bundle.bundle, other, progress=lambda line: None)


def test_labels_beyond_the_models_classes_are_left_out(mlp_bundle, sample_dataset):
    from edgeship.data import Dataset

    x, y = sample_dataset.x_test[:200], sample_dataset.y_test[:200].copy()
    y[:50] = 12
    shifted = Dataset("shifted", sample_dataset.x_train[:10], sample_dataset.y_train[:10], x, y)
    report = verify_bundle(mlp_bundle.bundle, shifted, progress=lambda line: None)
    assert report.images == 150 and report.passed


@pytest.fixture(scope="module")
def outlier_report(outlier_plain_bundle, sample_dataset):
    return verify_bundle(outlier_plain_bundle.bundle, sample_dataset, max_images=300, progress=lambda line: None)


def test_a_collapsed_onnx_int8_file_is_traced_to_its_first_divergent_op(outlier_report):
    rows = {row.artifact: row for row in outlier_report.rows}
    onnx_layer, tflite_layer = rows["onnx-int8"].first_divergent_layer, rows["tflite-int8"].first_divergent_layer
    assert onnx_layer["op"] == "Gemm" and "dense_1_2" in onnx_layer["tensor"]
    assert onnx_layer["rmse_over_scale"] > onnx_layer["bound"]
    assert tflite_layer["op"] == "FULLY_CONNECTED" and "dense_1_2" in tflite_layer["tensor"]
    with pytest.raises(GateFailedError, match=r"onnx-int8: agreement .*first divergent op: Gemm 'mlp_1/dense_1_2/BiasAdd:0'"):
        raise_if_failed(outlier_report)


def test_verify_lists_the_pictures_each_artifact_flips(outlier_report, outlier_plain_bundle, sample_dataset):
    from edgeship.parity import source_model_path
    from edgeship.reference import KerasReference

    rows = {row.artifact: row for row in outlier_report.rows}
    int8 = rows["tflite-int8"]
    disagreements = round((1 - int8.comparison.agreement) * 300)
    assert int8.flipped_total == disagreements and len(int8.flipped) == 100
    manifest = outlier_plain_bundle.manifest
    model_path = source_model_path(outlier_plain_bundle.bundle, manifest)
    reference = KerasReference.load(model_path, manifest).predict_proba(sample_dataset.x_test[:300])
    for flip in int8.flipped:
        keras_top1 = int(reference[flip["index"]].argmax())
        assert flip["keras_label"] == str(keras_top1) and flip["artifact_label"] != flip["keras_label"]
        assert flip["keras_probability"] == pytest.approx(float(reference[flip["index"]].max()), abs=1e-4)
        assert 0 < flip["artifact_probability"] <= 1
    assert [flip["keras_probability"] for flip in int8.flipped] == sorted((f["keras_probability"] for f in int8.flipped), reverse=True)
    assert rows["tflite-fp32"].flipped == [] and rows["tflite-fp32"].flipped_total == 0
    saved = outlier_report.to_dict()
    assert saved["rows"][1]["flipped"][0].keys() == {"index", "keras_label", "keras_probability", "artifact_label", "artifact_probability"}


def test_flipped_indices_point_into_the_full_test_split_when_classes_are_left_out(mlp_bundle, sample_dataset):
    from edgeship.data import Dataset
    from edgeship.parity import flipped_pictures

    reference = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    candidate = np.eye(3, dtype=np.float32)[[0, 2, 2, 1]] * 0.9 + 0.1 / 3
    pictures, total = flipped_pictures(reference, candidate, np.array([4, 7, 9, 12]), ["a", "b", "c"])
    assert total == 2 and [p["index"] for p in pictures] == [7, 12]
    assert pictures[0] == {"index": 7, "keras_label": "b", "keras_probability": 1.0, "artifact_label": "c",
                           "artifact_probability": pytest.approx(0.9333, abs=1e-4)}
    x, y = sample_dataset.x_test[:200], sample_dataset.y_test[:200].copy()
    y[:50] = 12
    shifted = Dataset("shifted", sample_dataset.x_train[:10], sample_dataset.y_train[:10], x, y)
    report = verify_bundle(mlp_bundle.bundle, shifted, progress=lambda line: None)
    kept = set(range(50, 200))
    for row in report.rows:
        assert {flip["index"] for flip in row.flipped} <= kept
