"""Element-wise pooling across a list of equally shaped tensors."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

__all__ = ["AvgPooling", "MaxPooling", "Pooling", "SumPooling"]


class Pooling(keras.layers.Layer):
    """Base of the list poolings: reduces a list of ``k >= 1`` same-shape tensors to one.

    A one-element list returns its element unchanged. Lists and tuples are accepted; anything
    else raises ``TypeError`` and an empty list ``ValueError``.
    """

    def _check(self, inputs: Any) -> list:
        owner = type(self).__name__
        if not isinstance(inputs, (list, tuple)):
            raise TypeError(
                f"{owner}: inputs must be a list of tensors; got {type(inputs).__name__}"
            )
        if len(inputs) == 0:
            raise ValueError(f"{owner}: inputs must be a non-empty list of tensors; got []")
        shapes = {tuple(x.shape) for x in inputs}
        if len(shapes) > 1:
            raise ValueError(
                f"{owner}: inputs must all have the same shape; got shapes {sorted(map(str, shapes))}"
            )
        return list(inputs)

    def build(self, input_shape: Any) -> None:
        if not isinstance(input_shape, (list, tuple)) or not input_shape or not isinstance(
            input_shape[0], (list, tuple)
        ):
            raise TypeError(
                f"{type(self).__name__}: inputs must be a list of tensors; got shape {input_shape}"
            )

    def call(self, inputs: Any) -> Any:
        tensors = self._check(inputs)
        if len(tensors) == 1:
            return tensors[0]
        return self.reduce(tensors)

    def reduce(self, tensors: list) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return tuple(input_shape[0])


@keras.saving.register_keras_serializable(package="reclayers")
class SumPooling(Pooling):
    """``y = Σ_i x_i`` over a list of same-shape tensors.

    Example:
        >>> import numpy as np
        >>> x = np.ones((2, 3), "float32")
        >>> float(SumPooling()([x, x, x])[0, 0])
        3.0
    """

    def reduce(self, tensors: list) -> Any:
        total = tensors[0]
        for t in tensors[1:]:
            total = total + t
        return total


@keras.saving.register_keras_serializable(package="reclayers")
class AvgPooling(Pooling):
    """``y = (Σ_i x_i) / k`` over a list of ``k`` same-shape tensors.

    Example:
        >>> import numpy as np
        >>> float(AvgPooling()([np.zeros((1, 2), "float32"), np.ones((1, 2), "float32")])[0, 0])
        0.5
    """

    def reduce(self, tensors: list) -> Any:
        return SumPooling.reduce(self, tensors) / float(len(tensors))


@keras.saving.register_keras_serializable(package="reclayers")
class MaxPooling(Pooling):
    """Element-wise ``y = max_i x_i`` over a list of same-shape tensors.

    Example:
        >>> import numpy as np
        >>> float(MaxPooling()([np.zeros((1, 2), "float32"), np.ones((1, 2), "float32")])[0, 0])
        1.0
    """

    def reduce(self, tensors: list) -> Any:
        return ops.max(ops.stack(tensors, axis=0), axis=0)
