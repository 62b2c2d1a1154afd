"""Row-wise (sparse) optimizers for embedding tables, and the optimizer that pairs them with a dense one.

A batch touches at most ``batch × fields`` rows of a table, so a training step that updates only
those rows — and only their optimizer state — costs in proportion to the batch, not to the
vocabulary. :class:`SparseEmbeddingOptimizer` is a Keras optimizer that updates every dense
weight with an ordinary Keras optimizer and every embedding table (a variable marked by
:class:`reclayers.models.sparse.TableEmbedding`) with a *row rule* applied to the rows of the batch:

=================  =========================================  ========================================
rule               slots per row (``D`` = embedding width)    update of a touched row ``w`` (grad ``g``)
=================  =========================================  ========================================
``sgd``            none                                       ``w -= lr·g``
``adagrad``        accumulator ``a`` (``D``), starts at 0.1   ``a += g²; w -= lr·g / √(a + ε)``
``rowwise_adagrad`` accumulator ``a`` (1), starts at 0        ``a += mean(g²); w -= lr·g / √(a + ε)``
``lazy_adam``      moments ``m``, ``v`` (``2D``)              Adam on the touched rows only
``ftrl``           accumulator ``n``, linear ``z`` (``2D``)   FTRL-proximal (Keras ``Ftrl`` formula)
=================  =========================================  ========================================

Duplicate ids of a batch are summed first (one gradient per distinct row), so ``sgd`` and
``adagrad`` give exactly the dense update (untouched rows have a zero gradient, which leaves them
and their state unchanged). ``lazy_adam`` differs from dense Adam on purpose: moments of rows the
batch did not touch are not decayed (dense Adam keeps moving such rows on stale momentum). The
bias correction uses the global step, as TensorFlow's ``LazyAdam`` does. ``ftrl`` updates only
touched rows too; on zero-initialised tables (the first-order weights of the zoo) that equals
dense FTRL.

The math of each rule is written once with ``keras.ops`` on gathered rows
(:meth:`RowRule.update`); the training step of :mod:`reclayers.models.sparse` gathers the rows,
calls it, and writes the rows back (JAX ``.at[].set`` inside the jitted step, TensorFlow
``scatter_update``, PyTorch ``index_copy_``).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from reclayers.optimizers import delegated_learning_rate, fused_keras_adam

__all__ = [
    "EMBEDDING_OPTIMIZERS",
    "RowIndex",
    "RowRule",
    "SparseEmbeddingOptimizer",
    "combine_duplicates",
    "get_rule",
]


class RowRule:
    """An update rule for the touched rows of an embedding table.

    Subclasses define :attr:`slots` (``(name, per_row_width, initial_value)``; width ``None``
    means the table's width ``D``) and :meth:`update`.

    Args:
        **hyper: the rule's hyper-parameters (see each rule's ``defaults``).

    Example:
        >>> import keras, numpy as np
        >>> rule = get_rule("sgd")
        >>> rows, _ = rule.update(np.ones((2, 3), "float32"), [], np.ones((2, 3), "float32"), 0.1, 1)
        >>> keras.ops.convert_to_numpy(rows).shape, round(float(keras.ops.convert_to_numpy(rows)[0, 0]), 4)
        ((2, 3), 0.9)
    """

    name = "rule"
    defaults: dict = {}
    slots: tuple = ()

    def __init__(self, **hyper: Any) -> None:
        unknown = sorted(set(hyper) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"embedding optimizer {self.name!r}: options must be among {sorted(self.defaults)}; "
                f"got {unknown}"
            )
        self.hyper = {**self.defaults, **hyper}

    def slot_shapes(self, rows: int, dim: int) -> list:
        """``[(name, (rows, width), initial_value)]`` of the rule's state for a ``rows × dim`` table."""
        return [(n, (rows, dim if w is None else w), init) for n, w, init in self._slot_spec()]

    def _slot_spec(self) -> tuple:
        return self.slots

    def update(self, rows: Any, slots: list, grads: Any, lr: Any, step: Any) -> tuple:
        """New values of touched rows and of their slots.

        Args:
            rows: ``[U, D]`` current rows.
            slots: current slot rows, one ``[U, width]`` tensor per slot.
            grads: ``[U, D]`` gradient of each row (duplicates already summed).
            lr: the learning rate (a scalar).
            step: the 1-based step number (a scalar).

        Returns:
            ``(new_rows, [new_slot_rows, ...])``.
        """
        raise NotImplementedError

    def get_config(self) -> dict:
        """The rule's name and hyper-parameters."""
        return {"name": self.name, **self.hyper}


class _SGD(RowRule):
    name = "sgd"

    def update(self, rows, slots, grads, lr, step):
        return rows - lr * grads, []


