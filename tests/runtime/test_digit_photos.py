"""Photos of handwritten digits through the MNIST recipe the digit bundle records: classified as the bare 28x28 digits are.

The photos are synthesised from the sample's real test digits as a phone would see them: dark ink on
light, noisy paper, a larger canvas, off-centre, scaled up and slightly blurred, saved as JPEG or PNG.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageFilter

from edgeship.manifest import load_manifest
from edgeship.runtime import Classifier
from edgeship.runtime.images import PictureRule, read_images
from edgeship.runtime.preprocess import image_geometry

MAX_ACCURACY_LOSS_PP = 3.0


def digit_photo(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """One MNIST digit as a photo: 2.5-4.5x larger, dark ink on light grey paper, off-centre on a larger canvas, noise, blur."""
    side = int(round(28 * rng.uniform(2.5, 4.5)))
    ink_strength = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BILINEAR), dtype=np.float32) / 255
    height, width = int(rng.integers(side + 10, side + 80)), int(rng.integers(side + 10, side + 100))
    paper, ink = rng.uniform(170, 235), rng.uniform(15, 80)
    canvas = np.zeros((height, width), np.float32)
    top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    canvas[top : top + side, left : left + side] = ink_strength
    photo = paper - canvas * (paper - ink) + rng.normal(0, 6, canvas.shape)
    return Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.0))


@pytest.fixture(scope="module")
def digit_photos(tmp_path_factory, test_images):
    folder = tmp_path_factory.mktemp("digit-photos")
    rng = np.random.default_rng(0)
    paths = []
    for index, digit in enumerate(test_images):
        path = folder / f"{index:04d}.{'jpg' if index % 2 else 'png'}"
        digit_photo(digit, rng).save(path, **({"quality": 90} if index % 2 else {}))
        paths.append(path)
    return paths


def test_digit_photos_are_classified_as_the_bare_digits_are(bundle_path, digit_photos, test_images, sample_dataset):
    manifest = load_manifest(bundle_path)
    assert manifest.input.recipe == "mnist"
    height, width, _ = image_geometry(manifest.input)
    photos, _, notes = read_images(digit_photos, PictureRule.from_spec(manifest.input, height, width))
    assert photos.shape == test_images.shape and len(notes) == len(digit_photos)
    assert all("→ 28×28 by the MNIST recipe, as the bundle records" in note for note in notes)
    labels = sample_dataset.y_test
    with Classifier.load(bundle_path, artifact="tflite-fp32") as classifier:
        bare_accuracy = float((classifier.predict(test_images) == labels).mean())
        photo_accuracy = float((classifier.predict(photos) == labels).mean())
    assert bare_accuracy > 0.85
    assert photo_accuracy >= bare_accuracy - MAX_ACCURACY_LOSS_PP / 100, (photo_accuracy, bare_accuracy)


def test_predict_says_it_used_the_recipe(bundle_path, digit_photos):
    result = subprocess.run(
        [sys.executable, "-m", "edgeship.runtime", "predict", str(bundle_path), str(digit_photos[1])],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    size = "×".join(map(str, Image.open(digit_photos[1]).size))
    assert result.stderr.strip() == f"0001.jpg: {size} → 28×28 by the MNIST recipe, as the bundle records"
