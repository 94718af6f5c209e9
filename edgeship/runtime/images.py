"""Pictures and arrays for a model: decode a picture, bring it to the model's size by the recorded rule, say what was done.

This is the one path from a picture file to raw model pixels (uint8 (H, W) or (H, W, 3)). Image
folders for training, calibration and parity, `predict`, the bench's end-to-end row and the device
all call `load_picture`, so the pixels a model sees in parity are the pixels it sees in the field.

Pillow (imported lazily: `pip install 'edgeship[images]'`) does the decoding and resampling: it is
the maintained library every Python image stack builds on, reads JPEG/PNG/BMP/WebP, decodes JPEG at
a reduced scale (`draft`, the DCT scaling of libjpeg) when the model's size is much smaller, and
resamples with antialiasing. What it does, in order:

- refuses files over Pillow's decompression-bomb limit (about 89 megapixels) before decoding them;
- honours the EXIF orientation (a phone photo taken upright is upright);
- converts where the picture survives: 1-bit and 16-bit to 8-bit, palette to RGB, CMYK and YCbCr to
  RGB (Pillow's plain formulas, no colour profile), an opaque alpha channel dropped, RGB to grey
  luminance for grey models (0.299 R + 0.587 G + 0.114 B), grey repeated into 3 channels for RGB
  models; it refuses transparent pixels (no background is guessed) and other modes;
- brings a picture of another size to the model's by the rule recorded in the bundle (fit:
  stretch, centre-crop or pad, keeping the aspect ratio; method: bilinear, area or nearest), or by
  the MNIST recipe for digit photos; with no rule (`--resize none`) it refuses instead.

Arrays (.npy/.npz) are never resized or converted: one of another shape is refused.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.errors import InputError, MissingDependencyError
from edgeship.manifest import InputSpec, Resize

ARRAY_SUFFIXES = (".npy", ".npz")
PICTURE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
COLOUR_MODES = ("P", "PA", "RGB", "RGBA", "CMYK", "YCbCr")
"""Pillow modes whose pixels mean grey levels or colours; LAB, HSV and the like are refused."""
IMAGE_ARRAY_NAMES = ("images", "x", "x_test")
MNIST_SIZE, MNIST_BOX = 28, 20
MNIST_CENTRE = 14.0
"""Where MNIST digits' centre of mass lies, in pixel indices (measured on the bundled sample: 13.99, 14.01)."""
INK_THRESHOLD = 0.35
"""A pixel is ink when it is at least this far from the background towards the darkest ink (after a 3x3 median)."""
MIN_CONTRAST = 24
"""Grey levels between paper and ink below which a picture holds no digit to find."""
DRAFT_OVERSAMPLE = 4
"""The MNIST recipe crops to the ink first, so a JPEG is decoded at no less than 4x the 28x28 target."""


@dataclass(frozen=True)
class PictureRule:
    """What a picture must become: the model's size and channels, and how to get there (resize None: refuse other sizes)."""

    height: int
    width: int
    channels: int = 1
    resize: Resize | None = field(default_factory=Resize)
    recipe: str | None = None
    source: str = "as the bundle records"

    @classmethod
    def from_spec(cls, spec: InputSpec, height: int, width: int, resize_none: bool = False, source: str = "as the bundle records") -> "PictureRule":
        """The rule an input spec records; resize_none (`--resize none`) turns resizing off."""
        if resize_none:
            return cls(height, width, spec.channels, None, None, source)
        return cls(height, width, spec.channels, spec.resize, spec.recipe, source)


@dataclass
class Picture:
    """Raw model pixels of one picture, its size before resizing, and what was done to it."""

    pixels: np.ndarray
    original_size: tuple[int, int]
    conversions: list[str]
    resized: str | None

    def note(self, name: str) -> str | None:
        """One line saying what was done ("photo.jpg: 640×480 → 96×96, centre-crop, bilinear, as the bundle records"), or None."""
        parts = [part for part in (self.resized, ", ".join(self.conversions)) if part]
        return f"{name}: {'; '.join(parts)}" if parts else None


