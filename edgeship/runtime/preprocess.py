"""Raw pixels -> model input: the one preprocessing contract, x = (raw * scale - mean) / std, then the model's dtype.

The manifest's InputSpec records the contract (at training, copied at export); everything that
feeds a model goes through here: calibration and parity on the workstation (`to_model_input`), the
Classifier on a device (`input_converters`), the int8 layer tracer. `mean` and `std` may be one
number or one per channel. A uint8 batch for a model whose uint8 input quantization equals the
recorded x/255 scaling goes to the interpreter untouched; an int8 model with zero point -128 gets
it by flipping the top bit; float models get an in-place affine written straight into the
backend's input buffer.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import numpy as np

from edgeship.errors import InputError, ModelError, UsageError
from edgeship.manifest import InputSpec
from edgeship.runtime.backends.base import Convert, TensorInfo

log = logging.getLogger(__name__)

_RANGE_TOLERANCE = 0.01
_TOP_BIT = np.uint8(0x80)


def image_geometry(spec: InputSpec) -> tuple[int, int, int]:
    """(height, width, channels) from an input spec's shape and layout."""
    shape = list(spec.shape)
    if len(shape) == 2:
        return shape[0], shape[1], 1
    if len(shape) == 3:
        if spec.layout == "NCHW":
            return shape[1], shape[2], shape[0]
        return shape[0], shape[1], shape[2]
    raise ModelError(f"input shape {shape} is not an image (H, W), (H, W, C) or (C, H, W)")


def known_dims(shape: Sequence[int], path: Any) -> tuple[int, ...]:
    """A tensor's dimensions after the batch, refusing unknown (dynamic) sizes."""
    dims = tuple(shape[1:])
    if not dims or any(d <= 0 for d in dims):
        raise ModelError(f"{path} has a tensor of shape {list(shape)}; edgeship needs fixed sizes beyond the batch dimension")
    return dims


def image_shapes(spec: InputSpec, model_dims: tuple[int, ...]) -> frozenset[tuple[int, ...]]:
    """The shapes one image may have: for grayscale (H, W), (H, W, 1) and (1, H, W); else the spec's own."""
    height, width, channels = image_geometry(spec)
    if math.prod(spec.shape) != math.prod(model_dims):
        raise ModelError(f"the manifest's input shape {spec.shape} does not fit the model's input {list(model_dims)}; re-export the bundle")
    if channels == 1:
        return frozenset({(height, width), (height, width, 1), (1, height, width)})
    return frozenset({tuple(spec.shape)})


def describe_shape_error(shape: tuple[int, ...], spec: InputSpec) -> str:
    """The message for an image batch of the wrong shape: what came, what fits, and no silent resizing."""
    height, width, channels = image_geometry(spec)
    if channels == 1:
        fits = f"one ({height}, {width}) image or a batch (N, {height}, {width}) / (N, {height}, {width}, 1)"
        kind = f"{height}x{width} grayscale"
    else:
        dims = ", ".join(str(d) for d in spec.shape)
        fits = f"one ({dims}) image or a batch (N, {dims})"
        kind = f"{height}x{width} {channels}-channel ({spec.layout})"
    return f"images have shape {tuple(shape)}; this model takes {kind} images: {fits}; edgeship does not resize or convert arrays silently"


def check_pixel_values(batch: np.ndarray, value_range: Sequence[float]) -> None:
    """Refuse NaN/Inf and values far outside the raw pixel range; warn about batches that look already scaled."""
    low, high = float(value_range[0]), float(value_range[1])
    if batch.dtype.kind == "f" and not np.isfinite(batch).all():
        raise InputError("images contain NaN or infinite values; give finite raw pixel values")
    smallest, largest = float(batch.min()), float(batch.max())
    slack = _RANGE_TOLERANCE * (high - low)
    if smallest < low - slack or largest > high + slack:
        raise InputError(
            f"pixel values span [{smallest:g}, {largest:g}], far outside the expected raw pixel range [{low:g}, {high:g}]; "
            "give raw pixels (e.g. uint8 0..255): the runtime applies the model's scaling itself"
        )
    if high > 1.0 and 0.0 < largest <= 1.0:
        log.warning(
            "all pixel values are <= 1 but the model expects raw pixels in [%g, %g] and scales them itself; "
            "were these images already divided by 255?",
            low,
            high,
        )


