"""User-behaviour sequence layers: DIN, DIEN and DMR's user-to-item network.

Every layer takes ``(queries_or_items, keys)`` and optionally a padding mask: a Keras mask
(propagated from e.g. ``Embedding(mask_zero=True)``), a third input element, or the ``mask``
call argument (``[B, T]``, bool or numeric; a position is valid iff ``True`` / ``>= 1``), or
``sequence_length`` ``[B]`` (an addition: the original had no padding support). Padded
positions never change the result and a row made
only of padding gives a finite result.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from reclayers.layers import _build
from reclayers.layers._build import (
    activation_config,
    activation_function,
    config_of,
    fresh_initializer,
    sublayer,
)
from reclayers.layers.agru import AGRUCell, dynamic_rnn_with_attention, eager_steps, valid_mask
from reclayers.layers.mlp import MLP
from reclayers.layers.utils import check_float, check_int, check_int_list, check_rank, invalid

__all__ = ["DIEN", "DIN", "DMR_U2I"]

_NEG = -1e9


def _split_inputs(owner: str, inputs: Any, keys: Any, mask: Any) -> tuple[Any, Any, Any]:
    """``(queries, keys, mask)`` from ``(q, k)``, ``(q, k, mask)`` or ``q`` plus ``keys=``."""
    if isinstance(inputs, (list, tuple)):
        if len(inputs) not in (2, 3) or keys is not None:
            raise invalid(owner, "inputs", "(queries, keys) or (queries, keys, mask)",
                          f"{len(inputs)} tensors")
        if len(inputs) == 3:
            if inputs[2] is not None:
                mask = inputs[2]
        return inputs[0], inputs[1], mask
    if keys is None:
        raise invalid(owner, "inputs", "(queries, keys) or queries with keys=", "one tensor")
    return inputs, keys, mask


def _keys_mask(mask: Any) -> Any:
    """Keras propagates a tuple mask for tuple inputs: take the keys' entry."""
    if isinstance(mask, (list, tuple)):
        mask = mask[1] if len(mask) > 1 else None
    return mask


def _split_shapes(owner: str, input_shape: Any) -> tuple[tuple, tuple]:
    if (
        not isinstance(input_shape, (list, tuple))
        or len(input_shape) not in (2, 3)
        or not isinstance(input_shape[0], (list, tuple))
    ):
        raise invalid(owner, "inputs", "(queries, keys) or (queries, keys, mask)", input_shape)
    return tuple(input_shape[0]), tuple(input_shape[1])


def _query_key_shapes(owner: str, input_shape: Any,
                      query_width: tuple[str, int] | None = None) -> tuple[tuple, tuple]:
    """``(queries [B, H], keys [B, T, H'])`` shapes, checked: ``H'`` must be known and ``H``
    must equal ``query_width`` (``(name, value)``, e.g. ``("num_units", 8)``), by default ``H'``."""
    q_shape, k_shape = _split_shapes(owner, input_shape)
    check_rank(owner, "queries", q_shape, (2,))
    check_rank(owner, "keys", k_shape, (3,), known_last=True)
    name, width = query_width or ("keys.shape[-1]", k_shape[-1])
    if q_shape[-1] != width:
        raise invalid(owner, "queries.shape[-1]", f"equal to {name}={width}", q_shape[-1])
    return q_shape, k_shape


def masked_softmax(logits: Any, valid: Any) -> Any:
    """Softmax over the last axis restricted to ``valid``; an all-invalid row gives zeros."""
    if valid is None:
        return ops.softmax(logits, axis=-1)
    logits = ops.where(valid, logits, ops.cast(_NEG, logits.dtype) * ops.ones_like(logits))
    logits = logits - ops.stop_gradient(ops.max(logits, axis=-1, keepdims=True))
    e = ops.exp(logits) * ops.cast(valid, logits.dtype)
    total = ops.sum(e, axis=-1, keepdims=True)
    return e / ops.where(total > 0, total, ops.ones_like(total))


