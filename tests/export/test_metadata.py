"""Labels and preprocessing inside the model files: written at export, read back by the runtime, checked against the manifest."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgeship.errors import BundleError, ModelError
from edgeship.manifest import load_manifest
from edgeship.runtime import Classifier
from edgeship.runtime.metadata import MetadataError, read_tflite, tflite_metadata_buffer


def test_every_tflite_file_carries_metadata_the_official_bindings_read_as_ours_do(bundle_path):
    from mediapipe.tasks.metadata import metadata_schema_py_generated as metadata_fb

    manifest = load_manifest(bundle_path)
    tflite = [a for a in manifest.artifacts if a.has_file and a.format == "tflite"]
    assert {a.name for a in tflite} >= {"tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8", "tflite-int8-uint8io"}
    for artifact in tflite:
        path = bundle_path / artifact.file
        ours = read_tflite(path)
        assert ours.labels == manifest.labels and ours.color == "GRAYSCALE" and ours.size == (28, 28)
        assert ours.mean == [0.0] and ours.std == [pytest.approx(255.0)]
        assert ours.output_kind == "probabilities" and ours.details["min_parser_version"] == "1.5.0"
        official = metadata_fb.ModelMetadataT.InitFromObj(
            metadata_fb.ModelMetadata.GetRootAsModelMetadata(tflite_metadata_buffer(path.read_bytes()), 0)
        )
        image = official.subgraphMetadata[0].inputTensorMetadata[0]
        normalization = image.processUnits[0].options
        assert list(normalization.mean) == ours.mean and list(normalization.std) == ours.std
        assert image.content.contentProperties.colorSpace == metadata_fb.ColorSpaceType.GRAYSCALE
        labels_file = official.subgraphMetadata[0].outputTensorMetadata[0].associatedFiles[0]
        assert labels_file.name.decode() == "labels.txt" and labels_file.type == metadata_fb.AssociatedFileType.TENSOR_AXIS_LABELS
        assert official.name.decode() == ours.name and official.version.decode() == ours.version
        assert ours.version == "sha256:" + manifest.source_model["sha256"][:16]
        recorded = artifact.details["metadata"]
        assert recorded["associated_files"] == ["labels.txt"] and 0 < recorded["bytes_added"] < 4096


def test_bare_files_copied_alone_predict_with_their_own_labels_and_scaling(bundle_path, test_images, tmp_path):
    manifest = load_manifest(bundle_path)
    images = test_images[:200]
    for name in ("tflite-int8", "tflite-fp32", "onnx", "onnx-int8", "onnx-ort", "onnx-ort-int8"):
        artifact = manifest.artifact(name)
        alone = tmp_path / name / artifact.file
        alone.parent.mkdir()
        shutil.copy(bundle_path / artifact.file, alone)
        with Classifier.load(alone) as bare, Classifier.load(bundle_path, artifact=name) as bundled:
            assert bare.labels == manifest.labels
            np.testing.assert_allclose(bare.predict_proba(images), bundled.predict_proba(images), atol=1e-6)


def test_cli_predicts_a_bare_file_with_no_options(bundle_path, test_images, tmp_path):
    alone = tmp_path / "model_int8.tflite"
    shutil.copy(bundle_path / "model_int8.tflite", alone)
    np.save(tmp_path / "digits.npy", test_images[:5])
    done = subprocess.run([sys.executable, "-m", "edgeship.runtime", "predict", str(alone), str(tmp_path / "digits.npy"), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    predictions = json.loads(done.stdout)["predictions"]
    with Classifier.load(bundle_path, artifact="tflite-int8") as bundled:
        assert [p["label"] for p in predictions] == [bundled.labels[i] for i in bundled.predict(test_images[:5])]
    assert done.stderr.strip() == ""


def test_options_given_win_with_a_warning_when_they_disagree(bundle_path, test_images, caplog):
    path = bundle_path / "model_fp32.tflite"
    with caplog.at_level(logging.WARNING):
        with Classifier.load(path, scale=1 / 255) as same:
            assert same.input_spec.scale == pytest.approx(1 / 255)
    assert caplog.records == []
    with caplog.at_level(logging.WARNING):
        with Classifier.load(path, scale=1 / 127.5, mean=1.0) as other:
            assert other.input_spec.scale == pytest.approx(1 / 127.5) and other.input_spec.mean == 1.0
            assert other.labels == load_manifest(bundle_path).labels
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "differs from model_fp32.tflite's TFLite Metadata" in warnings[0] and "using the options given" in warnings[0]


def _damage_metadata(path):
    """Overwrite the metadata buffer's file identifier (M001) in place: the model itself stays intact."""
    data = bytearray(path.read_bytes())
    metadata = tflite_metadata_buffer(bytes(data))
    start = bytes(data).index(metadata)
    data[start + 4 : start + 8] = b"XXXX"
    path.write_bytes(bytes(data))


