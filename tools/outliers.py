"""Models with outlier channels: the same float function as a trained model, made hard for per-tensor int8.

Real networks have a few channels whose activations are far larger than their neighbours' (the
depthwise layers of MobileNets are the known case); post-training int8, with one scale per
activation tensor, then rounds every other channel to nothing. These builders make such a model
on purpose from a trained one, without changing what it computes:

- `outlier_mlp`: the seed MLP with some hidden units' incoming weights and bias x factor and their
  outgoing weights / factor. ReLU is positively homogeneous, so the output is unchanged.
- `outlier_mobilenetv2`: one output channel of MobileNetV2's first projection
  (`expanded_conv_project_BN`, linear: no activation follows it) x factor, and the same input
  channel of the next expansion convolution (`block_1_expand`) / factor. That projection feeds only
  that convolution (block 1 has stride 2, so no residual add carries the channel further).
  A depthwise channel could not be used: ReLU6 follows every depthwise convolution and its clip
  at 6 is not scale-invariant.

Used by the tests and benchmarks/int8_rescue.py. `outlier_copy` writes such a copy of a trained
model's file beside a copy of its card, so `edgeship export` reads the same preprocessing.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

OUTLIER_UNITS = (0, 1, 2, 3)
OUTLIER_FACTOR = 3000.0
MOBILENET_PROJECTION = "expanded_conv_project_BN"
MOBILENET_NEXT = "block_1_expand"


def outlier_mlp(model: Any, units: tuple[int, ...] = OUTLIER_UNITS, factor: float = OUTLIER_FACTOR) -> Any:
    """Scale `units` of the MLP's hidden Dense layer by `factor` and their outgoing weights by 1/factor, in place."""
    import keras

    hidden, head = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    kernel, bias = hidden.get_weights()
    kernel[:, list(units)] *= factor
    bias[list(units)] *= factor
    hidden.set_weights([kernel, bias])
    head_kernel, head_bias = head.get_weights()
    head_kernel[list(units), :] /= factor
    head.set_weights([head_kernel, head_bias])
    return model


def outlier_mobilenetv2(model: Any, channel: int = 0, factor: float = OUTLIER_FACTOR) -> Any:
    """Scale one channel of MobileNetV2's first projection by `factor` and the next convolution's input by 1/factor, in place."""
    projection, expand = model.get_layer(MOBILENET_PROJECTION), model.get_layer(MOBILENET_NEXT)
    gamma, beta, mean, variance = projection.get_weights()
    gamma[channel] *= factor  # the normalized output is gamma * x_hat + beta: scaling both scales the channel
    beta[channel] *= factor
    projection.set_weights([gamma, beta, mean, variance])
    weights = expand.get_weights()
    weights[0][:, :, channel, :] /= factor
    expand.set_weights(weights)
    return model


def outlier_copy(model_path: Path, out: Path, make: Callable[[Any], Any]) -> Path:
    """The model at `model_path` made an outlier by `make` (outlier_mlp, outlier_mobilenetv2), saved as out/model.keras
    beside a copy of its model card; returns the new path. The file at `model_path` is left as it was."""
    import keras

    model = make(keras.saving.load_model(model_path, compile=False))
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    shutil.copy(Path(model_path).with_name("model.edgeship.json"), out / "model.edgeship.json")
    return out / "model.keras"