# --------------------------------------------------------------------------------------------
# DIN
# --------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="reclayers")
class DIN(keras.layers.Layer):
    """Deep Interest Network attention pooling (no softmax).

    .. code-block:: text

        Q = tile(queries, T)                       # [B, T, H]
        X = [Q, K, Q - K, Q ⊙ K]                   # [B, T, 4H]
        s = compress_tower(X)                      # [B, T, 1]; MLP, no activation on the last layer
        s = s / sqrt(H)            if decay
        s = 0 at padded positions  if a mask is given
        mode == 'sum': out = Σ_t s_t K_t  → [B, H];   otherwise: out = K ⊙ s → [B, T, H]

    Inputs: ``(queries [B, H], keys [B, T, H])`` (optionally a third element ``mask [B, T]``),
    or the ``mask`` / ``sequence_length`` call arguments, or a Keras mask on ``keys``.

    Speed: ``X`` is never built. The first tower layer is evaluated in the equivalent factored
    form ``[K_t, q ⊙ K_t] @ [W_k - W_d; W_p] + q @ (W_q + W_d) + b`` (``W`` split in four row
    blocks): half of its FLOPs, one ``[B·T, 2H]`` product instead of ``[B·T, 4H]``.

    Args:
        hidden_units: widths of the attention MLP (library ``MLP`` with weight norm, named
            ``compress_tower``); the last must be 1.
        activation: hidden-layer activation. ``None`` means the **identity** (Keras resolver,
            faithful to the original), which makes the attention MLP linear in ``X``;
            ``'relu'`` or ``'prelu'`` is recommended. Default ``None``.
        initializer: MLP kernels (one fresh copy per layer, so unseeded initializers draw
            different values; a seeded one repeats its draws); ``None`` → ``glorot_normal``.
            Default ``None``.
        regularizer: MLP kernels. Default ``None``.
        mode: ``'sum'`` → pooled ``[B, H]``; any other string → weighted keys ``[B, T, H]``.
            Default ``'sum'``.
        decay: divide the scores by ``sqrt(H)``. Default ``False``.

    Example:
        >>> import numpy as np
        >>> din = DIN([8, 1], activation="relu")
        >>> q, k = np.ones((2, 4), "float32"), np.ones((2, 5, 4), "float32")
        >>> tuple(din((q, k)).shape)
        (2, 4)

    Paper: Zhou et al., "Deep Interest Network for Click-Through Rate Prediction", KDD 2018.

    Deviations from the original: ``get_config`` keeps ``mode`` and ``decay`` (the original
    lost them); bool masks are accepted;
    bad arguments/shapes raise ``ValueError``. No Dice/PReLU by default and the optional
    ``decay`` is not in the paper.
    """

    #: ``compute_mask`` gives no mask when no input is masked (see ``_build.is_plain_layer``).
    _unmasked_in_unmasked_out = True

    def __init__(
        self,
        hidden_units: list[int],
        activation: Any = None,
        initializer: Any = None,
        regularizer: Any = None,
        mode: str = "sum",
        decay: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.hidden_units = check_int_list(owner, "hidden_units", hidden_units)
        if self.hidden_units[-1] != 1:
            raise invalid(owner, "hidden_units[-1]", "1 (one score per position)", self.hidden_units[-1])
        if not isinstance(mode, str):
            raise invalid(owner, "mode", "a string ('sum' or another value)", mode)
        self.mode = mode
        self.decay = bool(decay)
        self._activation_id = activation_config(activation)
        _build.set_weight_options(self, initializer, regularizer, "glorot_normal")
        hidden_act = "linear" if activation is None else activation
        n = len(self.hidden_units)
        self.compress_tower = sublayer(
            self,
            MLP,
            output_dims=self.hidden_units,
            activations=[hidden_act] * (n - 1) + [None],
            initializers=self.initializer,
            kernel_regularizer=self.regularizer,
            name="compress_tower",
        )
        self.supports_masking = True

    def build(self, input_shape: Any) -> None:
        owner = type(self).__name__
        _, k_shape = _query_key_shapes(owner, input_shape)
        self.compress_tower.build((None, None, 4 * int(k_shape[-1])))

    def call(self, inputs: Any, keys: Any = None, mask: Any = None, sequence_length: Any = None) -> Any:
        queries, keys, mask = _split_inputs(type(self).__name__, inputs, keys, _keys_mask(mask))
        steps = ops.shape(keys)[1]
        scores = self.compress_tower.call_after_first_dense(self._first_projection(queries, keys))
        if self.decay:
            scores = scores / math.sqrt(int(keys.shape[-1]))
        valid = valid_mask(mask, sequence_length, steps, type(self).__name__)
        if valid is not None:
            scores = ops.where(ops.expand_dims(valid, -1), scores, ops.zeros_like(scores))
        if self.mode == "sum":
            return ops.sum(scores * keys, axis=1)
        return keys * scores

    def _first_projection(self, queries: Any, keys: Any) -> Any:
        """``[q, k, q - k, q ⊙ k] @ W + b`` of the attention tower's first layer, factored.

        With ``W`` split into four row blocks ``W_q, W_k, W_d, W_p`` (``E`` rows each), the product
        at position ``t`` is ``[k_t, q ⊙ k_t] @ [W_k - W_d; W_p] + q @ (W_q + W_d) + b``: the query
        term is computed once per example instead of at every position, the ``(B, T, 4E)``
        concatenation is never formed, and the per-position product is one ``(B·T, 2E) @ (2E, U)``
        matrix product, half of that layer's FLOPs.

        An earlier form folded the query into a per-example matrix ``W_k - W_d + diag(q) W_p``
        (``E x U`` per example, a batched product with ``E`` rows): fewer FLOPs, but a ``[B, E, U]``
        tensor built and differentiated at every step and ``B`` tiny matrix products. Forward and
        backward of the layer (``[32, 16, 1]``, ``B = 1024, T = 10, E = 16``, one CPU thread, median
        of alternating rounds) took 0.78x of its time on TensorFlow, 0.89x on JAX, 0.79x on PyTorch.
        """
        first = self.compress_tower.dense_layers[0]
        dtype = first.compute_dtype
        queries, keys = ops.cast(queries, dtype), ops.cast(keys, dtype)
        e = int(keys.shape[-1])
        w = ops.cast(first.effective_kernel(), dtype)
        w_q, w_k, w_d, w_p = w[:e], w[e:2 * e], w[2 * e:3 * e], w[3 * e:]
        per_query = ops.matmul(queries, w_q + w_d)
        if first.bias is not None:
            per_query = per_query + ops.cast(first.bias, dtype)
        per_key = ops.concatenate([keys, keys * ops.expand_dims(queries, 1)], axis=-1)
        return ops.matmul(per_key, ops.concatenate([w_k - w_d, w_p], axis=0)) + ops.expand_dims(per_query, 1)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if self.mode == "sum":
            return None
        return _keys_mask(mask)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        k_shape = tuple(input_shape[1])
        return (k_shape[0], k_shape[2]) if self.mode == "sum" else k_shape

    def get_config(self) -> dict:
        return {**super().get_config(), **config_of(
            self,
            "hidden_units", "initializer", "regularizer", "mode", "decay",
            activation=self._activation_id,
        )}


# --------------------------------------------------------------------------------------------
# DIEN
# --------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="reclayers")
class DIEN(keras.layers.Layer):
    """Deep Interest Evolution Network: GRU interest extractor + attention + AGRU/AUGRU evolver.

    .. code-block:: text

        S   = GRU(keys)                                # [B, T, U], Keras GRUCell (reset_after)
        v   = queries @ attention_weightᵀ              # [B, U]
        a   = softmax_t(S_t · v)                       # [B, T], padded positions excluded
        _, h_T = dynamic_rnn_with_attention(augru_cell, S, a)
        out = h_T                                      # [B, U]

    Auxiliary loss (``use_aux_loss``, an addition: the original had none): over pairs
    ``(b, t)``, ``t < T-1``, with ``t`` and ``t+1`` valid,
    ``L = mean(softplus(-S_t·keys_{t+1}) + softplus(S_t·neg_{t+1}))`` (0 when no pair is
    valid), added as ``aux_loss_weight · L`` in training. It is the paper's inner-product form;
    the authors' code used a small MLP instead.

    Inputs: ``(queries [B, U], keys [B, T, H])``, optionally ``(queries, keys, mask)``;
    or ``queries`` with ``keys=``; ``mask`` / ``sequence_length`` / Keras mask as elsewhere;
    ``neg_keys [B, T, H]`` when ``use_aux_loss`` (then ``H`` must equal ``num_units``).

    Args:
        num_units: ``U``, width of both GRUs (and of ``queries``).
        att_type: ``'AGRU'`` or ``'AUGRU'`` for the evolving layer. Default ``'AGRU'``.
        activation: candidate activation of both GRUs (Keras resolver: ``None`` → identity);
            a Keras activation name or function (activation *layers* such as PReLU are rejected:
            the GRU loop cannot own their weights). Default ``'relu'``.
        initializer: GRU input kernel, AGRU kernels, attention matrix (``None`` →
            ``glorot_normal``). Default ``'he_uniform'``.
        regularizer: GRU input kernel, all AGRU weights, attention matrix. Default ``None``.
        use_aux_loss: add the auxiliary loss (needs ``neg_keys`` when training). Default ``False``.
        aux_loss_weight: its coefficient. Default 1.0.

    Example (steps past ``sequence_length`` change nothing):
        >>> import numpy as np
        >>> dien, rng = DIEN(4, att_type="AUGRU"), np.random.default_rng(0)
        >>> q, k = rng.random((2, 4), "float32"), rng.random((2, 5, 3), "float32")
        >>> padded = k.copy(); padded[:, 3:] = 9.0
        >>> lengths = np.array([3, 3])
        >>> a = dien((q, k), sequence_length=lengths)
        >>> b = dien((q, padded), sequence_length=lengths)
        >>> tuple(a.shape), bool(np.allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)))
        ((2, 4), True)

    Paper: Zhou et al., "Deep Interest Evolution Network for CTR Prediction", AAAI 2019.

    Deviations from the original: ``att_type`` is honoured (the original always used AGRU); masks are
    honoured in both GRUs and the softmax (the original dropped them): a padded step carries
    the GRU state, gets zero attention and leaves the AUGRU state unchanged, so left, right or
    inner padding gives the unpadded result and an all-padding row gives zeros. The GRU
    candidate uses ``relu`` by default (paper: tanh); AUGRU follows the original's convention
    (see :class:`~reclayers.layers.agru.AGRUCell`).
    """

    #: ``compute_mask`` gives no mask when no input is masked (see ``_build.is_plain_layer``).
    _unmasked_in_unmasked_out = True

    def __init__(
        self,
        num_units: int,
        att_type: str = "AGRU",
        activation: Any = "relu",
        initializer: Any = "he_uniform",
        regularizer: Any = None,
        use_aux_loss: bool = False,
        aux_loss_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.num_units = check_int(owner, "num_units", num_units, minimum=1)
        if not isinstance(att_type, str) or att_type.upper() not in ("AGRU", "AUGRU"):
            raise invalid(owner, "att_type", "one of 'AGRU', 'AUGRU' (case-insensitive)", att_type)
        self.att_type = att_type
        self._activation_id = activation_config(activation)
        act = activation_function(activation, self)
        _build.set_weight_options(self, initializer, regularizer, "glorot_normal")
        self.use_aux_loss = bool(use_aux_loss)
        self.aux_loss_weight = check_float(owner, "aux_loss_weight", aux_loss_weight, low=0.0)
        self.gru = sublayer(
            self,
            keras.layers.GRU,
            units=self.num_units,
            activation=act,
            recurrent_activation="sigmoid",
            reset_after=True,
            kernel_initializer=fresh_initializer(self.initializer, 0),
            recurrent_initializer="orthogonal",
            bias_initializer="zeros",
            kernel_regularizer=self.regularizer,
            return_sequences=True,
            # The generic RNN loop on every backend. cuDNN never applied (it needs Keras's own tanh;
            # `act` is ours), and Keras's other PyTorch GRU path indexes one precomputed [T, B, 3U]
            # input projection per step, each index's backward writing a zero-filled copy of it: the
            # generic loop (same math) trained DIEN 1.5x faster on torch (benchmarks/README.md).
            use_cudnn=False,
            name="gru",
        )
        self.augru_cell = sublayer(
            self,
            AGRUCell,
            units=self.num_units,
            att_type=att_type,
            activation="linear" if activation is None else activation,  # the cell's None is tanh
            initializer=fresh_initializer(self.initializer, 1),
            regularizer=self.regularizer,
            name="augru_cell",
        )
        self.supports_masking = True

    def build(self, input_shape: Any) -> None:
        owner = type(self).__name__
        _, k_shape = _query_key_shapes(owner, input_shape, ("num_units", self.num_units))
        if self.use_aux_loss and k_shape[-1] != self.num_units:
            raise invalid(owner, "keys.shape[-1]", f"equal to num_units={self.num_units} when use_aux_loss",
                          k_shape[-1])
        self.gru.build(k_shape)
        self.augru_cell.build(((None, self.num_units), (None, self.num_units), (None, 1)))
        self.attention_weight = self.add_weight(
            name="attention_weight",
            shape=(self.num_units, self.num_units),
            initializer=fresh_initializer(self.initializer, 2),
            regularizer=self.regularizer,
        )

    def call(
        self,
        inputs: Any,
        keys: Any = None,
        mask: Any = None,
        sequence_length: Any = None,
        neg_keys: Any = None,
        training: bool | None = None,
    ) -> Any:
        owner = type(self).__name__
        queries, keys, mask = _split_inputs(owner, inputs, keys, _keys_mask(mask))
        valid = valid_mask(mask, sequence_length, ops.shape(keys)[1], owner)
        states = self._extract(keys, valid, training)
        v = ops.matmul(queries, ops.transpose(ops.cast(self.attention_weight, queries.dtype)))
        logits = ops.sum(states * ops.expand_dims(v, 1), axis=-1)
        att = masked_softmax(logits, valid)
        _, h_last = dynamic_rnn_with_attention(self.augru_cell, states, att, mask=valid)
        if self.use_aux_loss and training:
            if neg_keys is None:
                raise invalid(owner, "neg_keys", "a [B, T, H] tensor when use_aux_loss and training", None)
            self.add_loss(self.aux_loss_weight * self._aux_loss(states, keys, neg_keys, valid))
        return h_last

    def _extract(self, keys: Any, valid: Any, training: bool | None) -> Any:
        """``self.gru(keys, mask=valid)``: the interest extractor's states ``[B, T, U]``.

        On PyTorch (eager) with a static ``T``, the GRU cell's ``call`` runs in a plain loop over
        the once-unstacked steps instead of Keras's RNN loop, which calls the cell through
        ``Layer.__call__`` and flattens its structures at every step: the same cell, the same
        zero initial state and the same masking (a padded step keeps the state and repeats the
        previous output, zeros before the first valid step), the same outputs.
        """
        gru, steps = self.gru, keys.shape[1]
        if (
            not isinstance(steps, int) or gru.dropout or gru.recurrent_dropout
            or gru.go_backwards or gru.stateful
            or not _build.can_call_directly(gru.cell, keys, training)
        ):
            return gru(keys, mask=valid)
        cell = gru.cell
        h = ops.zeros((ops.shape(keys)[0], self.num_units), dtype=keys.dtype)
        xs, masks = eager_steps(keys, valid)
        outputs, previous = [], None
        for x, m in zip(xs, masks):
            out, new_states = cell.call(x, [h], training=training)
            h_new = new_states[0] if isinstance(new_states, (list, tuple)) else new_states
            if m is None:
                h = h_new
            else:
                h = ops.where(m, h_new, h)
                out = ops.where(m, out, ops.zeros_like(out) if previous is None else previous)
            outputs.append(out)
            previous = out
        return ops.stack(outputs, axis=1)

    @staticmethod
    def _aux_loss(states: Any, keys: Any, neg_keys: Any, valid: Any) -> Any:
        s = ops.cast(states[:, :-1], "float32")
        pos = ops.sum(s * ops.cast(keys[:, 1:], "float32"), axis=-1)
        neg = ops.sum(s * ops.cast(neg_keys[:, 1:], "float32"), axis=-1)
        per_pair = ops.softplus(-pos) + ops.softplus(neg)
        if valid is None:
            weights = ops.ones_like(per_pair)
        else:
            weights = ops.cast(ops.logical_and(valid[:, :-1], valid[:, 1:]), "float32")
        return ops.sum(per_pair * weights) / ops.maximum(ops.sum(weights), 1.0)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return None

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (tuple(input_shape[0])[0], self.num_units)

    def get_config(self) -> dict:
        return {**super().get_config(), **config_of(
            self,
            "num_units", "att_type", "initializer", "regularizer", "use_aux_loss", "aux_loss_weight",
            activation=self._activation_id,
        )}


# --------------------------------------------------------------------------------------------
# DMR_U2I
# --------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="reclayers")
class DMR_U2I(keras.layers.Layer):  # noqa: N801  (the reference's name)
    """Deep Match to Rank, user-to-item network: position-aware attention pooling ⊙ item.

    .. code-block:: text

        C   = pos_emb[None] + user_seq @ emb_weight + bias      # [B, T, P]
        l_t = φ(C_t) @ z_weight                                 # [B, T, 1], φ = attention_activation
        α   = softmax_t(l)       (padded positions excluded; all-padding row → α = 0)
        m   = Σ_t α_t user_seq_t                                # [B, E]
        u   = activation(m @ W_dense + b_dense)                 # [B, I]
        out = u ⊙ items                                         # [B, I]

    The element-wise product replaces the paper's dot product + negative-sampling loss.
    Row ``t`` of ``pos_emb`` goes with index ``t`` of the given order: with left or right
    padding, what "position 0" means is the caller's choice.

    Inputs: ``(items [B, I], user_seq [B, T, E])`` with static ``T``, ``E``, ``I``; optional
    mask as a third element, ``mask``/``sequence_length`` arguments or a Keras mask.

    Args:
        cmp_dim: width ``P`` of the attention space.
        activation: activation of the output Dense; ``'PReLU'`` (default) is a Keras PReLU
            layer with per-unit ``alpha`` starting at 0. ``None`` → identity.
        initializer: ``pos_emb``, ``emb_weight``, Dense kernel; ``None`` → ``glorot_normal``.
            Default ``'glorot_uniform'``.
        regularizer: the same three weights. Default ``None``.
        attention_activation: ``φ``, an addition. Default ``'tanh'`` (the paper's); ``None``
            reproduces the original (no non-linearity, which makes ``bias`` a dead weight).

    Example:
        >>> import numpy as np
        >>> dmr = DMR_U2I(6, activation="relu")
        >>> items, seq = np.ones((2, 4), "float32"), np.ones((2, 5, 3), "float32")
        >>> tuple(dmr((items, seq)).shape)
        (2, 4)

    Paper: Lyu et al., "Deep Match to Rank Model for Personalized CTR Prediction", AAAI 2020.
    """

    #: ``compute_mask`` gives no mask when no input is masked (see ``_build.is_plain_layer``).
    _unmasked_in_unmasked_out = True

    def __init__(
        self,
        cmp_dim: int,
        activation: Any = "PReLU",
        initializer: Any = "glorot_uniform",
        regularizer: Any = None,
        attention_activation: Any = "tanh",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.cmp_dim = check_int(owner, "cmp_dim", cmp_dim, minimum=1)
        self._activation_id = activation_config(activation)
        self.output_activation = _build.activation(activation, self, default="linear")
        self._attention_activation_id = activation_config(attention_activation)
        self.attention_activation = _build.activation(attention_activation, self, default="linear")
        _build.set_weight_options(self, initializer, regularizer, "glorot_normal")
        self.dense = None
        self.supports_masking = True

    def build(self, input_shape: Any) -> None:
        owner = type(self).__name__
        i_shape, s_shape = _split_shapes(owner, input_shape)
        check_rank(owner, "items", i_shape, (2,), known_last=True)
        check_rank(owner, "user_seq", s_shape, (3,))
        if s_shape[1] is None or s_shape[2] is None:
            raise ValueError(f"{owner}: user_seq must have known T and E dimensions; got shape {s_shape}")
        if i_shape[0] is not None and s_shape[0] is not None and i_shape[0] != s_shape[0]:
            raise invalid(owner, "items.shape[0]", f"equal to user_seq.shape[0]={s_shape[0]}", i_shape[0])
        steps, emb, item_dim = int(s_shape[1]), int(s_shape[2]), int(i_shape[-1])
        self.pos_emb = self.add_weight(
            name="pos_emb", shape=(steps, self.cmp_dim),
            initializer=fresh_initializer(self.initializer, 0), regularizer=self.regularizer,
        )
        self.emb_weight = self.add_weight(
            name="emb_weight", shape=(emb, self.cmp_dim),
            initializer=fresh_initializer(self.initializer, 1), regularizer=self.regularizer,
        )
        self.z_weight = self.add_weight(name="z_weight", shape=(self.cmp_dim, 1), initializer="ones")
        self.bias = self.add_weight(name="bias", shape=(self.cmp_dim,), initializer="zeros")
        self.dense = sublayer(
            self,
            keras.layers.Dense,
            units=item_dim,
            kernel_initializer=fresh_initializer(self.initializer, 2),
            kernel_regularizer=self.regularizer,
            name="dense",
        )
        self.dense.build((None, emb))
        if isinstance(self.output_activation, keras.layers.Layer) and not self.output_activation.built:
            self.output_activation.build((None, item_dim))
        if isinstance(self.attention_activation, keras.layers.Layer) and not self.attention_activation.built:
            self.attention_activation.build((None, steps, self.cmp_dim))

    def call(self, inputs: Any, mask: Any = None, sequence_length: Any = None) -> Any:
        owner = type(self).__name__
        items, user_seq, mask = _split_inputs(owner, inputs, None, _keys_mask(mask))
        c = (
            ops.expand_dims(self.pos_emb, 0)
            + ops.matmul(user_seq, self.emb_weight)
            + self.bias
        )
        logits = ops.squeeze(ops.matmul(self.attention_activation(c), self.z_weight), -1)
        valid = valid_mask(mask, sequence_length, user_seq.shape[1], owner)
        alpha = masked_softmax(logits, valid)
        pooled = ops.sum(ops.expand_dims(alpha, -1) * user_seq, axis=1)
        return self.output_activation(self.dense(pooled)) * items

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return None

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return tuple(input_shape[0])

    def get_config(self) -> dict:
        return {**super().get_config(), **config_of(
            self,
            "cmp_dim", "initializer", "regularizer", activation=self._activation_id,
            attention_activation=self._attention_activation_id,
        )}