def test_damaged_metadata_is_refused_unless_the_preprocessing_is_given(bundle_path, test_images, tmp_path, caplog):
    """The decision: a bare file whose metadata is damaged is refused, since its labels and scaling cannot be trusted;
    given --scale/--mean/--std, it runs with the metadata ignored and one warning."""
    damaged = tmp_path / "model_fp32.tflite"
    shutil.copy(bundle_path / "model_fp32.tflite", damaged)
    _damage_metadata(damaged)
    with pytest.raises(MetadataError, match="TFLite Metadata is damaged .*no M001 identifier.*give its preprocessing yourself"):
        Classifier.load(damaged)
    with caplog.at_level(logging.WARNING):
        with Classifier.load(damaged, scale=1 / 255) as classifier:
            assert classifier.labels == [str(i) for i in range(10)]
            assert classifier.predict(test_images[:3]).shape == (3,)
    assert len(caplog.records) == 1 and "ignoring the file's metadata" in caplog.records[0].getMessage()
    done = subprocess.run([sys.executable, "-m", "edgeship.runtime", "predict", str(damaged), str(tmp_path / "none.npy")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "damaged" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert issubclass(MetadataError, ModelError)


def test_a_cut_labels_file_is_damage_too(bundle_path, tmp_path):
    cut = tmp_path / "model_int8.tflite"
    data = (bundle_path / "model_int8.tflite").read_bytes()
    cut.write_bytes(data[: len(tflite_metadata_buffer(data)) and data.rindex(b"PK\x03\x04")])
    with pytest.raises(MetadataError, match="labels file 'labels.txt', which is not packed in the file"):
        Classifier.load(cut)


def test_metadata_that_disagrees_with_the_manifest_is_a_bundle_error(bundle_copy, tmp_path):
    from edgeship.export.metadata import add_tflite_metadata
    from edgeship.files import sha256_file

    manifest = load_manifest(bundle_copy)
    artifact = manifest.artifact("tflite-fp32")
    path = bundle_copy / artifact.file
    add_tflite_metadata(path, "other", "1", [f"class {i}" for i in range(10)], manifest.input, manifest.output_kind)
    raw = json.loads((bundle_copy / "manifest.json").read_text())
    for entry in raw["artifacts"]:
        if entry["name"] == "tflite-fp32":
            entry["sha256"], entry["bytes"] = sha256_file(path), path.stat().st_size
    (bundle_copy / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="model_fp32.tflite's TFLite Metadata disagrees with manifest.json: labels"):
        Classifier.load(bundle_copy, artifact="tflite-fp32")


def test_onnx_and_ort_carry_labels_preprocessing_and_a_description(bundle_path):
    import onnxruntime as ort

    for name in ("model.onnx", "model.ort", "model_int8.ort"):
        meta = ort.InferenceSession(str(bundle_path / name)).get_modelmeta()
        props = meta.custom_metadata_map
        assert json.loads(props["labels"]) == load_manifest(bundle_path).labels
        assert json.loads(props["preprocessing"])["normalization_in_pixels"]["std"] == [pytest.approx(255.0)]
        assert "image classifier of 10 classes" in meta.description