class _Adagrad(RowRule):
    name = "adagrad"
    defaults = {"initial_accumulator_value": 0.1, "epsilon": 1e-7}

    def _slot_spec(self):
        return (("accumulator", None, self.hyper["initial_accumulator_value"]),)

    def update(self, rows, slots, grads, lr, step):
        acc = slots[0] + ops.square(grads)
        return rows - lr * grads / ops.sqrt(acc + self.hyper["epsilon"]), [acc]


class _RowwiseAdagrad(_Adagrad):
    # The accumulator starts at 0 (TorchRec / FBGEMM's row-wise Adagrad), not at Keras's 0.1: with
    # a loss averaged over the batch a row's gradient is ~1e-4, so a start of 0.1 dominates the
    # accumulator for the whole run and shrinks every step ~300×. Measured (dcn_v2, tables of 1M
    # rows, 2 epochs): test AUC 0.705 with 0.1 at rate 0.05, 0.802 with 0 at rate 0.01.
    name = "rowwise_adagrad"
    defaults = {"initial_accumulator_value": 0.0, "epsilon": 1e-7}

    def _slot_spec(self):
        return (("accumulator", 1, self.hyper["initial_accumulator_value"]),)

    def update(self, rows, slots, grads, lr, step):
        acc = slots[0] + ops.mean(ops.square(grads), axis=-1, keepdims=True)
        return rows - lr * grads / ops.sqrt(acc + self.hyper["epsilon"]), [acc]


class _LazyAdam(RowRule):
    name = "lazy_adam"
    defaults = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
    slots = (("momentum", None, 0.0), ("velocity", None, 0.0))

    def update(self, rows, slots, grads, lr, step):
        b1, b2, eps = self.hyper["beta_1"], self.hyper["beta_2"], self.hyper["epsilon"]
        step = ops.cast(step, rows.dtype)
        alpha = lr * ops.sqrt(1.0 - ops.power(b2, step)) / (1.0 - ops.power(b1, step))
        m = slots[0] + (grads - slots[0]) * (1.0 - b1)
        v = slots[1] + (ops.square(grads) - slots[1]) * (1.0 - b2)
        return rows - alpha * m / (ops.sqrt(v) + eps), [m, v]


class _Ftrl(RowRule):
    name = "ftrl"
    defaults = {
        "learning_rate_power": -0.5,
        "initial_accumulator_value": 0.1,
        "l1_regularization_strength": 0.0,
        "l2_regularization_strength": 0.0,
        "beta": 0.0,
    }

    def _slot_spec(self):
        return (("accumulator", None, self.hyper["initial_accumulator_value"]), ("linear", None, 0.0))

    def update(self, rows, slots, grads, lr, step):
        h = self.hyper
        power = -h["learning_rate_power"]
        l1 = h["l1_regularization_strength"]
        l2 = h["l2_regularization_strength"] + h["beta"] / (2.0 * lr)
        acc, linear = slots
        new_acc = acc + ops.square(grads)
        linear = linear + grads - (ops.power(new_acc, power) - ops.power(acc, power)) / lr * rows
        quadratic = ops.power(new_acc, power) / lr + 2.0 * l2
        rows = (ops.clip(linear, -l1, l1) - linear) / quadratic
        return rows, [new_acc, linear]


EMBEDDING_OPTIMIZERS = {r.name: r for r in (_SGD, _Adagrad, _RowwiseAdagrad, _LazyAdam, _Ftrl)}
"""The row rules by name (``adam``, dense Adam on the whole table, is the plain Keras optimizer)."""


def get_rule(name: Any, **hyper: Any) -> RowRule:
    """The row rule called ``name`` (or ``name`` itself when it is a :class:`RowRule` already).

    Args:
        name: one of ``sgd``, ``adagrad``, ``rowwise_adagrad``, ``lazy_adam``, ``ftrl``.
        **hyper: the rule's hyper-parameters (e.g. ``beta_1`` of ``lazy_adam``).

    Example:
        >>> get_rule("rowwise_adagrad").slot_shapes(1000, 16)
        [('accumulator', (1000, 1), 0.0)]
    """
    if isinstance(name, RowRule):
        return name
    key = str(name).strip().lower()
    if key not in EMBEDDING_OPTIMIZERS:
        raise ValueError(
            f"embedding optimizer must be one of {', '.join(EMBEDDING_OPTIMIZERS)}; got {name!r}"
        )
    return EMBEDDING_OPTIMIZERS[key](**hyper)


