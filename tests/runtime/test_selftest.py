"""Self-test on the golden set: passes on a good bundle, fails with numbers on altered golden outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeship.errors import BundleError, GateFailedError, IntegrityError
from edgeship.files import sha256_file
from edgeship.runtime.gates import Gate
from edgeship.runtime.selftest import format_selftest_table, raise_if_failed, selftest_bundle


def test_good_bundle_passes(bundle_path):
    report = selftest_bundle(bundle_path)
    ran = [row for row in report.rows if row.status != "skipped"]
    assert {row.artifact for row in ran} >= {"tflite-fp32", "tflite-int8", "onnx"}
    assert report.passed and all(row.status == "pass" for row in ran)
    fp32 = next(row for row in ran if row.artifact == "tflite-fp32")
    assert fp32.agreement == 1.0 and fp32.max_abs_diff <= 1e-4 and fp32.images == 100
    raise_if_failed(report)
    assert "| tflite-int8 | int8 | litert | 100 |" in format_selftest_table(report)


def _alter_golden(bundle, change) -> None:
    path = bundle / "golden.npz"
    with np.load(path) as golden:
        arrays = dict(golden)
    change(arrays)
    np.savez(path, **arrays)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["golden"]["sha256"] = sha256_file(path)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_altered_golden_outputs_fail_the_gate(bundle_copy):
    _alter_golden(bundle_copy, lambda a: a.update(probabilities=np.roll(a["probabilities"], 1, axis=1)))
    report = selftest_bundle(bundle_copy)
    assert not report.passed
    with pytest.raises(GateFailedError, match=r"tflite-fp32: agreement .*% < 99.90%; max \|Δp\|") as caught:
        raise_if_failed(report)
    assert caught.value.exit_code == 1


def test_custom_gate_and_integrity(bundle_copy):
    strict = {"int8": Gate(min_agreement=1.0, max_abs_diff=1e-9)}
    report = selftest_bundle(bundle_copy, gates=strict)
    assert next(r for r in report.rows if r.artifact == "tflite-int8").status == "fail"
    with open(bundle_copy / "golden.npz", "ab") as stream:
        stream.write(b"x")
    with pytest.raises(IntegrityError, match="golden.npz does not match"):
        selftest_bundle(bundle_copy)


def test_bundle_without_golden_set(bundle_copy):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest.pop("golden")
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="no golden set"):
        selftest_bundle(bundle_copy)


def test_one_backend_skips_the_other_backends_files(bundle_path):
    from edgeship.runtime.selftest import selftest_bundle

    report = selftest_bundle(bundle_path, backend="litert")
    status = {row.artifact: row.status for row in report.rows}
    assert status["tflite-fp32"] == "pass" and status["tflite-int8"] == "pass"
    assert status["onnx"] == status["onnx-int8"] == "skipped"
    assert "the litert backend does not run onnx files" in next(row.reason for row in report.rows if row.artifact == "onnx")
