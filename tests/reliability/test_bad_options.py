"""Option values that cannot work, on every command that takes them: one line naming the option and the fix, exit 2, nothing written.

Output paths are checked before the work that fills them, so a bad --out or --json costs no export
or benchmark run, and the refusal stays the only line on stderr.
"""

from __future__ import annotations

import pytest

from edgeship.errors import BackendUnavailableError, UsageError
from edgeship.runtime import Classifier


@pytest.fixture(scope="session")
def model_path(mlp_run):
    return mlp_run.model_path


@pytest.mark.parametrize(
    "argv, words",
    [
        (["predict", "{bundle}", "{image}", "--backend", "tensorrt"], ("unknown backend 'tensorrt'", "litert, litert-compiled, onnxruntime")),
        (["predict", "{bundle}", "{image}", "--delegate", "npu"], ("unknown delegate 'npu'", "xnnpack")),
        (["predict", "{bundle}", "{image}", "--delegate", "/no/such/libdelegate.so"], ("libdelegate.so not found",)),
        (["predict", "{bundle}", "{image}", "--artifact", "onnx", "--provider", "quantum"], ("unknown execution provider 'quantum'", "cuda")),
        (["predict", "{bundle}", "{image}", "--artifact", "onnx", "--delegate", "xnnpack"], ("delegates apply to the litert backend",)),
        (["predict", "{bundle}", "{image}", "--artifact", "tflite-fp32", "--provider", "cuda"], ("providers apply to the onnxruntime",)),
        (["predict", "{bundle}", "{image}", "--artifact", "tflite-fp64"], ("no artifact 'tflite-fp64'", "tflite-fp32")),
        (["predict", "{bundle}", "{image}", "--artifact", "edgetpu"], ("'edgetpu' was not exported", "edgetpu_compiler")),
        (["predict", "{bundle}", "{image}", "--backend", "onnxruntime", "--artifact", "tflite-int8"], ("cannot run tflite-int8",)),
        (["predict", "{bundle}", "{image}", "--threads", "0"], ("--threads must be at least 1, got 0",)),
        (["predict", "{bundle}", "{image}", "--threads", "-4"], ("--threads must be at least 1, got -4",)),
        (["predict", "{bundle}", "{image}", "--top-k", "0"], ("--top-k must be at least 1",)),
        (["predict", "{bundle}", "{image}", "--scale", "1/255"], ("apply to a bare .tflite/.onnx file",)),
        (["predict", "{bundle}", "{image}", "--delegate-option", "novalue"], ("key=value", "'novalue'")),
        (["bench", "{bundle}", "--threads", "0"], ("--threads takes comma-separated positive integers", "'0'")),
        (["bench", "{bundle}", "--threads", "1,-2"], ("--threads takes", "'1,-2'")),
        (["bench", "{bundle}", "--batch", "0"], ("--batch takes comma-separated positive integers", "'0'")),
        (["bench", "{bundle}", "--batch", "-8"], ("--batch takes", "'-8'")),
        (["bench", "{bundle}", "--batch", "x"], ("--batch takes", "'x'")),
        (["bench", "{bundle}", "--seconds", "0"], ("--seconds must be positive",)),
        (["bench", "{bundle}", "--backend", "tvm"], ("unknown backend 'tvm'",)),
        (["bench", "{bundle}", "--json", "{tmp}"], ("is a folder, not a file",)),
        (["selftest", "{bundle}", "--backend", "tvm"], ("unknown backend 'tvm'",)),
    ],
)
def test_runtime_options(cli, refused, bundle_path, digit_npy, tmp_path, argv, words):
    argv = [part.format(bundle=bundle_path, image=digit_npy, tmp=tmp_path) for part in argv]
    refused(cli("runtime", *argv), "runtime", *words)
    assert list(tmp_path.iterdir()) == [digit_npy]


def test_an_unavailable_provider_or_delegate_is_not_a_cpu_fallback(cli, refused, bundle_path, digit_npy):
    refused(cli("runtime", "predict", bundle_path, digit_npy, "--artifact", "onnx", "--provider", "cuda"), "runtime",
            "cuda", "not available", "onnxruntime-gpu", code=2)
    refused(cli("runtime", "predict", bundle_path, digit_npy, "--artifact", "tflite-int8", "--delegate", "edgetpu"), "runtime",
            "edgetpu", "libedgetpu")
    with pytest.raises(BackendUnavailableError, match="coreml"):
        Classifier.load(bundle_path, artifact="onnx", providers=["coreml"])