class RowIndex:
    """A transient ``int32`` index over table rows, shared by the tables of one jitted step, that
    tells each lookup which entry of its sorted ids stands for its row (see
    :func:`combine_duplicates`).

    The sorted ids ``rows`` write their positions into the index at their ids (``index[rows] =
    0..N-1``); of an id's entries one write wins, and every lookup of that id reads the same winner
    back, both for the unsorted ids (its segment) and for the sorted ones. Only entries written by
    a table's own ids are read before the next table writes, so the index is never reset and one
    array of the largest table's rows serves every table of a step (it is zeroed once per step,
    not once per table; :meth:`read_by` keeps XLA from copying it per table). It replaces two
    binary searches over the sorted ids: for ``deepfm``'s 52 tables, batch 4096, lazy Adam, jitted
    update alone on one CPU, 24.1 against 31.6 CPU ms per update at 38k rows per table and 29.8
    against 37.5 at 385k. The JAX step uses it for tables of up to :data:`ROW_INDEX_MAX_ROWS` rows
    (the whole step's A/B is there).

    Args:
        rows: the largest table's number of rows (the ids to be indexed are below it).

    Example:
        >>> import keras, numpy as np
        >>> index = RowIndex(10)
        >>> segment, canonical = index.segments(np.array([1, 3, 3], "int32"), np.array([3, 1, 3], "int32"))
        >>> s = keras.ops.convert_to_numpy(segment).tolist()
        >>> s[0] == s[2] != s[1]
        True
    """

    def __init__(self, rows: int) -> None:
        self.rows = int(rows)
        self.value = None
        self._after = None

    def segments(self, rows: Any, ids: Any) -> tuple:
        """``(segment, canonical)``: for each of ``ids`` and of ``rows`` (the same ids sorted), the
        position in ``rows`` that stands for its id."""
        n = ops.shape(rows)[0]
        if self.value is None:
            self.value = ops.zeros((self.rows,), "int32")
        positions = ops.arange(n, dtype="int32")
        if self._after is not None:
            positions = positions + self._after
        self.value = ops.scatter_update(self.value, ops.expand_dims(rows, -1), positions)
        return ops.take(self.value, ids, axis=0), ops.take(self.value, rows, axis=0)

    def read_by(self, result: Any) -> None:
        """Orders the next table's write after ``result``, the last value computed from this
        table's reads of the index.

        Without it XLA cannot prove that the reads of one table come before the next table's
        write into the same array, and copies the whole index before every write (51 copies of
        the index for ``deepfm``'s 52 tables: 78 MB per step at 385k rows per table). The next
        write's positions get ``result[0] > inf`` added: false for every float, NaN included, so
        it adds zero, but XLA cannot drop it, and the write now waits for the reads and happens
        in place."""
        first = ops.reshape(result, (-1,))[0]
        self._after = ops.cast(ops.greater(first, float("inf")), "int32")


def combine_duplicates(
    ids: Any, grads: Any, zero_padding: bool = False, index: RowIndex | None = None,
) -> tuple:
    """Sums the gradients of repeated ids, in static shapes, with one sort of the ids alone.

    Returns ``(rows, summed)`` of the same length ``N`` as ``ids``: ``rows`` are the ids sorted,
    and every entry of an id carries that id's summed gradient, so writing every entry back (a
    scatter with duplicate, *identical* values) is the same as writing each distinct row once.
    Static shapes keep the step jittable (JAX, XLA).

    How: ``rows = sort(ids)``; one entry of ``rows`` per id stands for it (its first, found by a
    binary search; or, given ``index``, the entry that won the write into the shared
    :class:`RowIndex`); each lookup's gradient is added to its id's entry, and each entry of
    ``rows`` reads the sum back from there. The ids are sorted as plain keys, never with their
    positions (an argsort): XLA's CPU sort of (key, position) pairs took about 5× the time of the
    keys-only sort, and the argsort-based segment sum was the largest part of a JAX sparse step
    with many tables (see the sparse embeddings benchmark's notes). The sort is kept with an
    ``index`` too: it puts the row gathers and scatters that follow in memory order.

    Args:
        ids: ``[N]`` integer row ids.
        grads: ``[N, D]`` (or ``[N, ...]``) one gradient per id.
        zero_padding: keep each id's sum on one entry only, the others zero, for a consumer
            that *adds* duplicates back up (an ``IndexedSlices`` gradient).
        index: a :class:`RowIndex` with at least as many rows as the table (``None``: binary
            searches, for any table size).

    Example:
        >>> import keras, numpy as np
        >>> rows, summed = combine_duplicates(np.array([3, 1, 3]), np.array([[1.0], [2.0], [4.0]]))
        >>> keras.ops.convert_to_numpy(rows).tolist(), keras.ops.convert_to_numpy(summed).tolist()
        ([1, 3, 3], [[2.0], [5.0], [5.0]])
    """
    ids = ops.convert_to_tensor(ids)
    grads = ops.convert_to_tensor(grads)
    n = ops.shape(ids)[0]
    rows = ops.sort(ids)
    if index is None:
        segment = ops.cast(ops.searchsorted(rows, ids, side="left"), "int32")
        canonical = ops.cast(ops.searchsorted(rows, rows, side="left"), "int32")
    else:
        segment, canonical = index.segments(rows, ids)
    summed = ops.segment_sum(grads, segment, num_segments=n)
    summed = ops.take(summed, canonical, axis=0)
    if zero_padding:  # gradients of any rank [N, ...] (a gathered vector's slices are [N])
        keep = ops.reshape(canonical == ops.arange(n, dtype="int32"), (-1,) + (1,) * (len(summed.shape) - 1))
        summed = ops.where(keep, summed, ops.zeros_like(summed))
    if index is not None:
        index.read_by(summed)
    return rows, summed


