"""`python -m edgeship.runtime predict|bench|selftest|backends`: the device's command line, with only the slim install.

The argument groups and runners here are shared with `edgeship predict` and `edgeship bench`, so a
device and a workstation accept the same options and print the same tables.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from edgeship.errors import UsageError
from edgeship.runtime.options import channel_values, number, resize_rule_or_none

PROG = "python -m edgeship.runtime"


def add_model_arguments(parser: argparse.ArgumentParser, threads_list: bool = False) -> None:
    """Which model and how to run it: bundle or file, artifact, backend, accelerator, threads, integrity check."""
    parser.add_argument("model", metavar="BUNDLE|FILE", help="a bundle folder (with manifest.json) or a bare .tflite/.onnx file")
    parser.add_argument("--artifact", help="the bundle's artifact to run (default: the best one an installed backend runs)"
                        + ("; comma-separated for several" if threads_list else ""))
    parser.add_argument("--backend", help="litert, litert-compiled or onnxruntime (default: the one the artifact's format needs)"
                        + ("; comma-separated to compare several (e.g. litert,litert-compiled)" if threads_list else ""))
    parser.add_argument("--delegate", help="litert delegate: xnnpack, no-xnnpack, edgetpu, gpu, or a delegate library path"
                        + ("; comma-separated to compare several (e.g. xnnpack,no-xnnpack)" if threads_list else ""))
    parser.add_argument("--delegate-option", action="append", metavar="KEY=VALUE", help="an option for the delegate library (repeatable)")
    parser.add_argument("--provider", help="onnxruntime execution providers, comma-separated: cuda, tensorrt, openvino, coreml, nnapi, xnnpack, directml, cpu")
    add_accelerator_arguments(parser)
    if threads_list:
        parser.add_argument("--threads", default="1", help="thread counts to bench, comma-separated (default: 1)")
    else:
        parser.add_argument("--threads", type=int, help="threads for the interpreter (default: the backend's)")
    parser.add_argument("--no-verify", action="store_true", help="run even if a file's sha256 differs from the manifest")


def add_accelerator_arguments(parser: argparse.ArgumentParser) -> None:
    """LiteRT CompiledModel's accelerators by name (the litert-compiled backend)."""
    parser.add_argument("--accelerator", choices=("cpu", "gpu", "npu"),
                        help="litert-compiled accelerator (default: cpu); a gpu or npu takes what it can, the cpu runs the rest")
    parser.add_argument("--accelerator-option", action="append", metavar="KEY=VALUE",
                        help="an option for the accelerator, e.g. gpu.enforce_f32=true, cpu.kernel_mode=builtin, "
                             "qualcomm.htp_performance_mode=burst, dispatch_library_path=DIR (repeatable)")
    parser.add_argument("--require-full-acceleration", action="store_true",
                        help="fail unless the accelerator takes the whole model (LiteRT's is_fully_accelerated)")


def add_bare_arguments(parser: argparse.ArgumentParser) -> None:
    """Preprocessing for a bare .tflite/.onnx file with no manifest: x = (raw * scale - mean) / std, per channel."""
    group = parser.add_argument_group("bare model files (no manifest)")
    group.add_argument("--scale", type=number, help="multiply raw pixels by this (default: 1/255)")
    group.add_argument("--mean", type=channel_values, help="then subtract this: one number or one per channel, e.g. 0.485,0.456,0.406 (default: 0)")
    group.add_argument("--std", type=channel_values, help="then divide by this: one number or one per channel (default: 1)")
    group.add_argument("--layout", choices=("NHWC", "NCHW"), help="the model's input layout (default: read from its shape)")
    group.add_argument("--logits", action="store_true", default=None, help="the model outputs logits: apply softmax")
    group.add_argument("--color", choices=("grey", "rgb"), help="the picture colour the model takes (default: from its channels)")
    group.add_argument("--recipe", choices=("mnist",), help="mnist: bring digit photos to 28x28 by the MNIST recipe")


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="PNG/JPEG files (needs Pillow) or .npy/.npz arrays of raw pixels")
    parser.add_argument("--top-k", type=int, default=3, help="how many classes to show per image (default: 3)")
    parser.add_argument("--resize", type=resize_rule_or_none, default=False, metavar="none|METHOD,FIT",
                        help="none: refuse pictures of another size instead of resizing them as the bundle records; "
                        "for a bare file, the rule: bilinear|area|nearest, crop|pad|stretch (default: bilinear,crop)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    add_bare_arguments(parser)


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, threads_list=True)
    parser.add_argument("--batch", default="1,8,64", help="batch sizes, comma-separated (default: 1,8,64)")
    parser.add_argument("--seconds", type=float, default=1.0, help="time budget per row in seconds (default: 1.0)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the rows and machine info as JSON")
    parser.add_argument("--machine-label", metavar="NAME", help="name this machine in the JSON and the report (default: its CPU)")
    parser.add_argument("--emulated", action="store_true", help="mark the timings as measured under emulation (the report says so)")
    parser.add_argument("--budget-ms", type=float, metavar="MS", help="fail (exit 1) when a row's p99 latency exceeds this many milliseconds")
    parser.add_argument("--picture", metavar="FILE.jpg",
                        help="also time each artifact end to end from this picture: decode, resize as the bundle records, predict (batch 1)")


