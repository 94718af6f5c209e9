"""Image reading: safe conversions are made and logged, everything else is refused with the reason."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from edgeship.errors import InputError
from edgeship.runtime.images import read_images


@pytest.fixture
def digit(test_images) -> np.ndarray:
    return test_images[3]


def test_grayscale_png_jpeg_npy_npz(tmp_path, digit, test_images):
    Image.fromarray(digit).save(tmp_path / "d.png")
    Image.fromarray(digit).save(tmp_path / "d.jpg", quality=100)
    np.save(tmp_path / "one.npy", digit)
    np.savez(tmp_path / "many.npz", images=test_images[:4])
    images, names = read_images([tmp_path / n for n in ("d.png", "d.jpg", "one.npy", "many.npz")], 28, 28)
    assert images.shape == (7, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[0], digit)
    assert np.abs(images[1].astype(int) - digit).max() < 40
    np.testing.assert_array_equal(images[3:], test_images[:4])
    assert names[0].endswith("d.png") and names[-1].endswith("many.npz[3]")


def test_rgb_rgba_and_16_bit_are_converted_with_a_warning(tmp_path, digit, caplog):
    Image.fromarray(np.stack([digit] * 3, axis=-1)).save(tmp_path / "gray_rgb.png")
    colour = np.stack([digit, digit // 2, np.zeros_like(digit)], axis=-1)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    Image.fromarray(np.dstack([digit] * 3 + [np.full_like(digit, 255)])).save(tmp_path / "opaque.png")
    Image.fromarray(digit.astype(np.uint16) * 257).save(tmp_path / "deep.png")
    with caplog.at_level(logging.WARNING):
        images, _ = read_images([tmp_path / n for n in ("gray_rgb.png", "colour.png", "opaque.png", "deep.png")], 28, 28)
    np.testing.assert_array_equal(images[0], digit)
    expected = np.clip(np.rint(digit * 0.299 + (digit // 2) * 0.587), 0, 255)
    assert np.abs(images[1].astype(int) - expected).max() <= 1
    np.testing.assert_array_equal(images[2], digit)
    np.testing.assert_array_equal(images[3], digit)
    for words in ("equal channels", "luminance", "opaque alpha", "16-bit"):
        assert words in caplog.text


def test_refusals(tmp_path, digit):
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "big.png")
    Image.fromarray(np.zeros((28, 27), np.uint8)).save(tmp_path / "narrow.png")
    alpha = np.full_like(digit, 255)
    alpha[0, 0] = 10
    Image.fromarray(np.dstack([digit] * 3 + [alpha])).save(tmp_path / "transparent.png")
    (tmp_path / "text.png").write_text("not an image")
    np.save(tmp_path / "wrong.npy", np.zeros((5, 32, 32), np.uint8))
    np.savez(tmp_path / "keys.npz", a=np.zeros((28, 28)), b=np.zeros((28, 28)))
    cases = {
        "big.png": "32x32 pixels; the model takes 28x28.*does not resize silently",
        "narrow.png": "27x28 pixels",
        "transparent.png": "transparent pixels",
        "text.png": "cannot read .*text.png as an image",
        "wrong.npy": r"shape \(5, 32, 32\)",
        "keys.npz": "holds a, b",
        "absent.png": "not found",
    }
    for name, message in cases.items():
        with pytest.raises(InputError, match=message):
            read_images([tmp_path / name], 28, 28)
