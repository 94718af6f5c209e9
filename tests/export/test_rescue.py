"""The int8 rescue at export: an outlier model fails plainly, comes back within budget, and the record says how."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgeship.errors import UsageError
from edgeship.export.rescue import RescuePolicy

INT8 = ("tflite-int8", "onnx-int8")


def _edgeship(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeship.cli", *arguments], capture_output=True, text=True, timeout=900)


def test_plain_int8_of_the_outlier_model_collapses_and_fails(outlier_plain_bundle):
    for name in INT8:
        artifact = outlier_plain_bundle.manifest.artifact(name)
        assert artifact.status == "fail" and artifact.parity["agreement"] < 0.2
        assert artifact.reason.startswith("parity gate missed at export: agreement")
        assert "rescue" not in artifact.details
    assert outlier_plain_bundle.manifest.artifact("tflite-fp32").status == "pass", "the float function is unchanged"
    assert [row.artifact for row in outlier_plain_bundle.gate_failed] == list(INT8)


def test_equalization_brings_the_outlier_model_back_within_budget(outlier_rescued_bundle):
    for name in INT8:
        artifact = outlier_rescued_bundle.manifest.artifact(name)
        assert artifact.status == "pass", artifact.reason
        assert artifact.parity["agreement"] >= 0.99 and artifact.parity["accuracy_delta_pp"] >= -0.5
        rescue = artifact.details["rescue"]
        assert rescue["rescued"] and rescue["chosen"] == "equalized" and rescue["float_layers"] == []
        plain, equalized = rescue["steps"]
        assert plain["step"] == "plain" and plain["agreement"] < 0.2 and not plain["within_budget"]
        assert equalized["equalized"] and equalized["within_budget"]
        for step in rescue["steps"]:
            assert step["bytes"] > 0 and step["latency_ms"] > 0
        assert equalized["bytes"] <= 0.3 * outlier_rescued_bundle.manifest.artifact("tflite-fp32").bytes
        assert rescue["equalization"]["kept"] and rescue["equalization"]["float_max_abs_diff"] <= 1e-4
        assert rescue["budget"] == {"min_agreement": 0.99, "max_accuracy_drop_pp": 0.5}
    assert outlier_rescued_bundle.gate_failed == []


def test_float_fallback_alone_brings_it_back_with_the_layers_listed(outlier_fallback_bundle):
    for name in INT8:
        artifact = outlier_fallback_bundle.manifest.artifact(name)
        assert artifact.status == "pass", artifact.reason
        rescue = artifact.details["rescue"]
        assert rescue["equalization"] == {"used": False, "reason": "turned off"}
        assert rescue["chosen"].startswith("fallback") and rescue["fallback"]["stopped"] == "within budget"
        # uint8 activations (ONNX Runtime's fast x86 kernels) need the whole outlier path in float: up to 4 layers.
        assert 2 <= len(rescue["float_layers"]) <= 4
        assert artifact.details["float_layers"] == rescue["float_layers"]
        last = rescue["steps"][-1]
        assert last["within_budget"] and last["float_layers"] == rescue["float_layers"] and last["signal_lost"] >= 0.9
        assert "ranking" in rescue["fallback"] and rescue["fallback"]["metric"].startswith("signal_lost")


def test_models_that_quantize_well_keep_todays_files(mlp_bundle, cnn_bundle):
    """No rescue when none is needed: the seed MLP and the CNN keep plain int8, within the gate, at int8's size."""
    for bundle in (mlp_bundle, cnn_bundle):
        fp32 = bundle.manifest.artifact("tflite-fp32").bytes
        for name in INT8:
            artifact = bundle.manifest.artifact(name)
            assert artifact.status == "pass" and "rescue" not in artifact.details and "float_layers" not in artifact.details
            assert artifact.parity["agreement"] >= 0.99 and artifact.bytes <= 0.35 * fp32


def test_export_exits_1_on_the_outlier_without_rescue_and_0_with_it(outlier_mlp_path, tmp_path):
    plain = _edgeship("export", str(outlier_mlp_path), "--formats", "tflite-int8", "--no-rescue", "--out", str(tmp_path / "plain"))
    assert plain.returncode == 1
    assert plain.stderr.strip().splitlines()[-1] == (
        f"edgeship: error: tflite-int8 missed the parity gate at export (see the table; rescue was off); "
        f"the bundle is in {tmp_path / 'plain'}, pass --allow-failed to accept it"
    )
    assert json.loads((tmp_path / "plain" / "manifest.json").read_text())["artifacts"][0]["status"] == "fail"
    allowed = _edgeship("export", str(outlier_mlp_path), "--formats", "tflite-int8", "--no-rescue", "--allow-failed", "--out", str(tmp_path / "allowed"))
    assert allowed.returncode == 0, allowed.stderr
    assert "❌ fail" in allowed.stdout
    rescued = _edgeship("export", str(outlier_mlp_path), "--formats", "tflite-int8", "--out", str(tmp_path / "rescued"))
    assert rescued.returncode == 0, rescued.stderr
    assert "tflite-int8: back within budget with equalized (agreement 10." in rescued.stdout


def test_a_bad_budget_or_layer_limit_is_refused():
    with pytest.raises(UsageError, match="--accuracy-budget must be a number of percentage points >= 0"):
        RescuePolicy(accuracy_budget_pp=-1)
    with pytest.raises(UsageError, match="--max-float-layers must be at least 1"):
        RescuePolicy(max_float_layers=0)
    assert RescuePolicy(accuracy_budget_pp=2.0).gate("int8").max_accuracy_drop_pp == 2.0
    assert RescuePolicy(accuracy_budget_pp=2.0).gate("fp32").max_abs_diff == 1e-4, "float files keep their own gate"

