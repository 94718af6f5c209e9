"""edgeship.data: the bundled sample, local npz and IDX folders, Keras' cache, and every refusal."""

from __future__ import annotations

import gzip
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest

import edgeship.data
from edgeship.data import FASHION_NAMES, IDX_FILES, Dataset, describe, load_dataset
from edgeship.errors import DatasetError


def write_idx(path: Path, array: np.ndarray, magic: int, compress: bool) -> Path:
    """Write `array` (uint8) as an IDX file: big-endian magic, dimension sizes, raw bytes."""
    header = np.array([magic, *array.shape], dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def write_idx_folder(folder: Path, dataset: Dataset, compress: bool) -> Path:
    folder.mkdir()
    for key, stem in IDX_FILES.items():
        write_idx(folder / stem, getattr(dataset, key), 2051 if key.startswith("x_") else 2049, compress)
    return folder


def assert_same_arrays(loaded: Dataset, expected: Dataset) -> None:
    for key in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(loaded, key), getattr(expected, key))
    assert loaded.x_train.dtype == np.uint8 and loaded.y_train.dtype == np.int64


def test_the_bundled_sample_is_4000_train_and_1000_test_real_digits(sample_dataset):
    data = sample_dataset
    assert data.name == "mnist-sample"
    assert data.x_train.shape == (4000, 28, 28) and data.x_test.shape == (1000, 28, 28)
    assert data.x_train.dtype == np.uint8 and data.x_test.dtype == np.uint8
    assert data.y_train.dtype == np.int64 and data.y_test.dtype == np.int64
    assert data.class_names == [str(digit) for digit in range(10)] and data.num_classes == 10
    assert np.bincount(data.y_train).tolist() == [400] * 10
    assert np.bincount(data.y_test).tolist() == [100] * 10
    assert data.x_train.min() == 0 and data.x_train.max() == 255
    # real handwritten digits: mostly black background with a few hundred bright pixels each
    ink = (data.x_train > 127).sum(axis=(1, 2))
    assert 40 < np.median(ink) < 250
    # no image is in both splits
    train_rows = {image.tobytes() for image in data.x_train}
    assert not any(image.tobytes() in train_rows for image in data.x_test)


def test_a_missing_bundled_sample_says_how_to_restore_it(tmp_path, monkeypatch):
    monkeypatch.setattr(edgeship.data, "SAMPLE_FILE", tmp_path / "mnist_sample.npz")
    with pytest.raises(DatasetError, match="bundled sample .* is missing .*build_mnist_sample.py"):
        load_dataset("mnist-sample")


def test_describe_reports_shapes_counts_and_pixel_range(sample_dataset):
    summary = describe(sample_dataset)
    assert summary["num_classes"] == 10
    assert summary["train"]["images_shape"] == [4000, 28, 28]
    assert summary["test"]["labels_shape"] == [1000]
    assert summary["train"]["class_counts"] == [400] * 10
    assert summary["test"]["class_counts"] == [100] * 10
    assert (summary["train"]["pixel_min"], summary["train"]["pixel_max"]) == (0, 255)
    assert summary["train"]["images_dtype"] == "uint8"


def test_a_local_npz_round_trips_with_any_integer_label_dtype(tmp_path, sample_dataset):
    path = tmp_path / "mnist.npz"
    np.savez(
        path,
        x_train=sample_dataset.x_train, y_train=sample_dataset.y_train.astype(np.uint8),
        x_test=sample_dataset.x_test, y_test=sample_dataset.y_test.astype(np.int32),
    )
    loaded = load_dataset(str(path))
    assert_same_arrays(loaded, sample_dataset)
    assert loaded.name == str(path.resolve())
    assert "npz" in loaded.source and loaded.class_names == sample_dataset.class_names


def test_an_npz_can_carry_its_class_names(tmp_path, sample_dataset):
    path = tmp_path / "fashion.npz"
    np.savez(
        path, x_train=sample_dataset.x_train[:50], y_train=sample_dataset.y_train[:50],
        x_test=sample_dataset.x_test[:20], y_test=sample_dataset.y_test[:20], class_names=np.array(FASHION_NAMES),
    )
    assert load_dataset(path).class_names == FASHION_NAMES


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_an_idx_folder_round_trips(tmp_path, sample_dataset, compress):
    folder = write_idx_folder(tmp_path / "idx", sample_dataset, compress)
    loaded = load_dataset(str(folder))
    assert_same_arrays(loaded, sample_dataset)
    assert "IDX" in loaded.source


