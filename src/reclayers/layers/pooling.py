"""Element-wise pooling across a list of equally shaped tensors."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

__all__ = ["AvgPooling", "MaxPooling", "Pooling", "SumPooling"]


class Pooling(keras.layers.Layer):
    """Base of the list poolings: reduces a list of ``k >= 1`` same-shape tensors to one.

    A one-element list returns its element unchanged. Lists and tuples are accepted; anything
    else raises ``TypeError``, an empty list or tensors of different shapes ``ValueError``.
    Subclasses define ``reduce(tensors)``; use :class:`SumPooling`, :class:`AvgPooling` or
    :class:`MaxPooling` (the reference's ``Pooling`` was likewise an abstract base).

    Shapes: a list of ``k`` tensors of one shape ``(B, ...)`` → one tensor ``(B, ...)``.
    No weights and no constructor arguments beyond Keras's (``name``, ``dtype``).

    Example:
        >>> import numpy as np
        >>> from keras import ops
        >>> class MinPooling(Pooling):
        ...     def reduce(self, tensors):
        ...         return ops.min(ops.stack(tensors, axis=0), axis=0)
        >>> x = [np.array([[1.0, 5.0]], "float32"), np.array([[3.0, 2.0]], "float32")]
        >>> print(ops.convert_to_numpy(MinPooling()(x)))
        [[1. 2.]]
    """

    def _check(self, inputs: Any) -> list:
        owner = type(self).__name__
        if not isinstance(inputs, (list, tuple)):
            raise TypeError(
                f"{owner}: inputs must be a list of tensors; got {type(inputs).__name__}"
            )
        if len(inputs) == 0:
            raise ValueError(f"{owner}: inputs must be a non-empty list of tensors "
                             "(at least one tensor is needed); got []")
        shapes = {tuple(x.shape) for x in inputs}
        if len(shapes) > 1:
            raise ValueError(
                f"{owner}: inputs must all have the same shape; got shapes {sorted(map(str, shapes))}"
            )
        return list(inputs)

    def build(self, input_shape: Any) -> None:
        if input_shape is None or (isinstance(input_shape, (list, tuple)) and not input_shape):
            # Keras reports an empty list of inputs as the shape ``None``.
            raise ValueError(f"{type(self).__name__}: inputs must be a non-empty list of tensors "
                             "(at least one tensor is needed); got []")
        if not isinstance(input_shape, (list, tuple)) or not isinstance(
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
    """Sum pooling: ``y = Σ_{i=1..k} x_i``, element-wise over a list of same-shape tensors.

    Typical use: adding the embeddings of several fields or of a multi-valued feature that were
    looked up separately.

    Shapes: as :class:`Pooling`, with ``k >= 1`` tensors; no weights, only Keras's arguments.

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
    """Mean pooling: ``y = (1/k) Σ_{i=1..k} x_i``, element-wise over a list of ``k`` same-shape tensors.

    Shapes: as :class:`Pooling`, with ``k >= 1`` tensors; no weights, only Keras's arguments.

    Example:
        >>> import numpy as np
        >>> float(AvgPooling()([np.zeros((1, 2), "float32"), np.ones((1, 2), "float32")])[0, 0])
        0.5
    """

    def reduce(self, tensors: list) -> Any:
        return SumPooling.reduce(self, tensors) / float(len(tensors))


@keras.saving.register_keras_serializable(package="reclayers")
class MaxPooling(Pooling):
    """Max pooling: ``y = max_{i=1..k} x_i``, element-wise over a list of same-shape tensors.

    The gradient flows to the largest input of each element.

    Shapes: as :class:`Pooling`, with ``k >= 1`` tensors; no weights, only Keras's arguments.

    Example:
        >>> import numpy as np
        >>> from keras import ops
        >>> x = [np.array([[1.0, 5.0]], "float32"), np.array([[3.0, 2.0]], "float32")]
        >>> print(ops.convert_to_numpy(MaxPooling()(x)))
        [[3. 5.]]
    """

    def reduce(self, tensors: list) -> Any:
        return ops.max(ops.stack(tensors, axis=0), axis=0)
