"""Why LiteRT gets an interpreter per thread: one Classifier shared by eight threads, against one interpreter behind a lock.

Eight threads classify the sample's test digits for a fixed time through one shared Classifier
(the runtime's design: LiteRT builds an interpreter per thread, ONNX Runtime shares its thread-safe
session), and again with every predict call serialised by one lock (what a single interpreter
behind a lock costs), at batch 1 and 64. Prints a table of images per second and one JSON line.

    python benchmarks/runtime_threads.py --bundle artifacts/latest/bundle
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

ARTIFACTS = ("tflite-fp32", "tflite-int8", "onnx")


def images_per_second(predicts: list[Callable[[np.ndarray], object]], images: np.ndarray, batch: int, seconds: float) -> float:
    """Total throughput of len(predicts) threads, thread i calling predicts[i], for `seconds`."""
    counts = [0] * len(predicts)
    stop = threading.Event()
    inputs = images[:batch]

    def work(index: int) -> None:
        predict = predicts[index]
        while not stop.is_set():
            predict(inputs)
            counts[index] += batch

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(predicts))]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


def locked(predict: Callable[[np.ndarray], object]) -> Callable[[np.ndarray], object]:
    """predict serialised by one lock, as with a single interpreter shared under a lock."""
    lock = threading.Lock()

    def call(images: np.ndarray) -> object:
        with lock:
            return predict(images)

    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True, help="a bundle with tflite-fp32, tflite-int8 and onnx")
    parser.add_argument("--threads", type=int, default=8, help="worker threads (default 8)")
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per measurement (default 1)")
    args = parser.parse_args(argv)

    from edgeship.data import load_dataset
    from edgeship.runtime import Classifier

    images = load_dataset("mnist-sample").x_test
    rows = []
    for name in ARTIFACTS:
        for batch in (1, 64):
            with Classifier.load(args.bundle, artifact=name, threads=1) as classifier:
                alone = images_per_second([classifier.predict], images, batch, args.seconds)
                shared = images_per_second([classifier.predict] * args.threads, images, batch, args.seconds)
                serial = images_per_second([locked(classifier.predict)] * args.threads, images, batch, args.seconds)
            rows.append({"artifact": name, "batch": batch, "one_thread_ips": alone, "shared_ips": shared,
                         "locked_ips": serial, "shared_vs_locked": shared / serial})
    print(f"{'artifact':<12} {'batch':>5} {'1 thread':>11} {f'{args.threads} shared':>11} {f'{args.threads} locked':>11} {'shared/locked':>13}")
    for row in rows:
        print(f"{row['artifact']:<12} {row['batch']:>5} {row['one_thread_ips']:>11,.0f} {row['shared_ips']:>11,.0f} "
              f"{row['locked_ips']:>11,.0f} {row['shared_vs_locked']:>12.2f}x")
    print(json.dumps({"benchmark": "runtime_threads", "threads": args.threads, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
