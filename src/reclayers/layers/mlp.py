"""Multilayer perceptron: a stack of weight-normalised Dense layers with optional batch norm."""

from __future__ import annotations

from typing import Any

import keras

from reclayers.layers._build import (
    activations_per_layer,
    batch_norm,
    batch_norm_supports_renorm,
    call_sublayer,
    initializers_per_layer,
    set_mlp_options,
    sublayer,
    tower_arguments,
    tower_config,
)
from reclayers.layers.dense import Dense
from reclayers.layers.utils import check_int_list, invalid, known_last_dim

__all__ = ["MLP", "batch_norm_supports_renorm"]


def tower_dense(owner: keras.layers.Layer, units: int, initializer: Any, name: str) -> Dense:
    """A layer of an MLP tower: a :class:`Dense` without activation, from ``owner``'s options.

    ``owner`` holds checked MLP options as attributes (bias, regularizers, weight norm); the
    bias starts at zero and the layer runs under ``owner``'s dtype policy. :class:`MLP` and
    :class:`~reclayers.layers.lhuc.LHUCTower` build their layers with it.

    Args:
        owner: the tower.
        units: the layer's width.
        initializer: its kernel initializer (one object per layer).
        name: its name.

    Example:
        >>> tower_dense(MLP([4]), 3, "glorot_uniform", "dense_0").units
        3
    """
    return sublayer(
        owner,
        Dense,
        units=units,
        activation=None,
        use_bias=owner.use_bias,
        kernel_initializer=initializer,
        bias_initializer="zeros",
        kernel_regularizer=owner.kernel_regularizer,
        bias_regularizer=owner.bias_regularizer,
        allow_kernel_norm=owner.use_weight_norm,
        kernel_norm_trainable=owner.use_learnable_weight_norm,
        name=name,
    )