def test_idx_files_with_the_dotted_spelling_are_found(tmp_path, sample_dataset):
    folder = write_idx_folder(tmp_path / "idx", sample_dataset, compress=False)
    for path in folder.iterdir():
        path.rename(folder / path.name.replace("-idx", ".idx"))
    assert load_dataset(folder).x_test.shape == (1000, 28, 28)


def test_an_unknown_name_lists_the_valid_ones():
    with pytest.raises(DatasetError, match="unknown dataset 'cifar10'") as error:
        load_dataset("cifar10")
    for name in ("mnist-sample", "mnist", "fashion_mnist", ".npz", "IDX"):
        assert name in str(error.value)


def test_a_path_that_does_not_exist_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "mnist.npz"
    with pytest.raises(DatasetError, match="does not exist") as error:
        load_dataset(str(missing))
    assert str(missing) in str(error.value)


def test_an_npz_without_the_expected_arrays_names_the_missing_ones(tmp_path, sample_dataset):
    path = tmp_path / "partial.npz"
    np.savez(path, x_train=sample_dataset.x_train, y_train=sample_dataset.y_train, images=sample_dataset.x_test)
    with pytest.raises(DatasetError, match="lacks the arrays x_test, y_test") as error:
        load_dataset(path)
    assert "images" in str(error.value)


def test_a_corrupt_npz_is_refused(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DatasetError, match="cannot read .*broken.npz"):
        load_dataset(path)


def test_a_file_that_is_not_npz_is_refused(tmp_path):
    path = tmp_path / "digits.csv"
    path.write_text("0,1,2\n")
    with pytest.raises(DatasetError, match="not an .npz file"):
        load_dataset(path)


def test_pre_scaled_float_images_are_refused(tmp_path, sample_dataset):
    path = tmp_path / "scaled.npz"
    np.savez(
        path, x_train=sample_dataset.x_train / 255.0, y_train=sample_dataset.y_train,
        x_test=sample_dataset.x_test, y_test=sample_dataset.y_test,
    )
    with pytest.raises(DatasetError, match=r"x_train is float64 in \[0, 1\].*uint8"):
        load_dataset(path)


def test_mismatched_image_and_label_counts_are_refused(tmp_path, sample_dataset):
    path = tmp_path / "mismatch.npz"
    np.savez(
        path, x_train=sample_dataset.x_train, y_train=sample_dataset.y_train[:10],
        x_test=sample_dataset.x_test, y_test=sample_dataset.y_test,
    )
    with pytest.raises(DatasetError, match="4000 images but y_train has 10 labels"):
        load_dataset(path)


def test_idx_with_a_wrong_magic_number_is_refused(tmp_path, sample_dataset):
    folder = write_idx_folder(tmp_path / "idx", sample_dataset, compress=True)
    labels_as_images = folder / "train-images-idx3-ubyte.gz"
    write_idx(folder / "train-images-idx3-ubyte", sample_dataset.y_train.astype(np.uint8), 2049, compress=True)
    with pytest.raises(DatasetError, match="magic number 2049, expected 2051") as error:
        load_dataset(folder)
    assert labels_as_images.name in str(error.value)


def test_a_truncated_idx_file_is_refused(tmp_path, sample_dataset):
    folder = write_idx_folder(tmp_path / "idx", sample_dataset, compress=False)
    images = folder / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="truncated"):
        load_dataset(folder)


def test_a_folder_without_idx_files_says_what_it_expects(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(DatasetError, match="holds no IDX files") as error:
        load_dataset(tmp_path)
    assert "train-images-idx3-ubyte" in str(error.value) and "t10k-labels-idx1-ubyte" in str(error.value)


def test_a_folder_missing_some_idx_files_names_them(tmp_path, sample_dataset):
    folder = write_idx_folder(tmp_path / "idx", sample_dataset, compress=True)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="lacks the IDX files t10k-labels-idx1-ubyte"):
        load_dataset(folder)


