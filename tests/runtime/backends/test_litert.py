"""LiteRT backend: the package it picks, XNNPACK on and off, delegates, threads."""

from __future__ import annotations

import numpy as np

from edgeship.runtime.backends import litert
from edgeship.runtime.classifier import Classifier


def test_prefers_ai_edge_litert_and_probes_its_delegates():
    _, package, version = litert.interpreter_module()
    assert package == "ai-edge-litert" and version.startswith("2.")
    found = litert.probe()
    assert found["accelerators"][:2] == ["xnnpack", "no-xnnpack"]
    assert "edgetpu" not in found["accelerators"]


def test_xnnpack_off_gives_the_same_answers(bundle_path, test_images):
    with Classifier.load(bundle_path, artifact="tflite-fp32", delegate="no-xnnpack", threads=2) as plain, \
            Classifier.load(bundle_path, artifact="tflite-fp32", delegate="xnnpack") as fast:
        assert plain.info()["accelerator"] == "no-xnnpack" and plain.info()["threads"] == 2
        assert fast.info()["accelerator"] == "xnnpack"
        np.testing.assert_allclose(plain.predict_proba(test_images), fast.predict_proba(test_images), atol=1e-5)


def test_library_paths_are_recognised():
    assert litert._is_library_path("/usr/lib/libedgetpu.so.1")
    assert litert._is_library_path("libcustom_delegate.so")
    assert not litert._is_library_path("edgetpu")


def test_tensorflow_lite_serves_when_it_is_all_there_is(bundle_path):
    import tensorflow as tf

    runner = litert.LiteRTRunner(bundle_path / "model_fp32.tflite", delegate="no-xnnpack")
    runner._module, runner._package, runner._version = tf.lite, "tensorflow", tf.__version__
    interpreter = runner._open_interpreter()
    assert interpreter.get_input_details()[0]["shape_signature"].tolist() == [-1, 28, 28]
