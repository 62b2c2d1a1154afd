"""Attention GRU cell (AGRU / AUGRU of DIEN) and the RNN drivers that run it over a sequence.

* :class:`AGRUCell` — one GRU step whose update is modulated by a per-example attention score.
* :func:`static_rnn_with_attention` — Python-unrolled driver (graph grows with ``T``).
* :func:`dynamic_rnn_with_attention` — a ``keras.layers.RNN`` loop (graph independent of ``T``,
  unknown ``T`` allowed, compiles with XLA on TensorFlow).
* :func:`create_ta` — a fixed-size per-step buffer (the original's ``TensorArray``).

Both drivers accept a ``mask`` (``[B, T]``, bool or numeric ``>= 1`` = valid) or a
``sequence_length`` (``[B]``): at a padded step the state is carried unchanged and the output
row is zero. Without them the result equals the original's.

Paper: Zhou et al., "Deep Interest Evolution Network for Click-Through Rate Prediction",
AAAI 2019 (arXiv 1809.03672).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from reclayers.layers._build import (
    activation_config,
    activation_function,
    config_of,
    fresh_initializer,
    set_weight_options,
)
from reclayers.layers.utils import check_int, check_rank, invalid

__all__ = [
    "AGRUCell",
    "TensorArrayBuffer",
    "create_ta",
    "dynamic_rnn_with_attention",
    "static_rnn_with_attention",
]

_ATT_TYPES = ("AGRU", "AUGRU")


def valid_mask(mask: Any, sequence_length: Any, steps: Any, owner: str = "rnn") -> Any:
    """``[B, T]`` bool validity from a mask (bool, or numeric ``>= 1``) or sequence lengths.

    Returns ``None`` when neither is given. Giving both raises ``ValueError``.
    """
    if mask is not None and sequence_length is not None:
        raise invalid(owner, "mask", "None when sequence_length is given (give at most one)", "both")
    if mask is not None:
        mask = ops.convert_to_tensor(mask)
        if len(mask.shape) == 3 and mask.shape[-1] == 1:
            mask = ops.squeeze(mask, -1)
        if "bool" in str(mask.dtype):
            return mask
        return ops.greater_equal(mask, ops.cast(1, mask.dtype))
    if sequence_length is not None:
        lengths = ops.convert_to_tensor(sequence_length)
        lengths = ops.reshape(lengths, (-1, 1))
        positions = ops.expand_dims(ops.arange(steps, dtype=lengths.dtype), 0)
        return ops.less(positions, lengths)
    return None


# --------------------------------------------------------------------------------------------
# The cell
# --------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="reclayers")
class AGRUCell(keras.layers.Layer):
    """GRU step with attention-modulated update: DIEN's AGRU or AUGRU.

    With ``g = σ([x, h] @ gates_kernel + gates_bias)``, ``r = g[:, :U]``, ``u = g[:, U:]`` and
    ``c = act([x, r ⊙ h] @ candidate_kernel + candidate_bias)``:

    .. code-block:: text

        a is None : h' = (1 - u) ⊙ h + u ⊙ c
        AGRU      : h' = (1 - a) ⊙ h + a ⊙ c              (u unused; the paper's AGRU)
        AUGRU     : ũ = (1 - a) ⊙ u ;  h' = ũ ⊙ h + (1 - ũ) ⊙ c

    Returns ``(h', h')`` (output, new state).

    Inputs: a tuple ``(x, h, a)`` (or ``(x, h)``): ``x`` ``[B, D]`` with static ``D``,
    ``h`` ``[B, units]``, ``a`` ``[B, 1]``, ``[B]`` or ``None``.

    Weights: ``gates_kernel (D+U, 2U)``, ``gates_bias (2U,)`` (ones), ``candidate_kernel
    (D+U, U)``, ``candidate_bias (U,)`` (ones). Both biases start at 1.0 and the regularizer
    applies to all four weights, as in the original.

    Args:
        units: state / output width ``U`` (> 0).
        att_type: ``'AGRU'`` or ``'AUGRU'`` (case-insensitive; stored as given). Default ``'AGRU'``.
        activation: candidate activation; ``None`` → ``tanh``. Default ``None``.
        initializer: both kernels (one fresh copy each, a seeded initializer with a distinct
            seed per kernel). Default ``None`` (``he_normal``).
        regularizer: applied to all four weights. Default ``None``.

    Example:
        >>> import numpy as np
        >>> cell = AGRUCell(4, att_type="AUGRU")
        >>> x, h, a = np.ones((2, 3), "float32"), np.zeros((2, 4), "float32"), np.ones((2, 1), "float32")
        >>> out, state = cell((x, h, a))
        >>> tuple(out.shape)
        (2, 4)

    Deviations / notes: the AUGRU formula is the original's (= the DIEN authors' code), not
    the paper's: the paper scales the update gate by ``a`` (zero attention keeps the state),
    the original uses the keep-gate convention scaled by ``1 - a`` (zero attention is a plain
    GRU step, ``a = 1`` replaces the state by the candidate). The no-attention branch uses the
    opposite gate convention from AUGRU (faithful). Unlike the original, a ``[B]`` score is
    reshaped to ``[B, 1]``, and bad arguments and shapes raise ``ValueError``.
    """

    def __init__(
        self,
        units: int,
        att_type: str = "AGRU",
        activation: Any = None,
        initializer: Any = None,
        regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.units = check_int(owner, "units", units, minimum=1)
        if not isinstance(att_type, str) or att_type.upper() not in _ATT_TYPES:
            raise invalid(owner, "att_type", "one of 'AGRU', 'AUGRU' (case-insensitive)", att_type)
        self.att_type = att_type
        self._att = att_type.upper()
        self._activation_id = activation_config(activation)
        self.activation = activation_function(activation, self, default="tanh",
                                              layers_with_weights=True)
        set_weight_options(self, initializer, regularizer, "he_normal")

    @property
    def state_size(self) -> int:
        return self.units

    @property
    def output_size(self) -> int:
        return self.units

    def build(self, input_shape: Any) -> None:
        owner = type(self).__name__
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) not in (2, 3) or not isinstance(
            input_shape[0], (list, tuple)
        ):
            raise invalid(owner, "inputs", "a tuple (x, h, a)", input_shape)
        x_shape, h_shape = tuple(input_shape[0]), tuple(input_shape[1])
        a_shape = input_shape[2] if len(input_shape) == 3 else None
        self._check_shapes(x_shape, h_shape, a_shape)
        depth = int(x_shape[-1])
        self.gates_kernel = self.add_weight(
            name="gates_kernel", shape=(depth + self.units, 2 * self.units),
            initializer=fresh_initializer(self.initializer, 0), regularizer=self.regularizer,
        )
        self.gates_bias = self.add_weight(
            name="gates_bias", shape=(2 * self.units,), initializer="ones", regularizer=self.regularizer
        )
        self.candidate_kernel = self.add_weight(
            name="candidate_kernel", shape=(depth + self.units, self.units),
            initializer=fresh_initializer(self.initializer, 1), regularizer=self.regularizer,
        )
        self.candidate_bias = self.add_weight(
            name="candidate_bias", shape=(self.units,), initializer="ones", regularizer=self.regularizer
        )
        if isinstance(self.activation, keras.layers.Layer) and not self.activation.built:
            self.activation.build((None, self.units))

    def _check_shapes(self, x_shape: tuple, h_shape: tuple, a_shape: Any) -> None:
        owner = type(self).__name__
        check_rank(owner, "x", x_shape, (2,), known_last=True)
        check_rank(owner, "h", h_shape, (2,))
        if h_shape[-1] != self.units:
            raise invalid(owner, "h.shape[-1]", f"equal to units={self.units}", h_shape[-1])
        if a_shape is not None:
            a_shape = tuple(a_shape)
            if len(a_shape) not in (1, 2) or (len(a_shape) == 2 and a_shape[-1] not in (1, None)):
                raise ValueError(f"{owner}: a must be a tensor of shape [B] or [B, 1]; got shape {a_shape}")

    def step(self, x: Any, h: Any, a: Any = None) -> Any:
        """One step on tensors (no Keras ``__call__`` overhead; used by the drivers)."""
        dtype = x.dtype
        h = ops.cast(h, dtype)
        gates = ops.sigmoid(
            ops.matmul(ops.concatenate([x, h], axis=-1), ops.cast(self.gates_kernel, dtype))
            + ops.cast(self.gates_bias, dtype)
        )
        r, u = gates[:, : self.units], gates[:, self.units :]
        c = self.activation(
            ops.matmul(ops.concatenate([x, r * h], axis=-1), ops.cast(self.candidate_kernel, dtype))
            + ops.cast(self.candidate_bias, dtype)
        )
        if a is None:
            return (1.0 - u) * h + u * c
        a = ops.reshape(ops.cast(a, dtype), (-1, 1))
        if self._att == "AUGRU":
            u_att = (1.0 - a) * u
            return u_att * h + (1.0 - u_att) * c
        return (1.0 - a) * h + a * c

    def step_packed(self, packed: Any, h: Any) -> Any:
        """:meth:`step` on one ``[B, D + 1]`` slice holding the input and the attention score."""
        depth = int(packed.shape[-1]) - 1
        return self.step(packed[:, :depth], h, packed[:, depth:])

    def call(self, inputs: Any) -> Any:
        x, h = inputs[0], inputs[1]
        a = inputs[2] if len(inputs) > 2 else None
        h_new = self.step(x, h, a)
        return h_new, h_new

    def compute_output_shape(self, input_shape: Any) -> Any:
        batch = input_shape[0][0]
        return (batch, self.units), (batch, self.units)

    def get_initial_state(self, batch_size: Any = None) -> Any:
        """Zeros ``[batch_size, units]`` in the compute dtype."""
        return ops.zeros((batch_size, self.units), dtype=self.compute_dtype)

    def zero_state(self, batch_size: Any, dtype: Any = None) -> Any:
        """The original's name for :meth:`get_initial_state` (``dtype`` defaults to compute dtype)."""
        return ops.zeros((batch_size, self.units), dtype=dtype or self.compute_dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), **config_of(
            self,
            "units", "att_type", "initializer", "regularizer", activation=self._activation_id,
        )}


