"""`edgeship train`: fit a zoo model on a dataset, seeded, and write the run folder."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "train a zoo model (mlp = the seed exercise, cnn = small edge CNN, mobilenetv2 = RGB pictures) and write model.keras + metrics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser, out_default="artifacts/run")


def add_training_arguments(parser: argparse.ArgumentParser, out_default: str) -> None:
    """The options of a training run, shared with `edgeship pipeline`."""
    from edgeship.commands.data import add_folder_arguments

    parser.add_argument("--model", default="mlp",
                        help="architecture: mlp (the seed exercise), cnn, or mobilenetv2 (alpha 0.35, RGB, from scratch) (default: mlp)")
    parser.add_argument("--dataset", default="mnist-sample",
                        help="mnist-sample, mnist, fashion_mnist, or a path: .npz, IDX folder or image folder (default: mnist-sample)")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs (default: 5)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (default: 32)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for weights, shuffling and calibration sampling (default: 0)")
    parser.add_argument("--out", default=out_default, help=f"run folder to write (default: {out_default})")
    parser.add_argument("--recipe", choices=("mnist", "none"),
                        help="recipe recorded for photos of another size: mnist (digit photos) or none "
                        "(default: mnist for MNIST digits, else none: pictures are resized by --resize)")
    add_folder_arguments(parser, image_size_default="96")


def load_training_dataset(args: argparse.Namespace) -> Any:
    """The dataset named by --dataset, an image folder brought to --image-size (else the architecture's default size)."""
    from edgeship.commands.data import folder_options
    from edgeship.data import DEFAULT_IMAGE_SIZE, is_image_folder, load_dataset
    from edgeship.train.zoo import DEFAULT_IMAGE_SIZES

    side = DEFAULT_IMAGE_SIZES.get(args.model, DEFAULT_IMAGE_SIZE)
    default_size = (side, side) if is_image_folder(args.dataset) else None
    return load_dataset(args.dataset, folder_options(args, image_size=default_size))


def recipe_option(args: argparse.Namespace) -> Any:
    """--recipe as train_model takes it: "auto" when not given, None for none."""
    from edgeship.train.trainer import AUTO

    return AUTO if args.recipe is None else (None if args.recipe == "none" else args.recipe)


def run(args: argparse.Namespace) -> int:
    from edgeship.files import check_writable
    from edgeship.train.trainer import check_training_options, training_input_spec

    check_training_options(args.model, args.epochs, args.batch_size)
    check_writable(args.out, folder=True)
    dataset = load_training_dataset(args)
    for note in dataset.notes:
        print(f"note: {note}")
    training_input_spec(args.model, dataset, recipe_option(args))

    from edgeship.train import train_model

    print(f"training {args.model} on {dataset.name} ({len(dataset.x_train)} images, {args.epochs} epochs, seed {args.seed})")
    result = train_model(args.model, dataset, epochs=args.epochs, seed=args.seed, out=args.out, batch_size=args.batch_size,
                         recipe=recipe_option(args))
    metrics = result.metrics
    print(
        f"test accuracy {metrics['test_accuracy']:.4f}  loss {metrics['test_loss']:.4f}  "
        f"parameters {metrics['parameters']:,}  training {metrics['training_seconds']:.1f} s"
    )
    print(f"wrote {result.model_path} and metrics.json, history.json, curves.png in {result.out}")
    return 0