def affine_terms(spec: InputSpec, model_dims: Sequence[int]) -> tuple[Any, Any]:
    """(gain, offset) with x = raw * gain - offset: scalars, or per-channel arrays shaped to broadcast over one image."""
    gain = np.float64(spec.scale) / np.asarray(spec.std, dtype=np.float64)
    offset = np.asarray(spec.mean, dtype=np.float64) / np.asarray(spec.std, dtype=np.float64)
    if gain.ndim == 0 and offset.ndim == 0:
        return float(gain), float(offset)
    channels = image_geometry(spec)[2]
    gain, offset = np.broadcast_to(gain, (channels,)), np.broadcast_to(offset, (channels,))
    if len(set(gain.tolist())) == 1 and len(set(offset.tolist())) == 1:
        return float(gain[0]), float(offset[0])
    if len(model_dims) != 3:
        raise ModelError(f"per-channel mean/std need an input with a channel axis; the model takes {list(model_dims)}")
    axis_shape = (channels, 1, 1) if spec.layout == "NCHW" else (channels,)
    return gain.reshape(axis_shape), offset.reshape(axis_shape)


def to_model_input(raw: Any, spec: InputSpec, model_dims: Sequence[int]) -> np.ndarray:
    """Raw pixels -> the float32 batch a float model takes: (raw * scale - mean) / std, shaped (N, *model_dims)."""
    batch = np.asarray(raw)
    batch = batch.reshape((len(batch), *model_dims)).astype(np.float32)
    gain, offset = affine_terms(spec, model_dims)
    batch *= np.float32(gain) if np.ndim(gain) == 0 else gain.astype(np.float32)
    if np.any(offset):
        batch -= np.float32(offset) if np.ndim(offset) == 0 else offset.astype(np.float32)
    return batch


def quantize_input(raw: Any, spec: InputSpec, model_dims: Sequence[int], scale: float, zero_point: int, dtype: Any) -> np.ndarray:
    """Raw pixels -> an int8/uint8 model's quantized input batch (for tools that drive an interpreter directly)."""
    target = np.dtype(dtype)
    source = np.asarray(raw).reshape((-1, *model_dims))
    out = np.empty(source.shape, dtype=target)
    gain, offset = affine_terms(spec, model_dims)
    _quantize(np.divide(gain, scale), np.divide(offset, scale), zero_point, target)(source, out)
    return out


def input_converters(spec: InputSpec, tensor: TensorInfo, path: Any) -> tuple[Convert | None, Convert]:
    """The converters for uint8 batches and for other batches, from raw pixels to the model's input dtype.

    None for uint8 means the raw pixels are already the model's input and go to it untouched.
    """
    target = tensor.dtype
    gain, offset = affine_terms(spec, known_dims(tensor.shape, path))
    if target.kind == "f":
        float_convert = _affine(gain, offset, target)
        return float_convert, float_convert
    if target.kind not in "iu":
        raise ModelError(f"{path} takes {target.name} input; edgeship feeds float or 8-bit integer models")
    quantization = tensor.quantization
    if quantization is None:
        if np.any(np.not_equal(gain, 1.0)) or np.any(offset):
            raise ModelError(
                f"{path} takes {target.name} input without quantization parameters, i.e. raw values; "
                "its scaling must be 1 with mean 0 and std 1"
            )
        step, zero_point = 1.0, 0
    else:
        step, zero_point = quantization.scale, quantization.zero_point
    general = _quantize(np.divide(gain, step), np.divide(offset, step), zero_point, target)
    if np.ndim(gain) == 0 and offset == 0 and abs(gain / step - 1.0) < 1e-6:
        if target == np.uint8 and zero_point == 0:
            return None, general
        if target == np.int8 and zero_point == -128:
            return flip_top_bit, general
    return general, general