def run_predict(args: argparse.Namespace) -> tuple[Any, list[dict[str, Any]], dict[str, Any]]:
    """Predict each image; print lines or JSON; return the images, the results and the model's info and labels (for --plot)."""
    from edgeship.runtime.classifier import Classifier
    from edgeship.runtime.images import PictureRule, read_images
    from edgeship.runtime.options import ModelOptions
    from edgeship.runtime.postprocess import rank
    from edgeship.runtime.preprocess import image_geometry

    options = ModelOptions.from_args(args)
    if args.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {args.top_k}")
    load_arguments = options.load_arguments(options.delegates[0], options.threads[0])
    bundle = options.model.is_dir()
    if args.resize not in (False, None):
        if bundle:
            raise UsageError("--resize takes only 'none' for a bundle: its manifest records how pictures are resized")
        load_arguments["resize"] = args.resize
    with Classifier.load(options.model, artifact=options.artifact, **load_arguments) as classifier:
        height, width, _ = image_geometry(classifier.input_spec)
        source = "as the bundle records" if bundle else ("as --resize asks" if args.resize else "edgeship's default for a bare file")
        rule = PictureRule.from_spec(classifier.input_spec, height, width, resize_none=args.resize is None, source=source)
        images, names, notes = read_images(args.images, rule)
        for note in notes:
            print(note, file=sys.stderr)
        probabilities = classifier.predict_proba(images)
        labels = classifier.labels
        info = classifier.info()
    results = []
    for name, row, best in zip(names, probabilities, rank(probabilities, labels, min(args.top_k, len(labels)))):
        top = [{"label": r.label, "index": r.index, "probability": r.probability} for r in best]
        results.append({**top[0], "image": name, "top_k": top, "probabilities": [float(p) for p in row]})
    if args.json:
        payload = {"model": str(args.model), "artifact": info["artifact"], "backend": info["backend"],
                   "accelerator": info["accelerator"], "predictions": results}
        print(json.dumps(payload, indent=2))
    else:
        print(f"# {info['artifact'] or Path(args.model).name} on {info['backend']} ({info['accelerator']})")
        for result in results:
            others = ", ".join(f"{r['label']} {r['probability']:.3f}" for r in result["top_k"])
            print(f"{result['image']}: {result['label']} ({result['probability']:.3f})   top-{len(result['top_k'])}: {others}")
    return images, results, {**info, "labels": labels}


def bench_arguments(args: argparse.Namespace) -> tuple[Any, Any]:
    """The parsed model and bench options of a bench command line, the JSON target checked before any timing."""
    from edgeship.files import check_writable
    from edgeship.runtime.options import BenchOptions, ModelOptions

    model, bench = ModelOptions.from_args(args, several=True), BenchOptions.from_args(args)
    if bench.json:
        check_writable(bench.json)
    return model, bench


def finish_bench(bench: Any, rows: list[Any]) -> None:
    """Print the table, refuse a bench where nothing ran, write the JSON when asked."""
    from edgeship.runtime.bench import check_runnable, format_bench_table, raise_if_over_budget, write_bench_json

    print(format_bench_table(rows))
    check_runnable(rows)
    if bench.json:
        write_bench_json(bench.json, rows, bench.machine())
        print(f"wrote {bench.json}", file=sys.stderr)
    raise_if_over_budget(rows)


def run_bench(args: argparse.Namespace) -> list[Any]:
    """Bench, print the table, write JSON when asked; returns the rows."""
    from edgeship.runtime.bench import bench_options

    model, bench = bench_arguments(args)
    rows = bench_options(model, bench, progress=lambda line: print(line, file=sys.stderr, flush=True))
    finish_bench(bench, rows)
    return rows


def _predict_command(args: argparse.Namespace) -> int:
    run_predict(args)
    return 0


def _bench_command(args: argparse.Namespace) -> int:
    if getattr(args, "selftest_json", None) is not None:
        return run_selftest_then_bench(args)
    run_bench(args)
    return 0