def gather_rows(table: Any, rows: Any) -> Any:
    """``table[rows]``, without gradient to the table; a TensorFlow resource variable is read row
    by row (``sparse_read``), never copied whole, so a step stays proportional to the batch."""
    sparse_read = getattr(table, "sparse_read", None)
    if sparse_read is not None and keras.backend.backend() == "tensorflow":
        return sparse_read(rows)
    if keras.backend.backend() == "torch" and _TORCH_NATIVE:
        import torch

        # ``ops.take`` on torch first maps negative ids (two extra passes over the ids); lookups
        # of a table are valid rows, so index the table directly, outside autograd (the callers
        # take no gradient through the table).
        table = getattr(table, "value", table).detach()
        rows = torch.as_tensor(rows)
        return torch.index_select(table, 0, rows.reshape(-1).long()).reshape(*rows.shape, table.shape[-1])
    return ops.take(table, rows, axis=0)


def updated_rows(
    rule: RowRule, table: Any, slots: list, ids: Any, grads: Any, lr: Any, step: Any, l2: float = 0.0,
    dynamic: bool = False, index: RowIndex | None = None,
) -> tuple:
    """``(rows, new_rows, new_slot_rows)`` of one sparse step on ``table`` (values, not variables).

    Duplicate ids are summed (:func:`combine_duplicates`; a table with no more rows than lookups
    is updated whole, untouched rows masked, which is cheaper than sorting); ``l2`` adds
    ``2·l2·w`` to the gradient of each touched row once (Keras' ``L2`` penalty, applied lazily to
    the batch's rows). ``dynamic``: the step may have data-dependent shapes (TensorFlow
    without XLA), so only the distinct rows are read and written (:func:`_updated_rows_tf`).
    ``index``: the step's shared :class:`RowIndex` for the duplicate search (``None``: binary
    searches).
    """
    if keras.backend.backend() == "torch" and _TORCH_NATIVE:
        return _updated_rows_torch(rule, table, slots, ids, grads, lr, step, l2)
    if is_small_table(table, ids):
        return _updated_small_table(rule, table, slots, ids, grads, lr, step, l2)
    if dynamic and _TF_UNIQUE and keras.backend.backend() == "tensorflow":
        return _updated_rows_tf(rule, table, slots, ids, grads, lr, step, l2)
    rows, summed = combine_duplicates(ids, grads, index=index)
    return (rows, *_rule_on_rows(rule, table, slots, rows, summed, lr, step, l2))


def _rule_on_rows(rule, table, slots, rows, summed, lr, step, l2) -> tuple:
    """``(new_rows, new_slot_rows)``: the rule on ``rows`` of ``table`` and its ``slots``, with
    their summed gradients ``summed`` (plus ``2·l2·w``, the ``L2`` penalty of each touched row)."""
    current = gather_rows(table, rows)
    if l2:
        summed = summed + 2.0 * l2 * current
    slot_rows = [gather_rows(s, rows) for s in slots]
    return rule.update(current, slot_rows, ops.cast(summed, current.dtype), lr, step)


def is_small_table(table: Any, ids: Any) -> bool:
    """Whether a table has no more rows than a batch's lookups ``ids`` (static shapes only): then
    handling every row (masked update, dense gradient) is cheaper than finding the distinct ids."""
    lookups = ids.shape[0]
    return isinstance(lookups, int) and int(table.shape[0]) <= lookups


#: PyTorch: find the distinct ids through a per-table scratch index (``_distinct_by_index``)
#: instead of ``torch.unique``'s sort; ``False`` for the A/B. (On JAX the same scratch, kept as an
#: optimizer variable, made the step no faster: 0.98–0.99 of the sorted way's CPU time, so the
#: ids stay sorted there, which also keeps the row gathers and scatters in memory order.)
_LOOKUP_INDEX = True

#: JAX: tables of up to this many rows find each lookup's entry among the sorted ids through the
#: step's shared :class:`RowIndex` instead of two binary searches (``0``: never, for the A/B of
#: ``benchmarks/sparse_row_index_ab.py``). The index costs 4 bytes per row of the largest such
#: table, zeroed once per step; larger tables keep the searches. Whole ``deepfm`` step (lazy Adam,
#: batch 4096, one CPU, both ways in one process alternating, median of the rounds' CPU-time
#: ratios): 0.94x at 38k rows per table, 0.91x at 385k, 0.98x at 1M; ``dcn_v2`` 0.97x at 385k.
ROW_INDEX_MAX_ROWS = 1 << 20

