"""Learned bias over every non-batch axis, for channels-first or channels-last inputs."""

from __future__ import annotations

from typing import Any

import keras

from reclayers.layers._build import ElementwiseWeightLayer
from reclayers.layers.utils import check_one_of

__all__ = ["AddBias"]

_DATA_FORMATS = ("channels_first", "channels_last")


@keras.saving.register_keras_serializable(package="reclayers")
class AddBias(ElementwiseWeightLayer):
    """Adds a learned bias to every non-batch element: ``y = x + b``.

    ``b`` has the shape of the input without its batch axis, so the bias is per element for
    rank-2 to rank-5 inputs (images, time series, feature matrices). ``data_format``
    (``'channels_first'`` / ``'channels_last'``) is accepted and validated for compatibility:
    because the bias is built from the actual input shape, both formats compute ``x + b``.

    Deliberate fix: the original reshaped a channels-last-ordered bias for channels-first inputs,
    which broadcast to a wrong shape (e.g. ``(N, 3, 1, 1)`` input gave ``(N, 3, 3, 1)``) or failed;
    here ``y = x + b[None, ...]`` for both formats.

    Shapes: ``(B, d1, ..., dk)`` with ``1 <= k <= 4`` and static ``d_i`` → same shape.

    Args:
        initializer: bias initializer (``None`` → zeros). Default ``None``.
        regularizer: bias regularizer. Default ``None``.

    Example:
        >>> import numpy as np
        >>> add_bias = AddBias(initializer="zeros")
        >>> y = add_bias(np.ones((2, 3, 4), "float32"), data_format="channels_first")
        >>> tuple(y.shape)
        (2, 3, 4)
    """

    default_initializer = "zeros"

    def __init__(self, initializer: Any = None, regularizer: Any = None, **kwargs: Any) -> None:
        super().__init__(initializer, regularizer, **kwargs)

    def build(self, input_shape: tuple) -> None:
        owner = type(self).__name__
        if not 2 <= len(input_shape) <= 5:
            raise ValueError(
                f"{owner}: inputs must be a tensor of rank 2 to 5; got shape {tuple(input_shape)}"
            )
        if any(d is None for d in input_shape[1:]):
            raise ValueError(
                f"{owner}: inputs must have known non-batch dimensions; "
                f"got shape {tuple(input_shape)}"
            )
        self.bias = self.add_weight(
            name="bias",
            shape=tuple(int(d) for d in input_shape[1:]),
            initializer=self.initializer,
            regularizer=self.regularizer,
        )

    def call(self, inputs: Any, data_format: str = "channels_last") -> Any:
        check_one_of(type(self).__name__, "data_format", data_format, _DATA_FORMATS)
        return inputs + keras.ops.cast(self.bias, inputs.dtype)[None, ...]
