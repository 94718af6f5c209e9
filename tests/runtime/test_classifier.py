"""Classifier: every artifact through the runtime equals the bare interpreter; input forms; every refusal; threads."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from edgeship.errors import BackendUnavailableError, BundleError, InputError, IntegrityError, ModelError, UsageError
from edgeship.manifest import load_manifest
from edgeship.runtime import Classifier
from edgeship.runtime.postprocess import softmax
from edgeship.runtime.preprocess import flip_top_bit, input_converters

ARTIFACTS = ("tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8", "onnx", "onnx-int8")


def bare_outputs(path: Path, images: np.ndarray, scale: float) -> np.ndarray:
    """The bare interpreter on model-ready input, dequantized: the reference the runtime must equal."""
    if path.suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: (images * np.float32(scale)).astype(np.float32)})[0]
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    details, output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(details["index"], [len(images), 28, 28])
    interpreter.allocate_tensors()
    values = images.astype(np.float64) * scale
    if details["dtype"] != np.float32:
        step, zero_point = details["quantization"]
        values = np.clip(np.rint(values / step) + zero_point, np.iinfo(details["dtype"]).min, np.iinfo(details["dtype"]).max)
    interpreter.set_tensor(details["index"], values.astype(details["dtype"]))
    interpreter.invoke()
    raw = interpreter.get_tensor(output["index"])
    if output["dtype"] != np.float32:
        step, zero_point = output["quantization"]
        return (raw.astype(np.float32) - zero_point) * np.float32(step)
    return raw


@pytest.mark.parametrize("name", ARTIFACTS)
def test_every_artifact_equals_the_bare_interpreter(bundle_path, test_images, name):
    manifest = load_manifest(bundle_path)
    artifact = manifest.artifact(name)
    if not artifact.has_file:
        pytest.skip(f"{name} not exported here: {artifact.reason}")
    expected = bare_outputs(bundle_path / artifact.file, test_images, manifest.input.scale)
    with Classifier.load(bundle_path, artifact=name) as classifier:
        probabilities = classifier.predict_proba(test_images)
        labels = classifier.predict(test_images)
        single = classifier.predict_proba(test_images[7])
    assert probabilities.dtype == np.float32 and probabilities.shape == (1000, 10)
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-6)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, expected.argmax(axis=1))
    np.testing.assert_allclose(single[0], expected[7], atol=1e-6)


def test_default_artifact_is_int8_tflite_and_backend_choice_narrows_it(bundle_path, test_images, sample_dataset):
    with Classifier.load(bundle_path) as classifier:
        assert classifier.artifact.name == "tflite-int8"
        assert classifier.info()["backend"] == "litert"
        accuracy = (classifier.predict(test_images) == sample_dataset.y_test).mean()
    assert accuracy > 0.85
    with Classifier.load(bundle_path, backend="onnxruntime") as classifier:
        assert classifier.artifact.name == "onnx"


@pytest.mark.parametrize("name", ["tflite-fp32", "tflite-int8", "onnx"])
def test_image_forms_agree(bundle_path, test_images, name):
    batch = test_images[:6]
    with Classifier.load(bundle_path, artifact=name) as classifier:
        expected = classifier.predict_proba(batch)
        for form in (batch[:, :, :, None], batch[:, None], batch.astype(np.float32), batch.astype(np.float64),
                     batch.astype(np.int64), batch.tolist(), np.asfortranarray(batch)):
            np.testing.assert_allclose(classifier.predict_proba(form), expected, atol=1e-6)
        assert classifier.predict(batch[0]).shape == (1,)
        assert classifier.predict(batch[0, :, :, None]).tolist() == [expected[0].argmax()]


def test_top_k_labels_and_spec(bundle_path, test_images):
    with Classifier.load(bundle_path, artifact="onnx") as classifier:
        ranked = classifier.top_k(test_images[:2], k=3)
        probabilities = classifier.predict_proba(test_images[:2])
        assert classifier.labels == [str(i) for i in range(10)]
        assert classifier.input_spec.shape == [28, 28]
        with pytest.raises(UsageError, match="k must be between 1 and 10"):
            classifier.top_k(test_images[:1], k=11)
    assert [len(r) for r in ranked] == [3, 3]
    assert ranked[0][0].index == probabilities[0].argmax()
    assert ranked[0][0].probability >= ranked[0][1].probability >= ranked[0][2].probability
    assert ranked[1][0].label == str(probabilities[1].argmax())


def test_uint8_batches_skip_conversion_where_the_quantization_is_x_over_255(bundle_path, mlp_run, sample_dataset, tmp_path):
    from edgeship.export import export_bundle

    uint8_bundle = export_bundle(mlp_run.model_path, tmp_path / "uint8", formats=["tflite-int8"], dataset=sample_dataset,
                                 int8_io="uint8", say=lambda line: None).bundle
    with Classifier.load(uint8_bundle, artifact="tflite-int8") as uint8_model, \
            Classifier.load(bundle_path, artifact="tflite-int8") as int8_model, \
            Classifier.load(bundle_path, artifact="tflite-fp32") as float_model:
        assert input_converters(uint8_model.input_spec, uint8_model.runner.input, uint8_model.runner.path)[0] is None
        assert input_converters(int8_model.input_spec, int8_model.runner.input, int8_model.runner.path)[0] is flip_top_bit
        assert input_converters(float_model.input_spec, float_model.runner.input, float_model.runner.path)[0] is not None


def test_int8_input_model_gets_raw_pixels_with_the_top_bit_flipped(foreign_models, test_images):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(foreign_models["int8_io"]))
    details, output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert details["dtype"] == np.int8 and details["quantization"][1] == -128
    interpreter.resize_tensor_input(details["index"], [100, 28, 28])
    interpreter.allocate_tensors()
    interpreter.set_tensor(details["index"], (test_images[:100].astype(np.int16) - 128).astype(np.int8))
    interpreter.invoke()
    expected = interpreter.get_tensor(output["index"])
    with Classifier.load(foreign_models["int8_io"]) as classifier:
        np.testing.assert_array_equal(classifier.predict(test_images[:100]), expected.argmax(axis=1))
        step, zero_point = output["quantization"]
        np.testing.assert_allclose(classifier.predict_proba(test_images[:100]), (expected.astype(np.float32) - zero_point) * step)
        np.testing.assert_array_equal(classifier.predict(test_images[:100].astype(np.float32)), expected.argmax(axis=1))


def test_bare_nchw_logits_model_runs_with_options(foreign_models, sample_dataset):
    images = sample_dataset.x_train[:200]
    reference = softmax(foreign_models["nchw_reference_logits"])
    with Classifier.load(foreign_models["nchw_logits"], logits=True, scale=1 / 255) as classifier:
        assert classifier.input_spec.layout == "NCHW"
        assert classifier.labels == [str(i) for i in range(10)]
        probabilities = classifier.predict_proba(images)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(probabilities, reference, atol=1e-5)
        np.testing.assert_array_equal(classifier.predict(images[:, None]), reference.argmax(axis=1))
    with Classifier.load(foreign_models["nchw_logits"], scale=1 / 255, mean=0.5, std=0.5) as classifier:
        assert classifier.input_spec.mean == 0.5


def test_fixed_batch_model_runs_any_batch_in_chunks(foreign_models, test_images):
    with Classifier.load(foreign_models["fixed_batch"]) as classifier:
        assert classifier.runner.input.fixed_batch == 1
        batch = classifier.predict_proba(test_images[:5])
        one_by_one = np.concatenate([classifier.predict_proba(image) for image in test_images[:5]])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-6)


@pytest.mark.parametrize("name", ["tflite-int8", "tflite-fp32", "onnx"])
def test_one_classifier_shared_by_eight_threads(bundle_path, test_images, name):
    with Classifier.load(bundle_path, artifact=name) as classifier:
        expected = classifier.predict_proba(test_images)
        failures: list[str] = []

        def work(worker: int) -> None:
            for round_number in range(30):
                start = (worker * 37 + round_number * 11) % 900
                size = 1 + (worker + round_number) % 50
                got = classifier.predict_proba(test_images[start : start + size])
                if not np.allclose(got, expected[start : start + size], atol=1e-6):
                    failures.append(f"worker {worker} round {round_number}")

        threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


def test_already_scaled_floats_are_flagged(bundle_path, test_images, caplog):
    with Classifier.load(bundle_path, artifact="onnx") as classifier, caplog.at_level(logging.WARNING):
        classifier.predict(test_images[:2] / 255.0)
    assert "already divided by 255" in caplog.text


# Refusals: every path names the problem and the fix.


def test_missing_and_unknown_paths(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        Classifier.load(tmp_path / "absent.tflite")
    with pytest.raises(ModelError, match="not found"):
        Classifier.load(tmp_path / "absent")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelError, match="neither a bundle folder nor"):
        Classifier.load(tmp_path / "notes.txt")
    with pytest.raises(BundleError, match="no manifest.json"):
        Classifier.load(tmp_path)


@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
def test_not_a_model_and_truncated_model(bundle_path, tmp_path, suffix):
    garbage = tmp_path / f"garbage{suffix}"
    garbage.write_bytes(b"this is not a model at all" * 40)
    with pytest.raises(ModelError, match="is not a valid"):
        Classifier.load(garbage)
    source = bundle_path / ("model_fp32.tflite" if suffix == ".tflite" else "model.onnx")
    truncated = tmp_path / f"truncated{suffix}"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(ModelError, match="is not a valid"):
        Classifier.load(truncated)


def test_tampered_file_fails_the_sha256_check_unless_told(bundle_copy, test_images):
    path = bundle_copy / "model_int8.tflite"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="does not match its manifest.*--no-verify"):
        Classifier.load(bundle_copy, artifact="tflite-int8")
    with Classifier.load(bundle_copy, artifact="tflite-int8", verify=False) as classifier:
        assert classifier.predict(test_images[:3]).shape == (3,)


def _edit_manifest(bundle: Path, edit) -> None:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def test_manifest_missing_a_field(bundle_copy):
    _edit_manifest(bundle_copy, lambda m: m["artifacts"][0].pop("sha256"))
    with pytest.raises(BundleError, match=r"missing the field artifacts\[0\].sha256"):
        Classifier.load(bundle_copy)


def test_path_escapes_are_refused(bundle_copy, tmp_path):
    _edit_manifest(bundle_copy, lambda m: m["artifacts"][0].update(file="../outside.tflite"))
    with pytest.raises(BundleError, match="points outside the bundle"):
        Classifier.load(bundle_copy, artifact="tflite-fp32")
    outside = tmp_path / "outside.tflite"
    outside.write_bytes((bundle_copy / "model_fp32.tflite").read_bytes())
    _edit_manifest(bundle_copy, lambda m: m["artifacts"][0].update(file="link.tflite"))
    os.symlink(outside, bundle_copy / "link.tflite")
    with pytest.raises(BundleError, match="outside the bundle"):
        Classifier.load(bundle_copy, artifact="tflite-fp32")


def test_missing_artifact_file_and_unknown_artifact(bundle_copy):
    (bundle_copy / "model.onnx").unlink()
    with pytest.raises(ModelError, match="missing from the bundle"):
        Classifier.load(bundle_copy, artifact="onnx")
    with pytest.raises(BundleError, match="no artifact 'tflite-int4'.*tflite-fp32"):
        Classifier.load(bundle_copy, artifact="tflite-int4")


def test_option_refusals(bundle_path):
    with pytest.raises(UsageError, match="scale apply to a bare"):
        Classifier.load(bundle_path, scale=1 / 255)
    with pytest.raises(UsageError, match="unknown backend 'tensorrt'"):
        Classifier.load(bundle_path, backend="tensorrt")
    with pytest.raises(UsageError, match="cannot run tflite-fp32"):
        Classifier.load(bundle_path, artifact="tflite-fp32", backend="onnxruntime")
    with pytest.raises(UsageError, match="unknown delegate 'tpu'.*xnnpack"):
        Classifier.load(bundle_path, artifact="tflite-fp32", delegate="tpu")
    with pytest.raises(UsageError, match="delegates apply to the litert backend"):
        Classifier.load(bundle_path, artifact="onnx", delegate="xnnpack")
    with pytest.raises(UsageError, match="execution providers apply to the onnxruntime"):
        Classifier.load(bundle_path, artifact="tflite-fp32", providers=["cuda"])
    with pytest.raises(UsageError, match="unknown execution provider 'cudnn'"):
        Classifier.load(bundle_path, artifact="onnx", providers=["cudnn"])
    with pytest.raises(UsageError, match="threads must be a positive integer"):
        Classifier.load(bundle_path, threads=0)


def test_unavailable_accelerators_are_errors_not_cpu_fallbacks(bundle_path, tmp_path):
    with pytest.raises(BackendUnavailableError, match="CUDAExecutionProvider.*onnxruntime-gpu"):
        Classifier.load(bundle_path, artifact="onnx", providers=["cuda"])
    with pytest.raises(BackendUnavailableError, match="libedgetpu.so.1.*Edge TPU runtime"):
        Classifier.load(bundle_path, artifact="tflite-int8", delegate="edgetpu")
    with pytest.raises(BackendUnavailableError, match="gpu delegate.*build it from the TensorFlow sources"):
        Classifier.load(bundle_path, artifact="tflite-fp32", delegate="gpu")
    with pytest.raises(BackendUnavailableError, match="delegate library .*absent.so not found"):
        Classifier.load(bundle_path, artifact="tflite-fp32", delegate=str(tmp_path / "absent.so"))
    not_a_library = tmp_path / "fake_delegate.so"
    not_a_library.write_bytes(b"\x7fELF garbage")
    with pytest.raises(BackendUnavailableError, match="cannot load the .*fake_delegate.so delegate"):
        Classifier.load(bundle_path, artifact="tflite-fp32", delegate=str(not_a_library))


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((32, 32), np.uint8), r"shape \(32, 32\).*28x28 grayscale.*does not resize"),
        (np.zeros((4, 27, 28), np.uint8), r"shape \(4, 27, 28\)"),
        (np.zeros((28, 28, 3), np.uint8), r"shape \(28, 28, 3\)"),
        (np.zeros((0, 28, 28), np.uint8), "the batch is empty"),
        (np.full((28, 28), np.nan, np.float32), "NaN or infinite"),
        (np.full((28, 28), np.inf), "NaN or infinite"),
        (np.full((2, 28, 28), 4000.0), r"far outside the expected raw pixel range \[0, 255\]"),
        (np.full((28, 28), -30, np.int64), "far outside"),
        (np.full((28, 28), "a"), "must be numbers"),
    ],
)
def test_bad_images_are_refused(bundle_path, images, message):
    with Classifier.load(bundle_path, artifact="tflite-int8") as classifier:
        with pytest.raises(InputError, match=message):
            classifier.predict(images)


def test_closed_classifier_refuses_work(bundle_path, test_images):
    classifier = Classifier.load(bundle_path, artifact="onnx")
    classifier.close()
    with pytest.raises(UsageError, match="closed"):
        classifier.predict(test_images[:1])
