"""Read images for prediction: PNG/JPEG through Pillow when installed, .npy/.npz arrays always.

Conversions that keep the picture are made and logged as warnings: RGB to grayscale luminance
(exact when the channels are equal), RGBA with an opaque alpha channel, 16-bit to 8-bit.
Everything else is refused with the reason: a size other than the model's (edgeship never resizes
silently), transparent pixels, files that are not images.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from edgeship.errors import InputError, MissingDependencyError

log = logging.getLogger(__name__)

ARRAY_SUFFIXES = (".npy", ".npz")
MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
"""Pillow modes whose pixels mean grey levels or RGB(A); CMYK, YCbCr, LAB, HSV and the like are refused."""
IMAGE_ARRAY_NAMES = ("images", "x", "x_test")


def read_images(paths: list[str | os.PathLike], height: int, width: int, channels: int = 1) -> tuple[np.ndarray, list[str]]:
    """Images stacked as uint8 (N, H, W) for grayscale or (N, H, W, C), and a name for each image."""
    arrays, names = [], []
    for path in map(Path, paths):
        if not path.is_file():
            raise InputError(f"image file {path} not found")
        if path.suffix.lower() in ARRAY_SUFFIXES:
            batch = _read_array(path, height, width, channels)
            arrays.append(batch)
            names.extend([str(path)] if len(batch) == 1 else [f"{path}[{i}]" for i in range(len(batch))])
        else:
            arrays.append(read_picture(path, height, width, channels)[None])
            names.append(str(path))
    if not arrays:
        raise InputError("no images given")
    return np.concatenate(arrays), names


def read_picture(path: Path, height: int, width: int, channels: int = 1) -> np.ndarray:
    """One PNG/JPEG (anything Pillow reads) as uint8 (H, W) or (H, W, C), converted where that is safe."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:
        raise MissingDependencyError(
            f"reading {path.name} needs Pillow: pip install 'edgeship[images]', or give the images as .npy/.npz arrays"
        ) from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as picture:
                _check_size(picture.size, path.name, height, width)
                if picture.mode not in MODES:
                    raise InputError(
                        f"{path.name} is a {picture.mode} image; edgeship reads grayscale, RGB(A), palette and 16-bit "
                        "images: convert it to grayscale or RGB first"
                    )
                picture.load()
                mode, pixels = picture.mode, picture
                if mode in ("P", "PA"):
                    pixels = picture.convert("RGBA" if mode == "PA" or "transparency" in picture.info else "RGB")
                    mode = pixels.mode
                array = np.asarray(pixels)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"{path.name} is far larger than the model's {width}x{height} images ({exc}); give {width}x{height} images") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot read {path} as an image ({exc}); give a PNG, JPEG, .npy or .npz file") from exc
    return _to_model_pixels(array, mode, path.name, height, width, channels)


def _check_size(size: tuple[int, int], name: str, height: int, width: int) -> None:
    """Refuse a picture of another size before decoding it: edgeship never resizes silently."""
    if size != (width, height):
        raise InputError(
            f"{name} is {size[0]}x{size[1]} pixels; the model takes {width}x{height} images "
            "and edgeship does not resize silently: resize or crop it yourself"
        )


def _to_model_pixels(array: np.ndarray, mode: str, name: str, height: int, width: int, channels: int) -> np.ndarray:
    """Check the size, then bring depth, alpha and colour to what the model takes."""
    _check_size((array.shape[1], array.shape[0]), name, height, width)
    if mode == "1":
        log.warning("%s is a 1-bit image; converted to 8-bit (0 or 255)", name)
        array = array.astype(np.uint8) * np.uint8(255)
    elif array.dtype != np.uint8:
        array = _to_8_bit(array, name)
    if array.ndim == 3 and array.shape[2] in (2, 4):
        alpha = array[..., -1]
        if (alpha != 255).any():
            raise InputError(f"{name} has transparent pixels; flatten it onto a background first (edgeship will not guess one)")
        log.warning("%s has an opaque alpha channel; dropped it", name)
        array = array[..., :-1]
    if channels == 1:
        return _to_grayscale(array, name)
    if array.ndim == 2:
        log.warning("%s is grayscale; repeated it into %d channels", name, channels)
        return np.repeat(array[..., None], channels, axis=2)
    if array.shape[2] != channels:
        raise InputError(f"{name} has {array.shape[2]} channels; the model takes {channels}")
    return array


def _to_8_bit(array: np.ndarray, name: str) -> np.ndarray:
    """16-bit (or 32-bit integer) pixels to 8-bit by scaling 0..65535 to 0..255."""
    if array.dtype.kind not in "iu" or array.min() < 0 or array.max() > 65535:
        raise InputError(f"{name} has {array.dtype} pixels; give an 8-bit or 16-bit image")
    log.warning("%s has 16-bit pixels; scaled them to 8-bit", name)
    return np.rint(array.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)


def _to_grayscale(array: np.ndarray, name: str) -> np.ndarray:
    """RGB to grayscale: exact when the channels are equal, else ITU-R 601 luminance (as Pillow's "L")."""
    if array.ndim == 2:
        return array
    if array.shape[2] == 1:
        return array[..., 0]
    red, green, blue = (array[..., i] for i in range(3))
    if (red == green).all() and (green == blue).all():
        log.warning("%s is RGB with equal channels; used it as grayscale", name)
        return red.copy()
    log.warning("%s is a colour image; converted it to grayscale luminance (0.299 R + 0.587 G + 0.114 B)", name)
    luminance = array[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.clip(np.rint(luminance), 0, 255).astype(np.uint8)


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
        f"{'' if channels == 1 else f' with {channels} channels'}, one or a batch (N, ...); edgeship does not resize silently"
    )
