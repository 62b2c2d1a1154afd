"""LHUC tower: an MLP whose every layer output is rescaled by an input-conditioned gate in (0, 2)."""

from __future__ import annotations

from typing import Any

import keras

from reclayers.layers._build import (
    MLP_OPTIONS,
    activations_per_layer,
    batch_norm,
    check_mlp_options,
    initializers_per_layer,
    mlp_options_config,
    set_mlp_options,
    sublayer,
    tower_arguments,
    tower_config,
)
from reclayers.layers.mlp import MLP, tower_dense
from reclayers.layers.utils import check_int_list, check_rank, invalid

__all__ = ["LHUCTower"]

def _is_int_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value
    )


@keras.saving.register_keras_serializable(package="reclayers")
class LHUCTower(keras.layers.Layer):
    """MLP tower whose layer outputs are scaled element-wise by LHUC gates ``2σ(·)`` in (0, 2).

    With dense input ``x [B, F]`` and LHUC input ``c [B, G]`` (``c = x`` for a single input), for
    ``n = len(output_dims)`` layers:

    .. code-block:: text

        h = BN_in(x)                                          # if enable_batch_normalization
        h = act_i(BN_i(Dense_i(h))) ⊙ LHUC_i(c)   i = 0..n-1  # BN_i not on the last layer
        LHUC_i = MLP(lhuc_output_dims[i]), ReLU hidden layers, sigmoid2 (2σ) on its last layer

    Every LHUC MLP reads the original ``c``; the gate multiplies after the activation; by default
    the last main layer is linear (then gated).

    Resolution rules:

    * ``activations``: ``None`` → ReLU on layers ``0..n-2`` and none on the last; one value →
      that activation on ``0..n-2``; a list of ``n`` → used as is.
    * ``initializers``: one value is used (cloned) for every layer; a list shorter than ``n``
      is padded with ``glorot_uniform``. LHUC MLP ``i`` uses (a clone of) ``initializers[i]``
      for each of its layers. A seeded initializer gets a distinct seed for every kernel, so no
      two kernels start identical.
    * ``lhuc_output_dims``: ``None``/empty → LHUC MLP ``i`` is ``[output_dims[i]]``; a flat list
      ``L`` → ``L + [output_dims[i]]``; a list of ``n`` lists → used as is, each ending with
      ``output_dims[i]``.
    * ``lhuc_<name>`` keywords override ``<name>`` for the LHUC MLPs (for ``kernel_regularizer``,
      ``use_weight_norm``, ``use_learnable_weight_norm``, ``use_bias``, ``bias_regularizer`` and
      the batch-normalisation options); ``lhuc_<name>=None`` falls back to ``<name>``; other
      ``lhuc_*`` keywords are accepted and ignored, as in the original.

    Sub-layers: ``batch_norm`` (input BN), ``layer_{i}_dense`` (library
    :class:`~reclayers.layers.dense.Dense`, weight norm per ``use_weight_norm``),
    ``layer_{i}_batch_norm``, ``layer_{i}_lhuc`` (library :class:`~reclayers.layers.mlp.MLP`),
    ``i`` counted from 1.

    Shapes: ``x [B, F]`` or ``(x [B, F], c [B, G])`` → ``[B, output_dims[-1]]``.

    Args:
        output_dims: main tower widths.
        lhuc_output_dims: shapes of the LHUC MLPs (see above). Default ``None``.
        activations: main tower activations. Default ``'relu'``.
        initializers: kernel initializers of the main layers and their LHUC MLPs. Default
            ``None`` (Glorot uniform).
        use_bias, use_weight_norm, use_learnable_weight_norm, kernel_regularizer,
        bias_regularizer, enable_batch_normalization, batch_normalization_momentum,
        batch_normalization_renorm, batch_normalization_renorm_clipping,
        batch_normalization_renorm_momentum: as in :class:`~reclayers.layers.mlp.MLP`, with the
            same defaults.
        **kwargs: ``lhuc_<name>`` overrides and the usual Keras layer keywords.

    Example:
        >>> import numpy as np
        >>> tower = LHUCTower(output_dims=[8, 1], lhuc_output_dims=[[4, 8], [4, 1]])
        >>> tuple(tower([np.ones((3, 5), "float32"), np.ones((3, 2), "float32")]).shape)
        (3, 1)

    Paper: Swietojanski, Li & Renals, "Learning Hidden Unit Contributions for Unsupervised
    Acoustic Model Adaptation", 2016, https://arxiv.org/abs/1601.02828. Deviation from the
    paper: the per-unit scales are computed by an MLP from ``lhuc_input`` instead of being free
    per-speaker parameters.

    Deliberate deviations from the original: regularizers and ``lhuc_*`` overrides survive
    ``get_config``/``from_config`` (the original dropped them); a list-of-lists
    ``lhuc_output_dims`` must hold exactly ``n`` lists; errors are ``ValueError``.
    """

    def __init__(
        self,
        output_dims: list[int],
        lhuc_output_dims: Any = None,
        activations: Any = "relu",
        initializers: Any = None,
        use_bias: bool = True,
        use_weight_norm: bool = True,
        use_learnable_weight_norm: bool = True,
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        enable_batch_normalization: bool = False,
        batch_normalization_momentum: float = 0.99,
        batch_normalization_renorm: bool = False,
        batch_normalization_renorm_clipping: dict | None = None,
        batch_normalization_renorm_momentum: float = 0.99,
        **kwargs: Any,
    ) -> None:
        lhuc_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k.startswith("lhuc_")}
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.output_dims = check_int_list(owner, "output_dims", output_dims)
        n = len(self.output_dims)
        self.lhuc_output_dims = self._resolve_lhuc_dims(owner, lhuc_output_dims)
        self._lhuc_output_dims_arg = (
            None if lhuc_output_dims is None
            else [list(d) if isinstance(d, (list, tuple)) else d for d in lhuc_output_dims]
        )
        self._activation_layers = activations_per_layer(self, activations, n)
        self._initializers = initializers_per_layer(initializers, n)
        set_mlp_options(self, locals())
        # Known overrides given with a value; unknown lhuc_* keys are ignored (as the original).
        self.lhuc_overrides = check_mlp_options(owner, {
            name: lhuc_kwargs[f"lhuc_{name}"] for name in MLP_OPTIONS
            if lhuc_kwargs.get(f"lhuc_{name}") is not None
        })

        lhuc_options = {**self._options, **self.lhuc_overrides}
        self.batch_norm = batch_norm(self, "batch_norm") if self.enable_batch_normalization else None
        self.dense_layers = []
        self.batch_norms = []
        self.lhuc_layers = []
        for i, dim in enumerate(self.output_dims):
            self.dense_layers.append(
                tower_dense(self, dim, self._initializers[i], f"layer_{i + 1}_dense"))
            self.batch_norms.append(
                batch_norm(self, f"layer_{i + 1}_batch_norm")
                if self.enable_batch_normalization and i < n - 1
                else None
            )
            dims = self.lhuc_output_dims[i]
            self.lhuc_layers.append(
                sublayer(
                    self,
                    MLP,
                    output_dims=dims,
                    activations=["relu"] * (len(dims) - 1) + ["sigmoid2"],
                    initializers=self._initializers[i],
                    name=f"layer_{i + 1}_lhuc",
                    **lhuc_options,
                )
            )

    def _resolve_lhuc_dims(self, owner: str, lhuc_output_dims: Any) -> list[list[int]]:
        dims = self.output_dims
        if lhuc_output_dims is None or (
            isinstance(lhuc_output_dims, (list, tuple)) and len(lhuc_output_dims) == 0
        ):
            return [[d] for d in dims]
        if _is_int_list(lhuc_output_dims):
            return [list(lhuc_output_dims) + [d] for d in dims]
        if isinstance(lhuc_output_dims, (list, tuple)) and all(
            _is_int_list(d) and len(d) > 0 for d in lhuc_output_dims
        ):
            if len(lhuc_output_dims) != len(dims):
                raise invalid(owner, "lhuc_output_dims",
                              f"a list of {len(dims)} lists (one per layer)", lhuc_output_dims)
            for i, d in enumerate(lhuc_output_dims):
                if d[-1] != dims[i]:
                    raise invalid(owner, f"lhuc_output_dims[{i}]",
                                  f"a list ending with output_dims[{i}] = {dims[i]}", list(d))
            return [list(d) for d in lhuc_output_dims]
        raise invalid(owner, "lhuc_output_dims",
                      "None, a list of integers >= 1 or a list of such lists", lhuc_output_dims)

    @staticmethod
    def _split(owner: str, inputs: Any, is_shape: bool = False) -> tuple[Any, Any]:
        single = (
            isinstance(inputs, (list, tuple)) and all(d is None or isinstance(d, int) for d in inputs)
            if is_shape
            else not isinstance(inputs, (list, tuple))
        )
        if single:
            return inputs, inputs
        items = list(inputs)
        if len(items) == 1:
            return items[0], items[0]
        if len(items) != 2:
            raise invalid(owner, "inputs", "one tensor or a pair (dense_input, lhuc_input)",
                          f"a list of {len(items)} tensors")
        return items[0], items[1]

    def build(self, input_shape: Any) -> None:
        owner = type(self).__name__
        dense_shape, lhuc_shape = self._split(owner, input_shape, is_shape=True)
        dense_shape, lhuc_shape = tuple(dense_shape), tuple(lhuc_shape)
        check_rank(owner, "dense_input", dense_shape, (2,), known_last=True)
        check_rank(owner, "lhuc_input", lhuc_shape, (2,), known_last=True)
        shape = dense_shape
        if self.batch_norm is not None:
            self.batch_norm.build(shape)
        for dense, bn, act, lhuc in zip(self.dense_layers, self.batch_norms,
                                        self._activation_layers, self.lhuc_layers):
            dense.build(shape)
            shape = dense.compute_output_shape(shape)
            if bn is not None:
                bn.build(shape)
            if isinstance(act, keras.layers.Layer) and not act.built:
                act.build(shape)
            lhuc.build(lhuc_shape)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x, c = self._split(type(self).__name__, inputs)
        h = keras.ops.cast(x, self.compute_dtype)
        c = keras.ops.cast(c, self.compute_dtype)
        if self.batch_norm is not None:
            h = self.batch_norm(h, training=training)
        for dense, bn, act, lhuc in zip(self.dense_layers, self.batch_norms,
                                        self._activation_layers, self.lhuc_layers):
            h = dense(h)
            if bn is not None:
                h = bn(h, training=training)
            if act is not None:
                h = act(h)
            h = h * keras.ops.cast(lhuc(c, training=training), self.compute_dtype)
        return h

    def compute_output_shape(self, input_shape: Any) -> tuple:
        dense_shape, _ = self._split(type(self).__name__, input_shape, is_shape=True)
        return (tuple(dense_shape)[0], self.output_dims[-1])

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            **tower_config(self),
            "lhuc_output_dims": self._lhuc_output_dims_arg,
            **{f"lhuc_{name}": value
               for name, value in mlp_options_config(self.lhuc_overrides).items()},
        }

    @classmethod
    def from_config(cls, config: dict) -> LHUCTower:
        return cls(**tower_arguments(config))
