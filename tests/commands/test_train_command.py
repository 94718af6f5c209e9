"""`edgeship train` through the real command line: output, exit codes, one-line errors."""

from __future__ import annotations

import subprocess
import sys


def edgeship(*arguments: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeship.cli", *arguments], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_train_writes_the_run_and_prints_accuracy(tmp_path):
    result = edgeship("train", "--model", "mlp", "--dataset", "mnist-sample", "--epochs", "1", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert "test accuracy 0." in result.stdout
    assert "epoch 1/1" in result.stderr
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"model.keras", "model.edgeship.json", "metrics.json", "history.json", "curves.png"}


def test_zero_epochs_is_one_line_exit_2(tmp_path):
    result = edgeship("train", "--epochs", "0", "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["edgeship: error: --epochs must be at least 1, got 0"]
    assert not (tmp_path / "run").exists()


def test_out_below_a_file_is_one_line_exit_2(tmp_path):
    (tmp_path / "file").write_text("x")
    result = edgeship("train", "--epochs", "1", "--out", str(tmp_path / "file" / "run"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "a part of the path is a file" in result.stderr


def test_unknown_model_names_the_valid_ones(tmp_path):
    result = edgeship("train", "--model", "vgg", "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "unknown model 'vgg'; choose one of: mlp, cnn" in result.stderr