# --------------------------------------------------------------------------------------------
# Per-step buffer
# --------------------------------------------------------------------------------------------


class TensorArrayBuffer:
    """A fixed-size, functional per-step buffer: the Keras-3 stand-in for ``tf.TensorArray``.

    The same implementation serves every backend: a preallocated tensor ``[size, *elem_shape]``
    written with ``keras.ops.slice_update`` (JAX: ``lax.dynamic_update_slice``; TensorFlow:
    Keras's dynamic-update-slice op, XLA-compilable; PyTorch: an out-of-place slice copy).
    ``write`` returns a *new* buffer (TensorArray semantics). The element shape is fixed by
    ``element_shape``, or by the first ``write`` / ``unstack``.

    Deviation: the original wrapped ``tf.TensorArray``; one backend-neutral implementation is
    used instead (layers never import a backend), so the buffer is a plain
    tensor on every backend and can be carried through ``keras.ops`` loops.

    Inside a compiled loop (``keras.ops.fori_loop`` / ``while_loop``) carry the tensor
    ``buffer.stack()`` and rebuild the buffer in the body with ``buffer.unstack(carry)``.
    Unwritten slots read as zeros (``tf.TensorArray`` raises instead).

    Methods: ``write(i, v)`` (a new buffer), ``read(i)``, ``stack()`` (the ``[size, ...]``
    tensor), ``unstack(t)`` (a new buffer holding ``t``), ``size()``.

    Args:
        size: number of slots, ``>= 0``.
        dtype: element dtype. Default ``'float32'``.
        name: a label for error messages. Default ``None``.
        element_shape: shape of one element; preallocates zeros (else fixed by the first write).
            Default ``None``.
        data: an initial ``[size, ...]`` tensor (used by ``write`` / ``unstack``). Default ``None``.

    Example:
        >>> import numpy as np
        >>> buf = TensorArrayBuffer(3, element_shape=(2,)).write(2, np.array([1.0, 2.0]))
        >>> print(keras.ops.convert_to_numpy(buf.stack()))
        [[0. 0.]
         [0. 0.]
         [1. 2.]]
    """

    def __init__(self, size: int, dtype: Any = "float32", name: str | None = None,
                 element_shape: Any = None, data: Any = None) -> None:
        self.name = name
        self.dtype = dtype
        self._size = check_int("create_ta", "size", size, minimum=0)
        self._data = data
        if data is None and element_shape is not None:
            self._data = ops.zeros((self._size, *tuple(element_shape)), dtype=dtype)

    def _new(self, data: Any) -> TensorArrayBuffer:
        return TensorArrayBuffer(self._size, self.dtype, self.name, data=data)

    def size(self) -> int:
        return self._size

    def write(self, index: Any, value: Any) -> TensorArrayBuffer:
        value = ops.cast(ops.convert_to_tensor(value), self.dtype)
        data = self._data
        if data is None:
            data = ops.zeros((self._size, *tuple(value.shape)), dtype=self.dtype)
        start = [ops.cast(index, "int32")] + [0] * len(value.shape)
        return self._new(ops.slice_update(data, start, ops.expand_dims(value, 0)))

    def read(self, index: Any) -> Any:
        if self._data is None:
            raise ValueError(f"create_ta: buffer {self.name!r} must be written before it is read")
        return ops.take(self._data, ops.cast(index, "int32"), axis=0)

    def stack(self) -> Any:
        if self._data is None:
            raise ValueError(f"create_ta: buffer {self.name!r} must be written before it is stacked")
        return self._data

    def unstack(self, tensor: Any) -> TensorArrayBuffer:
        tensor = ops.cast(ops.convert_to_tensor(tensor), self.dtype)
        if tensor.shape[0] is not None and int(tensor.shape[0]) != self._size:
            raise invalid("create_ta", "unstack(tensor).shape[0]", f"equal to size={self._size}",
                          tensor.shape[0])
        return self._new(tensor)


