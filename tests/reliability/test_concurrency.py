"""Eight threads sharing one Classifier give exactly the single-threaded answers, on each backend.

The 1,000 real test digits are tiled to 10,000 images and cut into calls of mixed sizes and input
forms (one 2-D image, uint8 batches, float batches), so threads resize, convert and run at once.
Each call is compared bit for bit with the same call made by one thread.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from edgeship.runtime import Classifier

THREADS = 8
IMAGES = 10_000
CALL_SIZES = (1, 3, 16, 64, 5, 128, 1, 32)


@pytest.fixture(scope="module")
def images(test_images) -> np.ndarray:
    return np.tile(test_images, (IMAGES // len(test_images), 1, 1))


def calls(images: np.ndarray) -> list[np.ndarray]:
    """The 10,000 images as calls of mixed sizes and forms: a lone (28, 28) image, uint8 batches, float32 batches."""
    result, start, turn = [], 0, 0
    while start < len(images):
        size = CALL_SIZES[turn % len(CALL_SIZES)]
        batch = images[start : start + size]
        if size == 1 and turn % 2 == 0:
            batch = batch[0]
        elif turn % 3 == 2:
            batch = batch.astype(np.float32)
        result.append(batch)
        start, turn = start + size, turn + 1
    return result


@pytest.mark.parametrize(
    "artifact, backend",
    [("tflite-fp32", "litert"), ("tflite-int8", "litert"), ("onnx", "onnxruntime"), ("onnx-int8", "onnxruntime")],
)
def test_eight_threads_share_one_classifier_exactly(bundle_path, images, artifact, backend):
    work = calls(images)
    assert sum(1 if call.ndim == 2 else len(call) for call in work) == IMAGES
    with Classifier.load(bundle_path, artifact=artifact, backend=backend) as classifier:
        assert classifier.info()["backend"] == backend
        alone = [(classifier.predict(call), classifier.predict_proba(call)) for call in work]
        start = threading.Barrier(THREADS)

        def worker(offset: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
            start.wait()
            return [(index, classifier.predict(work[index]), classifier.predict_proba(work[index]))
                    for index in range(offset, len(work), THREADS)]

        with ThreadPoolExecutor(THREADS) as pool:
            shared = [row for rows in pool.map(worker, range(THREADS)) for row in rows]
    assert sorted(index for index, _, _ in shared) == list(range(len(work)))
    for index, labels, probabilities in shared:
        assert np.array_equal(labels, alone[index][0]), index
        assert np.array_equal(probabilities, alone[index][1]), index
    labels = np.concatenate([alone[index][0] for index in range(len(work))])
    assert labels.shape == (IMAGES,) and labels.dtype == np.int64
    assert np.array_equal(labels.reshape(-1, 1000), np.tile(labels[:1000], (IMAGES // 1000, 1)))


def test_eight_threads_loading_at_once_keep_stderr_and_agree(bundle_path, test_images):
    stderr_before = os.fstat(2)
    start = threading.Barrier(THREADS)

    def load_and_predict(turn: int) -> np.ndarray:
        start.wait()
        artifact = ("tflite-fp32", "onnx")[turn % 2]
        with Classifier.load(bundle_path, artifact=artifact) as classifier:
            return classifier.predict(test_images[:200])

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(load_and_predict, range(THREADS)))
    stderr_after = os.fstat(2)
    assert (stderr_after.st_dev, stderr_after.st_ino) == (stderr_before.st_dev, stderr_before.st_ino)
    for turn, result in enumerate(results):
        assert np.array_equal(result, results[turn % 2]), turn