#: TensorFlow without XLA: the distinct rows by ``tf.unique`` (``_updated_rows_tf``); ``False``
#: sorts the ids as under XLA and JAX, for the A/B. Measured (lazy Adam, batch 4096, one thread,
#: both arms in one process alternating, 5 rounds, CPU ms per step): ``deepfm`` 94.6 against 110.7
#: at 1M table rows (0.855x), 106.4 against 112.1 at 10M (0.95x); ``dcn_v2`` 0.99x at both sizes.
_TF_UNIQUE = True

#: PyTorch: dedup and gather with torch itself (``_updated_rows_torch``); ``False`` runs the
#: ``keras.ops`` path, kept for the A/B of ``benchmarks/sparse_embeddings.py --torch-ab``.
_TORCH_NATIVE = True


def _updated_rows_torch(rule, table, slots, ids, grads, lr, step, l2):
    """:func:`updated_rows` written with torch directly: :func:`_gathered_rows_torch`, then the
    rule (the training step gathers every table first: ``SparseEmbeddingOptimizer._apply_rows_torch``)."""
    rows, current, slot_rows, summed = _gathered_rows_torch(table, slots, ids, grads, l2)
    new_rows, new_slots = rule.update(current, slot_rows, summed, lr, step)
    return rows, new_rows, new_slots


def _gathered_rows_torch(table, slots, ids, grads, l2, index=None) -> tuple:
    """``(rows, current, slot_rows, summed)`` of one table's sparse step on PyTorch: the distinct
    ids, their rows of ``table`` and of each slot (fresh tensors) and their summed gradients.

    ``keras.ops.segment_sum`` on torch repeats every id ``D`` times and scatters into a fresh
    ``N + 1``-row buffer, and ``keras.ops.take`` rewrites negative ids first; on a batch's
    ``N = B × fields`` lookups those copies cost more than the update itself. Here the distinct
    ids come from ``torch.unique`` (sorted, with the inverse map; eager PyTorch has dynamic shapes,
    so only the ``U`` touched rows are read and written) or from the scratch ``index``
    (:func:`_distinct_by_index`), and duplicates are summed by ``index_add_`` into a ``[U, D]``
    buffer; rows are read with ``index_select`` (ids are valid rows).
    """
    import torch

    ids = ids.reshape(-1)
    if index is None:
        rows, inverse = torch.unique(ids, sorted=True, return_inverse=True)
    else:
        rows, inverse = _distinct_by_index(ids, index)
    summed = torch.zeros((rows.shape[0], grads.shape[-1]), dtype=grads.dtype, device=grads.device)
    summed.index_add_(0, inverse, grads)
    current = torch.index_select(table, 0, rows)
    if l2:
        summed = summed + 2.0 * l2 * current
    slot_rows = [torch.index_select(s, 0, rows) for s in slots]
    return rows, current, slot_rows, summed.to(current.dtype)


#: PyTorch: ``lazy_adam`` on all tables of a step in one multi-tensor call of PyTorch's fused Adam
#: kernel (``torch._fused_adam_``) instead of the rule's ``keras.ops`` arithmetic per table;
#: ``False`` for the A/B (:func:`_rule_on_tables_torch`).
_TORCH_FUSED_ADAM = True


def _rule_on_tables_torch(rule, gathered: list, lr, step) -> list:
    """``[(new_rows, new_slot_rows)]``: ``rule`` on every table's gathered rows of one PyTorch step
    (``gathered``: ``[(current, slot_rows, summed)]`` from :func:`_gathered_rows_torch`).

    The rule's arithmetic (:meth:`RowRule.update`) is a dozen ``keras.ops`` calls per table, each
    a separate pass over the rows plus Keras's per-call conversions, repeated for every table
    (52 for ``deepfm``'s 26 fields). For ``lazy_adam`` PyTorch's fused Adam kernel does the whole
    update of all tables in one call, in place on the gathered copies, with the rule's (Keras's)
    formula (:func:`reclayers.optimizers.fused_keras_adam`).
    """
    import torch

    fused = getattr(torch, "_fused_adam_", None)
    if not (_TORCH_FUSED_ADAM and isinstance(rule, _LazyAdam) and fused is not None and gathered):
        return [rule.update(current, slots, summed, lr, step) for current, slots, summed in gathered]
    h = rule.hyper
    params = [current for current, _, _ in gathered]
    moments = [slots[0] for _, slots, _ in gathered]
    velocities = [slots[1] for _, slots, _ in gathered]
    fused_keras_adam(params, [summed for _, _, summed in gathered], moments, velocities,
                     lr if isinstance(lr, torch.Tensor) else float(lr), float(step),
                     h["beta_1"], h["beta_2"], h["epsilon"])
    return [(p, [m, v]) for p, m, v in zip(params, moments, velocities)]


