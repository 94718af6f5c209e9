"""`edgeship data`: what the classic MNIST exercise looks at first: shapes, label counts, pixel range, sample images."""

from __future__ import annotations

import argparse

HELP = "show a dataset's shapes, label counts and pixel range; optionally save a grid of sample images"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        default="mnist-sample",
        help="mnist-sample (bundled, offline), mnist, fashion_mnist, or a path to an .npz file or a folder of IDX files "
        "(default: mnist-sample)",
    )
    parser.add_argument("--plot", metavar="FILE.png", help="save a grid of the first training images with their labels")
    parser.add_argument("--count", type=int, default=32, help="how many images the --plot grid shows (default: 32)")
    parser.add_argument("--json", metavar="FILE", help="also write the summary as JSON")


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
    dataset = load_dataset(args.dataset)
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
        "",
    ]
    name_width = max(len("class"), *(len(name) for name in summary["class_names"]))
    lines.append(f"{'label':>5}  {'class':<{name_width}}  {'train':>6}  {'test':>6}")
    for label, name in enumerate(summary["class_names"]):
        lines.append(f"{label:>5}  {name:<{name_width}}  {train['class_counts'][label]:>6}  {test['class_counts'][label]:>6}")
    lines.append(f"{'':>5}  {'total':<{name_width}}  {sum(train['class_counts']):>6}  {sum(test['class_counts']):>6}")
    return "\n".join(lines)
