"""Feature transformations over field embeddings: AutoInt, iRazor and SeNet."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from reclayers.layers._build import call_sublayer, config_of, set_weight_options, sublayer
from reclayers.layers.mlp import MLP
from reclayers.layers.utils import (
    MergeType,
    check_float,
    check_int,
    check_one_of,
    check_rank,
    check_static_dim,
    invalid,
    merge_tensor_list,
    merged_output_shape,
)

__all__ = ["AutoInt", "SeNet", "iRazor"]

_OUT_TYPES = (MergeType.CONCAT, MergeType.STACK, MergeType.NONE)


@keras.saving.register_keras_serializable(package="reclayers")
class AutoInt(keras.layers.Layer):
    """Parameter-free self-attention over fields, repeated ``layer_num`` times.

    With ``X_0 = X`` of shape ``(B, F, E)``, for ``l = 0 … layer_num-1``::

        A       = softmax(X_l @ X_lᵀ, axis=-1)      # (B, F, F)
        X_{l+1} = A @ X_l                            # (B, F, E)

    and the output is ``merge_tensor_list(X_L, out_type, keep_list=keep_list)``: ``'concat'`` →
    ``(B, F·E)``, ``'stack'`` → ``(B, F, E)``, ``None`` → a list of ``F`` tensors ``(B, E)``;
    ``keep_list=True`` wraps a single tensor in a one-element list.

    As in the reference (and unlike the paper) there are no query/key/value projections, a single
    head, no ``1/√d`` scaling, no residual and no ReLU: the layer has no weights. The softmax
    subtracts the row maximum. ``out_type`` is validated in the constructor (the original failed
    only at call time).

    Shapes: ``(B, F, E)`` → ``(B, F·E)`` (``'concat'``), ``(B, F, E)`` (``'stack'``) or a list of
    ``F`` tensors ``(B, E)`` (``None``).

    Args:
        layer_num: number of attention iterations (``>= 1``). Default 1.
        out_type: ``'concat'``, ``'stack'`` or ``None``. Default ``'concat'``.
        keep_list: wrap a single-tensor result into a list. Default ``False``.

    Example:
        >>> import numpy as np
        >>> tuple(AutoInt(layer_num=2)(np.ones((2, 3, 4), "float32")).shape)
        (2, 12)

    Paper: AutoInt, https://arxiv.org/abs/1810.11921.
    """

    def __init__(self, layer_num: int = 1, out_type: str | None = "concat", keep_list: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.layer_num = check_int(owner, "layer_num", layer_num, minimum=1)
        self.out_type = check_one_of(owner, "out_type", out_type, _OUT_TYPES)
        self.keep_list = bool(keep_list)

    def build(self, input_shape: tuple) -> None:
        owner = type(self).__name__
        check_rank(owner, "inputs", input_shape, (3,))
        check_static_dim(owner, "inputs", input_shape, 1)
        check_static_dim(owner, "inputs", input_shape, 2)

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, self.compute_dtype)
        for _ in range(self.layer_num):
            scores = ops.matmul(x, ops.transpose(x, (0, 2, 1)))
            x = ops.matmul(ops.softmax(scores, axis=-1), x)
        return merge_tensor_list(x, self.out_type, keep_list=self.keep_list)

    def compute_output_shape(self, input_shape: tuple) -> Any:
        return merged_output_shape(tuple(input_shape), self.out_type, self.keep_list)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {"layer_num": self.layer_num, "out_type": self.out_type, "keep_list": self.keep_list}
        )
        return config


@keras.saving.register_keras_serializable(package="reclayers")
class iRazor(keras.layers.Layer):  # noqa: N801 - the reference's class name
    """Soft field selection and embedding-dimension search with a learned per-field distribution.

    The embedding axis ``[0, E)`` is split into groups by ``nas_space = [0, n_1, …, n_{K-1} = E]``
    (group ``i ≥ 1`` covers ``n_{i-1} ≤ e < n_i``); choice 0 means "drop the field". With the
    trainable logits ``nas_weight`` ``(F, K)`` and the constant mask ``M`` ``(K, E)`` (row 0 zero,
    row ``i`` one on group ``i``)::

        P = softmax(nas_weight / t, axis=1)        # (F, K), exposed by selection_probs()
        S = P @ M                                  # (F, E): S[f, e] = P[f, group(e)]
        Y = X ⊙ S                                  # broadcast over the batch

    and the output is ``merge_tensor_list(Y, out_type, keep_list=keep_list)`` (``'concat'``
    ``(B, F·E)``, ``'stack'`` ``(B, F, E)``, ``None`` a list of ``F`` ``(B, E)``).

    With ``feature_weight`` (``F`` floats ``fw``) the layer adds the auxiliary loss
    ``Σ_f fw_f Σ_e S[f, e]`` (the expected number of kept dimensions, weighted) through
    ``add_loss``; :meth:`layer_loss` returns the same value. Training and inference are identical
    (the soft mask is used in both).

    Shapes: ``(B, F, E)`` with ``E = nas_space[-1]`` →
    ``(B, F·E)`` (``'concat'``), ``(B, F, E)`` (``'stack'``) or a list of ``F`` ``(B, E)``.

    Args:
        nas_space: strictly increasing group boundaries, first 0, last ``E``; ``K = len(nas_space)``.
        t: softmax temperature (``> 0``). Default 0.05.
        initializer: initializer of ``nas_weight`` (``None`` → ``'glorot_uniform'``).
            Default ``None``.
        regularizer: regularizer of ``nas_weight``. Default ``None``.
        feature_weight: ``None`` or ``F`` per-field weights of the auxiliary loss. Default ``None``.
        out_type: ``'concat'``, ``'stack'`` or ``None``. Default ``'concat'``.
        keep_list: wrap a single-tensor result into a list. Default ``False``.

    Example:
        >>> import numpy as np
        >>> razor = iRazor(nas_space=[0, 2, 5], feature_weight=[1.0, 0.5])
        >>> tuple(razor(np.ones((4, 2, 5), "float32")).shape)
        (4, 10)

    Deviations from the original: ``nas_space``, ``t``, ``feature_weight`` and ``out_type`` are
    validated in the constructor and the input shape in ``build``; ``feature_weight`` is stored in
    the config as a list of floats (the original stored a tensor); the loss goes through
    ``add_loss`` instead of a global registry and the histogram summary of ``P`` is omitted.
    """

    def __init__(
        self,
        nas_space: list[int],
        t: float = 0.05,
        initializer: Any = None,
        regularizer: Any = None,
        feature_weight: Any = None,
        out_type: str | None = "concat",
        keep_list: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        expected = "a strictly increasing list of at least 2 integers starting at 0"
        if not isinstance(nas_space, (list, tuple)) or len(nas_space) < 2 or any(
            isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in nas_space
        ):
            raise invalid(owner, "nas_space", expected, nas_space)
        nas = [int(v) for v in nas_space]
        if nas[0] != 0 or any(b <= a for a, b in zip(nas, nas[1:])):
            raise invalid(owner, "nas_space", expected, nas_space)
        self.nas_space = nas
        self.t = check_float(owner, "t", t, low=0.0, low_inclusive=False)
        set_weight_options(self, initializer, regularizer, "glorot_uniform")
        if feature_weight is not None:
            fw = np.asarray(ops.convert_to_numpy(feature_weight), dtype="float64").reshape(-1)
            if fw.size == 0 or not np.all(np.isfinite(fw)):
                raise invalid(owner, "feature_weight", "None or a non-empty list of finite numbers",
                              feature_weight)
            feature_weight = [float(v) for v in fw]
        self.feature_weight = feature_weight
        self.out_type = check_one_of(owner, "out_type", out_type, _OUT_TYPES)
        self.keep_list = bool(keep_list)

    @property
    def embedding_dim(self) -> int:
        return self.nas_space[-1]

    def _mask(self) -> np.ndarray:
        k, e = len(self.nas_space), self.nas_space[-1]
        mask = np.zeros((k, e), dtype="float32")
        for i in range(1, k):
            mask[i, self.nas_space[i - 1]:self.nas_space[i]] = 1.0
        return mask

    def build(self, input_shape: tuple) -> None:
        owner = type(self).__name__
        check_rank(owner, "inputs", input_shape, (3,))
        f = check_static_dim(owner, "inputs", input_shape, 1)
        e = input_shape[2]
        if e != self.embedding_dim:
            raise ValueError(
                f"{owner}: inputs must have embedding size max(nas_space) = {self.embedding_dim} on "
                f"axis 2; got shape {tuple(input_shape)}"
            )
        if self.feature_weight is not None and len(self.feature_weight) != f:
            raise invalid(owner, "feature_weight", f"a list of {f} numbers (one per field)",
                          self.feature_weight)
        self.num_fields = f
        self.nas_weight = self.add_weight(
            name="nas_weight", shape=(f, len(self.nas_space)), initializer=self.initializer,
            regularizer=self.regularizer,
        )
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={1: f, 2: self.embedding_dim})

    def selection_probs(self) -> Any:
        """``P = softmax(nas_weight / t, axis=1)`` of shape ``(F, K)`` (float32)."""
        return ops.softmax(ops.convert_to_tensor(self.nas_weight) / self.t, axis=1)

    def soft_mask(self, dtype: Any = None) -> Any:
        """``S = P @ M`` of shape ``(F, E)``."""
        probs = ops.cast(self.selection_probs(), dtype or self.compute_dtype)
        return ops.matmul(probs, ops.convert_to_tensor(self._mask(), dtype=probs.dtype))

    def layer_loss(self) -> Any:
        """The auxiliary loss ``Σ_f fw_f Σ_e S[f, e]`` (``None`` without ``feature_weight``)."""
        if self.feature_weight is None:
            return None
        fw = ops.convert_to_tensor(np.asarray(self.feature_weight, "float32"))
        return ops.sum(fw * ops.sum(self.soft_mask("float32"), axis=1))

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, self.compute_dtype)
        if self.feature_weight is not None:
            self.add_loss(self.layer_loss())
        y = x * self.soft_mask()[None, :, :]
        return merge_tensor_list(y, self.out_type, keep_list=self.keep_list)

    def compute_output_shape(self, input_shape: tuple) -> Any:
        return merged_output_shape(tuple(input_shape), self.out_type, self.keep_list)

    def get_config(self) -> dict:
        return {**super().get_config(), **config_of(
            self,
            "nas_space", "t", "initializer", "regularizer", "out_type", "keep_list",
            feature_weight=None if self.feature_weight is None else list(self.feature_weight),
        )}


@keras.saving.register_keras_serializable(package="reclayers")
class SeNet(keras.layers.Layer):
    """Squeeze-and-Excitation over fields: re-weight each field embedding by a learned importance.

    Tensor input ``X`` ``(B, F, E)``::

        z = mean(X, axis=2)                                    # squeeze, (B, F)
        s = sigmoid(Dense_1(relu(Dense_0(z))))                 # excitation, (B, F)
        Y = X ⊙ s[:, :, None]                                  # re-weighting

    List input ``[X_1 … X_F]`` with ``X_f`` ``(B, E_f)`` (sizes may differ): ``z_f = mean(X_f)`` and
    ``Y_f = X_f ⊙ s_f``. The excitation MLP ``cmp_tower`` is
    ``MLP(output_dims=[cmp_dim, num_feature], activations=['relu', 'sigmoid'])`` with the MLP
    defaults (weight norm with a learnable scale, biases); with ``cmp_dim=None`` there is no MLP
    and ``s = z`` (no sigmoid, as in the reference).

    Output, ``merge_tensor_list(Y, out_type, keep_list=keep_list)``: tensor input ``'concat'``
    ``(B, F·E)``, ``'stack'`` ``(B, F, E)``, ``None`` a list of ``F`` ``(B, E)``; list input
    ``'concat'`` ``(B, Σ E_f)``, ``'stack'`` ``(B, F, E)`` (equal ``E_f`` only), ``None`` the list
    of the ``Y_f``.

    List inputs are handled in one vectorised pass: the fields are concatenated and the per-field
    means and scales applied through constant ``(Σ E_f, F)`` averaging / ``(F, Σ E_f)`` spreading
    matrices. ``on_gpu`` selected an alternative, numerically equivalent squeeze in the reference;
    here it is accepted, stored and ignored (one path for every device).

    Shapes: ``(B, F, E)`` or a list of ``F`` tensors ``(B, E_f)`` → as listed above for
    ``out_type``.

    Args:
        num_feature: number of fields ``F`` (the inputs must have exactly ``F`` fields).
        cmp_dim: bottleneck width of the excitation MLP, or ``None`` for no MLP.
        initializer: kernel initializer of the MLP (``None`` → ``'glorot_uniform'``).
            Default ``None``.
        regularizer: kernel regularizer of the MLP (``kernel_regularizer`` is an alias).
            Default ``None``.
        on_gpu: accepted for compatibility; no effect. Default ``False``.
        out_type: ``'concat'``, ``'stack'`` or ``None``. Default ``'concat'``.
        keep_list: wrap a single-tensor result into a list. Default ``False``.

    Example:
        >>> import numpy as np
        >>> senet = SeNet(num_feature=3, cmp_dim=2)
        >>> tuple(senet(np.ones((4, 3, 5), "float32")).shape)
        (4, 15)

    Papers: SENet, https://arxiv.org/abs/1709.01507; field version as in FiBiNET,
    https://arxiv.org/abs/1905.09433. Deviations: ``out_type`` and the field count are validated
    up front (the original failed in a reshape); the two FC layers are weight-normalised and biased
    (MLP defaults, as in the reference).
    """

    def __init__(
        self,
        num_feature: int,
        cmp_dim: int | None,
        initializer: Any = None,
        regularizer: Any = None,
        on_gpu: bool = False,
        out_type: str | None = "concat",
        keep_list: bool = False,
        **kwargs: Any,
    ) -> None:
        kernel_regularizer = kwargs.pop("kernel_regularizer", None)
        super().__init__(**kwargs)
        owner = type(self).__name__
        if regularizer is None:
            regularizer = kernel_regularizer
        elif kernel_regularizer is not None:
            raise invalid(owner, "kernel_regularizer", "None when regularizer is given",
                          kernel_regularizer)
        self.num_feature = check_int(owner, "num_feature", num_feature, minimum=1)
        self.cmp_dim = check_int(owner, "cmp_dim", cmp_dim, minimum=1, allow_none=True)
        set_weight_options(self, initializer, regularizer, "glorot_uniform")
        self.on_gpu = bool(on_gpu)
        self.out_type = check_one_of(owner, "out_type", out_type, _OUT_TYPES)
        self.keep_list = bool(keep_list)
        self.cmp_tower = None
        if self.cmp_dim is not None:
            self.cmp_tower = sublayer(
                self,
                MLP,
                output_dims=[self.cmp_dim, self.num_feature],
                activations=["relu", "sigmoid"],
                initializers=self.initializer,
                kernel_regularizer=self.regularizer,
                name="cmp_tower",
            )

    @staticmethod
    def _is_list_shape(input_shape: Any) -> bool:
        return isinstance(input_shape, (list, tuple)) and bool(input_shape) and all(
            isinstance(s, (list, tuple)) for s in input_shape
        )

    def build(self, input_shape: Any) -> None:
        owner = type(self).__name__
        f = self.num_feature
        if self._is_list_shape(input_shape):
            shapes = [tuple(s) for s in input_shape]
            if len(shapes) != f:
                raise ValueError(
                    f"{owner}: inputs must be a list of num_feature = {f} tensors; "
                    f"got {len(shapes)} tensors"
                )
            for i, s in enumerate(shapes):
                check_rank(owner, f"inputs[{i}]", s, (2,))
                check_static_dim(owner, f"inputs[{i}]", s, 1)
            self.field_dims = [int(s[1]) for s in shapes]
            if self.out_type == MergeType.STACK and len(set(self.field_dims)) > 1:
                raise ValueError(
                    f"{owner}: inputs must have equal sizes for out_type='stack'; "
                    f"got sizes {self.field_dims}"
                )
        else:
            shape = tuple(input_shape)
            check_rank(owner, "inputs", shape, (3,))
            if shape[1] != f:
                raise ValueError(
                    f"{owner}: inputs must have num_feature = {f} fields on axis 1; got shape {shape}"
                )
            check_static_dim(owner, "inputs", shape, 2)
            self.field_dims = None
        if self.cmp_tower is not None and not self.cmp_tower.built:
            self.cmp_tower.build((None, f))

    def _excite(self, z: Any, training: bool | None) -> Any:
        if self.cmp_tower is None:
            return z
        return ops.cast(call_sublayer(self.cmp_tower, z, training), self.compute_dtype)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        f = self.num_feature
        if isinstance(inputs, (list, tuple)):
            dims = self.field_dims
            x = ops.concatenate([ops.cast(t, self.compute_dtype) for t in inputs], axis=1)
            spread = np.zeros((f, sum(dims)), dtype="float32")  # spread[f, e] = 1 on field f
            start = 0
            for i, d in enumerate(dims):
                spread[i, start:start + d] = 1.0
                start += d
            average = (spread / np.asarray(dims, "float32")[:, None]).T  # (Σ E_f, F)
            z = ops.matmul(x, ops.convert_to_tensor(average, dtype=x.dtype))
            s = self._excite(z, training)
            y = x * ops.matmul(s, ops.convert_to_tensor(spread, dtype=x.dtype))
            if self.out_type == MergeType.NONE:
                return ops.split(y, np.cumsum(dims)[:-1].tolist(), axis=1) if f > 1 else [y]
            if self.out_type == MergeType.STACK:  # equal sizes, checked in build
                y = ops.reshape(y, (-1, f, dims[0]))
            return [y] if self.keep_list else y
        x = ops.cast(inputs, self.compute_dtype)
        s = self._excite(ops.mean(x, axis=2), training)
        return merge_tensor_list(x * s[:, :, None], self.out_type, keep_list=self.keep_list)

    def compute_output_shape(self, input_shape: Any) -> Any:
        if self._is_list_shape(input_shape):
            shapes = [tuple(s) for s in input_shape]
            b = shapes[0][0]
            if self.out_type == MergeType.NONE:
                return shapes
            if self.out_type == MergeType.CONCAT:
                out = (b, sum(s[1] for s in shapes))
            else:
                out = (b, len(shapes), shapes[0][1])
            return [out] if self.keep_list else out
        return merged_output_shape(tuple(input_shape), self.out_type, self.keep_list)

    def get_config(self) -> dict:
        return {**super().get_config(), **config_of(
            self,
            "num_feature", "cmp_dim", "initializer", "regularizer", "on_gpu", "out_type", "keep_list",
        )}
