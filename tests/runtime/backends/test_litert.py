"""LiteRT backend: the package it picks, XNNPACK on and off, external delegates (a real one built from noop_delegate.c), threads."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from edgeship.errors import BackendUnavailableError, ModelError, UsageError
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


@pytest.fixture(scope="session")
def noop_delegate(tmp_path_factory) -> Path:
    """The external delegate in noop_delegate.c, compiled here (skipped where there is no C compiler)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the test delegate")
    library = tmp_path_factory.mktemp("delegate") / "libnoop_delegate.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(Path(__file__).with_name("noop_delegate.c"))],
                   check=True, timeout=60)
    return library


def test_external_delegate_with_options_runs_behind_a_lock(noop_delegate, bundle_path, test_images):
    with Classifier.load(bundle_path, artifact="tflite-fp32") as plain, \
            Classifier.load(bundle_path, artifact="tflite-fp32", delegate=str(noop_delegate), delegate_options={"mode": "test"}) as delegated:
        assert delegated.info()["accelerator"] == str(noop_delegate)
        expected = plain.predict_proba(test_images)
        np.testing.assert_array_equal(delegated.predict_proba(test_images), expected)
        failures = []

        def work(worker: int) -> None:
            for round_number in range(20):
                start = (worker * 53 + round_number * 7) % 900
                if not np.array_equal(delegated.predict_proba(test_images[start : start + 1 + worker]), expected[start : start + 1 + worker]):
                    failures.append((worker, round_number))

        threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


def test_delegate_that_refuses_and_one_that_declines_the_model(noop_delegate, bundle_path):
    with pytest.raises(BackendUnavailableError, match="cannot load the .*libnoop_delegate.so delegate .*refused by option fail"):
        Classifier.load(bundle_path, artifact="tflite-fp32", delegate=str(noop_delegate), delegate_options={"fail": "1"})
    with pytest.raises(ModelError, match="delegate did not take model_fp32.tflite.*dynamic batch sizes"):
        Classifier.load(bundle_path, artifact="tflite-fp32", delegate=str(noop_delegate), delegate_options={"static": "1"})
    with pytest.raises(UsageError, match="delegate options apply to edgetpu, gpu or a delegate library"):
        Classifier.load(bundle_path, artifact="tflite-fp32", delegate="xnnpack", delegate_options={"a": "b"})
