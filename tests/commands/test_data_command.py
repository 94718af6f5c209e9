"""`edgeship data` through the real command line: the summary, the sample grid, the JSON, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

from PIL import Image


def edgeship(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeship.cli", *arguments], capture_output=True, text=True, timeout=120)


def test_data_prints_shapes_counts_and_pixel_range_of_the_sample():
    result = edgeship("data", "--dataset", "mnist-sample")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "x (4000, 28, 28) uint8" in out and "x (1000, 28, 28) uint8" in out
    assert "classes  10" in out
    assert "train 0..255" in out and "test 0..255" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] and line.split()[0].isdigit()]
    assert [row[0] for row in rows] == [str(digit) for digit in range(10)]
    assert all(row[-2:] == ["400", "100"] for row in rows)
    assert "total    4000    1000" in out


def test_data_saves_a_png_grid_and_the_summary_as_json(tmp_path):
    grid, summary = tmp_path / "plots" / "grid.png", tmp_path / "data.json"
    result = edgeship("data", "--plot", str(grid), "--count", "16", "--json", str(summary))
    assert result.returncode == 0, result.stderr
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(grid) as image:
        width, height = image.size
        assert width >= 600 and height >= 200
        pixels = list(image.convert("L").getdata())
    assert min(pixels) < 30 and max(pixels) > 225  # black digit backgrounds and white strokes, not a blank canvas
    payload = json.loads(summary.read_text())
    assert payload["name"] == "mnist-sample"
    assert payload["train"]["class_counts"] == [400] * 10
    assert payload["test"]["images_shape"] == [1000, 28, 28]
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["data.json", "grid.png", "plots"]


def test_an_unknown_dataset_is_one_line_exit_2():
    result = edgeship("data", "--dataset", "imagenet")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("edgeship: error: unknown dataset 'imagenet'") and "mnist-sample" in lines[0]
    assert result.stdout == ""


def test_a_zero_count_is_one_line_exit_2(tmp_path):
    result = edgeship("data", "--plot", str(tmp_path / "grid.png"), "--count", "0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["edgeship: error: --count must be at least 1, got 0"]
    assert not (tmp_path / "grid.png").exists()


def test_a_plot_path_below_a_file_is_one_line_exit_2(tmp_path):
    (tmp_path / "file").write_text("x")
    result = edgeship("data", "--plot", str(tmp_path / "file" / "grid.png"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeship: error:") and "file" in lines[0]