def read_images(paths: list[str | os.PathLike], rule: PictureRule) -> tuple[np.ndarray, list[str], list[str]]:
    """Images stacked as uint8 (N, H, W) for grey or (N, H, W, C), a name for each, and a note for each picture changed."""
    arrays, names, notes = [], [], []
    for path in map(Path, paths):
        if not path.is_file():
            raise InputError(f"image file {path} not found")
        if path.suffix.lower() in ARRAY_SUFFIXES:
            batch = _read_array(path, rule.height, rule.width, rule.channels)
            arrays.append(batch)
            names.extend([str(path)] if len(batch) == 1 else [f"{path}[{i}]" for i in range(len(batch))])
        else:
            picture = load_picture(path, rule)
            arrays.append(picture.pixels[None])
            names.append(str(path))
            note = picture.note(path.name)
            if note:
                notes.append(note)
    if not arrays:
        raise InputError("no images given")
    return np.concatenate(arrays), names, notes


def import_pillow(purpose: str) -> Any:
    """PIL.Image, or the error naming the extra to install."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs Pillow: pip install 'edgeship[images]', or give the images as .npy/.npz arrays"
        ) from exc
    return Image


def load_picture(path: str | os.PathLike, rule: PictureRule) -> Picture:
    """One picture file as the model's raw pixels, by `rule`; InputError naming the file when it cannot be."""
    path = Path(path)
    Image = import_pillow(f"reading {path.name}")
    from PIL import UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as picture:
                decoded, original, conversions = _decode(picture, path.name, rule)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(
            f"{path.name} is too large to decode safely ({exc}); shrink it below {Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels first"
        ) from exc
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"cannot read {path} as an image ({exc}); give a PNG, JPEG, BMP, WebP, .npy or .npz file") from exc
    width, height = original
    if original == (rule.width, rule.height):
        return Picture(np.asarray(decoded), original, conversions, None)
    if rule.resize is None:
        raise InputError(
            f"{path.name} is {width}x{height} pixels; the model takes {rule.width}x{rule.height} images and "
            "--resize none refuses other sizes: resize or crop it yourself, or leave out --resize none"
        )
    if rule.recipe == "mnist":
        pixels = mnist_digit(np.asarray(decoded), path.name)
        return Picture(pixels, original, conversions, f"{width}×{height} → 28×28 by the MNIST recipe, {rule.source}")
    pixels = fit_picture(decoded, rule.height, rule.width, rule.resize)
    return Picture(pixels, original, conversions, f"{width}×{height} → {rule.width}×{rule.height}, {rule.resize.describe()}, {rule.source}")


def _decode(picture: Any, name: str, rule: PictureRule) -> tuple[Any, tuple[int, int], list[str]]:
    """Decode (at reduced JPEG scale where the target is much smaller), orient, and convert to 8-bit grey or RGB.

    Returns the picture as a Pillow image when it already is what the model takes (the common camera
    JPEG: no copy to numpy and back), else as a uint8 array; with its upright size and the conversions made.
    """
    from PIL import ImageOps

    if picture.mode not in GREY_MODES + COLOUR_MODES:
        raise InputError(
            f"{name} is a {picture.mode} image; edgeship reads grey, RGB(A), palette, CMYK and 16-bit images: "
            "convert it to grey or RGB first"
        )
    if rule.channels not in (1, 3):
        raise InputError(f"{name}: pictures can feed grey or RGB models; this model takes {rule.channels} channels: give arrays")
    conversions: list[str] = []
    orientation = picture.getexif().get(0x0112, 1)
    upright_size = picture.size[::-1] if orientation in (5, 6, 7, 8) else picture.size
    if picture.format == "JPEG" and rule.resize is not None and upright_size != (rule.width, rule.height):
        _draft(picture, upright_size, orientation, rule)
    picture.load()
    if orientation != 1:
        picture = ImageOps.exif_transpose(picture)
        conversions.append(f"turned upright by its EXIF orientation ({orientation})")
    mode = picture.mode
    if mode in ("P", "PA"):
        picture = picture.convert("RGBA" if mode == "PA" or "transparency" in picture.info else "RGB")
    elif mode in ("CMYK", "YCbCr"):
        picture = picture.convert("RGB")
        conversions.append(f"{mode} converted to RGB (Pillow's plain formula, no colour profile)")
    mode = picture.mode
    if mode == ("L" if rule.channels == 1 else "RGB"):
        return picture, upright_size, conversions
    array = np.asarray(picture)
    if mode == "1":
        conversions.append("1-bit converted to 8-bit (0 or 255)")
        array = array.astype(np.uint8) * np.uint8(255)
    elif array.dtype != np.uint8:
        array = _to_8_bit(array, name)
        conversions.append("16-bit scaled to 8-bit")
    if array.ndim == 3 and array.shape[2] in (2, 4):
        if (array[..., -1] != 255).any():
            raise InputError(f"{name} has transparent pixels; flatten it onto a background first (edgeship will not guess one)")
        conversions.append("opaque alpha channel dropped")
        array = array[..., :-1]
    if rule.channels == 1:
        array = _to_grey(array, conversions)
    elif array.ndim == 2 or array.shape[2] == 1:
        conversions.append("grey, repeated into 3 channels")
        array = np.repeat(array.reshape(*array.shape[:2], 1), 3, axis=2)
    return np.ascontiguousarray(array), upright_size, conversions