def test_mnist_without_network_or_cache_fails_fast_and_points_to_the_sample():
    cached = Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser() / "datasets" / "mnist.npz"
    if cached.exists():
        pytest.skip(f"{cached} is cached, so loading mnist works offline")
    try:
        socket.getaddrinfo("storage.googleapis.com", 443)
    except OSError:
        pass
    else:
        pytest.skip("this machine can resolve the MNIST download host")
    started = time.monotonic()
    with pytest.raises(DatasetError, match="cannot load mnist.*download failed") as error:
        load_dataset("mnist")
    assert time.monotonic() - started < 15
    message = str(error.value)
    assert "mnist.npz" in message and "IDX" in message and "mnist-sample" in message


# Image folders: DIR/<class>/*.jpg as Keras' image_dataset_from_directory reads them, brought to size by the runtime.

from edgeship.data import FolderOptions  # noqa: E402
from edgeship.manifest import Resize  # noqa: E402


def test_an_image_folder_loads_with_sorted_classes_and_a_seeded_stratified_split(shapes_folder):
    dataset = load_dataset(shapes_folder, FolderOptions(image_size=(32, 48)))
    assert dataset.class_names == ["circle", "square", "triangle"] and dataset.color == "rgb"
    assert dataset.x_train.shape == (30, 32, 48, 3) and dataset.x_test.shape == (6, 32, 48, 3)
    assert dataset.x_train.dtype == np.uint8 and dataset.y_train.dtype == np.int64
    assert np.bincount(dataset.y_test).tolist() == [2, 2, 2] and np.bincount(dataset.y_train).tolist() == [10, 10, 10]
    assert dataset.split == {"method": "stratified", "test_fraction": 0.2, "seed": 0, "image_size": [32, 48], "color": "rgb",
                             "skipped": 0, "skip_bad_images": False}
    assert dataset.recipe is None and dataset.resize == Resize()
    assert any("brought to 48x32 (centre-crop, bilinear)" in note for note in dataset.notes)
    again = load_dataset(shapes_folder, FolderOptions(image_size=(32, 48)))
    np.testing.assert_array_equal(again.x_test, dataset.x_test)
    other = load_dataset(shapes_folder, FolderOptions(image_size=(32, 48), seed=1, test_fraction=0.5))
    assert len(other.x_test) == 18 and not np.array_equal(other.x_test[:6], dataset.x_test)
    # the class tints survive the resizing: circles are red, squares green, triangles blue at the centre
    centre = dataset.x_train[:, 16, 24].astype(int)
    for label, channel in enumerate((0, 1, 2)):
        assert (centre[dataset.y_train == label].argmax(axis=1) == channel).mean() > 0.9


def test_train_and_test_folders_are_taken_as_given(tmp_path, make_shapes_folder):
    make_shapes_folder(tmp_path / "data" / "train", per_class=4)
    make_shapes_folder(tmp_path / "data" / "test", per_class=2, seed=1)
    dataset = load_dataset(tmp_path / "data", FolderOptions(image_size=(24, 24), resize=Resize("area", "pad")))
    assert len(dataset.x_train) == 12 and len(dataset.x_test) == 6 and dataset.split["method"] == "folders"
    assert dataset.resize == Resize("area", "pad")


def test_a_grey_folder_loads_grey_and_a_grey_picture_in_a_colour_folder_is_noted_once(tmp_path, make_shapes_folder):
    folder = make_shapes_folder(tmp_path / "mixed", per_class=3)
    Image = pytest.importorskip("PIL.Image")
    Image.open(folder / "circle" / "circle-000.png").convert("L").save(folder / "circle" / "circle-000.png")
    Image.open(folder / "square" / "square-000.png").convert("L").save(folder / "square" / "square-000.png")
    dataset = load_dataset(folder, FolderOptions(image_size=(16, 16)))
    assert dataset.color == "rgb" and dataset.x_train.shape[1:] == (16, 16, 3)
    assert [note for note in dataset.notes if "grey" in note] == ["2 pictures: grey, repeated into 3 channels"]
    grey = load_dataset(folder, FolderOptions(image_size=(16, 16), color="grey"))
    assert grey.color == "grey" and grey.x_train.shape[1:] == (16, 16)


