"""Feature-cross layers: the FFM op, GroupInt (FFM), AllInt, CDot and CAN.

Every layer here crosses field embeddings explicitly (second-order products, a learned or
input-dependent compression, or a per-sample micro-MLP), as in Factorization Machines
(Rendle, ICDM 2010) and the Co-Action Network (Bian et al., https://arxiv.org/abs/2011.05625).
DCN and CIN live in their own modules.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from reclayers.layers import _build
from reclayers.layers._build import activation_config, config_of, sublayer
from reclayers.layers.cin import CIN
from reclayers.layers.dcn import DCN
from reclayers.layers.mlp import MLP
from reclayers.layers.utils import (
    MergeType,
    check_int,
    check_int_list,
    check_one_of,
    check_rank,
    check_static_dim,
    invalid,
    merge_tensor_list,
    merged_output_shape,
)

__all__ = ["ffm", "GroupInt", "FFM", "AllInt", "CDot", "CAN", "DCN", "CIN"]

_INT_TYPES = ("multiply", "dot")
_OUT_TYPES = (MergeType.STACK, MergeType.CONCAT, MergeType.NONE)


def _static_width(owner: str, arg: str, x: Any) -> int | None:
    shape = tuple(x.shape)
    check_rank(owner, arg, shape, (2,))
    return None if shape[1] is None else int(shape[1])


def ffm(left: Any, right: Any, dim_size: int, int_type: str = "multiply") -> Any:
    """Bipartite field interaction of two packed field lists (the original's fused FFM op).

    With ``Lt = reshape(left, (B, L, E))`` and ``Rt = reshape(right, (B, R, E))``, ``E = dim_size``:

    * ``'multiply'``: ``out[b, (l·R + r)·E + k] = Lt[b, l, k] · Rt[b, r, k]`` → ``(B, L·R·E)``
      (left-major: all right fields for left field 0 first);
    * ``'dot'``: ``out[b, l·R + r] = Σ_k Lt[b, l, k] · Rt[b, r, k]`` → ``(B, L·R)``.

    Gradients come from autodiff (the original's custom ``FFMGrad`` kernel computes the same).

    Deviations from the original: a width that is not a multiple of ``dim_size`` raises (the
    kernel silently dropped trailing columns), the right input's rank is checked (a copy-paste
    bug skipped it), and an unknown ``int_type`` raises (the kernel treated it as 'multiply').

    Args:
        left: ``(B, L·E)`` tensor.
        right: ``(B, R·E)`` tensor.
        dim_size: the embedding size ``E`` of one field.
        int_type: ``'multiply'`` or ``'dot'``. Default ``'multiply'``.

    Returns:
        ``(B, L·R·E)`` for ``'multiply'``, ``(B, L·R)`` for ``'dot'``.

    Example:
        >>> import numpy as np
        >>> out = ffm(np.ones((8, 40), "float32"), np.ones((8, 48), "float32"), 4)
        >>> tuple(out.shape)
        (8, 480)
    """
    owner = "ffm"
    check_one_of(owner, "int_type", int_type, _INT_TYPES)
    e = check_int(owner, "dim_size", dim_size, minimum=1)
    widths = []
    for arg, x in (("left", left), ("right", right)):
        width = _static_width(owner, arg, x)
        if width is None:
            raise ValueError(
                f"{owner}: {arg} must have a known size on axis 1; got shape {tuple(x.shape)}"
            )
        if width % e:
            raise ValueError(
                f"{owner}: {arg} must have a width that is a multiple of dim_size {e}; "
                f"got shape {tuple(x.shape)}"
            )
        widths.append(width // e)
    lb, rb = tuple(left.shape)[0], tuple(right.shape)[0]
    if lb is not None and rb is not None and lb != rb:
        raise ValueError(
            f"{owner}: left and right must have the same batch size; got {lb} and {rb}"
        )
    n_left, n_right = widths
    lt = ops.reshape(left, (-1, n_left, e))
    rt = ops.reshape(right, (-1, n_right, e))
    if int_type == "dot":
        out = ops.matmul(lt, ops.transpose(rt, (0, 2, 1)))  # (B, L, R)
        return ops.reshape(out, (-1, n_left * n_right))
    out = ops.expand_dims(lt, 2) * ops.expand_dims(rt, 1)  # (B, L, R, E)
    return ops.reshape(out, (-1, n_left * n_right * e))


# ----------------------------------------------------------------------------------------------
# GroupInt
# ----------------------------------------------------------------------------------------------


def _is_shape(x: Any) -> bool:
    """Whether ``x`` is one tensor's shape (a tuple of ints/None) rather than a list of shapes."""
    return isinstance(x, (tuple, list)) and all(d is None or isinstance(d, int) for d in x)


@keras.saving.register_keras_serializable(package="reclayers")
class GroupInt(keras.layers.Layer):
    """Group interaction: every left group embedding crossed with every right one (alias ``FFM``).

    Inputs are two lists of already pooled group embeddings, ``left_fields = [l_1 … l_L]`` and
    ``right_fields = [r_1 … r_R]``, each ``(B, E)`` with one shared static ``E``:

    .. code-block:: text

        o = ffm(concat(left_fields), concat(right_fields), E, interaction_type)
          'multiply':  o = [l_1 ⊙ r_1, l_1 ⊙ r_2, …, l_L ⊙ r_R]     (B, L·R·E)
          'dot':       o = [⟨l_1, r_1⟩, ⟨l_1, r_2⟩, …, ⟨l_L, r_R⟩]   (B, L·R)
        attention ('multiply' only): S = reshape(o, (B, L·R, E)); a = MLP(S) (B, L·R, 1)
                                     o = reshape(S ⊙ a, (B, L·R·E))

    The attention scores are the raw linear output of the MLP (no softmax) and the weighted
    pair vectors are concatenated, not summed as in AFM; this is the original's behaviour.
    The attention MLP (``groupint_attention_mlp``) has ``attention_units`` layers (the last
    of width 1), ``activation`` on hidden layers, and the MLP defaults (learnable weight norm,
    bias, no batch norm).

    Shapes: ``([(B, E)] * L, [(B, E)] * R)`` → with ``W = E`` ('multiply') or ``W = 1``
    ('dot'), the ``L·R`` pair outputs ``(B, L·R, W)`` formatted by ``out_type``:
    ``'concat'`` → ``(B, L·R·W)``, ``'stack'`` → ``(B, L·R, W)``, ``None`` → a list of ``L·R``
    tensors ``(B, W)``; wrapped in a one-element list when ``keep_list``.

    Deviations from the original: ``out_type`` formats the output as documented above (the
    original accepted it and always returned the flat ``'concat'`` form, which stays the
    default); the layer does not sum-pool features into groups (the reference's documentation
    says it does, its code does not): pass one embedding per group; the right fields' ``E`` is
    checked too; tensors instead of lists raise ``TypeError``; a missing or malformed
    ``attention_units`` raises ``ValueError`` at construction.

    Args:
        interaction_type: ``'multiply'`` or ``'dot'``. Default ``'multiply'``.
        use_attention: re-weight the pair vectors with an attention MLP ('multiply' only).
            Default ``False``.
        attention_units: widths of the attention MLP; the last must be 1. Default ``None``.
        activation: Keras activation of the attention MLP's hidden layers. Default ``'relu'``.
        initializer: kernel initializer of the attention MLP (``None`` → GlorotNormal).
            Default ``None``.
        regularizer: kernel regularizer of the attention MLP. Default ``None``.
        out_type: ``'concat'``, ``'stack'`` or ``None`` (see Shapes). Default ``'concat'``.
        keep_list: return ``[output]``. Default ``False``.

    Example:
        >>> import numpy as np
        >>> left = [np.ones((4, 10), "float32")] * 5
        >>> right = [np.ones((4, 10), "float32")] * 3
        >>> tuple(GroupInt()([left, right]).shape)
        (4, 150)

    Papers: Factorization Machines (Rendle, ICDM 2010); the attention follows the idea of AFM
    (Xiao et al., IJCAI 2017, https://www.ijcai.org/proceedings/2017/0435).
    """

    def __init__(
        self,
        interaction_type: str = "multiply",
        use_attention: bool = False,
        attention_units: list[int] | None = None,
        activation: Any = "relu",
        initializer: Any = None,
        regularizer: Any = None,
        out_type: str | None = "concat",
        keep_list: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.interaction_type = check_one_of(owner, "interaction_type", interaction_type, _INT_TYPES)
        self.use_attention = bool(use_attention)
        if self.use_attention and self.interaction_type != "multiply":
            raise invalid(owner, "use_attention", "False when interaction_type is 'dot'",
                          use_attention)
        if attention_units is not None:
            attention_units = check_int_list(owner, "attention_units", attention_units)
        if self.use_attention:
            if attention_units is None or attention_units[-1] != 1:
                raise invalid(owner, "attention_units",
                              "a non-empty list of integers >= 1 ending with 1", attention_units)
        self.attention_units = attention_units
        self.activation = activation_config(activation)
        _build.set_weight_options(self, initializer, regularizer, "glorot_normal")
        self.out_type = check_one_of(owner, "out_type", out_type, _OUT_TYPES)
        self.keep_list = bool(keep_list)
        if self.use_attention:
            _build.activation(activation)  # fail early on an unknown name
            self.attention_mlp = sublayer(
                self,
                MLP,
                output_dims=self.attention_units,
                activations=self.activation,
                initializers=self.initializer,
                kernel_regularizer=self.regularizer,
                name="groupint_attention_mlp",
            )
        else:
            self.attention_mlp = None

    def _field_dims(self, input_shape: Any) -> tuple[int, int, int]:
        owner = type(self).__name__
        expected = "a pair (left_fields, right_fields) of non-empty lists of (B, E) tensors"
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise TypeError(f"{owner}: inputs must be {expected}; got {input_shape!r}")
        dims = []
        for side, shapes in zip(("left_fields", "right_fields"), input_shape):
            if _is_shape(shapes) or not isinstance(shapes, (list, tuple)) or not shapes:
                raise TypeError(f"{owner}: inputs must be {expected}; got {side} {shapes!r}")
            for i, shape in enumerate(shapes):
                check_rank(owner, f"{side}[{i}]", tuple(shape), (2,))
                dims.append(check_static_dim(owner, f"{side}[{i}]", tuple(shape), 1))
        if len(set(dims)) != 1:
            raise ValueError(
                f"{owner}: inputs must share one embedding size E across all fields; "
                f"got sizes {dims}"
            )
        return len(input_shape[0]), len(input_shape[1]), dims[0]

    def build(self, input_shape: Any) -> None:
        n_left, n_right, e = self._field_dims(input_shape)
        if self.attention_mlp is not None and not self.attention_mlp.built:
            self.attention_mlp.build((None, n_left * n_right, e))

    def call(self, inputs: Any) -> Any:
        left_fields, right_fields = inputs
        n_left, n_right = len(left_fields), len(right_fields)
        e = int(left_fields[0].shape[-1])
        left = ops.concatenate(list(left_fields), axis=1)
        right = ops.concatenate(list(right_fields), axis=1)
        out = ffm(left, right, e, self.interaction_type)
        width = e if self.interaction_type == "multiply" else 1
        pairs = ops.reshape(out, (-1, n_left * n_right, width))
        if self.attention_mlp is not None:
            scores = ops.cast(self.attention_mlp(pairs), pairs.dtype)  # (B, L·R, 1), unnormalised
            pairs = pairs * scores
        return merge_tensor_list(pairs, self.out_type, keep_list=self.keep_list)

    def compute_output_shape(self, input_shape: Any) -> Any:
        n_left, n_right, e = self._field_dims(input_shape)
        batch = input_shape[0][0][0]
        width = e if self.interaction_type == "multiply" else 1
        return merged_output_shape((batch, n_left * n_right, width), self.out_type, self.keep_list)

    def get_config(self) -> dict:
        return {**super().get_config(), **config_of(
            self,
            "interaction_type", "use_attention", "activation", "initializer", "regularizer", "out_type",
            "keep_list",
            attention_units=None if self.attention_units is None else list(self.attention_units),
        )}


#: The original's alias of :class:`GroupInt`.
FFM = GroupInt


# ----------------------------------------------------------------------------------------------
# AllInt
# ----------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="reclayers")
class AllInt(keras.layers.Layer):
    """All-field interaction compressed by a learned matrix: ``O = X·Xᵀ·K (+ bias term)``.

    For ``X`` of shape ``(B, F, E)`` and the kernel ``K`` (``allint_kernel``, ``(F, c)``):

    .. code-block:: text

        P = Xᵀ @ K (+ b)          (B, E, c)     # the cheap order: no (F, F) intermediate
        O = X @ P                 (B, F, c)
        O[b, f, j] = Σ_f' ⟨x_f, x_f'⟩ K[f', j] + (Σ_e x_{f,e}) b_j

    then formatted by ``out_type`` (see :func:`~reclayers.layers.utils.merge_tensor_list`):
    ``'concat'`` → ``(B, F·c)``, ``'stack'`` → ``(B, F, c)``, ``None`` → list of ``F``
    ``(B, c)`` tensors; ``keep_list`` wraps a tensor result in a list.

    The reference doc's formula omits the bias term; the code adds it (``use_bias=True`` by
    default) and so does this layer. An invalid ``out_type`` raises at construction (the
    original failed at call time).

    Shapes: ``(B, F, E)`` with static ``F``, ``E`` → ``(B, F·c)`` (``'concat'``), ``(B, F, c)``
    (``'stack'``) or a list of ``F`` tensors ``(B, c)`` (``None``).

    Args:
        cmp_dim: compressed width ``c``.
        initializer: kernel initializer (``None`` → GlorotNormal). Default ``None``.
        regularizer: kernel regularizer. Default ``None``.
        use_bias: add the bias ``b`` (``allint_bias``, zeros) to ``P``. Default ``True``.
        out_type: ``'concat'``, ``'stack'`` or ``None``. Default ``'concat'``.
        keep_list: wrap a tensor result in a one-element list. Default ``False``.

    Example:
        >>> import numpy as np
        >>> tuple(AllInt(cmp_dim=4)(np.ones((2, 10, 8), "float32")).shape)
        (2, 40)

    Paper: Factorization Machines (Rendle, ICDM 2010); the compression is Monolith's own.
    """

    def __init__(
        self,
        cmp_dim: int,
        initializer: Any = None,
        regularizer: Any = None,
        use_bias: bool = True,
        out_type: str | None = "concat",
        keep_list: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.cmp_dim = check_int(owner, "cmp_dim", cmp_dim, minimum=1)
        _build.set_weight_options(self, initializer, regularizer, "glorot_normal")
        self.use_bias = bool(use_bias)
        self.out_type = check_one_of(owner, "out_type", out_type, _OUT_TYPES)
        self.keep_list = bool(keep_list)

    def build(self, input_shape: tuple) -> None:
        owner = type(self).__name__
        check_rank(owner, "inputs", tuple(input_shape), (3,))
        num_fields = check_static_dim(owner, "inputs", tuple(input_shape), 1)
        self.kernel = self.add_weight(
            name="allint_kernel",
            shape=(num_fields, self.cmp_dim),
            initializer=self.initializer,
            regularizer=self.regularizer,
        )
        if self.use_bias:
            self.bias = self.add_weight(name="allint_bias", shape=(self.cmp_dim,), initializer="zeros")
        else:
            self.bias = None

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, self.compute_dtype)
        p = ops.matmul(ops.transpose(x, (0, 2, 1)), ops.cast(self.kernel, self.compute_dtype))
        if self.bias is not None:
            p = p + ops.cast(self.bias, self.compute_dtype)
        out = ops.matmul(x, p)  # (B, F, c)
        return merge_tensor_list(out, self.out_type, keep_list=self.keep_list)

    def compute_output_shape(self, input_shape: tuple) -> Any:
        shape = (input_shape[0], input_shape[1], self.cmp_dim)
        return merged_output_shape(shape, self.out_type, self.keep_list)

    def get_config(self) -> dict:
        return {**super().get_config(), **config_of(
            self,
            "cmp_dim", "initializer", "regularizer", "use_bias", "out_type", "keep_list",
        )}


# ----------------------------------------------------------------------------------------------
# CDot
# ----------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="reclayers")
class CDot(keras.layers.Layer):
    """Compression-and-dot interaction with an input-dependent compression matrix.

    For ``X`` of shape ``(B, F, E)``, the projection ``W`` (``project_weight``, ``(F, p)``) and
    the compression tower ``T`` (``compress_tower``: an MLP with widths
    ``compress_units + [E·p]``, ``activation`` on hidden layers, learnable weight norm):

    .. code-block:: text

        Pj = Xᵀ @ W                          (B, E, p)
        C  = T(reshape(Pj, (B, E·p)))        (B, E·p)      # index e·p + k
        Cr = X @ reshape(C, (B, E, p))       (B, F, p)
        y  = concat([reshape(Cr, (B, F·p)), C], axis=1)    (B, F·p + E·p)

    The compressed features ``C`` are part of the output, for a following MLP. The reference
    doc cites arXiv:1803.05170 (xDeepFM), which does not describe this layer; the formula above
    (the original code) is the definition.

    Shapes: ``(B, F, E)`` with static ``F``, ``E`` → ``(B, F·p + E·p)``.

    Args:
        project_dim: number ``p`` of projected slots.
        compress_units: hidden widths of the compression MLP (may be empty).
        activation: Keras activation of the tower's hidden layers. Default ``'relu'``.
        initializer: initializer of ``W`` and of the tower's kernels (``None`` → GlorotNormal).
            Default ``None``.
        regularizer: regularizer of ``W`` and of the tower's kernels. Default ``None``.

    Example:
        >>> import numpy as np
        >>> layer = CDot(project_dim=8, compress_units=[16], activation="tanh")
        >>> tuple(layer(np.ones((2, 10, 10), "float32")).shape)
        (2, 160)
    """

    def __init__(
        self,
        project_dim: int,
        compress_units: list[int],
        activation: Any = "relu",
        initializer: Any = None,
        regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.project_dim = check_int(owner, "project_dim", project_dim, minimum=1)
        self.compress_units = check_int_list(owner, "compress_units", compress_units, allow_empty=True)
        _build.activation(activation)  # fail early on an unknown name
        self.activation = activation_config(activation)
        _build.set_weight_options(self, initializer, regularizer, "glorot_normal")
        self.compress_tower = None

    def build(self, input_shape: tuple) -> None:
        owner = type(self).__name__
        shape = tuple(input_shape)
        check_rank(owner, "inputs", shape, (3,))
        num_fields = check_static_dim(owner, "inputs", shape, 1)
        emb = check_static_dim(owner, "inputs", shape, 2)
        self.project_weight = self.add_weight(
            name="project_weight",
            shape=(num_fields, self.project_dim),
            initializer=self.initializer,
            regularizer=self.regularizer,
        )
        self.compress_tower = sublayer(
            self,
            MLP,
            output_dims=self.compress_units + [emb * self.project_dim],
            activations=self.activation,
            initializers=self.initializer,
            kernel_regularizer=self.regularizer,
            name="compress_tower",
        )
        self.compress_tower.build((None, emb * self.project_dim))

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, self.compute_dtype)
        num_fields, emb = int(x.shape[1]), int(x.shape[2])
        p = self.project_dim
        projected = ops.matmul(ops.transpose(x, (0, 2, 1)),
                               ops.cast(self.project_weight, self.compute_dtype))  # (B, E, p)
        compressed = self.compress_tower(ops.reshape(projected, (-1, emb * p)))  # (B, E·p)
        compressed = ops.cast(compressed, self.compute_dtype)
        crossed = ops.matmul(x, ops.reshape(compressed, (-1, emb, p)))  # (B, F, p)
        return ops.concatenate([ops.reshape(crossed, (-1, num_fields * p)), compressed], axis=1)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        owner = type(self).__name__
        shape = tuple(input_shape)
        check_rank(owner, "inputs", shape, (3,))
        num_fields = check_static_dim(owner, "inputs", shape, 1)
        emb = check_static_dim(owner, "inputs", shape, 2)
        return (shape[0], (num_fields + emb) * self.project_dim)

    def get_config(self) -> dict:
        return {**super().get_config(), **config_of(
            self,
            "project_dim", "compress_units", "activation", "initializer", "regularizer",
        )}


# ----------------------------------------------------------------------------------------------
# CAN
# ----------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="reclayers")
class CAN(keras.layers.Layer):
    """Co-Action unit: the item embedding is reshaped into a per-sample micro-MLP applied to the user side.

    With ``u = user_emb.shape[-1]``, ``item_emb`` of shape ``(B, layer_num·(u² + u))`` is split
    into consecutive chunks ``[W_1 (u²), b_1 (u), W_2, b_2, …]``; ``W_i`` is reshaped row-major
    to ``(u, u)`` (``W_i[r, c] = chunk[r·u + c]``) and

    .. code-block:: text

        h_0 = user_emb;   h_i = act(h_{i-1} @ W_i + b_i)   for i = 1 … layer_num

    (``act`` after every layer, including the last). The per-sample weights broadcast over the
    user side's field and sequence axes:

    ==========  ===========  ===================  ==================================
    is_seq      is_stacked   user_emb             output
    ==========  ===========  ===================  ==================================
    True        True         ``(B, F, S, u)``     ``Σ_S h`` → ``(B, F, u)``
    False       True         ``(B, F, u)``        ``(B, F, u)``
    True        False        ``(B, S, u)``        ``Σ_S h`` → ``(B, u)``
    False       False        ``(B, u)``           ``(B, u)``
    ==========  ===========  ===================  ==================================

    Masking (an extension): with ``is_seq``, ``call(..., mask=m)`` takes a boolean mask of the
    user side without its last axis (``(B, F, S)`` or ``(B, S)``; a ``(B, S)`` mask is
    broadcast over ``F``), or a Keras mask carried by ``user_emb``; padded positions are left
    out of the sum, so they never change the result and an all-padding row gives zeros. Without a
    mask every position is summed, as in the original.

    Fixes over the original: the non-seq, non-stacked output squeezes axis 1 only (the original
    also dropped the batch axis for ``B = 1``), and reshapes use ``-1`` for the batch axis
    instead of the build-time batch size. Not implemented, as in the original: the paper's
    multi-order enhancement and multi-level independence.

    Shapes: ``[user_emb, item_emb]`` with ``item_emb`` ``(B, layer_num·(u² + u))`` and
    ``user_emb`` as in the table → the output of the table. No weights of its own.

    Args:
        layer_num: number of micro-MLP layers. Default 2.
        activation: Keras activation applied after every layer. Default ``'relu'``.
        is_seq: the user side has a sequence axis, summed at the end. Default ``False``.
        is_stacked: the user side holds several stacked fields. Default ``True``.

    Example:
        >>> import numpy as np
        >>> user = np.ones((2, 10, 10), "float32")
        >>> item = np.ones((2, 220), "float32")
        >>> tuple(CAN(layer_num=2)([user, item]).shape)
        (2, 10, 10)

    Paper: CAN: Feature Co-Action for Click-Through Rate Prediction (Bian et al.),
    https://arxiv.org/abs/2011.05625.
    """

    #: ``compute_mask`` gives no mask when no input is masked (see ``_build.is_plain_layer``).
    _unmasked_in_unmasked_out = True

    def __init__(
        self,
        layer_num: int = 2,
        activation: Any = "relu",
        is_seq: bool = False,
        is_stacked: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.layer_num = check_int(owner, "layer_num", layer_num, minimum=1)
        self._activation_id = activation_config(activation)
        self.activation = _build.activation(activation, self, default="linear")
        self.is_seq = bool(is_seq)
        self.is_stacked = bool(is_stacked)
        self.supports_masking = True

    @property
    def _user_rank(self) -> int:
        return 2 + int(self.is_seq) + int(self.is_stacked)

    def _check_shapes(self, input_shape: Any) -> int:
        owner = type(self).__name__
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2 or _is_shape(input_shape):
            raise ValueError(
                f"{owner}: inputs must be a pair (user_emb, item_emb); got {input_shape!r}"
            )
        user, item = tuple(input_shape[0]), tuple(input_shape[1])
        mode = f"is_seq={self.is_seq}, is_stacked={self.is_stacked}"
        if len(user) != self._user_rank:
            raise ValueError(
                f"{owner}: user_emb must be a tensor of rank {self._user_rank} ({mode}); "
                f"got shape {user}"
            )
        u = check_static_dim(owner, "user_emb", user, -1)
        check_rank(owner, "item_emb", item, (2,))
        width = check_static_dim(owner, "item_emb", item, 1)
        expected = self.layer_num * (u * u + u)
        if width != expected:
            raise ValueError(
                f"{owner}: item_emb must have width layer_num * (u**2 + u) = {expected} "
                f"(layer_num={self.layer_num}, u={u}); got shape {item}"
            )
        if user[0] is not None and item[0] is not None and user[0] != item[0]:
            raise ValueError(
                f"{owner}: user_emb and item_emb must have the same batch size; "
                f"got {user[0]} and {item[0]}"
            )
        return u

    def build(self, input_shape: Any) -> None:
        self._check_shapes(input_shape)

    def call(self, inputs: Any, mask: Any = None) -> Any:
        user, item = inputs
        u = int(user.shape[-1])
        h = user if self.is_stacked or self.is_seq else ops.expand_dims(user, 1)
        # h has 1 or 2 axes between the batch and the last axis; weights broadcast over them.
        middle = len(h.shape) - 2
        w_shape = (-1,) + (1,) * (middle - 1) + (u, u)
        b_shape = (-1,) + (1,) * middle + (u,)
        item = ops.cast(item, h.dtype)
        start = 0
        for _ in range(self.layer_num):
            w = ops.reshape(item[:, start:start + u * u], w_shape)
            start += u * u
            b = ops.reshape(item[:, start:start + u], b_shape)
            start += u
            h = self.activation(ops.matmul(h, w) + b)
        if self.is_seq:
            user_mask = mask[0] if isinstance(mask, (list, tuple)) else mask
            if user_mask is not None:
                m = ops.cast(user_mask, h.dtype)
                if len(m.shape) == len(h.shape) - 2:  # (B, S) mask with stacked fields
                    m = ops.expand_dims(m, 1)
                h = h * ops.expand_dims(m, -1)
            return ops.sum(h, axis=-2)
        if not self.is_stacked:
            return ops.squeeze(h, axis=1)
        return h

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return None

    def compute_output_shape(self, input_shape: Any) -> tuple:
        self._check_shapes(input_shape)
        user = tuple(input_shape[0])
        if self.is_seq:
            return user[:-2] + user[-1:]
        return user

    def get_config(self) -> dict:
        return {**super().get_config(), **config_of(
            self,
            "layer_num", "is_seq", "is_stacked", activation=self._activation_id,
        )}