def _updated_rows_tf(rule, table, slots, ids, grads, lr, step, l2):
    """:func:`updated_rows` on TensorFlow without XLA, where a graph may have data-dependent
    shapes: ``tf.unique`` (a hash table, no sort) gives the ``U`` distinct ids and each lookup's
    index among them, ``unsorted_segment_sum`` sums the duplicates into ``[U, D]``, and only those
    ``U`` rows of the table and its slots are read and written, instead of all ``N`` lookups'
    (duplicates included) after a sort. Measured in :data:`_TF_UNIQUE`'s notes."""
    import tensorflow as tf

    rows, inverse = tf.unique(tf.reshape(ids, [-1]), out_idx=tf.int32)
    summed = tf.math.unsorted_segment_sum(grads, inverse, tf.shape(rows)[0])
    return (rows, *_rule_on_rows(rule, table, slots, rows, summed, lr, step, l2))


def _distinct_by_index(ids: Any, index: Any) -> tuple:
    """``(rows, inverse)`` as ``torch.unique(ids, return_inverse=True)`` gives them, but with the
    distinct ids in batch order and found without sorting (PyTorch).

    Each lookup writes its position into ``index`` (an int32 tensor of one entry per table row)
    at its id; among duplicates one write wins, and every lookup reads back the winner of its id.
    The winners are the distinct ids; a running count over them numbers each one. Only the
    batch's ids' entries are written and then read, so ``index`` needs no initial values and is
    never reset: a step costs O(lookups) whatever the table's size. Measured in one process,
    alternating (lazy Adam, batch 4096, 1M table rows, one thread): the ``deepfm`` training step
    (52 tables) 131.1 → 124.4 CPU ms; the dedup alone on those tables 12.6 → 8.0 ms.
    """
    import torch

    n = ids.shape[0]
    positions = torch.arange(n, dtype=torch.int32, device=ids.device)
    index.index_copy_(0, ids.long(), positions)
    first = index.index_select(0, ids.long()).long()
    winner = first == positions
    return ids[winner], (torch.cumsum(winner, 0) - 1)[first]


def _updated_small_table(rule, table, slots, ids, grads, lr, step, l2):
    """A table with no more rows than the batch's lookups: every row is computed and the rows the
    batch did not touch keep their values (and slots), which costs no more than sorting the ids."""
    n = int(table.shape[0])
    current = ops.convert_to_tensor(table)
    summed = ops.cast(ops.segment_sum(grads, ids, num_segments=n), current.dtype)
    touched = ops.segment_sum(ops.ones_like(ids, dtype="float32"), ids, num_segments=n)[:, None] > 0
    if l2:
        summed = summed + 2.0 * l2 * current
    slot_values = [ops.convert_to_tensor(s) for s in slots]
    new_rows, new_slots = rule.update(current, slot_values, summed, lr, step)
    new_rows = ops.where(touched, new_rows, current)
    new_slots = [ops.where(touched, new, old) for new, old in zip(new_slots, slot_values)]
    return ops.arange(n, dtype=ids.dtype), new_rows, new_slots


def _slot_layout(table: Any, shape: tuple) -> Any:
    """The table's layout (``keras.distribution``) for a slot of ``shape``: a row-sharded table
    gets row-sharded slots, so each device updates the slot rows it holds next to their table rows."""
    layout = getattr(table, "_layout", None)
    column_sharded = getattr(layout, "axes", (None, None))[1] is not None
    if layout is None or (shape[1] != table.shape[1] and column_sharded):
        return None
    return layout