@pytest.mark.parametrize("threads", [0, -1, 2.5, "2"])
def test_api_threads_must_be_a_positive_integer(bundle_path, threads):
    with pytest.raises(UsageError, match="threads must be a positive integer"):
        Classifier.load(bundle_path, artifact="onnx", threads=threads)


@pytest.mark.parametrize("k", [0, -1, 11, 2.0])
def test_api_top_k_out_of_range(bundle_path, test_images, k):
    with Classifier.load(bundle_path) as classifier, pytest.raises(UsageError, match="k must be between 1 and 10"):
        classifier.top_k(test_images[:2], k=k)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["export", "{model}", "--formats", "tflite-fp64", "--out", "{tmp}/b"], ("unknown format 'tflite-fp64'", "tflite-fp32, tflite-fp16")),
        (["export", "{model}", "--formats", ",", "--out", "{tmp}/b"], ("no format given",)),
        (["export", "{model}", "--calibration-images", "0", "--out", "{tmp}/b"], ("--calibration-images must be at least 1",)),
        (["export", "{model}", "--calibration-images", "999999", "--formats", "tflite-int8", "--out", "{tmp}/b"],
         ("--calibration-images 999999", "at most 4000")),
        (["export", "{model}", "--opset", "5", "--out", "{tmp}/b"], ("--opset 5 is not supported",)),
        (["export", "{model}", "--out", "{file}"], ("is a file, not a folder",)),
        (["export", "{model}", "--out", "{file}/inside"], ("a part of the path is a file",)),
        (["export", "{model}", "--out", "{tmp}"], ("is not an edgeship bundle", "choose a new folder")),
        (["export", "{model}", "--dataset", "{empty}", "--out", "{tmp}/b"], ("holds no idx files", "train-images-idx3-ubyte")),
        (["export", "{model}", "--dataset", "{tmp}/absent.npz", "--out", "{tmp}/b"], ("does not exist",)),
        (["export", "{model}", "--dataset", "cifar10", "--out", "{tmp}/b"], ("unknown dataset 'cifar10'", "mnist-sample")),
        (["train", "--batch-size", "0", "--out", "{tmp}/run"], ("--batch-size must be at least 1",)),
        (["train", "--epochs", "0", "--out", "{tmp}/run"], ("--epochs must be at least 1",)),
        (["train", "--model", "resnet", "--out", "{tmp}/run"], ("unknown model 'resnet'", "mlp")),
        (["train", "--out", "{file}"], ("is a file, not a folder",)),
        (["train", "--dataset", "{empty}", "--out", "{tmp}/run"], ("holds no idx files",)),
        (["data", "--dataset", "{empty}"], ("holds no idx files",)),
        (["data", "--dataset", "{partial}"], ("lacks the idx files", "t10k-labels-idx1-ubyte")),
        (["data", "--json", "{file}/summary.json"], ("a part of the path is a file",)),
        (["data", "--plot", "{tmp}"], ("is a folder, not a file",)),
        (["verify", "{bundle}", "--dataset", "{empty}"], ("holds no idx files",)),
        (["verify", "{bundle}", "--max-images", "0"], ("--max-images must be at least 1",)),
        (["verify", "{bundle}", "--json", "{file}/verify.json"], ("a part of the path is a file",)),
        (["predict", "{bundle}", "{image}", "--plot", "{file}/plot.png"], ("a part of the path is a file",)),
        (["bench", "{bundle}", "--threads", "0"], ("--threads takes comma-separated positive integers",)),
        (["pipeline", "--threads", "0", "--out", "{tmp}/run"], ("--threads takes",)),
        (["pipeline", "--batch", "0", "--out", "{tmp}/run"], ("--batch takes",)),
        (["pipeline", "--epochs", "0", "--out", "{tmp}/run"], ("--epochs must be at least 1",)),
        (["pipeline", "--out", "{file}"], ("is a file, not a folder",)),
        (["pipeline", "--dataset", "{empty}", "--out", "{tmp}/run"], ("holds no idx files",)),
        (["report", "{tmp}"], ("is not a run folder",)),
    ],
)
def test_toolkit_options(cli, refused, model_path, bundle_path, digit_npy, tmp_path, argv, words):
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    (empty / "README.txt").write_text("no IDX files here")
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        (partial / name).write_bytes(b"")
    file = tmp_path / "a-file"
    file.write_text("in the way")
    before = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*"))
    argv = [part.format(model=model_path, bundle=bundle_path, image=digit_npy, tmp=tmp_path, file=file, empty=empty,
                        partial=partial) for part in argv]
    refused(cli("edgeship", *argv), "edgeship", *words)
    assert sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*")) == before