def create_ta(name: str, size: int, dtype: Any, element_shape: Any = None) -> TensorArrayBuffer:
    """Create a fixed-size per-step buffer (the original returned a ``tf.TensorArray``).

    Returns a :class:`TensorArrayBuffer` with ``write(i, v)`` (returns the updated buffer),
    ``read(i)``, ``stack()``, ``unstack(t)`` and ``size()``. ``element_shape`` (an addition)
    preallocates (needed to carry the buffer through a compiled loop before the first write).

    Args:
        name: a label for error messages.
        size: number of slots (time steps).
        dtype: element dtype.
        element_shape: shape of one element, or ``None`` (fixed by the first write).
            Default ``None``.

    Example:
        >>> ta = create_ta("out", 3, "float32").write(1, [1.0, 2.0])
        >>> tuple(ta.stack().shape)
        (3, 2)
    """
    return TensorArrayBuffer(size, dtype, name=name, element_shape=element_shape)


# --------------------------------------------------------------------------------------------
# Drivers
# --------------------------------------------------------------------------------------------


def _prepare(owner: str, cell: Any, inputs: Any, att_scores: Any, init_state: Any) -> tuple:
    if not isinstance(cell, AGRUCell):
        raise invalid(owner, "cell", "an AGRUCell", type(cell).__name__)
    inputs = ops.convert_to_tensor(inputs)
    att_scores = ops.convert_to_tensor(att_scores)
    if len(inputs.shape) != 3:
        raise ValueError(f"{owner}: inputs must be a tensor of rank 3; got shape {tuple(inputs.shape)}")
    if len(att_scores.shape) == 3 and att_scores.shape[-1] == 1:
        att_scores = ops.squeeze(att_scores, -1)
    if len(att_scores.shape) != 2:
        raise ValueError(
            f"{owner}: att_scores must be a tensor of shape [B, T]; got shape {tuple(att_scores.shape)}"
        )
    t_in, t_att = inputs.shape[1], att_scores.shape[1]
    if t_in is not None and t_att is not None and t_in != t_att:
        raise invalid(owner, "att_scores.shape[1]", f"equal to inputs.shape[1]={t_in}", t_att)
    if not cell.built:
        cell.build(((None, inputs.shape[-1]), (None, cell.units), (None, 1)))
    if init_state is None:
        init_state = ops.zeros_like(inputs[:, 0, :1]) * ops.zeros((1, cell.units), dtype=inputs.dtype)
    init_state = ops.cast(init_state, inputs.dtype)
    att_scores = ops.cast(att_scores, inputs.dtype)
    return inputs, att_scores, init_state


