"""Bad images and arrays through `python -m edgeship.runtime predict`, and odd dataset arrays through `edgeship data`.

Conversions that keep the picture (equal RGB channels, opaque alpha, 16-bit, palette, CMYK) happen
with a line on stderr that says so and give the same answer as the 8-bit grey image; everything else
is refused with one line. Pictures of another size are brought to the model's by the rule the bundle
records (here the MNIST recipe), or refused with --resize none; arrays are never resized.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from edgeship.data import load_dataset
from edgeship.errors import DatasetError, InputError
from edgeship.runtime import Classifier


@pytest.fixture(scope="session")
def digit(test_images) -> np.ndarray:
    """A real test digit the model is sure of, uint8 (28, 28)."""
    return test_images[0]


def predicted_label(result) -> int:
    return json.loads(result.stdout)["predictions"][0]["index"]


def save_picture(path, array: np.ndarray, mode: str | None = None):
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


@pytest.fixture
def grey_label(cli, bundle_path, digit, tmp_path) -> int:
    result = cli("runtime", "predict", bundle_path, save_picture(tmp_path / "grey.png", digit), "--json")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return predicted_label(result)


@pytest.mark.parametrize("height, width", [(32, 32), (28, 27), (27, 28), (1, 1), (280, 280)])
def test_pictures_of_another_size_are_refused_with_resize_none(cli, refused, bundle_path, tmp_path, height, width):
    path = save_picture(tmp_path / "wrong.png", np.zeros((height, width), np.uint8))
    refused(cli("runtime", "predict", bundle_path, path, "--resize", "none"), "runtime", f"is {width}x{height} pixels",
            "28x28", "--resize none")


def test_a_blank_picture_of_another_size_has_no_digit_to_find(cli, refused, bundle_path, tmp_path):
    path = save_picture(tmp_path / "blank.png", np.full((50, 40), 200, np.uint8))
    refused(cli("runtime", "predict", bundle_path, path), "runtime", "blank.png", "no digit found")


def test_a_bundle_takes_no_other_resize_rule(cli, refused, bundle_path, digit, tmp_path):
    path = save_picture(tmp_path / "digit.png", digit)
    refused(cli("runtime", "predict", bundle_path, path, "--resize", "bilinear,pad"), "runtime", "--resize takes only 'none'")


@pytest.mark.parametrize(
    "name, make, warning",
    [
        ("rgb-equal.png", lambda d: Image.fromarray(np.stack([d] * 3, axis=-1)), "RGB with equal channels"),
        ("rgba-opaque.png", lambda d: Image.fromarray(np.dstack([d, d, d, np.full_like(d, 255)])), "opaque alpha"),
        ("grey-alpha.png", lambda d: Image.fromarray(np.dstack([d, np.full_like(d, 255)])), "opaque alpha"),
        ("palette.png", lambda d: Image.fromarray(d).convert("P"), "equal channels"),
        ("sixteen-bit.png", lambda d: Image.fromarray(d.astype(np.uint16) * 257), "16-bit scaled to 8-bit"),
        ("cmyk.tiff", lambda d: Image.fromarray(d).convert("CMYK"), "CMYK converted to RGB"),
        ("ycbcr.tiff", lambda d: Image.fromarray(np.stack([d] * 3, axis=-1)).convert("YCbCr"), "YCbCr converted to RGB"),
    ],
)
def test_safe_conversions_say_so_and_keep_the_answer(cli, bundle_path, digit, tmp_path, grey_label, name, make, warning):
    path = tmp_path / name
    make(digit).save(path)
    result = cli("runtime", "predict", bundle_path, path, "--json")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{name}: ") and warning in lines[0], result.stderr
    assert predicted_label(result) == grey_label


def test_a_colour_picture_becomes_luminance_and_says_so(cli, bundle_path, digit, tmp_path):
    colour = np.dstack([digit, digit // 2, 255 - digit])
    result = cli("runtime", "predict", bundle_path, save_picture(tmp_path / "colour.png", colour), "--json")
    assert result.returncode == 0 and "colour converted to grey luminance" in result.stderr
    luminance = np.rint(colour.astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.uint8)
    with Classifier.load(bundle_path) as classifier:
        assert predicted_label(result) == int(classifier.predict(luminance)[0])


@pytest.mark.parametrize(
    "name, make, words",
    [
        ("transparent.png", lambda d: Image.fromarray(np.dstack([d, d, d, np.full_like(d, 100)])), ("transparent pixels", "flatten")),
        ("lab.tiff", lambda d: Image.new("LAB", d.shape), ("LAB image", "convert it")),
        ("float.tiff", lambda d: Image.fromarray(d.astype(np.float32), mode="F"), ("float32 pixels", "8-bit or 16-bit")),
    ],
)
def test_ambiguous_pictures_are_refused(cli, refused, bundle_path, digit, tmp_path, name, make, words):
    path = tmp_path / name
    make(digit).save(path)
    refused(cli("runtime", "predict", bundle_path, path), "runtime", name, *words)


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("notes.txt", b"hello", ("cannot read", "as an image")),
        ("fake.png", b"\x89PNG\r\n\x1a\n but nothing more", ("cannot read", "as an image")),
        ("empty.png", b"", ("cannot read",)),
        ("binary.jpg", bytes(range(256)) * 8, ("cannot read",)),
    ],
)
def test_files_that_are_not_images(cli, refused, bundle_path, tmp_path, name, content, words):
    (tmp_path / name).write_bytes(content)
    refused(cli("runtime", "predict", bundle_path, tmp_path / name), "runtime", name, *words, "PNG, JPEG, BMP, WebP, .npy or .npz")


def test_a_truncated_png(cli, refused, bundle_path, digit, tmp_path):
    whole = save_picture(tmp_path / "whole.png", digit).read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    refused(cli("runtime", "predict", bundle_path, tmp_path / "cut.png"), "runtime", "cut.png", "truncated")


def test_a_decompression_bomb_is_refused_before_it_is_decoded(cli, refused, bundle_path, tmp_path):
    Image.new("1", (20_000, 20_000)).save(tmp_path / "bomb.png")
    refused(cli("runtime", "predict", bundle_path, tmp_path / "bomb.png", timeout=60), "runtime", "bomb.png",
            "too large to decode safely", "megapixels")


@pytest.mark.parametrize(
    "array, words",
    [
        (np.full((28, 28), np.nan, np.float32), ("nan or infinite",)),
        (np.full((2, 28, 28), np.inf, np.float64), ("nan or infinite",)),
        (np.full((28, 28), -np.inf, np.float16), ("nan or infinite",)),
        (np.full((28, 28), 1000.0, np.float32), ("span [1000, 1000]", "[0, 255]")),
        (np.full((28, 28), -5, np.int16), ("span [-5, -5]", "raw pixels")),
        (np.full((28, 28), 10**12, np.int64), ("far outside",)),
        (np.zeros((0, 28, 28), np.uint8), ("the batch is empty",)),
        (np.zeros((1_000_000, 0, 28), np.uint8), ("shape (1000000, 0, 28)", "does not resize")),
        (np.zeros((32, 32), np.uint8), ("shape (32, 32)", "does not resize")),
        (np.zeros((28, 28, 3), np.uint8), ("shape (28, 28, 3)",)),
        (np.zeros((28, 28), bool), ("must be numbers",)),
        (np.zeros((28, 28), np.complex64), ("must be numbers",)),
        (np.full((28, 28), "7"), ("must be numbers",)),
    ],
    ids=["nan", "inf", "neg-inf-fp16", "too-big", "negative", "int64-huge", "empty", "million-zero-size", "32x32",
         "rgb-array", "bool", "complex", "text"],
)
def test_arrays_with_bad_values_types_or_shapes(cli, refused, bundle_path, tmp_path, array, words):
    np.save(tmp_path / "images.npy", array)
    refused(cli("runtime", "predict", bundle_path, tmp_path / "images.npy"), "runtime", *words)
    with Classifier.load(bundle_path) as classifier, pytest.raises(InputError):
        classifier.predict(array)


def test_arrays_numpy_cannot_load_safely(cli, refused, bundle_path, tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    refused(cli("runtime", "predict", bundle_path, tmp_path / "objects.npy"), "runtime", "objects.npy", "numpy.save")
    np.savez(tmp_path / "two.npz", first=np.zeros((28, 28)), second=np.zeros((28, 28)))
    refused(cli("runtime", "predict", bundle_path, tmp_path / "two.npz"), "runtime", "holds first, second", "images")


def test_int64_and_float_raw_pixels_give_the_uint8_answer(cli, bundle_path, test_images, tmp_path):
    batch = test_images[:50]
    with Classifier.load(bundle_path) as classifier:
        expected = classifier.predict(batch)
        for dtype in (np.int64, np.int32, np.uint16, np.float32, np.float64):
            assert np.array_equal(classifier.predict(batch.astype(dtype)), expected), dtype
    np.save(tmp_path / "int64.npy", batch.astype(np.int64))
    result = cli("runtime", "predict", bundle_path, tmp_path / "int64.npy", "--json")
    assert result.returncode == 0 and result.stderr == ""
    assert [p["index"] for p in json.loads(result.stdout)["predictions"]] == expected.tolist()


def test_images_already_divided_by_255_are_flagged(cli, bundle_path, test_images, tmp_path):
    np.save(tmp_path / "scaled.npy", test_images[:3].astype(np.float32) / 255.0)
    result = cli("runtime", "predict", bundle_path, tmp_path / "scaled.npy")
    assert result.returncode == 0 and "already divided by 255" in result.stderr


@pytest.fixture(scope="session")
def sample_arrays() -> dict[str, np.ndarray]:
    """The bundled sample's four arrays as Keras' mnist.npz lays them out."""
    from edgeship.data import SAMPLE_FILE

    with np.load(SAMPLE_FILE) as sample:
        return {key: sample[key] for key in ("x_train", "y_train", "x_test", "y_test")}


@pytest.mark.parametrize(
    "changes",
    [
        {"x_train": np.int64, "x_test": np.int64},
        {"y_train": np.uint8, "y_test": np.uint8},
        {"y_train": np.int16, "x_test": np.uint16},
    ],
    ids=["int64-images", "uint8-labels", "int16-labels-uint16-images"],
)
def test_dataset_arrays_of_other_integer_types_are_converted(cli, sample_arrays, tmp_path, changes):
    arrays = {key: value.astype(changes[key]) if key in changes else value for key, value in sample_arrays.items()}
    np.savez(tmp_path / "data.npz", **arrays)
    dataset = load_dataset(tmp_path / "data.npz")
    assert dataset.x_train.dtype == np.uint8 and dataset.y_train.dtype == np.int64
    assert np.array_equal(dataset.x_test, sample_arrays["x_test"]) and np.array_equal(dataset.y_train, sample_arrays["y_train"])
    result = cli("edgeship", "data", "--dataset", tmp_path / "data.npz")
    assert result.returncode == 0 and "train    x (4000, 28, 28) uint8   y (4000,) int64" in result.stdout


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("x_train", lambda a: a.astype(np.int64) * 300, ("x_train has values outside 0..255",)),
        ("x_train", lambda a: a / 255.0, ("x_train is float64 in [0, 1]", "do not pre-scale")),
        ("y_train", lambda a: a.astype(np.float32), ("y_train is float32", "integer class labels")),
        ("y_train", lambda a: a.astype(np.int64) + 2**40, ("labels go up to", "renumber")),
        ("y_test", lambda a: a.astype(np.int64) - 1, ("negative labels",)),
        ("y_test", lambda a: a[:-1], ("1000 images but y_test has 999 labels",)),
        ("x_test", lambda a: a[:0], ("x_test holds no images",)),
        ("x_train", lambda a: np.stack([a] * 4, axis=-1), ("(4000, 28, 28, 4)", "RGB images (N, height, width, 3)")),
    ],
    ids=["int64-out-of-range", "pre-scaled-floats", "float-labels", "label-ids", "negative-labels", "length-mismatch",
         "empty-split", "four-channels"],
)
def test_dataset_arrays_that_cannot_be_pixels_or_labels(cli, refused, sample_arrays, tmp_path, key, value, words):
    arrays = {**sample_arrays, key: value(sample_arrays[key])}
    if key == "x_test" and not len(arrays[key]):
        arrays["y_test"] = arrays["y_test"][:0]
    np.savez(tmp_path / "data.npz", **arrays)
    refused(cli("edgeship", "data", "--dataset", tmp_path / "data.npz"), "edgeship", *words)
    with pytest.raises(DatasetError):
        load_dataset(tmp_path / "data.npz")