def _draft(picture: Any, upright_size: tuple[int, int], orientation: int, rule: PictureRule) -> None:
    """Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the result still covers what the rule needs of the picture."""
    width, height = upright_size
    if rule.recipe == "mnist":
        side = MNIST_SIZE * DRAFT_OVERSAMPLE
        factor = side / min(width, height)
    elif rule.resize is not None and rule.resize.fit == "crop":
        factor = max(rule.width / width, rule.height / height)
    elif rule.resize is not None and rule.resize.fit == "pad":
        factor = min(rule.width / width, rule.height / height)
    else:
        factor = max(rule.width / width, rule.height / height)
    needed = (max(1, int(np.ceil(width * factor))), max(1, int(np.ceil(height * factor))))
    if orientation in (5, 6, 7, 8):
        needed = needed[::-1]
    mode = "L" if rule.channels == 1 and picture.mode in ("RGB", "L") else None
    picture.draft(mode, needed)


def _to_8_bit(array: np.ndarray, name: str) -> np.ndarray:
    """16-bit (or 32-bit integer) pixels to 8-bit by scaling 0..65535 to 0..255."""
    if array.dtype.kind not in "iu" or array.min() < 0 or array.max() > 65535:
        raise InputError(f"{name} has {array.dtype} pixels; give an 8-bit or 16-bit image")
    return np.rint(array.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)