def static_rnn_with_attention(
    cell: AGRUCell,
    inputs: Any,
    att_scores: Any,
    init_state: Any = None,
    mask: Any = None,
    sequence_length: Any = None,
) -> tuple[Any, Any]:
    """Run ``cell`` over time with a Python loop (the graph grows with ``T``).

    ``h = init_state or 0``; for ``t < T``: ``(o_t, h) = cell((inputs[:, t], h, att_scores[:, t]))``.
    At a padded step (``mask``/``sequence_length``, an addition to the original) the state is
    unchanged and ``o_t = 0``.

    Args:
        cell: an :class:`AGRUCell`.
        inputs: ``[B, T, D]``, static ``T``.
        att_scores: ``[B, T]`` (or ``[B, T, 1]``).
        init_state: ``[B, U]`` or ``None`` (zeros). Default ``None``.
        mask: ``[B, T]`` bool or numeric (valid iff ``>= 1``). Default ``None``.
        sequence_length: ``[B]``; step ``t`` is valid iff ``t < length`` (give at most one).
            Default ``None``.

    Returns:
        ``(outputs [B, T, U], final_state [B, U])``.

    Example:
        >>> import numpy as np
        >>> cell = AGRUCell(4)
        >>> x = np.random.rand(2, 5, 3).astype("float32")
        >>> a = np.random.rand(2, 5).astype("float32")
        >>> out, h = static_rnn_with_attention(cell, x, a, sequence_length=np.array([5, 2]))
        >>> tuple(out.shape), tuple(h.shape)
        ((2, 5, 4), (2, 4))
        >>> float(np.abs(keras.ops.convert_to_numpy(out)[1, 2:]).max())  # padded steps output 0
        0.0
    """
    owner = "static_rnn_with_attention"
    inputs, att_scores, h = _prepare(owner, cell, inputs, att_scores, init_state)
    steps = inputs.shape[1]
    if steps is None:
        raise ValueError(
            f"{owner}: inputs must have a static time dimension; got shape {tuple(inputs.shape)}"
        )
    valid = valid_mask(mask, sequence_length, steps, owner)
    outputs = []
    for t in range(int(steps)):
        h_new = cell.step(inputs[:, t], h, att_scores[:, t : t + 1])
        if valid is None:
            h, out = h_new, h_new
        else:
            m = ops.expand_dims(valid[:, t], -1)
            h = ops.where(m, h_new, h)
            out = ops.where(m, h_new, ops.zeros_like(h_new))
        outputs.append(out)
    return ops.stack(outputs, axis=1), h


