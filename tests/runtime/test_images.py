"""Pictures to model pixels: safe conversions are made and noted, pictures of another size are brought to the model's by
the recorded rule (stretch, centre-crop, pad; bilinear, area, nearest) or the MNIST recipe, everything else is refused."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgeship.errors import InputError
from edgeship.manifest import Resize
from edgeship.runtime.images import PictureRule, fit_picture, load_picture, read_images

GREY_28 = PictureRule(28, 28)


@pytest.fixture
def digit(test_images) -> np.ndarray:
    return test_images[3]


def halves(height: int, width: int) -> np.ndarray:
    """An RGB picture: left half red, right half blue, a green band across the middle third of the rows."""
    picture = np.zeros((height, width, 3), np.uint8)
    picture[:, : width // 2, 0] = 255
    picture[:, width // 2 :, 2] = 255
    picture[height // 3 : 2 * height // 3, :, 1] = 255
    return picture


def test_grayscale_png_jpeg_npy_npz(tmp_path, digit, test_images):
    Image.fromarray(digit).save(tmp_path / "d.png")
    Image.fromarray(digit).save(tmp_path / "d.jpg", quality=100)
    np.save(tmp_path / "one.npy", digit)
    np.savez(tmp_path / "many.npz", images=test_images[:4])
    images, names, notes = read_images([tmp_path / n for n in ("d.png", "d.jpg", "one.npy", "many.npz")], GREY_28)
    assert images.shape == (7, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[0], digit)
    assert np.abs(images[1].astype(int) - digit).max() < 40
    np.testing.assert_array_equal(images[3:], test_images[:4])
    assert names[0].endswith("d.png") and names[-1].endswith("many.npz[3]")
    assert notes == []


def test_conversions_that_keep_the_picture_are_noted(tmp_path, digit):
    Image.fromarray(np.stack([digit] * 3, axis=-1)).save(tmp_path / "gray_rgb.png")
    colour = np.stack([digit, digit // 2, np.zeros_like(digit)], axis=-1)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    Image.fromarray(np.dstack([digit] * 3 + [np.full_like(digit, 255)])).save(tmp_path / "opaque.png")
    Image.fromarray(digit.astype(np.uint16) * 257).save(tmp_path / "deep.png")
    images, _, notes = read_images([tmp_path / n for n in ("gray_rgb.png", "colour.png", "opaque.png", "deep.png")], GREY_28)
    np.testing.assert_array_equal(images[0], digit)
    expected = np.clip(np.rint(digit * 0.299 + (digit // 2) * 0.587), 0, 255)
    assert np.abs(images[1].astype(int) - expected).max() <= 1
    np.testing.assert_array_equal(images[2], digit)
    np.testing.assert_array_equal(images[3], digit)
    assert [note.split(":")[0] for note in notes] == ["gray_rgb.png", "colour.png", "opaque.png", "deep.png"]
    for note, words in zip(notes, ("equal channels", "grey luminance", "opaque alpha", "16-bit scaled to 8-bit")):
        assert words in note


def test_refusals(tmp_path, digit):
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "big.png")
    alpha = np.full_like(digit, 255)
    alpha[0, 0] = 10
    Image.fromarray(np.dstack([digit] * 3 + [alpha])).save(tmp_path / "transparent.png")
    (tmp_path / "text.png").write_text("not an image")
    np.save(tmp_path / "wrong.npy", np.zeros((5, 32, 32), np.uint8))
    np.savez(tmp_path / "keys.npz", a=np.zeros((28, 28)), b=np.zeros((28, 28)))
    no_resizing = PictureRule(28, 28, 1, None)
    cases = {
        "big.png": (no_resizing, "32x32 pixels; the model takes 28x28.*--resize none refuses"),
        "transparent.png": (GREY_28, "transparent pixels"),
        "text.png": (GREY_28, "cannot read .*text.png as an image"),
        "wrong.npy": (GREY_28, r"shape \(5, 32, 32\).*does not resize arrays"),
        "keys.npz": (GREY_28, "holds a, b"),
        "absent.png": (GREY_28, "not found"),
    }
    for name, (rule, message) in cases.items():
        with pytest.raises(InputError, match=message):
            read_images([tmp_path / name], rule)


def test_arrays_of_another_size_are_refused_even_with_a_resize_rule(tmp_path):
    np.save(tmp_path / "photo.npy", np.zeros((480, 640, 3), np.uint8))
    with pytest.raises(InputError, match="does not resize arrays"):
        read_images([tmp_path / "photo.npy"], PictureRule(96, 96, 3, Resize()))


def test_crop_pad_and_stretch_keep_or_drop_the_aspect_ratio():
    wide = halves(100, 200)
    cropped = fit_picture(wide, 50, 50, Resize("nearest", "crop"))
    padded = fit_picture(wide, 50, 50, Resize("nearest", "pad"))
    stretched = fit_picture(wide, 50, 50, Resize("nearest", "stretch"))
    assert cropped.shape == padded.shape == stretched.shape == (50, 50, 3)
    # crop keeps the centre 100x100: red on the left half, blue on the right, green band in the middle rows
    assert (cropped[:, :25, 0] == 255).all() and (cropped[:, 25:, 2] == 255).all()
    assert (cropped[20:30, :, 1] == 255).all() and (cropped[:15, :, 1] == 0).all()
    # pad keeps the whole picture at 50x25 in the middle rows and black above and below
    assert (padded[:12] == 0).all() and (padded[38:] == 0).all()
    assert (padded[13:37, :25, 0] == 255).all() and (padded[13:37, 25:, 2] == 255).all()
    # stretch squeezes the whole width in: both halves, the band in the middle third
    assert (stretched[:, :25, 0] == 255).all() and (stretched[:, 25:, 2] == 255).all()
    assert (stretched[20:30, :, 1] == 255).all()


def test_the_resampling_methods_differ_as_named():
    checker = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    nearest = fit_picture(checker, 16, 16, Resize("nearest", "stretch"))
    area = fit_picture(checker, 16, 16, Resize("area", "stretch"))
    bilinear = fit_picture(checker, 16, 16, Resize("bilinear", "stretch"))
    assert set(np.unique(nearest)) <= {0, 255}
    assert np.abs(area.astype(int) - 128).max() <= 1  # box averaging of a fine checkerboard: mid-grey
    assert 100 < bilinear.mean() < 156 and not np.array_equal(bilinear, area)


def test_a_photo_is_brought_to_size_as_recorded_and_says_what_was_done(tmp_path):
    Image.fromarray(halves(480, 640)).save(tmp_path / "photo.jpg", quality=95)
    picture = load_picture(tmp_path / "photo.jpg", PictureRule(96, 96, 3, Resize()))
    assert picture.pixels.shape == (96, 96, 3) and picture.pixels.dtype == np.uint8
    assert picture.note("photo.jpg") == "photo.jpg: 640×480 → 96×96, centre-crop, bilinear, as the bundle records"
    # JPEG's reduced-scale decoding changes little: compare with the full decode resized the same way
    full = fit_picture(np.asarray(Image.open(tmp_path / "photo.jpg").convert("RGB")), 96, 96, Resize())
    assert np.abs(picture.pixels.astype(int) - full).mean() < 4


def test_exif_orientation_is_honoured(tmp_path):
    upright = halves(60, 40)
    stored = np.rot90(upright, k=1)  # as a camera held upright stores it: turned, with orientation 6 (rotate 270 to view)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(stored)).save(tmp_path / "turned.png", exif=exif)
    picture = load_picture(tmp_path / "turned.png", PictureRule(60, 40, 3, Resize()))
    np.testing.assert_array_equal(picture.pixels, upright)
    assert "EXIF orientation (6)" in picture.note("turned.png")


def test_sixteen_bit_cmyk_and_grey_pictures_feed_an_rgb_model(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 48).astype(np.uint16), (32, 1))
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    Image.fromarray(halves(32, 48)).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    Image.fromarray((ramp >> 8).astype(np.uint8)).save(tmp_path / "grey.png")
    rule = PictureRule(32, 48, 3, Resize())
    images, _, notes = read_images([tmp_path / "deep.png", tmp_path / "cmyk.jpg", tmp_path / "grey.png"], rule)
    assert images.shape == (3, 32, 48, 3)
    np.testing.assert_array_equal(images[0][..., 0], images[0][..., 2])
    assert abs(int(images[0].max()) - 255) <= 1 and images[0].min() == 0
    assert images[1][16, 5, 0] > 200 and images[1][16, 40, 2] > 200
    assert "16-bit scaled to 8-bit" in notes[0] and "grey, repeated into 3 channels" in notes[0]
    assert "CMYK converted to RGB" in notes[1]
    assert "grey, repeated into 3 channels" in notes[2]


def test_a_truncated_jpeg_and_a_non_image_name_the_file(tmp_path):
    Image.fromarray(halves(200, 300)).save(tmp_path / "whole.jpg")
    whole = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "notes.png").write_text("a shopping list")
    for name in ("cut.jpg", "notes.png"):
        with pytest.raises(InputError, match=f"cannot read .*{name} as an image"):
            load_picture(tmp_path / name, PictureRule(96, 96, 3, Resize()))


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, bomb_png):
    (tmp_path / "bomb.png").write_bytes(bomb_png)
    with pytest.raises(InputError, match="bomb.png is too large to decode safely.*megapixels"):
        load_picture(tmp_path / "bomb.png", PictureRule(96, 96, 3, Resize()))


def test_the_mnist_recipe_centres_a_dark_digit_on_light_paper(tmp_path, digit):
    big = np.asarray(Image.fromarray(digit).resize((90, 90), Image.Resampling.BILINEAR))
    paper = np.full((160, 220), 210, np.uint8)
    paper[10:100, 120:210] = (210 - big.astype(int) * 170 // 255).astype(np.uint8)
    Image.fromarray(paper).save(tmp_path / "photo.png")
    picture = load_picture(tmp_path / "photo.png", PictureRule(28, 28, 1, Resize(), "mnist"))
    assert picture.note("photo.png") == "photo.png: 220×160 → 28×28 by the MNIST recipe, as the bundle records"
    pixels = picture.pixels
    assert pixels.shape == (28, 28) and pixels.max() == 255 and pixels[0].max() == 0  # bright ink on black, as MNIST
    ys, xs = np.indices(pixels.shape)
    mass = pixels.astype(float)
    assert abs((ys * mass).sum() / mass.sum() - 14) < 1 and abs((xs * mass).sum() / mass.sum() - 14) < 1
    rows, columns = np.flatnonzero(pixels.any(axis=1)), np.flatnonzero(pixels.any(axis=0))
    assert max(rows[-1] - rows[0] + 1, columns[-1] - columns[0] + 1) == 20
    # the same digit, as MNIST has it
    original = (digit > 64).astype(float)
    assert np.corrcoef((pixels > 64).ravel(), original.ravel())[0, 1] > 0.6
