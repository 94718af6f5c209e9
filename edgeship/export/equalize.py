"""Cross-layer equalization (Nagel et al., "Data-Free Quantization Through Weight Equalization and Bias Correction", 2019).

Two weight layers joined by a positively homogeneous function (ReLU, linear, or pooling/dropout
in between) compute the same thing when output channel c of the first is divided by s_c and input
channel c of the second is multiplied by s_c. Choosing s_c = sqrt(r1_c / r2_c), where r1_c is the
range of the first layer's weights for channel c and r2_c that of the second's, gives both the same
range sqrt(r1_c * r2_c): an outlier channel (one whose weights, and so activations, are far larger
than its neighbours') is brought back in line, and per-tensor int8 activation scales stop zeroing
the other channels. Layers form pairs Dense->Dense, Conv2D->Conv2D and DepthwiseConv2D<->Conv2D
(depthwise with depth multiplier 1, convolutions with one group), and a chain is swept until the
scales settle, as the paper does.

A BatchNormalization right after the first layer is folded into it first (its scale into the
weights, its shift into the bias; the BatchNormalization layer stays as an identity, or carries the
bias when the layer has none), so the ranges are those of the layer the converters actually build.
ReLU6 (or any ReLU with a max value) is not homogeneous: its clip becomes a per-channel clip at
6 / s_c, which keeps the float function exact at the cost of one MINIMUM op per such layer. Those
ops cost: they break the fused convolution + clip of the int8 kernels (ONNX Runtime ran an
equalized MobileNetV2-0.35 int8 file at 3x the plain file's time, LiteRT at 1.2x, in
benchmarks/int8_rescue.py), so pairs joined by a clip are left alone unless `clipped=True`. The
export's rescue uses the default: the outliers it meets sit on linear or ReLU paths (MobileNetV2's
linear bottlenecks, an MLP's hidden units), and the float fallback remains for the rest.

Everything happens on a copy made with `keras.models.clone_model`; the user's model and file are
never touched. The float function is unchanged up to float rounding (tests hold it to 1e-5 in
probability).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

WEIGHT_LAYERS = ("Dense", "Conv2D", "DepthwiseConv2D")
PASS_THROUGH = (
    "Dropout", "SpatialDropout2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
    "GlobalMaxPooling2D", "ZeroPadding2D",
)
"""Layers that act on each channel alone and commute with a positive per-channel scale."""
MAX_SWEEPS = 20
SETTLED = 1e-4
"""A sweep whose scales all lie within 1 ± this of 1 ends the iteration."""


@dataclass
class Pair:
    """Two weight layers joined by an equalizable path, and what lies between them."""

    producer: str
    consumer: str
    between: str
    batchnorm: str | None
    channels: int
    scale_min: float = 1.0
    scale_max: float = 1.0


@dataclass
class Equalization:
    """The equalized copy and what was done to it (for the manifest)."""

    model: Any
    pairs: list[Pair] = field(default_factory=list)
    sweeps: int = 0
    clipped_left_alone: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.pairs)

    def record(self) -> dict[str, Any]:
        return {
            "method": "cross-layer equalization (Nagel et al. 2019), BatchNorm folded first",
            "pairs": [asdict(pair) for pair in self.pairs],
            "sweeps": self.sweeps,
            "clipped_pairs_left_alone": self.clipped_left_alone,
        }


@dataclass
class _Link:
    """A pair as live layer objects, with the clip (ReLU max value) between them if any."""

    producer: Any
    consumer: Any
    batchnorm: Any
    between: str
    clip: float | None
    clip_layer: Any


def equalize(model: Any, clipped: bool = False) -> Equalization:
    """An equalized copy of `model` (the original is left as it was); no pairs found means an unchanged copy.

    `clipped`: also equalize pairs joined by a ReLU with a maximum (ReLU6), at the cost of a per-channel clip op each.
    """
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    found = find_pairs(copy)
    links = [link for link in found if clipped or link.clip is None]
    left_alone = len(found) - len(links)
    if not links:
        return Equalization(copy, clipped_left_alone=left_alone)
    for link in links:
        if link.batchnorm is not None:
            _fold_batchnorm(link.producer, link.batchnorm)
    totals = {id(link.producer): np.ones(_channels(link.producer), dtype=np.float64) for link in links}
    sweeps = 0
    for sweeps in range(1, MAX_SWEEPS + 1):
        largest_step = 0.0
        for link in links:
            scale = _equalize_pair(link)
            totals[id(link.producer)] *= scale
            largest_step = max(largest_step, float(np.max(np.abs(np.log(scale)))))
        if largest_step < np.log1p(SETTLED):
            break
    pairs = [
        Pair(
            producer=link.producer.name, consumer=link.consumer.name, between=link.between,
            batchnorm=link.batchnorm.name if link.batchnorm is not None else None, channels=_channels(link.producer),
            scale_min=round(float(totals[id(link.producer)].min()), 6), scale_max=round(float(totals[id(link.producer)].max()), 6),
        )
        for link in links
    ]
    clipped = [link for link in links if link.clip is not None]
    if clipped:
        copy = _per_channel_clips(copy, {id(link.clip_layer): (link, totals[id(link.producer)]) for link in clipped})
    return Equalization(copy, pairs, sweeps, left_alone)


def find_pairs(model: Any) -> list[_Link]:
    """Every producer -> consumer pair of weight layers joined by one unbranched, equalizable path."""
    consumers: dict[int, list[Any]] = {}
    for layer in model.layers:
        for tensor in _inputs(layer):
            consumers.setdefault(id(tensor), []).append(layer)
    outputs = {id(tensor) for tensor in model.outputs}
    links = []
    for producer in model.layers:
        if not _weight_layer(producer):
            continue
        between = _activation_kind(producer.get_config().get("activation", "linear"))
        if between is None:
            continue
        clip, clip_layer = _clip_of(between), producer if between.startswith("relu") else None
        batchnorm = None
        tensor, first = producer.output, True
        while id(tensor) not in outputs and len(consumers.get(id(tensor), [])) == 1:
            layer = consumers[id(tensor)][0]
            kind = type(layer).__name__
            if kind == "BatchNormalization" and first and between == "linear" and _foldable(layer, producer):
                batchnorm = layer
            elif kind in PASS_THROUGH:
                pass
            elif _activation_layer(layer) is not None and between == "linear":
                between = _activation_layer(layer)
                clip, clip_layer = _clip_of(between), layer
            elif _weight_layer(layer):
                if _input_channels(layer) == _channels(producer):
                    links.append(_Link(producer, layer, batchnorm, between, clip, clip_layer))
                break
            else:
                break
            tensor, first = layer.output, False
    return links


def _inputs(layer: Any) -> list[Any]:
    try:
        inputs = layer.input
    except (AttributeError, ValueError):
        return []
    return list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]


def _weight_layer(layer: Any) -> bool:
    """Dense, Conv2D with one group, or DepthwiseConv2D with depth multiplier 1 (channels in = channels out)."""
    kind = type(layer).__name__
    if kind not in WEIGHT_LAYERS:
        return False
    config = layer.get_config()
    if kind == "Conv2D" and (config.get("groups", 1) != 1 or config.get("data_format") == "channels_first"):
        return False
    if kind == "DepthwiseConv2D" and (config.get("depth_multiplier", 1) != 1 or config.get("data_format") == "channels_first"):
        return False
    return True


def _activation_kind(activation: Any) -> str | None:
    """'linear', 'relu', 'relu6', or None for anything that is not positively homogeneous (softmax, sigmoid, ...)."""
    name = activation if isinstance(activation, str) else getattr(activation, "__name__", None)
    return name if name in ("linear", "relu", "relu6") else None


def _activation_layer(layer: Any) -> str | None:
    """The kind of a standalone ReLU/Activation layer: 'relu', 'relu6', 'relu<=M' or 'linear'; None otherwise."""
    kind = type(layer).__name__
    config = layer.get_config()
    if kind == "ReLU":
        if config.get("negative_slope", 0.0) or config.get("threshold", 0.0):
            return None
        maximum = config.get("max_value")
        if maximum is None:
            return "relu"
        return "relu6" if float(maximum) == 6.0 else f"relu<={float(maximum):g}"
    if kind == "Activation":
        return _activation_kind(config.get("activation"))
    return None


def _clip_of(between: str) -> float | None:
    if between == "relu6":
        return 6.0
    if between.startswith("relu<="):
        return float(between.removeprefix("relu<="))
    return None


def _foldable(batchnorm: Any, producer: Any) -> bool:
    """A BatchNormalization over the last axis whose shift has somewhere to live after folding."""
    axis = batchnorm.axis if isinstance(batchnorm.axis, int) else (batchnorm.axis[0] if len(batchnorm.axis) == 1 else None)
    rank = len(producer.output.shape)
    if axis not in (-1, rank - 1):
        return False
    return bool(producer.use_bias) or batchnorm.beta is not None


def _channels(layer: Any) -> int:
    return int(layer.output.shape[-1])


def _input_channels(layer: Any) -> int:
    return int(layer.kernel.shape[-2])


def _output_axis_view(kernel: np.ndarray, kind: str) -> np.ndarray:
    """The kernel with output channels on the last axis (depthwise: (kh, kw, C, 1) -> (kh, kw, 1, C))."""
    return np.swapaxes(kernel, -1, -2) if kind == "DepthwiseConv2D" else kernel


def _output_ranges(layer: Any) -> np.ndarray:
    kernel = _output_axis_view(np.asarray(layer.kernel.numpy()), type(layer).__name__)
    return np.abs(kernel).reshape(-1, kernel.shape[-1]).max(axis=0).astype(np.float64)


def _input_ranges(layer: Any) -> np.ndarray:
    kernel = np.asarray(layer.kernel.numpy())
    moved = np.moveaxis(kernel, -2, -1)
    return np.abs(moved).reshape(-1, moved.shape[-1]).max(axis=0).astype(np.float64)


def _scale_outputs(layer: Any, batchnorm: Any, factor: np.ndarray) -> None:
    """Multiply output channel c of `layer` (weights and bias, or the folded bias its BatchNormalization carries) by factor[c]."""
    kind = type(layer).__name__
    kernel = np.asarray(layer.kernel.numpy())
    shape = [1] * kernel.ndim
    shape[-2 if kind == "DepthwiseConv2D" else -1] = -1
    layer.kernel.assign((kernel * factor.reshape(shape)).astype(kernel.dtype))
    if layer.use_bias:
        bias = np.asarray(layer.bias.numpy())
        layer.bias.assign((bias * factor).astype(bias.dtype))
    elif batchnorm is not None:
        beta = np.asarray(batchnorm.beta.numpy())
        batchnorm.beta.assign((beta * factor).astype(beta.dtype))


def _scale_inputs(layer: Any, factor: np.ndarray) -> None:
    kernel = np.asarray(layer.kernel.numpy())
    shape = [1] * kernel.ndim
    shape[-2] = -1
    layer.kernel.assign((kernel * factor.reshape(shape)).astype(kernel.dtype))


def _equalize_pair(link: _Link) -> np.ndarray:
    """One equalization step for a pair; returns the factor s_c that channel c of the producer was divided by."""
    first, second = _output_ranges(link.producer), _input_ranges(link.consumer)
    scale = np.ones_like(first)
    live = (first > 0) & (second > 0)
    scale[live] = np.sqrt(first[live] / second[live])
    _scale_outputs(link.producer, link.batchnorm, 1.0 / scale)
    _scale_inputs(link.consumer, scale)
    return scale


def _fold_batchnorm(producer: Any, batchnorm: Any) -> None:
    """Fold the BatchNormalization's scale into the producer's weights and its shift into the bias; leave it an identity."""
    variance = np.asarray(batchnorm.moving_variance.numpy(), dtype=np.float64)
    mean = np.asarray(batchnorm.moving_mean.numpy(), dtype=np.float64)
    gamma = np.asarray(batchnorm.gamma.numpy(), dtype=np.float64) if batchnorm.gamma is not None else np.ones_like(mean)
    beta = np.asarray(batchnorm.beta.numpy(), dtype=np.float64) if batchnorm.beta is not None else np.zeros_like(mean)
    multiplier = gamma / np.sqrt(variance + batchnorm.epsilon)
    bias = np.asarray(producer.bias.numpy(), dtype=np.float64) if producer.use_bias else np.zeros_like(mean)
    folded_bias = (bias - mean) * multiplier + beta
    _scale_outputs(producer, None, multiplier)
    dtype = np.asarray(batchnorm.moving_mean.numpy()).dtype
    if producer.use_bias:
        producer.bias.assign(folded_bias.astype(dtype))
        if batchnorm.beta is not None:
            batchnorm.beta.assign(np.zeros_like(mean, dtype=dtype))
    else:
        batchnorm.beta.assign(folded_bias.astype(dtype))
    if batchnorm.gamma is not None:
        batchnorm.gamma.assign(np.ones_like(mean, dtype=dtype))
    batchnorm.moving_mean.assign(np.zeros_like(mean, dtype=dtype))
    batchnorm.moving_variance.assign(np.full_like(mean, 1.0 - batchnorm.epsilon, dtype=dtype))


def _per_channel_clips(model: Any, clipped: dict[int, tuple[_Link, np.ndarray]]) -> Any:
    """Rebuild `model` with every equalized ReLU clip at max/s_c per channel, weights copied over."""
    import keras

    by_name = {link.clip_layer.name: (link, totals) for link, totals in clipped.values()}

    def clip_function(upper: np.ndarray) -> Any:
        # A numpy constant, not a tensor made here: traced functions must embed it, not capture it as an input.
        bound = upper.astype(np.float32)

        def relu_clipped_per_channel(inputs: Any) -> Any:
            return keras.ops.minimum(keras.ops.relu(inputs), bound)

        return relu_clipped_per_channel

    def rebuild(layer: Any) -> Any:
        config = layer.get_config()
        if layer.name not in by_name:
            return layer.__class__.from_config(config)
        link, totals = by_name[layer.name]
        activation = clip_function(link.clip / totals)
        if _weight_layer(layer):
            rebuilt = layer.__class__.from_config({**config, "activation": "linear"})
            rebuilt.activation = activation
            return rebuilt
        return keras.layers.Activation(activation, name=layer.name)

    rebuilt = keras.models.clone_model(model, clone_function=rebuild)
    for old, new in zip(model.layers, rebuilt.layers):
        new.set_weights(old.get_weights())
    return rebuilt