def _affine(gain: Any, offset: Any, target: np.dtype) -> Convert:
    """out = raw * gain - offset, computed in the output's float type; the cast and the scaling run in place in `out`."""
    gain_value = target.type(gain) if np.ndim(gain) == 0 else np.asarray(gain, dtype=target)
    offset_value = target.type(offset) if np.ndim(offset) == 0 else np.asarray(offset, dtype=target)
    subtract = bool(np.any(offset))

    def convert(source: np.ndarray, out: np.ndarray) -> None:
        np.copyto(out, source, casting="unsafe")
        np.multiply(out, gain_value, out=out)
        if subtract:
            np.subtract(out, offset_value, out=out)

    return convert


def _quantize(gain: Any, offset: Any, zero_point: int, target: np.dtype) -> Convert:
    """out = clip(round(raw * gain - offset) + zero_point) in the integer type: the model's input quantization."""
    bounds = np.iinfo(target)
    gain_value = np.float32(gain) if np.ndim(gain) == 0 else np.asarray(gain, dtype=np.float32)
    offset_value = np.float32(offset) if np.ndim(offset) == 0 else np.asarray(offset, dtype=np.float32)
    subtract = bool(np.any(offset))

    def convert(source: np.ndarray, out: np.ndarray) -> None:
        values = source.astype(np.float32) * gain_value
        if subtract:
            values -= offset_value
        np.rint(values, out=values)
        values += np.float32(zero_point)
        np.clip(values, bounds.min, bounds.max, out=values)
        out[...] = values

    return convert


def flip_top_bit(source: np.ndarray, out: np.ndarray) -> None:
    """uint8 raw pixels to int8 with zero point -128: q = raw - 128, i.e. the top bit flipped."""
    np.bitwise_xor(source, _TOP_BIT, out=out.view(np.uint8))


def bare_input_spec(model_dims: tuple[int, ...], options: dict[str, Any]) -> InputSpec:
    """The input spec for a bare model file: its own input shape, the layout given or read from that shape, scaling from options."""
    layout = options.get("layout")
    if layout is None:
        layout = "NCHW" if len(model_dims) == 3 and model_dims[0] in (1, 3, 4) and model_dims[-1] not in (1, 3, 4) else "NHWC"
    if layout not in ("NHWC", "NCHW"):
        raise UsageError(f"layout must be NHWC or NCHW, got {layout!r}")
    if len(model_dims) not in (2, 3):
        raise ModelError(f"model input {list(model_dims)} is not an image (H, W), (H, W, C) or (C, H, W)")
    if len(model_dims) == 3:
        channels = model_dims[0] if layout == "NCHW" else model_dims[-1]
        if channels not in (1, 3, 4):
            raise UsageError(f"layout {layout} does not fit the model input {list(model_dims)}: it would have {channels} channels")
    spec = InputSpec(shape=list(model_dims), layout=layout)
    for name in ("scale", "mean", "std", "color", "resize", "recipe"):
        value = options.get(name)
        if value is None:
            continue
        if name in ("mean", "std") and isinstance(value, (list, tuple)):
            value = [float(v) if isinstance(v, (int, float)) else v for v in value]
        elif name in ("scale", "mean", "std"):
            if not isinstance(value, (int, float)) or not math.isfinite(value) or (name != "mean" and value == 0):
                raise UsageError(f"{name} must be a finite number{'' if name == 'mean' else ' other than 0'}, got {value!r}")
            value = float(value)
        setattr(spec, name, value)
    problems = spec.problems()
    if problems:
        raise UsageError(f"{problems[0]} (model input {list(model_dims)}, {layout})")
    return spec
