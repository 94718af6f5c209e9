"""The int8 rescue on a MobileNetV2: an outlier channel collapses plain int8 and equalization brings it back within the gates.

MobileNetV2-0.35 96x96 is trained from scratch on tinted shapes that tools/shapes.py draws (900
pictures, 720 train / 180 test, 15 epochs: Keras and plain int8 agree on every test picture), then
one channel of its first projection is scaled x3000 and the next expansion's input /3000
(tools/outliers.py): the same float function, but per-tensor int8 activations lose every other
channel. In a file of its own so the suite's workers can run it beside the MLP's rescue tests.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

INT8 = ("tflite-int8", "onnx-int8")


def _edgeship(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeship.cli", *arguments], capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def mobilenet_run(tmp_path_factory):
    """MobileNetV2-0.35 96x96 trained from scratch on tinted shapes (tools/shapes.py): (picture folder, model path)."""
    from edgeship.data import FolderOptions, load_dataset
    from edgeship.train import train_model
    from tools.shapes import write_shapes_folder

    root = tmp_path_factory.mktemp("mobilenet")
    folder = write_shapes_folder(root / "shapes", per_class=300)
    dataset = load_dataset(folder, FolderOptions(image_size=(96, 96)))
    return folder, train_model("mobilenetv2", dataset, epochs=15, seed=0, out=root / "run", progress=False).model_path


def test_an_outlier_channel_in_mobilenetv2_fails_plain_int8_and_equalization_brings_it_back(mobilenet_run, tmp_path):
    """One channel of the first projection x3000 and the next expansion's input /3000 (tools/outliers.py): same float function."""
    from tools.outliers import outlier_copy, outlier_mobilenetv2

    folder, model_path = mobilenet_run
    path = outlier_copy(model_path, tmp_path / "outlier", outlier_mobilenetv2)
    common = ("export", str(path), "--dataset", str(folder), "--formats", "tflite-int8,onnx-int8")
    plain = _edgeship(*common, "--no-rescue", "--out", str(tmp_path / "plain"))
    assert plain.returncode == 1, plain.stdout + plain.stderr
    assert "tflite-int8, onnx-int8 missed the parity gate at export" in plain.stderr
    artifacts = {a["name"]: a for a in json.loads((tmp_path / "plain" / "manifest.json").read_text())["artifacts"]}
    for name in INT8:
        assert artifacts[name]["status"] == "fail" and artifacts[name]["parity"]["agreement"] < 0.5

    rescued = _edgeship(*common, "--out", str(tmp_path / "rescued"))
    assert rescued.returncode == 0, rescued.stdout + rescued.stderr
    artifacts = {a["name"]: a for a in json.loads((tmp_path / "rescued" / "manifest.json").read_text())["artifacts"]}
    for name in INT8:
        artifact = artifacts[name]
        assert artifact["status"] == "pass" and artifact["parity"]["agreement"] >= 0.99, artifact
        rescue = artifact["details"]["rescue"]
        # Equalization alone brought both back in every run measured; a layer or two kept in float after it is a rescue too.
        assert rescue["rescued"] and (rescue["chosen"] == "equalized" or rescue["chosen"].startswith("fallback"))
        assert len(rescue["float_layers"]) <= 2
        (pair,) = [p for p in rescue["equalization"]["pairs"] if p["consumer"] == "block_1_expand"]
        assert pair["producer"] == "expanded_conv_project" and pair["between"] == "linear" and pair["scale_max"] > 300
        assert rescue["equalization"]["float_max_abs_diff"] <= 1e-4