def test_rgb_arrays_load_and_are_never_resized(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (8, 20, 20, 3), dtype=np.uint8), "y_train": np.arange(8) % 2,
              "x_test": rng.integers(0, 256, (4, 20, 20, 3), dtype=np.uint8), "y_test": np.arange(4) % 2}
    np.savez(tmp_path / "rgb.npz", **arrays)
    dataset = load_dataset(tmp_path / "rgb.npz")
    assert dataset.color == "rgb" and dataset.image_shape == (20, 20, 3) and dataset.recipe is None
    with pytest.raises(DatasetError, match="arrays are never resized"):
        load_dataset(tmp_path / "rgb.npz", FolderOptions(image_size=(32, 32)))
    with pytest.raises(DatasetError, match="arrays are never converted"):
        load_dataset(tmp_path / "rgb.npz", FolderOptions(color="grey"))


def test_digit_datasets_record_the_mnist_recipe(sample_dataset, tmp_path):
    assert sample_dataset.recipe == "mnist"
    assert load_dataset(write_idx_folder(tmp_path / "idx", sample_dataset, compress=True)).recipe == "mnist"


@pytest.mark.parametrize(
    "arrange, words",
    [
        (lambda root: (root / "circle").mkdir(parents=True), r"holds 1 class folder \(circle\)"),
        (lambda root: [(root / name).mkdir(parents=True) for name in ("a", "b")], "class folder .*a has no pictures"),
        (lambda root: (root / "train" / "a").mkdir(parents=True), "has train/ but no test/"),
    ],
    ids=["single-class", "empty-classes", "train-without-test"],
)
def test_folders_that_cannot_make_a_classifier_are_refused(tmp_path, arrange, words):
    arrange(tmp_path / "pictures")
    with pytest.raises(DatasetError, match=words):
        load_dataset(tmp_path / "pictures")


def test_a_class_of_one_picture_cannot_be_split(tmp_path, make_shapes_folder):
    folder = make_shapes_folder(tmp_path / "few", per_class=2)
    for extra in sorted((folder / "square").iterdir())[1:]:
        extra.unlink()
    with pytest.raises(DatasetError, match="class 'square' has only 1 picture"):
        load_dataset(folder, FolderOptions(image_size=(16, 16)))


def test_a_bad_picture_is_named_or_skipped_and_counted(tmp_path, make_shapes_folder):
    folder = make_shapes_folder(tmp_path / "bad", per_class=5)
    whole = (folder / "circle" / "circle-001.jpg").read_bytes()
    (folder / "circle" / "circle-001.jpg").write_bytes(whole[: len(whole) // 3])
    (folder / "square" / "notes.png").write_text("not a picture")
    (folder / "square" / "README.txt").write_text("ignored: not a picture suffix")
    with pytest.raises(DatasetError, match=r"circle-001.jpg is not a readable picture .*--skip-bad-images"):
        load_dataset(folder, FolderOptions(image_size=(16, 16)))
    dataset = load_dataset(folder, FolderOptions(image_size=(16, 16), skip_bad_images=True))
    assert len(dataset.x_train) + len(dataset.x_test) == 14 and dataset.split["skipped"] == 2
    assert any(note.startswith("skipped 2 unreadable files") for note in dataset.notes)


def test_loading_through_keras_keeps_tensorflows_start_up_lines_off_the_console(tmp_path):
    """Keras is imported through import_keras_quietly: TensorFlow's C++ start-up lines go to the debug log, not stderr."""
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env["KERAS_HOME"] = str(tmp_path / "keras-home")
    script = (
        "import logging\n"
        "from edgeship import data\n"
        "data.DOWNLOAD_TIMEOUT_S = 0.01\n"
        "try:\n"
        "    data.load_dataset('fashion_mnist')\n"
        "except data.DatasetError as error:\n"
        "    print('refused:', str(error)[:40])\n"
        "import sys\n"
        "print('keras' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == ["refused: cannot load fashion_mnist: not in the Ke", "True"]
    assert "tensorflow" not in result.stderr.lower() and "cuda" not in result.stderr.lower(), result.stderr
