"""`edgeship data`: what the classic MNIST exercise looks at first: shapes, label counts, pixel range, sample images."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "show a dataset's shapes, label counts and pixel range; optionally save a grid of sample images"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        default="mnist-sample",
        help="mnist-sample (bundled, offline), mnist, fashion_mnist, or a path to an .npz file, a folder of IDX files "
        "or an image folder DIR/<class>/*.jpg (default: mnist-sample)",
    )
    parser.add_argument("--plot", metavar="FILE.png", help="save a grid of the first training images with their labels")
    parser.add_argument("--count", type=int, default=32, help="how many images the --plot grid shows (default: 32)")
    parser.add_argument("--json", metavar="FILE", help="also write the summary as JSON")
    parser.add_argument("--seed", type=int, default=0, help="seed of an image folder's train/test split (default: 0)")
    add_folder_arguments(parser)


def parse_image_size(text: str) -> tuple[int, int]:
    """'96' -> (96, 96); '96x128' -> (96, 128) as height x width."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        values = [int(part) for part in parts]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 96 or 96x128 (height x width)") from exc
    if len(values) not in (1, 2) or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 96 or 96x128 (height x width)")
    return (values[0], values[-1])


def parse_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number between 0 and 1") from exc
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 1")
    return value


def add_folder_arguments(parser: argparse.ArgumentParser, image_size_default: str = "96") -> None:
    """How an image folder becomes a dataset: picture size, colour, resize rule, split and bad files (shared by data, train, pipeline)."""
    from edgeship.runtime.options import resize_rule

    group = parser.add_argument_group("image folders (DIR/<class>/*.jpg, or DIR/train and DIR/test)")
    group.add_argument("--image-size", type=parse_image_size, metavar="N|HxW",
                       help=f"bring every picture to this size (default: {image_size_default})")
    group.add_argument("--color", choices=("grey", "rgb"), help="picture colour (default: rgb unless every picture is grey)")
    group.add_argument("--resize", type=resize_rule, metavar="METHOD,FIT",
                       help="how pictures of another size are brought to it, recorded for predict: method bilinear, area or "
                       "nearest; fit crop (centre), pad or stretch (default: bilinear,crop)")
    group.add_argument("--test-fraction", type=parse_fraction, default=0.2,
                       help="share of each class held out for testing when there are no train/ and test/ folders (default: 0.2)")
    group.add_argument("--skip-bad-images", action="store_true", help="skip unreadable pictures (counted) instead of stopping at the first")


def folder_options(args: argparse.Namespace, image_size: tuple[int, int] | None = None) -> Any:
    """FolderOptions from the parsed options; `image_size` fills in a missing --image-size (an architecture's default)."""
    from edgeship.data import FolderOptions
    from edgeship.manifest import Resize

    return FolderOptions(
        image_size=args.image_size or image_size, color=args.color, resize=args.resize or Resize(),
        test_fraction=args.test_fraction, seed=args.seed, skip_bad_images=args.skip_bad_images,
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgeship.data import describe, load_dataset
    from edgeship.plots import plot_sample_grid
    from edgeship.errors import UsageError
    from edgeship.files import atomic_write_json, check_writable

    if args.count < 1:
        raise UsageError(f"--count must be at least 1, got {args.count}")
    for output in (args.plot, args.json):
        if output:
            check_writable(output)
    dataset = load_dataset(args.dataset, folder_options(args))
    summary = describe(dataset)
    print(format_summary(summary))
    if args.plot:
        count = min(args.count, len(dataset.x_train))
        title = f"{Path(dataset.name).name}: first {count} training images with their labels"
        plot_sample_grid(dataset.x_train[:count], dataset.y_train[:count], dataset.class_names, args.plot, title)
        print(f"\nsample grid  {args.plot}")
    if args.json:
        path = atomic_write_json(args.json, summary)
        print(f"summary json {path}")
    return 0


def format_summary(summary: dict) -> str:
    """The summary as a short plain-text report with a per-class table."""
    train, test = summary["train"], summary["test"]
    lines = [
        f"dataset  {summary['name']}",
        f"source   {summary['source']}",
        f"train    x {tuple(train['images_shape'])} {train['images_dtype']}   y {tuple(train['labels_shape'])} {train['labels_dtype']}",
        f"test     x {tuple(test['images_shape'])} {test['images_dtype']}   y {tuple(test['labels_shape'])} {test['labels_dtype']}",
        f"pixels   train {train['pixel_min']}..{train['pixel_max']}   test {test['pixel_min']}..{test['pixel_max']}",
        f"classes  {summary['num_classes']}",
    ]
    lines.append(f"colour   {summary['color']}")
    split = summary.get("split") or {}
    if split.get("method") == "stratified":
        lines.append(f"split    stratified, {split['test_fraction']:.0%} of each class for testing, seed {split['seed']}")
    elif split.get("method") == "folders":
        lines.append("split    as given by the train/ and test/ folders")
    lines += [f"note     {note}" for note in summary.get("notes", [])]
    lines.append("")
    name_width = max(len("class"), *(len(name) for name in summary["class_names"]))
    lines.append(f"{'label':>5}  {'class':<{name_width}}  {'train':>6}  {'test':>6}")
    for label, name in enumerate(summary["class_names"]):
        lines.append(f"{label:>5}  {name:<{name_width}}  {train['class_counts'][label]:>6}  {test['class_counts'][label]:>6}")
    lines.append(f"{'':>5}  {'total':<{name_width}}  {sum(train['class_counts']):>6}  {sum(test['class_counts']):>6}")
    return "\n".join(lines)
