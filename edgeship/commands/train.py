"""`edgeship train`: fit a zoo model on a dataset, seeded, and write the run folder."""

from __future__ import annotations

import argparse

HELP = "train a zoo model (mlp = the seed exercise, cnn = small edge CNN) and write model.keras + metrics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser, out_default="artifacts/run")


def add_training_arguments(parser: argparse.ArgumentParser, out_default: str) -> None:
    """The options of a training run, shared with `edgeship pipeline`."""
    parser.add_argument("--model", default="mlp", help="architecture: mlp (the seed exercise) or cnn (default: mlp)")
    parser.add_argument("--dataset", default="mnist-sample", help="mnist-sample, mnist, fashion_mnist, or a path (default: mnist-sample)")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs (default: 5)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (default: 32)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for weights, shuffling and calibration sampling (default: 0)")
    parser.add_argument("--out", default=out_default, help=f"run folder to write (default: {out_default})")


def run(args: argparse.Namespace) -> int:
    from edgeship.data import load_dataset
    from edgeship.files import check_writable
    from edgeship.train.trainer import check_training_options

    check_training_options(args.model, args.epochs, args.batch_size)
    check_writable(args.out, folder=True)
    dataset = load_dataset(args.dataset)

    from edgeship.train import train_model

    print(f"training {args.model} on {dataset.name} ({len(dataset.x_train)} images, {args.epochs} epochs, seed {args.seed})")
    result = train_model(args.model, dataset, epochs=args.epochs, seed=args.seed, out=args.out, batch_size=args.batch_size)
    metrics = result.metrics
    print(
        f"test accuracy {metrics['test_accuracy']:.4f}  loss {metrics['test_loss']:.4f}  "
        f"parameters {metrics['parameters']:,}  training {metrics['training_seconds']:.1f} s"
    )
    print(f"wrote {result.model_path} and metrics.json, history.json, curves.png in {result.out}")
    return 0
