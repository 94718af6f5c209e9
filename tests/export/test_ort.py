"""ORT Mobile: .ort files made by convert_onnx_models_to_ort, loaded by ONNX Runtime for parity, with their operator configs."""

from __future__ import annotations

from edgeship.files import sha256_file
from edgeship.manifest import load_manifest
from edgeship.runtime import Classifier
from edgeship.runtime.status import PASS


def test_ort_files_pass_their_gates_and_record_the_mobile_verdict(bundle_path, test_images):
    manifest = load_manifest(bundle_path)
    for name, precision in (("onnx-ort", "fp32"), ("onnx-ort-int8", "int8")):
        artifact = manifest.artifact(name)
        assert artifact.status == PASS and artifact.format == "ort" and artifact.precision == precision
        assert artifact.file.endswith(".ort") and (bundle_path / artifact.file).read_bytes()[4:8] == b"ORTM"
        assert artifact.parity["agreement"] >= (0.999 if precision == "fp32" else 0.99)
        config = artifact.details["required_operators"]
        text = (bundle_path / config["file"]).read_text()
        assert sha256_file(bundle_path / config["file"]) == config["sha256"]
        assert "ai.onnx;" in text and ("MatMul" in text or "Gemm" in text)
        verdict = artifact.details["mobile_usability"]
        for provider in ("NNAPI", "CoreML NeuralNetwork", "CoreML MLProgram"):
            assert verdict[provider]["as_is"] in ("YES", "MAYBE", "NO")
            assert verdict[provider]["nodes"] > 0
        assert "NNAPI:" in verdict["summary"]
        with Classifier.load(bundle_path, artifact=name) as classifier:
            assert classifier.info()["backend"] == "onnxruntime"
    with Classifier.load(bundle_path, artifact="onnx-ort") as ort_file, Classifier.load(bundle_path, artifact="onnx") as onnx_file:
        assert (ort_file.predict(test_images) == onnx_file.predict(test_images)).mean() >= 0.999
