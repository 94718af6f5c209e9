"""`python -m edgeship.runtime`: predict, bench, selftest, backends; exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgeship.runtime import Classifier
from edgeship.runtime.cli import main


@pytest.fixture
def image_files(tmp_path, test_images):
    np.save(tmp_path / "batch.npy", test_images[:4])
    np.save(tmp_path / "one.npy", test_images[9])
    return [str(tmp_path / "batch.npy"), str(tmp_path / "one.npy")]


def test_predict_lines_and_json(bundle_path, image_files, test_images, capsys):
    assert main(["predict", str(bundle_path), *image_files, "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# tflite-int8 on litert")
    assert len(lines) == 6 and "top-2:" in lines[1] and lines[-1].split(": ")[0].endswith("one.npy")
    assert main(["predict", str(bundle_path), *image_files, "--artifact", "onnx", "--json", "--threads", "1"]) == 0
    payload = json.loads(capsys.readouterr().out)
    with Classifier.load(bundle_path, artifact="onnx") as classifier:
        expected = classifier.predict(np.concatenate([test_images[:4], test_images[9:10]]))
    assert payload["artifact"] == "onnx" and [p["index"] for p in payload["predictions"]] == expected.tolist()
    assert len(payload["predictions"][0]["top_k"]) == 3


def test_predict_bare_file_with_fraction_scale(foreign_models, image_files, capsys):
    assert main(["predict", str(foreign_models["nchw_logits"]), image_files[1], "--scale", "1/255", "--logits", "--json"]) == 0
    probabilities = json.loads(capsys.readouterr().out)["predictions"][0]["probabilities"]
    assert abs(sum(probabilities) - 1) < 1e-5


def test_selftest_backends_and_bench(bundle_path, tmp_path, capsys):
    assert main(["selftest", str(bundle_path), "--json", str(tmp_path / "selftest.json")]) == 0
    assert "self-test passed" in capsys.readouterr().out
    assert json.loads((tmp_path / "selftest.json").read_text())["passed"] is True
    assert main(["backends"]) == 0
    assert "litert       ai-edge-litert" in capsys.readouterr().out
    assert main(["backends", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["onnxruntime"]["available"] is True
    out = tmp_path / "bench.json"
    assert main(["bench", str(bundle_path), "--artifact", "tflite-int8", "--threads", "1,2", "--batch", "1,4",
                 "--seconds", "0.02", "--json", str(out)]) == 0
    assert "| tflite-int8 | litert | xnnpack | 2 | 4 |" in capsys.readouterr().out
    assert len(json.loads(out.read_text())["rows"]) == 4


def test_bench_compares_delegates_as_one_more_dimension(bundle_path, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", str(bundle_path), "--artifact", "tflite-fp32", "--delegate", "xnnpack,no-xnnpack",
                 "--batch", "1,8", "--seconds", "0.02", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert sorted((row["accelerator"], row["batch"]) for row in rows) == [
        ("no-xnnpack", 1), ("no-xnnpack", 8), ("xnnpack", 1), ("xnnpack", 8)
    ]


def test_selftest_then_bench_in_one_process(bundle_copy, tmp_path, capsys):
    """`bench --selftest-json` (what a device runs): both JSONs; a failed gate still benches, exit 1; a bare file is refused."""
    selftest, bench = tmp_path / "selftest.json", tmp_path / "bench.json"
    argv = ["bench", str(bundle_copy), "--selftest-json", str(selftest), "--json", str(bench), "--batch", "1", "--seconds", "0.02"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.index("self-test passed") < out.index("| onnx | onnxruntime |")
    assert json.loads(selftest.read_text())["passed"] is True
    assert {row["artifact"] for row in json.loads(bench.read_text())["rows"]} >= {"tflite-int8", "onnx"}

    with np.load(bundle_copy / "golden.npz") as golden:
        arrays = dict(golden)
    arrays["probabilities"] = arrays["probabilities"][:, ::-1].copy()
    np.savez(bundle_copy / "golden.npz", **arrays)
    selftest.unlink(), bench.unlink()
    assert main([*argv, "--no-verify"]) == 1
    assert "error: self-test failed for tflite-fp32: agreement" in capsys.readouterr().err
    assert json.loads(selftest.read_text())["passed"] is False and bench.is_file()

    assert main(["bench", str(bundle_copy / "model.onnx"), "--selftest-json", str(selftest)]) == 2
    assert "--selftest-json needs a bundle folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, code, words",
    [
        (["predict", "{bundle}", "{image}", "--backend", "tvm"], 2, "unknown backend 'tvm'"),
        (["predict", "{bundle}", "{image}", "--artifact", "onnx", "--provider", "cuda"], 2, "onnxruntime-gpu"),
        (["predict", "{bundle}", "{image}", "--delegate", "edgetpu"], 2, "no exported edgetpu artifact"),
        (["predict", "{bundle}", "{image}", "--artifact", "tflite-int8", "--delegate", "edgetpu"], 2, "libedgetpu"),
        (["predict", "{bundle}", "{image}", "--top-k", "0"], 2, "--top-k must be at least 1"),
        (["predict", "{bundle}", "{bundle}/absent.png"], 2, "not found"),
        (["bench", "{bundle}", "--threads", "0"], 2, "--threads takes comma-separated positive integers"),
        (["bench", "{bundle}", "--batch", "a"], 2, "--batch takes"),
        (["selftest", "{bundle}/missing"], 2, "is not a bundle folder"),
    ],
)
def test_errors_are_one_line_with_exit_codes(bundle_path, image_files, argv, code, words, capsys):
    argv = [part.format(bundle=bundle_path, image=image_files[1]) for part in argv]
    assert main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m edgeship.runtime: error: ") and words in err[0]


def test_module_entry_point_and_gate_failure_exit_code(bundle_copy):
    with np.load(bundle_copy / "golden.npz") as golden:
        arrays = dict(golden)
    arrays["probabilities"] = arrays["probabilities"][:, ::-1].copy()
    np.savez(bundle_copy / "golden.npz", **arrays)
    done = subprocess.run([sys.executable, "-m", "edgeship.runtime", "selftest", str(bundle_copy), "--no-verify"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "error: self-test failed for tflite-fp32: agreement" in done.stderr
