"""Fully-connected layer with weight normalisation, an inactive-ReLU monitor and a per-layer optimizer."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from reclayers.layers import _build
from reclayers.layers._build import activation_config, config_of
from reclayers.layers.utils import check_float, check_int, invalid, known_last_dim, weight_normalized

__all__ = ["Dense", "requested_partitions", "validate_partitioner"]


def validate_partitioner(owner: str, partitioner: Any) -> Any:
    """Accept ``None``, a number of shards (int >= 1) or a callable ``(shape, dtype) -> parts``.

    Returns the value (an int for a number of shards); raises ``ValueError`` naming ``owner``
    and ``partitioner`` otherwise.

    Args:
        owner: the calling layer's name, for error messages.
        partitioner: the value to check.

    Example:
        >>> validate_partitioner("Dense", 4)
        4
    """
    if partitioner is None or callable(partitioner):
        return partitioner
    if isinstance(partitioner, bool) or not isinstance(partitioner, int) or partitioner < 1:
        raise invalid(
            owner, "partitioner", "None, a number of shards >= 1 or a callable", partitioner
        )
    return int(partitioner)


def requested_partitions(owner: str, partitioner: Any, shape: tuple, dtype: Any = "float32") -> Any:
    """Partitions per axis that ``partitioner`` asks for a weight of ``shape``.

    ``None`` → ``None`` (not sharded); an int ``n`` → ``(n, 1, ..., 1)`` (row-wise, the
    reference's axis-0 sharding); a callable is called as ``partitioner(shape, dtype)`` like a TF1
    partitioner and must return one int >= 1 per axis. How a request is placed on a device mesh
    is decided by :func:`reclayers.distribute.layout_for`.

    Args:
        owner: the calling layer's name, for error messages.
        partitioner: ``None``, a number of shards, or a callable ``(shape, dtype) -> parts``.
        shape: the weight's shape.
        dtype: the weight's dtype, passed to a callable partitioner. Default ``'float32'``.

    Example:
        >>> requested_partitions("Dense", 2, (8, 4)), requested_partitions("Dense", None, (8, 4))
        ((2, 1), None)
    """
    shape = tuple(int(d) for d in shape)
    if partitioner is None:
        return None
    if isinstance(partitioner, int):
        return (int(partitioner),) + (1,) * (len(shape) - 1)
    parts = partitioner(shape, dtype)
    try:
        parts = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        parts = None
    if parts is None or len(parts) != len(shape) or any(p < 1 for p in parts):
        raise invalid(
            owner, "partitioner", f"a callable returning {len(shape)} ints >= 1 for shape {shape}",
            parts,
        )
    return parts


def _serialize_partitioner(partitioner: Any) -> Any:
    if partitioner is None or isinstance(partitioner, int):
        return partitioner
    return keras.saving.serialize_keras_object(partitioner)


def _deserialize_partitioner(partitioner: Any) -> Any:
    if partitioner is None or isinstance(partitioner, int) or callable(partitioner):
        return partitioner
    return keras.saving.deserialize_keras_object(partitioner)


def _resolve_optimizer(owner: str, optimizer: Any) -> Any:
    if optimizer is None or isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer
    if isinstance(optimizer, (str, dict)):
        return keras.optimizers.get(optimizer)
    raise invalid(owner, "optimizer", "None, a keras Optimizer, its name or config", optimizer)


@keras.saving.register_keras_serializable(package="reclayers")
class Dense(keras.layers.Layer):
    """Fully-connected layer ``y = activation(x @ W + b)`` with optional weight normalisation.

    The effective kernel ``W`` is computed from the raw variable ``V`` (``kernel``) on every call:

    * ``allow_kernel_norm=False``: ``W = V``;
    * ``allow_kernel_norm=True, kernel_norm_trainable=False``: ``W = l2n(V, axis=0)`` — every
      column has unit L2 norm (the norm is floored at 1e-3);
    * ``allow_kernel_norm=True, kernel_norm_trainable=True``: ``W[:, j] = g[j] · l2n(V)[:, j]``
      with a trainable scale ``g`` (``trainable_kernel_norm``) initialised to the column norms of
      the initial ``V``, so training starts from the plain initialiser
      (Weight Normalization, Salimans & Kingma 2016, https://arxiv.org/abs/1602.07868).

    Shapes: input ``(..., n_in)`` → output ``(..., units)``; the last axis is contracted.

    Inactive-ReLU monitor (``inactive_relu_monitor=True``): a non-trainable weight
    ``inactive_relu_count_moving_avg`` of shape ``(units,)`` tracks, as an exponential moving
    average with factor ``inactive_relu_monitor_decay``, how many examples of the batch gave an
    output of exactly 0 for each unit: ``m <- (1 - decay) m + decay c``. It is updated in training
    calls only and never changes ``y``. Fixes over the original: the count is
    ``batch - nonzeros`` (the original subtracted from ``units``), leading axes are flattened
    into the batch, and the monitor works with any activation (the original crashed unless the
    activation was ``relu``).

    Args:
        units: output width.
        activation: Keras activation identifier; ``None`` means identity. Default ``None``.
        use_bias: add a bias ``b``. Default ``True``.
        kernel_initializer: initializer of ``V`` (``None`` → ``'glorot_uniform'``).
            Default ``'glorot_uniform'``.
        bias_initializer: initializer of ``b``. Default ``'zeros'``.
        kernel_regularizer: regularizer of the raw ``V``. Default ``None``.
        bias_regularizer: regularizer of ``b``. Default ``None``.
        allow_kernel_norm: enable weight normalisation. Default ``False``.
        kernel_norm_trainable: learn the per-column scale ``g``. Default ``False``.
        partitioner: ``None``, a number of shards or a callable ``(shape, dtype) -> partitions
            per axis``. Shards the kernel across devices: :func:`reclayers.distribute.layout_map`
            turns the request (:meth:`kernel_partitions`) into a ``keras.distribution`` layout
            on the model axis of the mesh (a no-op on a single device). Default ``None``.
        inactive_relu_monitor: maintain the inactive-unit moving average. Default ``False``.
        inactive_relu_monitor_decay: moving-average factor in ``(0, 1]``. Default 0.1.
        optimizer: a Keras optimizer (or its name/config) that should update this layer's
            variables; read by :class:`reclayers.optimizers.MultiOptimizer`. It is stored as
            ``layer.optimizer`` and as the ``optimizer`` attribute of each variable.
            Default ``None``.

    Example:
        >>> import numpy as np
        >>> dense = Dense(units=4, activation="sigmoid", allow_kernel_norm=True,
        ...               kernel_norm_trainable=True)
        >>> tuple(dense(np.ones((2, 3), "float32")).shape)
        (2, 4)
    """

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        allow_kernel_norm: bool = False,
        kernel_norm_trainable: bool = False,
        partitioner: Any = None,
        inactive_relu_monitor: bool = False,
        inactive_relu_monitor_decay: float = 0.1,
        optimizer: Any = None,
        **kwargs: Any,
    ) -> None:
        input_dim = kwargs.pop("input_dim", None)
        if input_dim is not None and "input_shape" not in kwargs:
            kwargs["input_shape"] = (input_dim,)
        super().__init__(**kwargs)
        self.units = check_int(type(self).__name__, "units", units, minimum=1)
        self.activation = _build.activation(activation, self)
        self._activation_id = activation_config(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer or "glorot_uniform")
        self.bias_initializer = keras.initializers.get(bias_initializer or "zeros")
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.allow_kernel_norm = bool(allow_kernel_norm)
        self.kernel_norm_trainable = bool(kernel_norm_trainable)
        self.partitioner = validate_partitioner(type(self).__name__, partitioner)
        self.inactive_relu_monitor = bool(inactive_relu_monitor)
        self.inactive_relu_monitor_decay = check_float(
            type(self).__name__, "inactive_relu_monitor_decay", inactive_relu_monitor_decay,
            low=0.0, high=1.0, low_inclusive=False,
        )
        self._optimizer = _resolve_optimizer(type(self).__name__, optimizer)
        self.supports_masking = True
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    @property
    def optimizer(self) -> Any:
        """The optimizer this layer's variables ask for (``None``: the default one)."""
        return self._optimizer

    def build(self, input_shape: tuple) -> None:
        n_in = known_last_dim(type(self).__name__, "inputs", input_shape, min_rank=2)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(n_in, self.units),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        kernel = self.kernel

        def column_norms(shape: Any, dtype: Any = None) -> Any:
            value = ops.convert_to_tensor(kernel)
            return ops.cast(ops.sqrt(ops.sum(ops.square(value), axis=0)), dtype or "float32")

        def optional(wanted: bool, name: str, **options: Any) -> Any:
            """A ``(units,)`` weight when the layer's options ask for it, else ``None``."""
            return self.add_weight(name=name, shape=(self.units,), **options) if wanted else None

        self.trainable_kernel_norm = optional(self.allow_kernel_norm and self.kernel_norm_trainable,
                                              "trainable_kernel_norm", initializer=column_norms)
        self.bias = optional(self.use_bias, "bias", initializer=self.bias_initializer,
                             regularizer=self.bias_regularizer)
        monitor = self.inactive_relu_monitor
        self.inactive_relu_count_moving_avg = optional(monitor, "inactive_relu_count_moving_avg",
                                                       initializer="zeros", trainable=False)
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: int(n_in)})
        if self._optimizer is not None:
            for variable in self.trainable_weights:
                variable.optimizer = self._optimizer

    def effective_kernel(self) -> Any:
        """The kernel used in the product: ``V``, ``l2n(V)`` or ``g · l2n(V)``."""
        if not self.allow_kernel_norm:
            return ops.convert_to_tensor(self.kernel)
        return weight_normalized(self.kernel, self.trainable_kernel_norm, epsilon=1e-6)

    def kernel_partitions(self) -> Any:
        """Partitions per kernel axis requested by ``partitioner`` (``None``: not sharded).

        Read by :func:`reclayers.distribute.layout_map`; the layer must be built.
        """
        return requested_partitions(
            type(self).__name__, self.partitioner, tuple(self.kernel.shape), self.kernel.dtype
        )

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        kernel = ops.cast(self.effective_kernel(), self.compute_dtype)
        x = ops.cast(inputs, self.compute_dtype)
        y = ops.matmul(x, kernel)
        if self.bias is not None:
            y = y + ops.cast(self.bias, self.compute_dtype)
        if self.activation is not None:
            y = self.activation(y)
        if self.inactive_relu_count_moving_avg is not None and training:
            flat = ops.reshape(y, (-1, self.units))
            batch = ops.cast(ops.shape(flat)[0], "float32")
            nonzero = ops.sum(ops.cast(ops.not_equal(flat, 0), "float32"), axis=0)
            count = batch - nonzero
            decay = self.inactive_relu_monitor_decay
            moving = self.inactive_relu_count_moving_avg
            moving.assign(
                ops.cast((1.0 - decay) * ops.cast(moving, "float32") + decay * count, moving.dtype)
            )
        return y

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self) -> dict:
        return {**super().get_config(), **config_of(
            self,
            "units", "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer",
            "bias_regularizer", "allow_kernel_norm", "kernel_norm_trainable", "inactive_relu_monitor",
            "inactive_relu_monitor_decay", activation=self._activation_id,
            partitioner=_serialize_partitioner(self.partitioner),
            optimizer=keras.optimizers.serialize(self._optimizer),
        )}

    @classmethod
    def from_config(cls, config: dict) -> Dense:
        config = dict(config)
        config["partitioner"] = _deserialize_partitioner(config.get("partitioner"))
        return cls(**config)