@keras.saving.register_keras_serializable(package="reclayers")
class MLP(keras.layers.Layer):
    """Multilayer perceptron built from :class:`~reclayers.layers.dense.Dense` layers.

    For ``n = len(output_dims)`` layers, with optional batch normalisation (BN):

    .. code-block:: text

        h = BN_in(x)                                  # if enable_batch_normalization
        h = act_i(BN_i(Dense_i(h)))   for i < n - 1   # BN before the activation
        y = act_{n-1}(Dense_{n-1}(h))                 # last act only when given in a list

    Every Dense has no activation of its own, ``allow_kernel_norm=use_weight_norm`` and
    ``kernel_norm_trainable=use_learnable_weight_norm`` — **both on by default**, as in the
    reference. Activations resolve through :func:`reclayers.layers.advanced_activations.get`:
    ``None`` means ReLU on hidden layers and nothing on the last; a single identifier applies to
    every hidden layer (a single layer *instance* such as ``PReLU()`` is cloned per layer, where
    the original shared it and failed on layers of different width); a list gives one per layer
    and its last entry is honoured.

    BN is Keras ``BatchNormalization(momentum, renorm, renorm_clipping, renorm_momentum)``
    (axis -1, epsilon 1e-3), following the ``training`` argument. Batch renormalisation
    (Ioffe 2017, https://arxiv.org/abs/1702.03275) uses Keras's implementation:
    ``y = γ ((x - μ_B) / σ_B · r + d) + β`` with ``r = clip(σ_B / σ, 1/rmax, rmax)`` and
    ``d = clip((μ_B - μ) / σ, -dmax, dmax)`` from moving statistics updated with
    ``renorm_momentum``.

    Shapes: ``(..., d_in)`` → ``(..., output_dims[-1])``.

    Args:
        output_dims: width of each layer (non-empty).
        activations: ``None``, one identifier, or a list of ``len(output_dims)`` identifiers.
            Default ``None`` (ReLU on hidden layers, none on the last).
        initializers: ``None``, one kernel initializer, or a list (padded with
            ``'glorot_uniform'``). Default ``None`` (``'glorot_uniform'``); a seeded initializer
            gets a distinct seed per layer.
        kernel_regularizer: regularizer of every kernel. Default ``None``.
        use_weight_norm: weight-normalise every kernel. Default ``True``.
        use_learnable_weight_norm: learn the weight-norm scales. Default ``True``.
        use_bias: add biases. Default ``True``.
        bias_regularizer: regularizer of every bias. Default ``None``.
        enable_batch_normalization: BN on the input and after every hidden Dense. Default
            ``False``.
        batch_normalization_momentum: BN moving-average momentum. Default 0.99.
        batch_normalization_renorm: use batch renormalisation. Default ``False``.
        batch_normalization_renorm_clipping: ``None`` or a dict with keys ``rmax``, ``rmin``,
            ``dmax``. Default ``None``.
        batch_normalization_renorm_momentum: momentum of the renorm statistics. Default 0.99.

    Example:
        >>> import numpy as np
        >>> mlp = MLP(output_dims=[8, 4, 1], activations=["relu", "tanh", None])
        >>> tuple(mlp(np.ones((2, 5), "float32")).shape)
        (2, 1)

    Paper: Weight Normalization, https://arxiv.org/abs/1602.07868.
    """

    def __init__(
        self,
        output_dims: list[int],
        activations: Any = None,
        initializers: Any = None,
        kernel_regularizer: Any = None,
        use_weight_norm: bool = True,
        use_learnable_weight_norm: bool = True,
        use_bias: bool = True,
        bias_regularizer: Any = None,
        enable_batch_normalization: bool = False,
        batch_normalization_momentum: float = 0.99,
        batch_normalization_renorm: bool = False,
        batch_normalization_renorm_clipping: dict | None = None,
        batch_normalization_renorm_momentum: float = 0.99,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.output_dims = check_int_list(owner, "output_dims", output_dims)
        n = len(self.output_dims)
        self._activation_layers = activations_per_layer(self, activations, n)
        self._initializers = initializers_per_layer(initializers, n)
        set_mlp_options(self, locals())
        self.supports_masking = True

        self.dense_layers = [
            tower_dense(self, dim, self._initializers[i], f"dense_{i}")
            for i, dim in enumerate(self.output_dims)
        ]
        self.batch_norm_in = batch_norm(self, "batch_norm_in") if self.enable_batch_normalization else None
        self.batch_norms = [
            batch_norm(self, f"batch_norm_{i}") if self.enable_batch_normalization else None
            for i in range(n - 1)
        ] + [None]
        self._layer_stack = self._flat_stack()

    def _flat_stack(self) -> list[Any]:
        stack: list[Any] = []
        if self.batch_norm_in is not None:
            stack.append(self.batch_norm_in)
        for dense, bn, act in zip(self.dense_layers, self.batch_norms, self._activation_layers):
            stack.append(dense)
            if bn is not None:
                stack.append(bn)
            if act is not None:
                stack.append(act)
        return stack

    @property
    def activations(self) -> list[Any]:
        """The resolved per-layer activation layers (``None`` where there is none)."""
        return list(self._activation_layers)

    def get_layer(self, index: int) -> Any:
        """The ``index``-th entry of the flat stack (input BN, then Dense, BN, activation ...)."""
        if not 0 <= index < len(self._layer_stack):
            raise invalid(type(self).__name__, "index",
                          f"an integer in [0, {len(self._layer_stack)})", index)
        return self._layer_stack[index]

    def build(self, input_shape: tuple) -> None:
        owner = type(self).__name__
        known_last_dim(owner, "inputs", input_shape, min_rank=2)
        shape = tuple(input_shape)
        for layer in self._layer_stack:
            if not isinstance(layer, keras.layers.Layer):
                continue  # a plain activation function keeps the shape
            if not layer.built:
                layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, inputs: Any, training: bool | None = None, **kwargs: Any) -> Any:
        return self._run(inputs, self._layer_stack, training)

    def call_after_first_dense(self, first_dense_output: Any, training: bool | None = None) -> Any:
        """The tower's output given the output of its first ``Dense`` (before BN and activation).

        For callers that compute the first projection in a cheaper factored form (DIN projects the
        query once per example instead of once per sequence position) and let the tower do the
        rest. Not available with ``enable_batch_normalization`` (the input BN comes first).
        """
        if self.batch_norm_in is not None:
            raise ValueError(f"{type(self).__name__}: call_after_first_dense needs "
                             f"enable_batch_normalization=False; got True")
        return self._run(first_dense_output, self._layer_stack[1:], training)

    @staticmethod
    def _run(h: Any, stack: list[Any], training: bool | None) -> Any:
        for layer in stack:
            h = call_sublayer(layer, h, training)
        return h

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape[:-1]) + (self.output_dims[-1],)

    def get_config(self) -> dict:
        return {**super().get_config(), **tower_config(self)}

    @classmethod
    def from_config(cls, config: dict) -> MLP:
        return cls(**tower_arguments(config))
