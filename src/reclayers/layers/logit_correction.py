"""Logit correction for sampling bias (negative down-sampling, sample-bias log-sigmoid)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from reclayers.layers import _build
from reclayers.layers._build import activation_config, config_of

__all__ = ["LogitCorrection"]


def _log_sigmoid(x: Any) -> Any:
    """Numerically safe ``log σ(x) = -(max(x, 0) - x + log1p(e^-|x|))``."""
    return -(ops.maximum(x, 0.0) - x + ops.log1p(ops.exp(-ops.abs(x))))


@keras.saving.register_keras_serializable(package="reclayers")
class LogitCorrection(keras.layers.Layer):
    """Corrects logits for training-time sampling, then applies an activation.

    With logits ``x`` and sample rate ``r`` (``None`` for no rate correction):

    ==========  ============  ========================
    ``r``       sample_bias   corrected logit
    ==========  ============  ========================
    None        False         ``x``
    None        True          ``log σ(x)``
    given       False         ``x - log(r)``
    given       True          ``log σ(x) - log(r)``
    ==========  ============  ========================

    and ``y = activation(corrected)``. ``r`` is the fraction of examples kept by sampling, in
    ``(0, 1]``; subtracting ``log r`` undoes negative down-sampling so predictions are calibrated
    against the un-sampled data.

    Shapes: ``logits`` of rank 1 or 2; ``sample_rate`` broadcastable to it. When both have the
    same number of elements (e.g. ``(B, 1)`` and ``(B,)``), ``sample_rate`` is reshaped to the
    logits' shape instead of broadcasting to ``(B, B)`` (a fix over the original).

    Args:
        activation: Keras activation identifier; ``None`` means identity. Default ``None``.
        sample_bias: apply the log-sigmoid transform. Default ``False``.

    Example:
        >>> import numpy as np
        >>> layer = LogitCorrection(activation=None)
        >>> y = layer((np.zeros((2, 1), "float32"), np.full((2, 1), 0.5, "float32")))
        >>> round(float(y[0, 0]), 4)
        0.6931
    """

    def __init__(self, activation: Any = None, sample_bias: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activation = _build.activation(activation, self)
        self._activation_id = activation_config(activation)
        self.sample_bias = bool(sample_bias)

    @staticmethod
    def _split(inputs: Any) -> tuple[Any, Any]:
        if isinstance(inputs, (list, tuple)):
            if len(inputs) == 1:
                return inputs[0], None
            if len(inputs) != 2:
                raise ValueError(
                    "LogitCorrection: inputs must be (logits, sample_rate); "
                    f"got a sequence of {len(inputs)} items"
                )
            return inputs[0], inputs[1]
        return inputs, None

    def build(self, input_shape: Any) -> None:
        logits_shape, rate_shape = self._split(input_shape) if isinstance(
            input_shape, (list, tuple)
        ) and input_shape and isinstance(input_shape[0], (list, tuple)) else (input_shape, None)
        for arg, shape in (("logits", logits_shape), ("sample_rate", rate_shape)):
            if shape is not None and not 1 <= len(shape) <= 2:
                raise ValueError(
                    f"LogitCorrection: {arg} must be a tensor of rank 1 or 2; "
                    f"got shape {tuple(shape)}"
                )

    def call(self, inputs: Any) -> Any:
        logits, sample_rate = self._split(inputs)
        x = ops.cast(logits, self.compute_dtype)
        corrected = _log_sigmoid(x) if self.sample_bias else x
        if sample_rate is not None:
            r = ops.cast(sample_rate, self.compute_dtype)
            same_count = (
                len(r.shape) != len(x.shape)
                and None not in tuple(r.shape)[1:]
                and None not in tuple(x.shape)[1:]
                and _inner_size(r.shape) == _inner_size(x.shape)
            )
            if same_count:
                r = ops.reshape(r, (-1,) + tuple(x.shape[1:]))
            corrected = corrected - ops.log(r)
        return self.activation(corrected) if self.activation is not None else corrected

    def compute_output_shape(self, input_shape: Any) -> tuple:
        if isinstance(input_shape, (list, tuple)) and input_shape and isinstance(
            input_shape[0], (list, tuple)
        ):
            return tuple(input_shape[0])
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {**super().get_config(), **config_of(self, "sample_bias", activation=self._activation_id)}


def _inner_size(shape: tuple) -> int:
    size = 1
    for d in tuple(shape)[1:]:
        size *= int(d)
    return size