def dynamic_rnn_with_attention(
    cell: AGRUCell,
    inputs: Any,
    att_scores: Any,
    parallel_iterations: int = 1,
    swap_memory: bool = True,
    init_state: Any = None,
    mask: Any = None,
    sequence_length: Any = None,
) -> tuple[Any, Any]:
    """Run ``cell`` over time with Keras's RNN loop: the graph does not grow with ``T``.

    Same contract and result as :func:`static_rnn_with_attention`; ``T`` may be unknown
    (the original needed a static ``T``).

    Args:
        cell, inputs, att_scores, init_state, mask, sequence_length: as in
            :func:`static_rnn_with_attention`, with the same defaults.
        parallel_iterations: TensorFlow ``while_loop`` hint of the original; accepted and
            ignored (Keras's RNN loop has no such knob; the steps are sequential anyway). Default 1.
        swap_memory: TensorFlow ``while_loop`` hint; accepted and ignored. Default ``True``.

    Returns:
        ``(outputs [B, T, U], final_state [B, U])``.

    Example (the same outputs as the unrolled loop):
        >>> import numpy as np
        >>> cell, rng = AGRUCell(4), np.random.default_rng(0)
        >>> x, a = rng.random((2, 5, 3), "float32"), rng.random((2, 5), "float32")
        >>> lengths = np.array([5, 2])
        >>> out, h = dynamic_rnn_with_attention(cell, x, a, sequence_length=lengths)
        >>> ref, ref_h = static_rnn_with_attention(cell, x, a, sequence_length=lengths)
        >>> same = [np.allclose(keras.ops.convert_to_numpy(u), keras.ops.convert_to_numpy(v), atol=1e-5)
        ...         for u, v in ((out, ref), (h, ref_h))]
        >>> tuple(out.shape), same
        ((2, 5, 4), [True, True])
    """
    del parallel_iterations, swap_memory  # TF while_loop hints; Keras's RNN loop sets its own
    owner = "dynamic_rnn_with_attention"
    inputs, att_scores, h0 = _prepare(owner, cell, inputs, att_scores, init_state)
    valid = valid_mask(mask, sequence_length, ops.shape(inputs)[1], owner)
    if _loops_eagerly(inputs):
        # PyTorch runs eagerly, so there is no graph to keep small, while Keras's RNN loop costs
        # host time at every step (structure flattening, per-step bookkeeping). The same steps in
        # a plain loop over the once-unstacked inputs: the same outputs and state.
        return _eager_loop(cell, inputs, att_scores, h0, valid)
    # Per step the loop reads one packed [B, D + 1] slice: the input and the attention score.
    # (Computing every step's input products before the loop was measured: no faster.)
    packed = ops.concatenate([inputs, ops.expand_dims(att_scores, -1)], axis=-1)
    outputs, h_last = _rnn_driver(cell)(packed, initial_state=h0, mask=valid)
    return outputs, h_last