@keras.saving.register_keras_serializable(package="reclayers")
class SparseEmbeddingOptimizer(keras.optimizers.Optimizer):
    """Dense weights by a Keras optimizer, embedding tables row-wise by a :class:`RowRule`.

    The tables are the variables marked ``sparse_table`` (those of
    :class:`reclayers.models.sparse.TableEmbedding`). The zoo models' training step
    (:class:`reclayers.models.sparse.ZooModel`) hands this optimizer the gradients of the rows
    the batch looked up; only those rows and their slots are read and written. Slots are Keras
    variables, so they are saved with the model (``.keras``) and restored by ``load_model``.

    Args:
        dense_optimizer: a Keras optimizer (or its name / config) for every other weight.
        embedding_optimizer: a row rule name (``sgd``, ``adagrad``, ``rowwise_adagrad``,
            ``lazy_adam``, ``ftrl``) or a :class:`RowRule`.
        embedding_learning_rate: the rule's learning rate, a constant; ``None`` (the default):
            the dense optimizer's learning rate at every step, so the tables follow its schedule
            (warm-up, cosine or exponential decay, a plateau cut of the trainer) step for step.
        embedding_options: hyper-parameters of the rule (e.g. ``{"beta_1": 0.8}``).

    Example:
        >>> opt = SparseEmbeddingOptimizer("adam", "rowwise_adagrad", embedding_learning_rate=0.05)
        >>> opt.rule.name, opt.embedding_learning_rate
        ('rowwise_adagrad', 0.05)
        >>> schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
        >>> follows = SparseEmbeddingOptimizer(keras.optimizers.SGD(schedule), "sgd")
        >>> round(float(follows.current_embedding_learning_rate()), 3)  # step 0: the dense rate
        0.1
    """

    def __init__(
        self,
        dense_optimizer: Any = "adam",
        embedding_optimizer: Any = "adagrad",
        embedding_learning_rate: float | None = None,
        embedding_options: dict | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=0.0, name=name, **kwargs)
        self.dense_optimizer = keras.optimizers.get(dense_optimizer)
        self.rule = get_rule(embedding_optimizer, **(embedding_options or {}))
        self.embedding_learning_rate = (
            None if embedding_learning_rate is None else float(embedding_learning_rate)
        )
        # Plain lists, kept out of Keras' variable tracking (the tables are the model's).
        object.__setattr__(self, "tables", [])
        object.__setattr__(self, "table_slots", [])
        # PyTorch: per table, the scratch of ``_distinct_by_index`` (no state: never saved)
        object.__setattr__(self, "_lookup_index", {})

    # -- building -------------------------------------------------------------------------------
    def build(self, var_list: list) -> None:
        var_list = list(var_list)
        object.__setattr__(self, "tables", [v for v in var_list if getattr(v, "sparse_table", False)])
        dense = [v for v in var_list if not getattr(v, "sparse_table", False)]
        if not self.dense_optimizer.built:
            self.dense_optimizer.build(dense)
        object.__setattr__(self, "table_slots", [])
        for v in self.tables:
            rows, dim = v.shape
            self.table_slots.append(
                [
                    self.add_variable(
                        shape, initializer=keras.initializers.Constant(init), dtype=v.dtype,
                        name=f"{v.path.replace('/', '_')}_{slot}", layout=_slot_layout(v, shape),
                    )
                    for slot, shape, init in self.rule.slot_shapes(int(rows), int(dim))
                ]
            )
        super().build(var_list)

    @property
    def variables(self) -> list:
        return list(self._variables) + list(self.dense_optimizer.variables)

    def _own_count(self) -> int:
        return len(self._variables)

    def current_embedding_learning_rate(self) -> Any:
        """The rate of the row rule for the step about to run: the constant
        :attr:`embedding_learning_rate`, or (``None``) the dense optimizer's current rate, read
        before the dense update advances its schedule (a float32 tensor)."""
        if self.embedding_learning_rate is not None:
            return self.embedding_learning_rate
        return ops.cast(ops.convert_to_tensor(self.dense_optimizer.learning_rate), "float32")

    def is_table(self, variable: Any) -> bool:
        """Whether ``variable`` is updated row-wise (a marked embedding table)."""
        return any(variable is t for t in self.tables)

    # -- updates --------------------------------------------------------------------------------
    def apply(self, grads: list, trainable_variables: Any = None) -> None:
        if trainable_variables is None:
            trainable_variables = self._trainable_variables
        trainable_variables = list(trainable_variables)
        if not self.built:
            self.build(trainable_variables)
        pairs = [(g, v) for g, v in zip(grads, trainable_variables) if g is not None]
        if any(self.is_table(v) for _, v in pairs):
            raise ValueError(
                "SparseEmbeddingOptimizer: embedding tables are updated from the rows of the batch; "
                "train a reclayers.models zoo model (its train step hands over row gradients); got "
                "dense gradients for a table"
            )
        if pairs:
            self.dense_optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
        self.iterations.assign_add(1)

    def apply_sparse(self, dense_grads: list, dense_vars: list, lookups: list, write_rows: Any,
                     dynamic: bool = False) -> None:
        """In-place step (TensorFlow, PyTorch): the dense optimizer on ``dense_vars``, the rule on
        each table's looked-up rows.

        Args:
            dense_grads: gradients of ``dense_vars`` (``None`` entries are skipped).
            dense_vars: the non-table trainable variables.
            lookups: ``[(table_variable, ids [N], row_grads [N, D], l2)]``.
            write_rows: ``write_rows(variable, rows, values)`` writes rows in place.
            dynamic: the step may have data-dependent shapes (TensorFlow without XLA).
        """
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(list(dense_vars) + [t for t, _, _, _ in lookups])
        lr = self.current_embedding_learning_rate()  # before the dense step moves its schedule
        pairs = [(g, v) for g, v in zip(dense_grads, dense_vars) if g is not None]
        if pairs:
            self.dense_optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
        step = ops.cast(self.iterations, "float32") + 1.0
        if keras.backend.backend() == "torch" and _TORCH_NATIVE:
            self._apply_rows_torch(lookups, lr, step, write_rows)
        else:
            for table, ids, grads, l2 in lookups:
                slots = self.table_slots[self._table_index(table)]
                rows, new_rows, new_slots = updated_rows(
                    self.rule, table.value, [s.value for s in slots], ids, grads, lr, step, l2,
                    dynamic=dynamic,
                )
                write_rows(table, rows, new_rows)
                for s, value in zip(slots, new_slots):
                    write_rows(s, rows, value)
        self.iterations.assign_add(1)

    def _apply_rows_torch(self, lookups: list, lr: Any, step: Any, write_rows: Any) -> None:
        """PyTorch: every table's distinct rows gathered first, the rule run on all of them at
        once (:func:`_rule_on_tables_torch`), then the rows written back."""
        gathered, targets = [], []
        for table, ids, grads, l2 in lookups:
            slots = self.table_slots[self._table_index(table)]
            rows, current, slot_rows, summed = _gathered_rows_torch(
                table.value, [s.value for s in slots], ids, grads, l2, self._torch_lookup_index(table))
            gathered.append((current, slot_rows, summed))
            targets.append((table, slots, rows))
        for (table, slots, rows), (new_rows, new_slots) in zip(
                targets, _rule_on_tables_torch(self.rule, gathered, lr, step)):
            write_rows(table, rows, new_rows)
            for s, value in zip(slots, new_slots):
                write_rows(s, rows, value)

    def stateless_apply_sparse(
        self,
        optimizer_values: list,
        dense_grads: list,
        dense_values: list,
        lookups: list,
        scatter: Any,
    ) -> tuple:
        """Pure step (JAX): returns ``(new_dense_values, new_table_values, new_optimizer_values)``.

        Args:
            optimizer_values: current values of :attr:`variables`, in order.
            dense_grads: gradients of ``dense_values``.
            dense_values: values of the non-table trainable variables.
            lookups: ``[(table_index, table_value, ids [N], row_grads [N, D], l2)]``.
            scatter: ``scatter(array, rows, values)`` returns ``array`` with ``rows`` replaced.
        """
        own = list(optimizer_values[: self._own_count()])
        dense_opt = list(optimizer_values[self._own_count() :])
        with keras.StatelessScope(state_mapping=list(zip(self.dense_optimizer.variables, dense_opt))):
            lr = self.current_embedding_learning_rate()  # the dense rate of this step
        new_dense, new_dense_opt = self.dense_optimizer.stateless_apply(dense_opt, dense_grads, dense_values)
        slot_pos = {id(v): i for i, v in enumerate(self._variables)}
        it_pos = slot_pos[id(self.iterations)]
        step = ops.cast(own[it_pos], "float32") + 1.0
        new_tables = []
        # One duplicate index for every table of the step (allocated at its first use: tables
        # with no more rows than lookups take the masked whole-table path and need none).
        indexed = [int(table.shape[0]) <= ROW_INDEX_MAX_ROWS for _, table, *_ in lookups]
        row_index = RowIndex(max((int(lookup[1].shape[0]) for lookup, on in zip(lookups, indexed) if on),
                                 default=0))
        for (index, table, ids, grads, l2), on in zip(lookups, indexed):
            positions = [slot_pos[id(s)] for s in self.table_slots[index]]
            rows, new_rows, new_slots = updated_rows(
                self.rule, table, [own[p] for p in positions], ids, grads, lr, step, l2,
                index=row_index if on else None,
            )
            new_tables.append(scatter(table, rows, new_rows))
            for p, value in zip(positions, new_slots):
                own[p] = scatter(own[p], rows, value)
        own[it_pos] = own[it_pos] + 1
        return new_dense, new_tables, own + list(new_dense_opt)

    def _torch_lookup_index(self, table: Any) -> Any:
        """PyTorch (native path): the table's ``[rows]`` int32 scratch, allocated once, never
        initialised (see ``_distinct_by_index``); ``None`` elsewhere (the ids are sorted)."""
        if keras.backend.backend() != "torch" or not _TORCH_NATIVE or not _LOOKUP_INDEX:
            return None
        import torch

        value = table.value
        index = self._lookup_index.get(id(table))
        if index is None or index.shape[0] != value.shape[0]:
            index = torch.empty(value.shape[0], dtype=torch.int32, device=value.device)
            self._lookup_index[id(table)] = index
        return index

    def _table_index(self, variable: Any) -> int:
        for i, t in enumerate(self.tables):
            if t is variable:
                return i
        raise ValueError(
            f"SparseEmbeddingOptimizer: {variable.path!r} is not among the tables it was built with "
            f"({[t.path for t in self.tables]})"
        )

    # -- the usual optimizer surface ---------------------------------------------------------------
    learning_rate = delegated_learning_rate("dense_optimizer")

    def get_config(self) -> dict:
        rule = self.rule.get_config()
        return {
            "name": self.name,
            "dense_optimizer": keras.optimizers.serialize(self.dense_optimizer),
            "embedding_optimizer": rule.pop("name"),
            "embedding_learning_rate": self.embedding_learning_rate,
            "embedding_options": rule,
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects: Any = None) -> SparseEmbeddingOptimizer:
        config = dict(config)
        dense = keras.optimizers.deserialize(config.pop("dense_optimizer"), custom_objects=custom_objects)
        return cls(dense, **config)
