"""Property tests over what callers hand to Classifier.predict: a correct prediction or an InputError, nothing else.

Arrays of every numeric and non-numeric dtype, byte order and memory layout; shapes that fit and
shapes that do not, empty batches and huge batches of zero-size images; values in range, out of
range, NaN and infinite; Python lists, ragged lists, scalars and None. A prediction counts as
correct when it equals the prediction for the same pixels given as a plain C-ordered array
(uint8 when the values are whole numbers in 0..255).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgeship.errors import InputError
from edgeship.runtime import Classifier

EXAMPLES = 200
DTYPES = [np.uint8, np.int8, np.uint16, np.int16, np.int32, np.int64, np.uint64, np.float16, np.float32, np.float64,
          ">f4", ">i2", "<u4", np.bool_, np.complex64, "U3", "S2", np.object_, "datetime64[s]"]
GOOD_SHAPES = st.one_of(
    st.sampled_from([(28, 28), (28, 28, 1), (1, 28, 28)]),
    st.integers(1, 6).map(lambda n: (n, 28, 28)),
    st.integers(1, 6).map(lambda n: (n, 28, 28, 1)),
    st.integers(1, 4).map(lambda n: (n, 1, 28, 28)),
)
BAD_SHAPES = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=30),
    st.integers(0, 6).map(lambda n: (n, 28, 27)),
    st.tuples(st.integers(100_000, 10**12), st.integers(0, 28)).map(lambda pair: (pair[0], 0, pair[1])),
    st.integers(0, 3).map(lambda n: (n, 0, 28, 28)),
    st.just((0, 28, 28)),
)
PIXELS = st.integers(0, 255)


def _elements(dtype: np.dtype, in_range: bool):
    """Values the dtype can hold: pixels 0..255 when `in_range`, anything (NaN, Inf, huge) otherwise."""
    if dtype.kind in "US":
        return st.sampled_from(["0", "7", "255"] if dtype.kind == "U" else [b"1", b"ab"])
    if dtype.kind == "O":
        return st.one_of(st.none(), PIXELS, st.text(max_size=2))
    if dtype.kind == "M":
        return st.just(np.datetime64(0, "s"))
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return st.integers(0, min(255, int(info.max))) if in_range else st.integers(int(info.min), int(info.max))
    if dtype.kind == "c":
        return st.complex_numbers(max_magnitude=300, width=8 * dtype.itemsize)
    width = 8 * dtype.itemsize
    return st.floats(0, 255, width=width) if in_range else st.floats(allow_nan=True, allow_infinity=True, width=width)


@st.composite
def image_arrays(draw) -> np.ndarray:
    """An array of a drawn dtype and shape, in a drawn memory layout (C, Fortran, reversed, strided)."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(st.one_of(GOOD_SHAPES, GOOD_SHAPES, BAD_SHAPES))
    if np.prod(shape, dtype=np.float64) == 0:
        return np.zeros(shape, dtype=dtype)
    in_range = draw(st.booleans())
    array = draw(hnp.arrays(dtype, shape, elements=_elements(dtype, in_range)))
    layout = draw(st.sampled_from(["C", "F", "reversed", "strided"]))
    if layout == "F":
        array = np.asfortranarray(array)
    elif layout == "reversed" and array.ndim:
        array = array[::-1]
    elif layout == "strided" and array.ndim:
        doubled = np.repeat(array, 2, axis=-1)
        array = doubled[..., ::2]
    return array


OTHER_INPUTS = st.one_of(
    st.none(),
    st.integers(),
    st.floats(),
    st.text(max_size=5),
    st.just([]),
    st.just([[1, 2], [3]]),
    st.just([[[0] * 28] * 28, [[0] * 27] * 28]),
    st.just({"image": 1}),
    GOOD_SHAPES.map(lambda shape: np.zeros(shape, np.uint8).tolist()),
    GOOD_SHAPES.map(lambda shape: np.full(shape, 255.0).tolist()),
)


@pytest.fixture(scope="module", params=["tflite-int8", "tflite-fp32", "onnx", "onnx-int8"])
def classifier(request, bundle_path):
    with Classifier.load(bundle_path, artifact=request.param) as loaded:
        yield loaded


def _reference(classifier: Classifier, images) -> np.ndarray:
    """The prediction for the same pixels as a plain C-ordered array in the usual dtype."""
    array = np.asarray(images)
    batch = array.reshape((-1, 28, 28))
    if np.array_equal(batch, np.rint(batch)) and batch.min() >= 0 and batch.max() <= 255:
        return classifier.predict(np.ascontiguousarray(batch, dtype=np.uint8))
    return classifier.predict(np.ascontiguousarray(batch, dtype=np.float64))


def check_one(classifier: Classifier, images) -> None:
    """Either labels that match the reference (and probabilities that sum to 1), or an InputError; anything else fails."""
    try:
        labels = classifier.predict(images)
        probabilities = classifier.predict_proba(images)
    except InputError as error:
        assert str(error) and "\n" not in str(error)
        event("refused with InputError")
        return
    event("predicted")
    count = len(labels)
    assert labels.dtype == np.int64 and labels.shape == (count,) and count >= 1
    assert probabilities.dtype == np.float32 and probabilities.shape == (count, 10)
    assert np.all((labels >= 0) & (labels < 10))
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=0.02)
    assert np.array_equal(labels, _reference(classifier, images))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(images=image_arrays())
def test_arrays_give_a_correct_prediction_or_an_input_error(classifier, images):
    check_one(classifier, images)


@settings(max_examples=EXAMPLES // 4, deadline=None)
@given(images=OTHER_INPUTS)
def test_other_python_values_give_a_correct_prediction_or_an_input_error(classifier, images):
    check_one(classifier, images)


@pytest.mark.parametrize(
    "images",
    [
        np.zeros((0, 28, 28), np.uint8),
        np.zeros((10**9, 0, 28), np.uint8),
        np.zeros((10**12, 28, 0), np.float32),
        np.zeros((0,), np.float64),
        np.zeros((), np.uint8),
        np.broadcast_to(np.zeros((28, 28), np.uint8), (0, 28, 28)),
    ],
    ids=["empty-batch", "billion-zero-size", "trillion-zero-size-float", "empty-vector", "scalar", "broadcast-empty"],
)
def test_empty_and_zero_size_batches_are_refused_at_once(classifier, images):
    with pytest.raises(InputError):
        classifier.predict(images)


def test_a_large_batch_seen_through_a_broadcast_view_is_predicted(classifier, test_images):
    view = np.broadcast_to(test_images[7], (20_000, 28, 28))
    labels = classifier.predict(view)
    assert labels.shape == (20_000,) and np.all(labels == classifier.predict(test_images[7])[0])
