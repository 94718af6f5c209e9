"""Why one Classifier serialises its LiteRT interpreter with a lock: the alternative (an interpreter per thread) measured.

Eight threads classify the sample's test digits for a fixed time, either sharing one Classifier
(the runtime's design: one interpreter behind a lock; ONNX Runtime sessions are thread-safe) or each
with a Classifier of its own (what an interpreter-per-thread design would do), at batch 1 and 64.
Prints a table of images per second and one JSON line.

    python benchmarks/runtime_threads.py --bundle artifacts/latest/bundle
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

ARTIFACTS = ("tflite-fp32", "tflite-int8", "onnx")


def images_per_second(classifiers: list, images: np.ndarray, batch: int, seconds: float) -> float:
    """Total throughput of len(classifiers) threads, thread i using classifiers[i], for `seconds`."""
    counts = [0] * len(classifiers)
    stop = threading.Event()
    inputs = images[:batch]

    def work(index: int) -> None:
        classifier = classifiers[index]
        while not stop.is_set():
            classifier.predict(inputs)
            counts[index] += batch

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(classifiers))]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


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
            shared = Classifier.load(args.bundle, artifact=name, threads=1)
            own = [Classifier.load(args.bundle, artifact=name, threads=1) for _ in range(args.threads)]
            alone = images_per_second([shared], images, batch, args.seconds)
            together = images_per_second([shared] * args.threads, images, batch, args.seconds)
            separate = images_per_second(own, images, batch, args.seconds)
            for classifier in [shared, *own]:
                classifier.close()
            rows.append({"artifact": name, "batch": batch, "one_thread_ips": alone, "shared_ips": together,
                         "per_thread_ips": separate, "shared_vs_per_thread": together / separate})
    print(f"{'artifact':<12} {'batch':>5} {'1 thread':>11} {f'{args.threads} shared':>11} {f'{args.threads} own':>11} {'shared/own':>10}")
    for row in rows:
        print(f"{row['artifact']:<12} {row['batch']:>5} {row['one_thread_ips']:>11,.0f} {row['shared_ips']:>11,.0f} "
              f"{row['per_thread_ips']:>11,.0f} {row['shared_vs_per_thread']:>9.2f}x")
    print(json.dumps({"benchmark": "runtime_threads", "threads": args.threads, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