def run_selftest_then_bench(args: argparse.Namespace) -> int:
    """`bench --selftest-json FILE`: the self-test, then the bench, in one process (one start, one import of the backend).

    What `edgeship device run` runs on a device. A self-test that cannot run (a damaged file, no
    backend for any artifact) stops before the bench, exit 2; one that fails its gates is written
    and the bench still runs (its rows say what the device does), then exit 1.
    """
    from edgeship.errors import GateFailedError
    from edgeship.files import atomic_write_json, check_writable
    from edgeship.runtime.bench import bench_options
    from edgeship.runtime.selftest import format_selftest_table, raise_if_failed, selftest_bundle

    model, bench = bench_arguments(args)
    check_writable(args.selftest_json)
    if not model.model.is_dir():
        raise UsageError(f"--selftest-json needs a bundle folder (its golden set), not the file {model.model}")
    backends = model.backends
    report = selftest_bundle(model.model, backend=backends[0] if len(backends) == 1 else None, verify=model.verify,
                             **model.accelerators)
    print(format_selftest_table(report))
    atomic_write_json(args.selftest_json, report.to_dict())
    failed = None
    try:
        raise_if_failed(report)
        print("self-test passed")
    except GateFailedError as exc:
        failed = exc
    rows = bench_options(model, bench, progress=lambda line: print(line, file=sys.stderr, flush=True))
    finish_bench(bench, rows)
    if failed is not None:
        raise failed
    return 0


def run_selftest(args: argparse.Namespace) -> int:
    from edgeship.files import atomic_write_json, check_writable
    from edgeship.runtime.options import accelerator_arguments
    from edgeship.runtime.selftest import format_selftest_table, raise_if_failed, selftest_bundle

    if args.json:
        check_writable(args.json)
    if args.record_placement and args.backend != "litert-compiled":
        raise UsageError("--record-placement records litert-compiled's placement; add --backend litert-compiled (and --accelerator)")
    report = selftest_bundle(args.bundle, backend=args.backend, verify=not args.no_verify, **accelerator_arguments(args),
                             record_placement=args.record_placement)
    print(format_selftest_table(report))
    if args.json:
        atomic_write_json(args.json, report.to_dict())
    raise_if_failed(report)
    print("self-test passed")
    if args.record_placement:
        print(f"recorded the placement in {Path(args.bundle) / 'manifest.json'}")
    return 0


def run_backends(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from edgeship.runtime.backends import available_backends

    statuses = available_backends()
    if args.json:
        print(json.dumps({name: asdict(status) for name, status in statuses.items()}, indent=2))
        return 0
    for name, status in statuses.items():
        if status.available:
            print(f"{name:<12} {status.package} {status.version}; formats: {', '.join(status.formats)}; "
                  f"accelerators: {', '.join(status.accelerators)}")
        else:
            print(f"{name:<12} not available: {status.reason}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Run an edgeship bundle or a bare .tflite/.onnx file on this device.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    predict = commands.add_parser("predict", help="classify images", description="Classify images with a bundle or model file.")
    add_predict_arguments(predict)
    predict.set_defaults(handler=_predict_command)

    bench = commands.add_parser("bench", help="latency and throughput per artifact, threads and batch size")
    add_bench_arguments(bench)
    bench.add_argument("--selftest-json", type=Path, metavar="FILE",
                       help="self-test the bundle first, in the same process, and write its result here (as `selftest --json`): "
                            "one that cannot run stops before the bench, one that fails still benches and exits 1")
    bench.set_defaults(handler=_bench_command)

    selftest = commands.add_parser("selftest", help="check every runnable artifact against the bundle's golden outputs")
    selftest.add_argument("bundle", metavar="BUNDLE")
    selftest.add_argument("--backend", help="only artifacts this backend runs")
    add_accelerator_arguments(selftest)
    selftest.add_argument("--record-placement", action="store_true",
                          help="record in the manifest how fully each passing artifact ran on the accelerator, for later self-tests")
    selftest.add_argument("--no-verify", action="store_true", help="skip the sha256 checks")
    selftest.add_argument("--json", type=Path, metavar="FILE", help="also write the result as JSON")
    selftest.set_defaults(handler=run_selftest)

    backends = commands.add_parser("backends", help="list the backends and accelerators available here")
    backends.add_argument("--json", action="store_true", help="print JSON")
    backends.set_defaults(handler=run_backends)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from edgeship.errors import run_guarded

    args = build_parser().parse_args(argv)
    return run_guarded(args.handler, args, PROG)
