"""Compressed Interaction Network (CIN) of xDeepFM."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from reclayers.layers import _build
from reclayers.layers._build import activation_config, config_of, fresh_initializer
from reclayers.layers.utils import check_int_list, check_rank, check_static_dim, invalid

__all__ = ["CIN"]


@keras.saving.register_keras_serializable(package="reclayers")
class CIN(keras.layers.Layer):
    """Compressed Interaction Network: vector-wise high-order field interactions, sum-pooled.

    With ``X`` of shape ``(B, m, D)`` (``m`` fields of size ``D``), ``X0 = transpose(X) (B, D, m)``,
    ``Xp = X0`` and ``H_0 = m``, each layer ``k = 1 … T`` computes

    .. code-block:: text

        Z[b, e, h·m + j] = Xp[b, e, h] · X0[b, e, j]           # (B, D, H_{k-1}·m)
        X_k = act_k(Z @ K_k + bias_k)                          # (B, D, H_k), 1x1 convolution
        p_k = Σ_e X_k[b, e, :]                                 # (B, H_k)

    with ``act_k = activation`` for ``k < T`` and the identity for the last layer, then
    ``Xp = X_k``. The output is ``concat(p_1, …, p_T)`` of shape ``(B, Σ_k H_k)``.

    The 1x1 convolution is a matrix product with a dense kernel ``cin_{k}_kernel`` of shape
    ``(H_{k-1}·m, H_k)`` (same fan-in / fan-out as the original Conv1D kernel ``(1, H_{k-1}·m,
    H_k)``) plus a zero-initialised bias ``cin_{k}_bias`` ``(H_k,)``. The outer products of all
    fields are formed at once (no loop over fields), and the batch axis is reshaped as ``-1``.

    Speed: the outer products are an ``einsum('ni,nj->nij')`` over the ``B·D`` rows rather than a
    broadcast product ``Xp[..., :, None] * X0[..., None, :]``. The values are the same; the
    gradient of the einsum is a batched matrix-vector product, while XLA turned the broadcast
    product's gradient into materialised ``(B, D, H, m)`` broadcast copies. Training step of the
    benchmark's CIN (batch 1024, 26 fields, ``[64, 64]``), one process per backend, both forms
    alternating: JAX 304 → 185 ms, PyTorch 389 → 365 ms, TensorFlow 132 → 131 ms.

    Shapes: ``(B, m, D)`` with static ``m``, ``D`` → ``(B, Σ_k H_k)``.

    Args:
        hidden_uints: ``[H_1, …, H_T]``, the number of feature maps of each layer (the reference's
            spelling). Default ``None``.
        activation: Keras activation identifier for every layer but the last (``None``: identity).
            Default ``None``.
        initializer: initializer of the kernels. Default ``'glorot_uniform'``.
        regularizer: regularizer of the kernels (biases are not regularised). Default ``None``.
        hidden_units: alias of ``hidden_uints``. Default ``None``.

    Example:
        >>> import numpy as np
        >>> cin = CIN(hidden_uints=[10, 5], activation="relu")
        >>> tuple(cin(np.ones((2, 4, 3), "float32")).shape)
        (2, 15)

    Paper: xDeepFM, https://arxiv.org/abs/1803.05170 (the reference's doc links DeepFM by mistake).
    As in the reference and unlike the paper, the convolution has a bias, the last layer is never
    activated, every layer feeds both the output and the next layer (no split-half), and the
    activation defaults to the identity.
    """

    def __init__(
        self,
        hidden_uints: list[int] | None = None,
        activation: Any = None,
        initializer: Any = "glorot_uniform",
        regularizer: Any = None,
        hidden_units: list[int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        if hidden_uints is None:
            hidden_uints = hidden_units
        elif hidden_units is not None and list(hidden_units) != list(hidden_uints):
            raise invalid(owner, "hidden_units", f"equal to hidden_uints {list(hidden_uints)} "
                          "when both are given", hidden_units)
        if hidden_uints is None:
            raise invalid(owner, "hidden_uints", "a non-empty list of integers >= 1", None)
        self.hidden_uints = check_int_list(owner, "hidden_uints", hidden_uints)
        self.activation = _build.activation(activation, self)
        self._activation_id = activation_config(activation)
        _build.set_weight_options(self, initializer, regularizer, "glorot_uniform")

    @property
    def hidden_units(self) -> list[int]:
        """Alias of ``hidden_uints``."""
        return list(self.hidden_uints)

    def build(self, input_shape: tuple) -> None:
        owner = type(self).__name__
        check_rank(owner, "inputs", input_shape, (3,))
        self.num_fields = check_static_dim(owner, "inputs", input_shape, 1)
        self.embedding_dim = check_static_dim(owner, "inputs", input_shape, 2)
        self.kernels = []
        self.biases = []
        prev = self.num_fields
        for k, units in enumerate(self.hidden_uints, start=1):
            self.kernels.append(
                self.add_weight(name=f"cin_{k}_kernel", shape=(prev * self.num_fields, units),
                                initializer=fresh_initializer(self.initializer, k - 1),
                                regularizer=self.regularizer)
            )
            self.biases.append(self.add_weight(name=f"cin_{k}_bias", shape=(units,),
                                               initializer="zeros"))
            prev = units
        self.input_spec = keras.layers.InputSpec(
            ndim=3, axes={1: self.num_fields, 2: self.embedding_dim}
        )

    def call(self, inputs: Any) -> Any:
        m, dim = self.num_fields, self.embedding_dim
        x0 = ops.transpose(ops.cast(inputs, self.compute_dtype), (0, 2, 1))  # (B, D, m)
        # One row per (example, embedding position): the outer products are per row.
        x0 = ops.reshape(x0, (-1, m))                                         # (B·D, m)
        xp = x0
        prev = m
        pooled = []
        last = len(self.hidden_uints) - 1
        for k, units in enumerate(self.hidden_uints):
            # An einsum with a batch axis and no contraction (not a broadcast product): its
            # gradients are batched matrix-vector products, which XLA does not expand into
            # broadcast copies of the (B, D, H·m) tensor (see the class docstring).
            z = ops.reshape(ops.einsum("ni,nj->nij", xp, x0), (-1, dim, prev * m))
            xk = ops.matmul(z, ops.cast(self.kernels[k], self.compute_dtype))
            xk = xk + ops.cast(self.biases[k], self.compute_dtype)
            if k < last and self.activation is not None:
                xk = self.activation(xk)
            pooled.append(ops.sum(xk, axis=1))
            xp = ops.reshape(xk, (-1, units))
            prev = units
        return pooled[0] if len(pooled) == 1 else ops.concatenate(pooled, axis=1)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], sum(self.hidden_uints))

    def get_config(self) -> dict:
        return {**super().get_config(), **config_of(
            self,
            "hidden_uints", "initializer", activation=self._activation_id,
            regularizer=keras.regularizers.serialize(self.regularizer)
                    if self.regularizer is not None
                    else None,
        )}