def _to_grey(array: np.ndarray, conversions: list[str]) -> np.ndarray:
    """RGB to grey: exact when the channels are equal, else ITU-R 601 luminance (as Pillow's "L")."""
    if array.ndim == 2:
        return array
    if array.shape[2] == 1:
        return array[..., 0]
    red, green, blue = (array[..., i] for i in range(3))
    if (red == green).all() and (green == blue).all():
        conversions.append("RGB with equal channels, used as grey")
        return red.copy()
    conversions.append("colour converted to grey luminance (0.299 R + 0.587 G + 0.114 B)")
    luminance = array[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.clip(np.rint(luminance), 0, 255).astype(np.uint8)


def _resample(method: str) -> Any:
    Image = import_pillow("resizing pictures")
    return {"bilinear": Image.Resampling.BILINEAR, "area": Image.Resampling.BOX, "nearest": Image.Resampling.NEAREST}[method]


def fit_picture(array: Any, height: int, width: int, rule: Resize) -> np.ndarray:
    """A uint8 (h, w) or (h, w, 3) picture (array or Pillow image) at (height, width) by `rule`: stretch, centre-crop or pad (black).

    Crop resamples the centred box of the target's aspect ratio straight to the target (one resampling,
    as `PIL.ImageOps.fit` does); pad scales the whole picture to fit inside and centres it.
    """
    Image = import_pillow("resizing pictures")
    source = Image.fromarray(array) if isinstance(array, np.ndarray) else array
    resample = _resample(rule.method)
    source_width, source_height = source.size
    if rule.fit == "stretch":
        return np.asarray(source.resize((width, height), resample))
    if rule.fit == "crop":
        scale = max(width / source_width, height / source_height)
        box_width, box_height = min(source_width, width / scale), min(source_height, height / scale)
        left, top = max(0.0, (source_width - box_width) / 2), max(0.0, (source_height - box_height) / 2)
        return np.asarray(source.resize((width, height), resample, box=(left, top, left + box_width, top + box_height)))
    scale = min(width / source_width, height / source_height)
    inner = (max(1, min(width, round(source_width * scale))), max(1, min(height, round(source_height * scale))))
    canvas = Image.new(source.mode, (width, height))
    canvas.paste(source.resize(inner, resample), ((width - inner[0]) // 2, (height - inner[1]) // 2))
    return np.asarray(canvas)


def mnist_digit(grey: np.ndarray, name: str) -> np.ndarray:
    """A photo of one handwritten digit as an MNIST digit: 28x28 uint8, bright ink on black, as the MNIST authors normalized theirs.

    Steps: invert when the background (the border's median) is light; subtract the background
    and stretch the ink to 0..1; keep pixels at least INK_THRESHOLD of the way to the ink; crop to
    the ink's bounding box (found after a 3x3 median, so lone noise pixels do not widen it); fit it in
    20x20 keeping the aspect ratio (area resampling, which gives the anti-aliased grey levels MNIST
    has); place it in 28x28 with its centre of mass where MNIST digits have theirs.
    """
    Image = import_pillow("the MNIST recipe")
    from PIL import ImageFilter

    values = grey.astype(np.float32)
    border = np.concatenate([values[0], values[-1], values[:, 0], values[:, -1]])
    if np.median(border) > 127:
        values = 255.0 - values
    smoothed = np.asarray(Image.fromarray(np.clip(values, 0, 255).astype(np.uint8)).filter(ImageFilter.MedianFilter(3)), dtype=np.float32)
    background, ink = float(np.median(smoothed)), float(smoothed.max())
    if ink - background < MIN_CONTRAST:
        raise InputError(
            f"{name}: no digit found (ink and background differ by only {ink - background:.0f} grey levels); "
            "give a photo with a dark digit on light paper or a light digit on dark"
        )
    strength = np.clip((values - background) / (ink - background), 0.0, 1.0)
    mask = (smoothed - background) / (ink - background) >= INK_THRESHOLD
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    strength[strength < INK_THRESHOLD] = 0.0
    crop = strength[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
    crop_height, crop_width = crop.shape
    scale = MNIST_BOX / max(crop_height, crop_width)
    size = (max(1, round(crop_width * scale)), max(1, round(crop_height * scale)))
    box = np.asarray(Image.fromarray(crop, mode="F").resize(size, Image.Resampling.BOX), dtype=np.float32)
    box = np.clip(box / max(float(box.max()), 1e-6), 0.0, 1.0)
    total = float(box.sum())
    ys, xs = np.indices(box.shape)
    centre_y, centre_x = float((ys * box).sum() / total), float((xs * box).sum() / total)
    top = int(np.clip(round(MNIST_CENTRE - centre_y), 0, MNIST_SIZE - box.shape[0]))
    left = int(np.clip(round(MNIST_CENTRE - centre_x), 0, MNIST_SIZE - box.shape[1]))
    digit = np.zeros((MNIST_SIZE, MNIST_SIZE), dtype=np.float32)
    digit[top : top + box.shape[0], left : left + box.shape[1]] = box
    return np.rint(digit * 255.0).astype(np.uint8)


def _read_array(path: Path, height: int, width: int, channels: int) -> np.ndarray:
    """A .npy array or one array of a .npz: one image or a batch, returned as a batch with its dtype kept."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"cannot read {path} as a numpy array ({exc}); save the images with numpy.save as a numeric array") from exc
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = list(loaded.keys())
            key = next((k for k in IMAGE_ARRAY_NAMES if k in keys), keys[0] if len(keys) == 1 else None)
            if key is None:
                raise InputError(f"{path} holds {', '.join(keys) or 'no arrays'}; name the images array one of: {', '.join(IMAGE_ARRAY_NAMES)}")
            loaded = loaded[key]
    image_shapes = {(height, width, channels)} | ({(height, width)} if channels == 1 else set())
    if loaded.shape in image_shapes:
        return loaded[None]
    if loaded.shape[1:] in image_shapes:
        return loaded
    raise InputError(
        f"{path} holds an array of shape {loaded.shape}; the model takes ({height}, {width}) images"
        f"{'' if channels == 1 else f' with {channels} channels'}, one or a batch (N, ...); edgeship does not resize arrays, only pictures"
    )
