"""Deep & Cross Network cross layers: DCN v1 ('vector') and DCN-V2 ('matrix', 'mixed')."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from reclayers.layers._build import config_of, fresh_initializer, set_weight_options
from reclayers.layers.utils import (
    DCNType,
    check_float,
    check_int,
    check_one_of,
    invalid,
    known_last_dim,
    weight_normalized,
)

__all__ = ["DCN"]

_DCN_TYPES = (DCNType.Vector, DCNType.Matrix, DCNType.Mixed)
_MODES = ("train", "eval", "infer", "predict")


def _column_norms_of(variable: Any) -> Any:
    """An initializer giving the column L2 norms of ``variable``'s current (initial) value."""

    def init(shape: Any, dtype: Any = None) -> Any:
        value = ops.convert_to_tensor(variable)
        return ops.cast(ops.sqrt(ops.sum(ops.square(value), axis=0)), dtype or "float32")

    return init


@keras.saving.register_keras_serializable(package="reclayers")
class DCN(keras.layers.Layer):
    """Cross network with residual connections: DCN (v1, 'vector') and DCN-V2 ('matrix', 'mixed').

    With ``x0 = x`` and ``h = x0``, each of the ``layer_num`` cross layers ``i`` computes
    (row-vector convention, the cross acts on the last axis):

    * ``'vector'``: ``h <- x0 ⊙ (h @ kernel_i) + bias_i + h`` with ``kernel_i`` of shape ``(d, 1)``;
    * ``'matrix'``: ``h <- x0 ⊙ (h @ kernel_i + bias_i) + h`` with ``kernel_i`` of shape ``(d, d)``;
    * ``'mixed'`` (mixture of ``K = num_experts`` low-rank experts of rank ``r = low_rank``)::

          E_j = x0 ⊙ (tanh(tanh(h @ V_ij) @ C_ij) @ U_ijᵀ + bias_i)      # expert j, (..., d)
          α   = softmax([h @ G_i1, ..., h @ G_iK])                        # over the experts
          h  <- Σ_j α_j E_j + h

    then, if ``use_dropout`` and dropout is active, ``h <- dropout(h, rate=1 - keep_prob)``
    (inverted scaling; applied after every cross layer, ``x0`` is never dropped).

    With ``allow_kernel_norm`` every kernel ``W`` (``kernel``, ``U``, ``V``, ``C``, ``G``) is used as
    ``l2n(W, axis=0) ⊙ g`` where ``g`` (``{W}_trainable_norm``, one entry per column) is trainable
    and initialised to the column norms of the initial ``W``; the derived kernel is recomputed in
    every call. Every kernel draws its own initial values from a copy of ``initializer`` (an
    integer seed is offset per kernel), so experts and layers do not start identical.

    Dropout is active when ``training`` is True; when ``call`` gets ``training=None`` the
    constructor's ``mode`` decides (active only for ``mode='train'``, as in the reference, whose
    default is ``'train'``). ``training=True/False`` always overrides ``mode``.

    Shapes: input ``(..., d)`` of rank >= 2 with a known ``d``; output of the same shape.

    Weights, for layer ``i`` and expert ``j``: ``kernel_{i}`` (``(d, 1)`` vector, ``(d, d)``
    matrix), ``U_{i}_{j}``, ``V_{i}_{j}`` ``(d, r)``, ``C_{i}_{j}`` ``(r, r)``, ``G_{i}_{j}``
    ``(d, 1)`` (mixed) and ``bias_{i}`` ``(1, d)`` (zeros, never regularised).

    Args:
        layer_num: number of cross layers ``L >= 1``. Default 1.
        dcn_type: ``'vector'``, ``'matrix'`` or ``'mixed'``. Default ``'matrix'``.
        initializer: initializer of every kernel (``None`` → ``GlorotNormal``). Default ``None``.
        regularizer: regularizer of every kernel (not of the biases). Default ``None``.
        num_experts: mixed only, ``K >= 1``. Default 1.
        low_rank: mixed only, ``r >= 1``. Default 0.
        allow_kernel_norm: weight-normalise the kernels (with a learnable scale). Default ``False``.
        use_dropout: dropout after each cross layer. Default ``False``.
        keep_prob: dropout KEEP probability in ``(0, 1]`` (the rate is ``1 - keep_prob``).
            Default 0.95.
        mode: ``'train'``, ``'eval'``, ``'infer'`` (or ``'predict'``); see above.
            Default ``'train'``.
        seed: optional seed of the dropout noise. Default ``None``.

    Example:
        >>> import numpy as np
        >>> dcn = DCN(layer_num=2, dcn_type="mixed", num_experts=2, low_rank=4)
        >>> tuple(dcn(np.ones((3, 8), "float32")).shape)
        (3, 8)

    Papers: DCN, https://arxiv.org/abs/1708.05123 ('vector'); DCN-V2,
    https://arxiv.org/abs/2008.13535 ('matrix', 'mixed').

    Deviations from the original (each fixes a defect of the original code):

    * 'mixed' gates are a softmax over the experts (the original took the softmax over a size-1
      axis, so every gate was 1 and ``G`` never trained); for ``num_experts=1`` both agree (the
      single gate is 1 and ``G_{i}_0`` has no effect, as in the original).
    * Kernel norm applies to kernels only; the original also normalised the biases, which froze
      them at zero.
    * ``dcn_type`` is validated (the original treated any unknown value as 'mixed'), and 'mixed'
      requires ``low_rank >= 1`` (the original's default 0 silently gave ``E_j = x0 ⊙ bias``).
    * Dropout follows ``training`` when it is given (the original only read ``mode``).
    * Weight-normalised variables are named ``{W}_trainable_norm`` (Keras forbids ``/``).
    """

    def __init__(
        self,
        layer_num: int = 1,
        dcn_type: str = DCNType.Matrix,
        initializer: Any = None,
        regularizer: Any = None,
        num_experts: int = 1,
        low_rank: int = 0,
        allow_kernel_norm: bool = False,
        use_dropout: bool = False,
        keep_prob: float = 0.95,
        mode: str = "train",
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.layer_num = check_int(owner, "layer_num", layer_num, minimum=1)
        self.dcn_type = check_one_of(owner, "dcn_type", dcn_type, _DCN_TYPES)
        set_weight_options(self, initializer, regularizer, "glorot_normal")
        self.num_experts = check_int(owner, "num_experts", num_experts, minimum=1)
        self.low_rank = check_int(owner, "low_rank", low_rank, minimum=0)
        if self.dcn_type == DCNType.Mixed and self.low_rank < 1:
            raise invalid(owner, "low_rank", "an integer >= 1 when dcn_type is 'mixed'", low_rank)
        self.allow_kernel_norm = bool(allow_kernel_norm)
        self.use_dropout = bool(use_dropout)
        self.keep_prob = check_float(owner, "keep_prob", keep_prob, low=0.0, high=1.0,
                                     low_inclusive=False)
        self.mode = check_one_of(owner, "mode", mode, _MODES)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if self.use_dropout else None
        self.supports_masking = True

    # ------------------------------------------------------------------------------------------
    def _kernel(self, name: str, shape: tuple) -> tuple[Any, Any]:
        """Create kernel ``name`` and, with kernel norm, its trainable column scale."""
        self._num_kernels += 1
        w = self.add_weight(name=name, shape=shape,
                            initializer=fresh_initializer(self.initializer, self._num_kernels - 1),
                            regularizer=self.regularizer)
        norm = None
        if self.allow_kernel_norm:
            norm = self.add_weight(name=f"{name}_trainable_norm", shape=(shape[-1],),
                                   initializer=_column_norms_of(w))
        return w, norm

    def build(self, input_shape: tuple) -> None:
        d = known_last_dim(type(self).__name__, "inputs", input_shape, min_rank=2)
        self.input_dim = d
        self._num_kernels = 0
        r, k = self.low_rank, self.num_experts
        self._kernels: list[dict[str, Any]] = []
        self.biases = []
        for i in range(self.layer_num):
            layer: dict[str, Any] = {}
            if self.dcn_type == DCNType.Vector:
                layer["kernel"] = self._kernel(f"kernel_{i}", (d, 1))
            elif self.dcn_type == DCNType.Matrix:
                layer["kernel"] = self._kernel(f"kernel_{i}", (d, d))
            else:
                for j in range(k):
                    layer[f"U_{j}"] = self._kernel(f"U_{i}_{j}", (d, r))
                    layer[f"V_{j}"] = self._kernel(f"V_{i}_{j}", (d, r))
                    layer[f"C_{j}"] = self._kernel(f"C_{i}_{j}", (r, r))
                    layer[f"G_{j}"] = self._kernel(f"G_{i}_{j}", (d, 1))
            self._kernels.append(layer)
            self.biases.append(self.add_weight(name=f"bias_{i}", shape=(1, d), initializer="zeros"))
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: d})

    def effective_kernel(self, layer: int, name: str) -> Any:
        """The kernel used in the product (``W`` or ``l2n(W, axis=0) ⊙ g``), compute dtype.

        ``name`` is ``'kernel'`` or, for 'mixed', ``'U_j'``, ``'V_j'``, ``'C_j'``, ``'G_j'``.
        """
        w, norm = self._kernels[layer][name]
        value = ops.convert_to_tensor(w) if norm is None else weight_normalized(w, norm, epsilon=1e-6)
        return ops.cast(value, self.compute_dtype)

    def _mixture(self, i: int, h: Any) -> Any:
        """``Σ_j α_j (U_j low_j)`` of cross layer ``i``, without materialising the K experts.

        Because the gates sum to one, ``Σ_j α_j E_j = x0 ⊙ (Σ_j U_j (α_j low_j) + bias)``: the K
        expert outputs of width d are never formed. The V projections of all experts run as one
        ``(d, K·r)`` matmul, the U projections as one ``(K·r, d)`` matmul of the gated low-rank codes.
        """
        k, r = self.num_experts, self.low_rank
        v = ops.concatenate([self.effective_kernel(i, f"V_{j}") for j in range(k)], axis=1)  # (d, K·r)
        u = ops.concatenate([ops.transpose(self.effective_kernel(i, f"U_{j}")) for j in range(k)],
                            axis=0)  # (K·r, d)
        c = ops.stack([self.effective_kernel(i, f"C_{j}") for j in range(k)])  # (K, r, r)
        low = ops.reshape(ops.tanh(ops.matmul(h, v)), (-1, k, r))
        low = ops.tanh(ops.einsum("nkr,krs->nks", low, c))
        if k > 1:  # softmax over one expert is exactly 1: G has no effect
            g = ops.concatenate([self.effective_kernel(i, f"G_{j}") for j in range(k)], axis=1)
            low = low * ops.softmax(ops.matmul(h, g), axis=-1)[:, :, None]
        return ops.matmul(ops.reshape(low, (-1, k * r)), u)

    def _dropout_active(self, training: bool | None) -> bool:
        if not self.use_dropout or self.keep_prob >= 1.0:
            return False
        if training is None:
            return self.mode == "train"
        return bool(training)

    def _vector_stack(self, x0: Any) -> Any:
        """All 'vector' cross layers at once (no dropout between them), the same function.

        Every ``h_i`` is ``x0 ⊙ s_i + c_i`` with a per-row scalar ``s_i`` and a row-independent
        vector ``c_i``: ``h_0 = x0`` (``s_0 = 1``, ``c_0 = 0``) and
        ``x0 ⊙ (h_i @ k_i) + b_i + h_i = x0 ⊙ (s_i + h_i @ k_i) + (c_i + b_i)``, where
        ``h_i @ k_i = s_i (x0 @ k_i) + c_i @ k_i``. So one ``(d, L)`` matmul gives every
        ``x0 @ k_i``, the recurrences run on ``(N, 1)`` scalars and ``(1, d)`` vectors, and only the
        output ``x0 ⊙ s_L + c_L`` is ``(N, d)``: two full-width element-wise ops instead of three
        per layer (and their gradients). Same math as the layer-by-layer loop up to float rounding.
        """
        kernels = [self.effective_kernel(i, "kernel") for i in range(self.layer_num)]
        proj = ops.matmul(x0, ops.concatenate(kernels, axis=1))  # (N, L): x0 @ k_i
        s = None  # s_0 = 1
        c = None  # c_0 = 0
        for i in range(self.layer_num):
            p = proj[:, i:i + 1]
            t = p if s is None else s * p
            if c is not None:
                t = t + ops.matmul(c, kernels[i])  # c_i @ k_i, (1, 1)
            s = 1.0 + t if s is None else s + t
            bias = ops.cast(self.biases[i], self.compute_dtype)
            c = bias if c is None else c + bias
        return x0 * s + c

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = ops.cast(inputs, self.compute_dtype)
        shape = ops.shape(x)
        x0 = ops.reshape(x, (-1, self.input_dim))
        h = x0
        drop = self._dropout_active(training)
        if self.dcn_type == DCNType.Vector and not drop:
            return ops.reshape(self._vector_stack(x0), shape)
        for i in range(self.layer_num):
            bias = ops.cast(self.biases[i], self.compute_dtype)
            if self.dcn_type == DCNType.Vector:
                h = x0 * ops.matmul(h, self.effective_kernel(i, "kernel")) + bias + h
            elif self.dcn_type == DCNType.Matrix:
                h = x0 * (ops.matmul(h, self.effective_kernel(i, "kernel")) + bias) + h
            else:
                h = x0 * (self._mixture(i, h) + bias) + h
            if drop:
                h = keras.random.dropout(h, rate=1.0 - self.keep_prob, seed=self.seed_generator)
        return ops.reshape(h, shape)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {**super().get_config(), **config_of(
            self,
            "layer_num", "dcn_type", "initializer", "num_experts", "low_rank", "allow_kernel_norm",
            "use_dropout", "keep_prob", "mode", "seed",
            regularizer=keras.regularizers.serialize(self.regularizer)
                    if self.regularizer is not None
                    else None,
        )}
