"""export_bundle: the manifest round-trips, failures stay per format, bundles are replaced whole, bad input is refused."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile

import numpy as np
import pytest

from edgeship.data import Dataset
from edgeship.errors import DatasetError, ExportError, ModelError, OutputError, UsageError
from edgeship.export import FORMATS, export_bundle, parse_formats
from edgeship.export import bundle as bundle_module
from edgeship.export import tflite as tflite_module
from edgeship.files import sha256_file
from edgeship.manifest import MANIFEST_NAME, load_manifest, resolve_in_bundle
from edgeship.modelcard import read_card


def staging_leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_manifest_round_trips_and_hashes_match(mlp_bundle, mlp_run):
    loaded = load_manifest(mlp_bundle.bundle)
    assert loaded.to_dict() == mlp_bundle.manifest.to_dict()
    assert json.loads((mlp_bundle.bundle / MANIFEST_NAME).read_text())["schema"] == "edgeship.bundle/2"
    ok = [a for a in loaded.artifacts if a.has_file]
    assert {a.name for a in ok} >= {"tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8", "onnx", "onnx-int8"}
    for artifact in ok:
        path = resolve_in_bundle(mlp_bundle.bundle, artifact.file)
        assert sha256_file(path) == artifact.sha256
        assert path.stat().st_size == artifact.bytes
        assert artifact.export_seconds > 0 and artifact.parity["images"] == 1000
    assert sha256_file(mlp_bundle.bundle / loaded.golden["file"]) == loaded.golden["sha256"]
    sidecars = [a.details["required_operators"] for a in ok if "required_operators" in a.details]
    assert {sidecar["file"] for sidecar in sidecars} == {"model.required_operators.config", "model_int8.required_operators.config"}
    for sidecar in sidecars:
        assert sha256_file(mlp_bundle.bundle / sidecar["file"]) == sidecar["sha256"]
    listed = {a.file for a in ok} | {loaded.golden["file"], MANIFEST_NAME} | {sidecar["file"] for sidecar in sidecars}
    assert {p.name for p in mlp_bundle.bundle.iterdir()} == listed
    assert staging_leftovers(mlp_bundle.bundle.parent) == []


def test_manifest_records_source_input_labels_dataset_and_tools(mlp_bundle, mlp_run):
    manifest = mlp_bundle.manifest
    card = read_card(mlp_run.model_path)
    assert manifest.labels == card.labels == [str(d) for d in range(10)]
    assert manifest.input.shape == [28, 28] and manifest.input.value_range == [0.0, 255.0]
    assert manifest.input.scale == pytest.approx(1 / 255) and manifest.input.value_range == [0.0, 255.0]
    assert manifest.output_kind == "probabilities"
    source = (mlp_bundle.bundle / manifest.source_model["file"]).resolve()
    assert source == mlp_run.model_path.resolve()
    assert not manifest.source_model["file"].startswith("/")
    assert manifest.source_model["sha256"] == sha256_file(mlp_run.model_path)
    assert manifest.dataset["name"] == "mnist-sample" and manifest.dataset["test_images"] == 1000
    assert manifest.dataset["calibration"] == {"dataset": "mnist-sample", "split": "train", "images": 300, "seed": 0}
    assert 0.85 < manifest.dataset["keras_accuracy"] < 1.0
    assert set(manifest.tools) >= {"tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "edgeship"}


def test_golden_holds_raw_images_keras_probabilities_and_labels(mlp_bundle, sample_dataset):
    with np.load(mlp_bundle.bundle / "golden.npz") as golden:
        images, probabilities, labels = golden["images"], golden["probabilities"], golden["labels"]
    assert images.shape == (100, 28, 28) and images.dtype == np.uint8
    assert probabilities.shape == (100, 10) and probabilities.dtype == np.float32
    np.testing.assert_array_equal(images, sample_dataset.x_test[:100])
    np.testing.assert_array_equal(labels, sample_dataset.y_test[:100])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert mlp_bundle.manifest.golden["count"] == 100


def test_summary_rows_follow_the_manifest(mlp_bundle):
    rows = {row.artifact: row for row in mlp_bundle.rows}
    assert list(rows) == list(FORMATS)
    for artifact in mlp_bundle.manifest.artifacts:
        row = rows[artifact.name]
        assert row.status == artifact.status and row.bytes == artifact.bytes
        if artifact.parity:
            assert (row.accuracy, row.agreement, row.max_abs_diff) == (
                artifact.parity["accuracy"], artifact.parity["agreement"], artifact.parity["max_abs_diff"]
            )


def test_user_cnn_with_channel_input_is_recorded_as_such(cnn_bundle):
    manifest = cnn_bundle.manifest
    assert manifest.input.shape == [28, 28, 1]
    assert manifest.input.scale == pytest.approx(1 / 255)
    assert manifest.source_model["card"] is None
    assert manifest.artifact("tflite-int8").input.shape == [-1, 28, 28, 1]


def test_one_failing_format_is_recorded_and_the_others_export(mlp_run, sample_dataset, tmp_path, monkeypatch):
    def broken(model, path, options):
        raise ExportError("the converter does not support op FancyOp")

    monkeypatch.setitem(FORMATS, "onnx", dataclasses.replace(FORMATS["onnx"], exporter=broken))
    result = export_bundle(mlp_run.model_path, tmp_path / "bundle", formats="tflite-fp32,onnx,tflite-int8", dataset=sample_dataset)
    statuses = {row.artifact: row.status for row in result.rows}
    assert statuses == {"tflite-fp32": "pass", "onnx": "error", "tflite-int8": "pass"}
    failed = load_manifest(result.bundle).artifact("onnx")
    assert failed.status == "error" and failed.file is None
    assert failed.reason == "ExportError: the converter does not support op FancyOp"
    assert [row.artifact for row in result.failed] == ["onnx"]
    assert not (result.bundle / "model.onnx").exists()


def test_interrupted_export_keeps_the_previous_bundle(mlp_run, sample_dataset, tmp_path, monkeypatch):
    out = tmp_path / "bundle"
    export_bundle(mlp_run.model_path, out, formats="tflite-fp32", dataset=sample_dataset)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupted_write(path, data):
        path.write_bytes(data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(tflite_module, "atomic_write_bytes", interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        export_bundle(mlp_run.model_path, out, formats="tflite-dynamic,tflite-fp32", dataset=sample_dataset)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert staging_leftovers(tmp_path) == []

    with pytest.raises(KeyboardInterrupt):
        export_bundle(mlp_run.model_path, tmp_path / "fresh", formats="tflite-fp32", dataset=sample_dataset)
    assert not (tmp_path / "fresh").exists()
    assert staging_leftovers(tmp_path) == []


def test_a_failure_while_writing_the_manifest_keeps_the_previous_bundle(mlp_run, sample_dataset, tmp_path, monkeypatch):
    out = tmp_path / "bundle"
    export_bundle(mlp_run.model_path, out, formats="tflite-fp32", dataset=sample_dataset)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def failing_write(path, payload):
        path.write_text("{")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bundle_module, "atomic_write_json", failing_write)
    with pytest.raises(OutputError, match="no space left on the device"):
        export_bundle(mlp_run.model_path, out, formats="onnx", dataset=sample_dataset)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert staging_leftovers(tmp_path) == []


def test_re_export_replaces_the_bundle_as_a_whole(mlp_run, sample_dataset, tmp_path):
    out = tmp_path / "bundle"
    export_bundle(mlp_run.model_path, out, formats="tflite-fp32,onnx", dataset=sample_dataset)
    export_bundle(mlp_run.model_path, out, formats="tflite-int8", dataset=sample_dataset)
    assert sorted(p.name for p in out.iterdir()) == ["golden.npz", "manifest.json", "model_int8.tflite"]
    assert [a.name for a in load_manifest(out).artifacts] == ["tflite-int8"]


def test_rescaling_model_takes_raw_pixels_and_its_logits_are_compared_as_probabilities(rescaling_model_path, sample_dataset, tmp_path):
    result = export_bundle(rescaling_model_path, tmp_path / "bundle", formats="tflite-fp32,tflite-int8,onnx", dataset=sample_dataset)
    manifest = result.manifest
    assert manifest.input.scale == 1.0 and manifest.input.shape == [28, 28]
    assert manifest.output_kind == "logits"
    for name in ("tflite-fp32", "onnx"):
        assert manifest.artifact(name).parity["agreement"] >= 0.999
        assert manifest.artifact(name).parity["max_abs_diff"] <= 1e-4
    int8 = manifest.artifact("tflite-int8")
    assert int8.input.quantization.scale == pytest.approx(1.0) and int8.input.quantization.zero_point == -128
    assert int8.parity["agreement"] >= 0.98
    with np.load(result.bundle / "golden.npz") as golden:
        np.testing.assert_allclose(golden["probabilities"].sum(axis=1), 1.0, atol=1e-5)


def test_five_class_model_uses_only_its_classes(five_class_model_path, sample_dataset, tmp_path):
    result = export_bundle(five_class_model_path, tmp_path / "bundle", formats="tflite-fp32,tflite-int8", dataset=sample_dataset)
    manifest = result.manifest
    assert manifest.labels == ["0", "1", "2", "3", "4"]
    assert manifest.input.shape == [28, 28, 1]
    kept = int((sample_dataset.y_test < 5).sum())
    assert manifest.dataset["test_images"] == kept == manifest.artifact("tflite-fp32").parity["images"]
    assert "labels 0..4" in manifest.dataset["classes_used"]
    assert manifest.dataset["keras_accuracy"] > 0.8
    assert manifest.artifact("tflite-int8").parity["agreement"] >= 0.98


def test_labels_option_names_the_classes(user_cnn_path, sample_dataset, tmp_path):
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    result = export_bundle(user_cnn_path, tmp_path / "bundle", formats="tflite-fp32", dataset=sample_dataset, labels=names)
    assert result.manifest.labels == names
    with pytest.raises(ModelError, match="names 3 classes but the model outputs 10"):
        export_bundle(user_cnn_path, tmp_path / "other", formats="tflite-fp32", dataset=sample_dataset, labels=["a", "b", "c"])
    assert not (tmp_path / "other").exists()


def test_non_classifier_is_refused_without_a_bundle(non_classifier_path, sample_dataset, tmp_path):
    with pytest.raises(ModelError, match=r"is not a classifier: its output has shape \(None, 28, 28\)"):
        export_bundle(non_classifier_path, tmp_path / "bundle", dataset=sample_dataset)
    assert list(tmp_path.iterdir()) == []


def zip_with(member: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(member, "{}")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a zip at all", r"is not a Keras model \(a .keras file is a zip archive\)"),
        (b"PK\x03\x04truncated", r"is not a Keras model \(a .keras file is a zip archive\)"),
        (zip_with("notes.json"), "is not a loadable Keras model"),
    ],
)
def test_a_file_that_is_not_a_keras_model_is_refused(content, message, sample_dataset, tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        export_bundle(path, tmp_path / "bundle", dataset=sample_dataset)
    assert not (tmp_path / "bundle").exists()


def test_a_missing_model_file_is_refused(sample_dataset, tmp_path):
    with pytest.raises(ModelError, match="not found"):
        export_bundle(tmp_path / "nope.keras", tmp_path / "bundle", dataset=sample_dataset)


def test_images_that_do_not_fit_the_model_input_are_refused(mlp_run, sample_dataset, tmp_path):
    small = Dataset(
        name="mnist-14",
        x_train=sample_dataset.x_train[:, ::2, ::2],
        y_train=sample_dataset.y_train,
        x_test=sample_dataset.x_test[:, ::2, ::2],
        y_test=sample_dataset.y_test,
    )
    with pytest.raises(DatasetError, match=r"dataset mnist-14 has images of shape \(14, 14\), but model.keras takes \(28, 28\)"):
        export_bundle(mlp_run.model_path, tmp_path / "bundle", dataset=small)
    assert not (tmp_path / "bundle").exists()


def test_safe_mode_refuses_a_lambda_layer(sample_dataset, tmp_path):
    import keras

    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Lambda(lambda x: x * 2.0), keras.layers.Dense(10)])
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(ModelError, match="pass --no-safe-mode"):
        export_bundle(path, tmp_path / "bundle", dataset=sample_dataset)


def test_input_scale_that_contradicts_the_card_is_refused(mlp_run, sample_dataset, tmp_path):
    with pytest.raises(UsageError, match="contradicts the scale 0.00392157 recorded in model.edgeship.json"):
        export_bundle(mlp_run.model_path, tmp_path / "bundle", dataset=sample_dataset, input_scale=1.0)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"calibration_images": 0}, "--calibration-images must be at least 1"),
        ({"calibration_images": 4001}, "more than the 4000 training images of mnist-sample"),
        ({"opset": 12}, "--opset 12 is not supported; choose 13..18"),
        ({"int8_io": "uint16"}, "--int8-io must be one of uint8, int8"),
        ({"input_scale": -1.0}, "--input-scale must be a positive number"),
        ({"formats": "tflite-fp32,tflite-int4"}, "unknown format 'tflite-int4'; valid formats: tflite-fp32, tflite-fp16"),
    ],
)
def test_bad_options_are_refused_without_a_bundle(options, message, user_cnn_path, sample_dataset, tmp_path):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        export_bundle(user_cnn_path, tmp_path / "bundle", dataset=sample_dataset, **options)
    assert not (tmp_path / "bundle").exists()


def test_a_folder_that_is_not_a_bundle_is_not_replaced(mlp_run, sample_dataset, tmp_path):
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    with pytest.raises(OutputError, match="is not an edgeship bundle"):
        export_bundle(mlp_run.model_path, tmp_path, formats="tflite-fp32", dataset=sample_dataset)
    assert keep.read_text() == "mine"


def test_parse_formats():
    assert parse_formats(None) == list(FORMATS)
    assert parse_formats(" onnx, tflite-int8 ,onnx") == ["onnx", "tflite-int8"]
    assert parse_formats(["edgetpu"]) == ["edgetpu"]
    with pytest.raises(UsageError, match="no format given"):
        parse_formats(" , ")