def _loops_eagerly(inputs: Any) -> bool:
    """Whether :func:`dynamic_rnn_with_attention` runs :func:`_eager_loop` (PyTorch, static ``T``)."""
    return keras.backend.backend() == "torch" and isinstance(inputs.shape[1], int)


def _eager_loop(cell: AGRUCell, inputs: Any, att_scores: Any, h: Any, valid: Any) -> tuple[Any, Any]:
    """:func:`dynamic_rnn_with_attention`'s steps as a Python loop (for eager backends).

    The sequence is split into its steps once (``unstack``: one gradient op for all steps, where
    indexing ``inputs[:, t]`` in every step would write a zero-filled ``[B, T, D]`` gradient per
    step); a masked step outputs zeros and carries the state, as Keras's RNN loop does.
    """
    xs, masks = eager_steps(inputs, valid)
    scores = ops.unstack(ops.expand_dims(att_scores, -1), axis=1)
    outputs = []
    for x, a, m in zip(xs, scores, masks):
        h_new = cell.step(x, h, a)
        if m is None:
            h, out = h_new, h_new
        else:
            h = ops.where(m, h_new, h)
            out = ops.where(m, h_new, ops.zeros_like(h_new))
        outputs.append(out)
    return ops.stack(outputs, axis=1), h


def eager_steps(inputs: Any, valid: Any) -> tuple[list, list]:
    """``[B, T, D]`` inputs and a ``[B, T]`` mask as ``T`` step inputs and ``T`` ``[B, 1]`` masks.

    For the plain step loops of eager backends (:func:`_eager_loop`, DIEN's extractor): the
    sequence is unstacked once (one gradient op for all steps), and every mask is ``None`` when
    ``valid`` is.
    """
    xs = ops.unstack(inputs, axis=1)
    masks = [None] * len(xs) if valid is None else ops.unstack(ops.expand_dims(valid, -1), axis=1)
    return xs, masks


class _AttentionStepCell(keras.layers.Layer):
    """A weightless ``keras.layers.RNN`` cell: ``AGRUCell.step_packed`` on one time step.

    It keeps the cell's bound method only (read at every call, never tensors: the cell is cached
    across calls and traces); the cell's owner tracks the weights, so the RNN wrapper adds nothing
    to a model's weights or saved files.
    """

    def __init__(self, cell: AGRUCell, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._step = cell.step_packed  # a bound method: not tracked as a sub-layer
        self.state_size = cell.units
        self.output_size = cell.units

    def build(self, input_shape: Any) -> None:
        self.built = True

    def call(self, inputs: Any, states: Any, training: bool | None = None) -> tuple[Any, Any]:
        h = states[0] if isinstance(states, (list, tuple)) else states
        h_new = self._step(inputs, h)
        return h_new, [h_new]


def _rnn_driver(cell: AGRUCell) -> keras.layers.RNN:
    """The ``keras.layers.RNN`` that runs ``cell`` over time (made once per cell, cached on it).

    Keras's RNN loop is what makes the driver compile everywhere: on TensorFlow its
    ``while_loop`` carries ``maximum_iterations``, so a training step compiles with XLA
    (``jit_compile=True``), which a ``keras.ops.scan`` loop did not allow (Keras 3.15). A masked
    step outputs zeros and carries the state.
    """
    # Cached in the cell's __dict__, bypassing Layer.__setattr__: the cell must not track its own
    # weightless driver (a reference cycle through the tracker) and may already be built.
    driver = cell.__dict__.get("_rnn_driver")
    if driver is None:
        driver = keras.layers.RNN(
            _AttentionStepCell(cell, dtype=cell.dtype_policy, name=f"{cell.name}_step"),
            return_sequences=True, return_state=True, zero_output_for_mask=True,
            dtype=cell.dtype_policy, name=f"{cell.name}_rnn",
        )
        cell.__dict__["_rnn_driver"] = driver
    return driver
