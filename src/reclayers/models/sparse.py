"""Sparse (row-wise) training of the zoo's embedding tables, on JAX, TensorFlow and PyTorch.

A zoo model compiled with a :class:`~reclayers.embedding_optimizers.SparseEmbeddingOptimizer`
(``compile_model(..., embedding_optimizer="adagrad")``) trains with :meth:`ZooModel.train_step`:

1. every :class:`TableEmbedding` looks its ids up as usual, but the rows are detached from the
   table and a zero "delta" is added to them; the step differentiates the loss with respect to
   those deltas, i.e. with respect to the gathered rows ``[N, D]``, never the whole table;
2. the ids of each table's lookups are recorded in the same order as the deltas;
3. the optimizer sums the gradients of repeated ids and updates only those rows of the table and
   of its slots: JAX returns new arrays built with ``.at[rows].set`` inside the jitted step (whose
   state buffers ``fit`` donates, so XLA writes in place), TensorFlow calls ``scatter_update`` on
   the resource variables, PyTorch ``index_copy_`` on the parameters.

Everything else (dense weights, their Keras optimizer, metrics, callbacks) is the usual ``fit``.
Compiled with any other optimizer, the model trains as a plain ``keras.Model``, with one
correction on TensorFlow: a table's ``IndexedSlices`` gradient is summed per id before the Keras
optimizer sees it (Keras 3 would square each lookup's entry apart in Adam's second moment and
Adagrad's accumulator; see :meth:`ZooModel._tf_dense_train_step`), so dense Adam trains the same
on all three backends.

Distribution: on JAX the step runs under ``keras.distribution`` (data parallel, or tables
row-sharded by ``--distribute model``) as it is. On PyTorch with several processes
(``torch.distributed``, ``reclayers train --distribute data``) each process averages the dense
gradients and gathers every process's looked-up ids and row gradients, so all processes apply
the same row update, that of the global batch. A TensorFlow ``tf.distribute`` strategy is refused
(:data:`TF_STRATEGY_REFUSED`): its replicas would each need the others' rows merged into mirrored
tables, which this step does not do.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import keras
from keras import ops

from reclayers.embedding_optimizers import (
    SparseEmbeddingOptimizer,
    combine_duplicates,
    gather_rows,
    is_small_table,
)

__all__ = [
    "TF_STRATEGY_REFUSED",
    "OptimizerMemory",
    "TableEmbedding",
    "ZooModel",
    "check_tf_strategy",
    "optimizer_memory",
]

_ACTIVE = threading.local()

#: TensorFlow: :meth:`ZooModel.make_train_function` traces the step on each batch's own shapes;
#: ``False`` keeps Keras's train function (step traced on the iterator's ``None`` batch), for the A/B.
_TF_BATCH_SHAPED_STEP = True

#: The one-line refusal of a row-wise embedding optimizer under a TensorFlow ``tf.distribute`` strategy.
TF_STRATEGY_REFUSED = (
    "row-wise embedding optimizers do not run under a TensorFlow tf.distribute strategy "
    "(--distribute on TensorFlow); use JAX or PyTorch for distributed sparse training, or "
    "--embedding-optimizer adam (dense tables)"
)


def check_tf_strategy() -> None:
    """Raises ``ValueError(TF_STRATEGY_REFUSED)`` inside a TensorFlow ``tf.distribute`` strategy.

    Example:
        >>> check_tf_strategy()  # no strategy: nothing to refuse
    """
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    if tf.distribute.has_strategy():
        raise ValueError(TF_STRATEGY_REFUSED)


class _LookupContext:
    """Deltas per table for one forward pass, and the ids each table looked up (same order)."""

    def __init__(self, deltas: dict) -> None:
        self.deltas = deltas
        self.offsets = {name: 0 for name in deltas}
        self.ids: dict = {name: [] for name in deltas}

    def __enter__(self) -> _LookupContext:
        self._previous = getattr(_ACTIVE, "context", None)
        _ACTIVE.context = self
        return self

    def __exit__(self, *exc: Any) -> None:
        _ACTIVE.context = self._previous

    def delta(self, layer: Any, ids: Any) -> Any:
        """The slice of ``layer``'s delta for these ``ids`` (shaped ``ids.shape + (D,)``)."""
        start = self.offsets[layer.name]
        n = _size(ids)
        self.offsets[layer.name] = start + n
        self.ids[layer.name].append(ops.reshape(ids, (-1,)))
        piece = self.deltas[layer.name][start : start + n]
        return ops.reshape(piece, tuple(ops.shape(ids)) + (layer.output_dim,))

    def flat_ids(self, name: str) -> Any:
        parts = self.ids[name]
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=0)


def _size(x: Any) -> Any:
    n = 1
    for d in ops.shape(x):
        n = n * d
    return n


def _host_initializer(initializer: Any) -> Any:
    """On JAX, the table's initial values drawn with NumPy from the same distribution as
    ``initializer`` (``RandomNormal``, ``RandomUniform`` or ``TruncatedNormal``; ``None`` for any
    other initializer, which then runs as usual).

    Deviation from Keras, JAX only: Keras draws them with ``jax.random`` in a function compiled
    per table shape — about 0.3 s of XLA compilation per table, 8-30 s for a model with one table
    per field of different sizes, the largest part of building a CTR model — while NumPy needs a
    few milliseconds per million values and no compilation. The values keep the initializer's
    distribution and are reproducible: the NumPy generator is seeded from the initializer's seed
    (an integer, or the next seed of its ``SeedGenerator``), so ``keras.utils.set_random_seed``
    still fixes them; they are not the values ``jax.random`` would have drawn.

    Deviation from Keras, PyTorch, ``TruncatedNormal`` only: Keras's PyTorch ``truncated_normal``
    draws four candidates per value and keeps the first one within two deviations, but keeps the
    first candidate when none of the four is (probability 0.0455⁴ ≈ 4.3e-6 per value): a 10M × 16
    table would get about 690 values beyond two deviations. The NumPy draw redraws until every
    value is inside."""
    import numpy as np

    inits = keras.initializers
    kinds = (inits.RandomNormal, inits.RandomUniform, inits.TruncatedNormal)
    if type(initializer) not in kinds:
        return None
    seed = initializer.seed
    if isinstance(seed, keras.random.SeedGenerator):
        seed = [int(v) for v in np.asarray(ops.convert_to_numpy(seed.next())).reshape(-1)
                .astype(np.int64) % (1 << 32)]
    rng = np.random.default_rng(seed)

    def draw(shape: Any, dtype: Any = None) -> Any:
        dt = np.dtype(keras.backend.standardize_dtype(dtype or "float32")
                      if dtype in (None, "float16", "float32", "float64") else "float32")
        if isinstance(initializer, inits.RandomUniform):
            return rng.uniform(initializer.minval, initializer.maxval, shape).astype(dt)
        z = rng.standard_normal(shape, dtype=np.float32)
        if isinstance(initializer, inits.TruncatedNormal):  # redraw beyond two deviations
            out = np.abs(z) > 2
            while out.any():
                z[out] = rng.standard_normal(int(out.sum()), dtype=np.float32)
                out = np.abs(z) > 2
        return (z * initializer.stddev + initializer.mean).astype(dt)

    return draw


@keras.saving.register_keras_serializable(package="reclayers")
class TableEmbedding(keras.layers.Embedding):
    """A ``keras.layers.Embedding`` whose table a :class:`ZooModel` can update row by row.

    Outside a sparse training step it *is* ``keras.layers.Embedding`` (same weights, same output).
    Its table variable carries ``sparse_table = True``, which
    :class:`~reclayers.embedding_optimizers.SparseEmbeddingOptimizer` reads.

    Shapes: ids ``[B, ...]`` → ``[B, ..., output_dim]``. Weight ``embeddings [input_dim, output_dim]``.

    Args:
        input_dim: number of rows (the vocabulary).
        output_dim: embedding width.
        **kwargs: the arguments of ``keras.layers.Embedding``.

    Example:
        >>> import numpy as np
        >>> layer = TableEmbedding(10, 4)
        >>> tuple(layer(np.array([1, 2])).shape), layer.embeddings.sparse_table
        ((2, 4), True)
    """

    def __init__(self, input_dim: int, output_dim: int, **kwargs: Any) -> None:
        super().__init__(input_dim, output_dim, **kwargs)

    def build(self, input_shape: Any = None) -> None:
        initializer = self.embeddings_initializer
        backend = keras.backend.backend()
        host = _host_initializer(initializer) if backend == "jax" or (
            backend == "torch" and type(initializer) is keras.initializers.TruncatedNormal) else None
        if host is not None:
            self.embeddings_initializer = host
        try:
            super().build(input_shape)
        finally:
            self.embeddings_initializer = initializer
        self.embeddings.sparse_table = True

    def call(self, inputs: Any) -> Any:
        context = getattr(_ACTIVE, "context", None)
        if context is None or self.name not in context.deltas:
            if keras.backend.backend() == "torch":
                return self._torch_lookup(inputs)
            return super().call(inputs)
        ids = ops.cast(inputs, "int32")
        rows = ops.stop_gradient(gather_rows(self.embeddings.value, ids))
        return ops.cast(rows + context.delta(self, ids), self.compute_dtype)

    def _torch_lookup(self, inputs: Any) -> Any:
        """``keras.layers.Embedding.call`` on PyTorch without ``keras.ops.take``'s extra passes:
        ``take`` first maps negative ids to ``id + rows`` (a comparison and a ``where`` over the
        ids, plus argument conversions) before the same ``embedding`` lookup. A table's ids are
        bucket numbers in ``[0, rows)``; a negative id now raises PyTorch's ``IndexError`` instead
        of silently reading a row from the end of the table. PyTorch DIN step 0.95x, DCN-V2 0.985x
        (9 and 8 lookups per step)."""
        import torch

        table = self.embeddings.value
        ids = torch.as_tensor(inputs, device=table.device)
        if ids.dtype not in (torch.int32, torch.int64):
            ids = ids.to(torch.int32)
        rows = torch.nn.functional.embedding(ids, table)
        if self.compute_dtype == "float32" and rows.dtype == torch.float32:
            return rows
        return ops.cast(rows, self.compute_dtype)

    @property
    def l2(self) -> float:
        """The ``L2`` factor of the table's regulariser (0 without one)."""
        reg = self.embeddings_regularizer
        return float(getattr(reg, "l2", 0.0) or 0.0) if reg is not None else 0.0


@keras.saving.register_keras_serializable(package="reclayers")
class ZooModel(keras.Model):
    """The zoo's functional model: a ``keras.Model`` whose ``train_step`` updates embedding tables
    row-wise when compiled with a :class:`~reclayers.embedding_optimizers.SparseEmbeddingOptimizer`.

    Built like any functional model (``ZooModel(inputs=..., outputs=...)``); saved and loaded as
    ``.keras`` with its optimizer state. With another optimizer ``train_step`` is Keras' own (on
    TensorFlow with each table's gradient summed per id first).

    Inputs: the feature dict of the model's schema; outputs ``{label: probability [B, 1]}``.
    It takes the functional ``keras.Model`` arguments (``inputs``, ``outputs``, ``name``).

    Example:
        >>> import keras
        >>> x = keras.Input((1,), dtype="int32", name="c")
        >>> y = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(TableEmbedding(5, 2)(x)))
        >>> ZooModel(inputs={"c": x}, outputs=y).count_params()
        13
    """

    # -- what is sparse -------------------------------------------------------------------------
    @property
    def sparse_training(self) -> bool:
        """Whether ``fit`` uses the row-wise step (the optimizer is a sparse-embedding one)."""
        return isinstance(getattr(self, "optimizer", None), SparseEmbeddingOptimizer)

    def _table_lookups(self) -> list:
        """``[(layer, [input names])]`` of every table looked up directly from model inputs."""
        cached = getattr(self, "_sparse_lookups_cache", None)
        if cached is not None:
            return cached
        names = {id(t): k for k, t in self._inputs_struct.items()} if isinstance(
            self._inputs_struct, dict) else {id(t): t.name for t in self.inputs}
        out = []
        for layer in self.layers:
            if not isinstance(layer, TableEmbedding):
                continue
            feeds = [names.get(id(node.input_tensors[0])) for node in layer._inbound_nodes]
            feeds = [f for f in feeds if f is not None]
            if len(feeds) != len([n for n in layer._inbound_nodes if n.input_tensors]) or not feeds:
                raise ValueError(
                    f"ZooModel: table {layer.name!r} must be looked up directly from model inputs "
                    "for row-wise training; got a lookup of a computed tensor"
                )
            out.append((layer, feeds))
        object.__setattr__(self, "_sparse_lookups_cache", out)  # not tracked: the layers are the model's
        return out

    def _deltas(self, x: dict, zeros: Any) -> dict:
        return {
            layer.name: zeros(sum(_size(x[f]) for f in feeds), layer.output_dim)
            for layer, feeds in self._table_lookups()
        }

    def _build_optimizer(self) -> None:
        """Builds the optimizer on the model's trainable variables (their order fixes the order of
        the saved optimizer variables, so a loaded checkpoint restores each slot to its table)."""
        if not self.optimizer.built:
            with keras.name_scope(self.optimizer.name, caller=self.optimizer):
                self.optimizer.build(self.trainable_variables)

    # -- the step -------------------------------------------------------------------------------
    def make_train_function(self, force: bool = False) -> Any:
        """Keras's train function; on TensorFlow (one device, graph mode, no XLA, one step per
        call) one that traces the step on the batch's own shapes.

        Keras traces its TensorFlow step inside a ``tf.function`` over the data iterator, so the
        step sees the iterator's element spec, whose batch dimension is unknown (``None``: an
        epoch's last batch may be shorter). Every shape-dependent choice is then made the general
        way: each broadcasting op's gradient reduces over axes found at run time, and
        :func:`_summed_slices_tf` cannot see that a table has no more rows than the batch's
        lookups, so small tables' gradients are sorted instead of summed densely. Here the batch
        is taken from the iterator first and the step is a ``tf.function`` called on it: the first
        two input shapes (the full batch, the epoch's last one) get a graph traced on their
        static shapes, further shapes a second function with ``reduce_retracing`` (Keras's own
        setting: after its first shape it traces one relaxed graph), so a stream of varying sizes
        costs at most four traces. Same step, same batches in the same order; only the graph's
        shapes differ.

        Measured (synthetic data, batch 1024, TensorFlow on one CPU thread, ``fit`` epochs of the
        trainer's ``keras_dataset`` alternating between this function and Keras's, 8 rounds, median):
        an epoch after the first took 0.77x the time on the `din` zoo model (2.11 s against 2.74 s)
        and 0.88x on `dcn_v2` (2.23 s against 2.54 s), with the same loss and weights; the two
        static traces cost no more than Keras's relaxed one (whose graph is larger).
        """
        made = super().make_train_function(force)
        function = self.train_function if made is None else made
        if keras.backend.backend() != "tensorflow" or not _TF_BATCH_SHAPED_STEP or \
                getattr(function, "batch_shaped", False):
            return function
        import tensorflow as tf

        if self.run_eagerly or self.jit_compile or self.steps_per_execution != 1 or \
                self._distribute_strategy is not None or tf.distribute.has_strategy():
            return function  # Keras's own: eager, XLA, several steps per call, or distributed
        static = tf.function(self.train_step, autograph=False)  # one trace per input shape
        relaxed = tf.function(self.train_step, reduce_retracing=True, autograph=False)
        shapes: set = set()

        def batch_shaped(iterator: Any) -> Any:
            for data in iterator:
                if not shapes:
                    # The optimizer's and the metrics' variables are made before the first trace
                    # (a tf.function whose first trace creates variables traces a second time).
                    self._build_optimizer()
                    self._symbolic_build(data_batch=data)
                key = tuple(tuple(getattr(x, "shape", ())) for x in tf.nest.flatten(data))
                if key in shapes or len(shapes) < 2:
                    shapes.add(key)
                    return static(data)
                return relaxed(data)
            raise StopIteration

        batch_shaped.batch_shaped = True
        self.train_function = batch_shaped
        return batch_shaped

    def train_step(self, *args: Any) -> Any:
        backend = keras.backend.backend()
        if not self.sparse_training:
            if backend == "tensorflow":
                return self._tf_dense_train_step(*args)
            return super().train_step(*args)
        if backend == "jax":
            return self._jax_train_step(*args)
        if backend == "tensorflow":
            return self._tf_train_step(*args)
        if backend == "torch":
            return self._torch_train_step(*args)
        raise NotImplementedError(f"ZooModel: row-wise training on backend {backend!r}")

    def _jax_train_step(self, state: tuple, data: Any) -> tuple:
        import jax
        import jax.numpy as jnp
        from keras.src.trainers.data_adapters import data_adapter_utils

        trainable, non_trainable, optimizer_values, metrics_values = state
        x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
        lookups = self._table_lookups()
        variables = self.trainable_variables
        table_pos = {id(layer.embeddings): i for i, (layer, _) in enumerate(lookups)}
        is_table = [id(v) in table_pos for v in variables]
        dense_values = [t for t, tab in zip(trainable, is_table) if not tab]
        deltas = self._deltas(x, lambda n, d: jnp.zeros((n, d), jnp.float32))

        def loss_fn(dense_values, deltas):
            it = iter(dense_values)
            full = [t if tab else next(it) for t, tab in zip(trainable, is_table)]
            with _LookupContext(deltas) as context:
                loss, aux = self.compute_loss_and_updates(
                    full, non_trainable, metrics_values, x, y, sample_weight,
                    training=True, optimizer_variables=optimizer_values,
                )
            return loss, (aux, {k: context.flat_ids(k) for k in deltas})

        (_, (aux, ids)), (dense_grads, delta_grads) = jax.value_and_grad(
            loss_fn, argnums=(0, 1), has_aux=True
        )(dense_values, deltas)
        unscaled_loss, y_pred, non_trainable, metrics_values = aux
        positions = {id(v): i for i, v in enumerate(variables)}
        opt = self.optimizer
        sparse = [
            (opt._table_index(layer.embeddings), trainable[positions[id(layer.embeddings)]],
             ids[layer.name], delta_grads[layer.name], layer.l2)
            for layer, _ in lookups
        ]
        new_dense, new_tables, optimizer_values = opt.stateless_apply_sparse(
            optimizer_values, dense_grads, dense_values, sparse,
            lambda array, rows, values: array.at[rows].set(values.astype(array.dtype)),
        )
        by_table = {id(layer.embeddings): t for (layer, _), t in zip(lookups, new_tables)}
        it = iter(new_dense)
        trainable = [
            by_table.get(id(v), t) if tab else next(it) for v, t, tab in zip(variables, trainable, is_table)
        ]
        logs, metrics_values = self._update_metrics_variables(
            metrics_values, unscaled_loss, x, y, y_pred, sample_weight
        )
        return logs, (trainable, non_trainable, optimizer_values, metrics_values)

    def _tf_train_step(self, data: Any) -> Any:
        import tensorflow as tf
        from keras.src.trainers.data_adapters import data_adapter_utils

        check_tf_strategy()  # e.g. compiled outside the strategy's scope, fitted inside it
        x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
        deltas = self._deltas(x, lambda n, d: tf.zeros(tf.stack([n, d]), tf.float32))
        with tf.GradientTape() as tape:
            tape.watch(list(deltas.values()))
            with _LookupContext(deltas) as context:
                y_pred, loss = self._tf_forward(x, y, sample_weight)
        dense_vars = [v for v in self.trainable_variables if not getattr(v, "sparse_table", False)]
        names = list(deltas)
        grads = tape.gradient(loss, dense_vars + [deltas[k] for k in names])
        dense_grads, delta_grads = grads[: len(dense_vars)], dict(zip(names, grads[len(dense_vars) :]))
        lookups = [
            (layer.embeddings, context.flat_ids(layer.name), _dense_tf(delta_grads[layer.name]), layer.l2)
            for layer, _ in self._table_lookups()
        ]
        self._build_optimizer()
        self.optimizer.apply_sparse(dense_grads, dense_vars, lookups, _write_rows_tf,
                                    dynamic=not self.jit_compile)  # XLA needs static shapes
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _tf_forward(self, x: Any, y: Any, sample_weight: Any) -> tuple:
        """``(y_pred, scaled loss)`` of Keras' TensorFlow step (inside the caller's tape)."""
        import tensorflow as tf
        from keras import tree
        from keras.src.losses import loss as loss_module

        y_pred = self(x, training=True) if self._call_has_training_arg else self(x)
        loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
        self._loss_tracker.update_state(
            loss_module.unscale_loss_for_distribution(loss),
            sample_weight=tf.shape(next(i for i in tree.flatten(x) if i is not None))[0],
        )
        return y_pred, self.optimizer.scale_loss(loss)

    def _tf_dense_train_step(self, data: Any) -> Any:
        """Keras' TensorFlow step, with each table's ``IndexedSlices`` gradient summed per id first.

        Deviation from Keras, TensorFlow only: a table's gradient arrives as ``IndexedSlices`` with
        one entry per lookup, and Keras 3's optimizers apply non-linear terms entry by entry —
        ``ops.square`` of the slices squares each lookup's gradient and the duplicates are added
        afterwards — so Adam's second moment (Adagrad's and FTRL's accumulators likewise) of an id
        seen ``k`` times in a batch receives ``Σ g_i²`` instead of the ``(Σ g_i)²`` of the table's
        gradient that the same optimizer uses on JAX and PyTorch. With Zipf ids the frequent rows
        get a smaller second moment and larger steps, and the TensorFlow dense path trained
        differently from the other two backends. Summing duplicates first (static shapes, so XLA
        compiles it) makes the update Adam's, as TensorFlow's own optimizers did before Keras 3.
        Under a ``tf.distribute`` strategy with several replicas the all-reduce concatenates the
        replicas' slices (duplicates again), so there the tables' gradients are made dense first.
        """
        import tensorflow as tf
        from keras.src.trainers.data_adapters import data_adapter_utils

        x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred, loss = self._tf_forward(x, y, sample_weight)
        variables = self.trainable_weights
        if variables:
            grads = tape.gradient(loss, variables)
            replica = tf.distribute.get_replica_context()
            if replica is not None and replica.num_replicas_in_sync > 1:
                # Replicas' slices are concatenated by the all-reduce, duplicates again: the
                # tables' gradients go dense there (the all-reduce of a dense tensor sums them).
                grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
            else:
                grads = [_summed_slices_tf(g, v) for g, v in zip(grads, variables)]
            self.optimizer.apply_gradients(zip(grads, variables))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _torch_train_step(self, data: Any) -> Any:
        import torch
        from keras import tree
        from keras.src.trainers.data_adapters import data_adapter_utils

        x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
        device = self.trainable_variables[0].value.device
        deltas = self._deltas(
            x, lambda n, d: torch.zeros((int(n), d), dtype=torch.float32, device=device, requires_grad=True)
        )
        with _LookupContext(deltas) as context:
            y_pred = self(x, training=True) if self._call_has_training_arg else self(x)
        self.zero_grad()
        loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
        self._loss_tracker.update_state(
            loss, sample_weight=next(i for i in tree.flatten(x) if i is not None).shape[0]
        )
        loss = self.optimizer.scale_loss(loss)
        loss.backward()
        dense_vars = [v for v in self.trainable_variables if not getattr(v, "sparse_table", False)]
        self._build_optimizer()
        with torch.no_grad():
            lookups = [
                (layer.embeddings, context.flat_ids(layer.name), deltas[layer.name].grad, layer.l2)
                for layer, _ in self._table_lookups()
            ]
            dense_grads = [v.value.grad for v in dense_vars]
            if _torch_world() > 1:
                dense_grads, lookups = _torch_global_batch(dense_grads, lookups)
            self.optimizer.apply_sparse(dense_grads, dense_vars, lookups, _write_rows_torch)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def _torch_world() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _torch_global_batch(dense_grads: list, lookups: list) -> tuple:
    """Every process's share of the global batch, combined (data parallel on PyTorch).

    Each process's loss is the mean over its share, so the global-batch gradient is the average:
    dense gradients are all-reduced and divided by the world size; the looked-up ids and their
    row gradients (divided likewise) are gathered from every process, so the duplicate sum of
    the row update covers the global batch and every process writes the same rows. Shares may
    differ in size (gathered padded, then cut to each process's count).
    """
    import torch
    import torch.distributed as dist

    world = dist.get_world_size()
    for g in dense_grads:
        if g is not None:
            dist.all_reduce(g)
            g.div_(world)
    counts = torch.tensor([int(ids.shape[0]) for _, ids, _, _ in lookups], dtype=torch.int64)
    all_counts = [torch.empty_like(counts) for _ in range(world)]
    dist.all_gather(all_counts, counts)
    gathered = []
    for i, (table, ids, grads, l2) in enumerate(lookups):
        n = max(int(c[i]) for c in all_counts)
        ids_pad = torch.zeros(n, dtype=ids.dtype, device=ids.device)
        ids_pad[: ids.shape[0]] = ids
        grads_pad = torch.zeros((n, grads.shape[1]), dtype=grads.dtype, device=grads.device)
        grads_pad[: grads.shape[0]] = grads / world
        id_parts = [torch.empty_like(ids_pad) for _ in range(world)]
        grad_parts = [torch.empty_like(grads_pad) for _ in range(world)]
        dist.all_gather(id_parts, ids_pad)
        dist.all_gather(grad_parts, grads_pad)
        keep = [int(c[i]) for c in all_counts]
        gathered.append((
            table,
            torch.cat([p[:k] for p, k in zip(id_parts, keep)]),
            torch.cat([p[:k] for p, k in zip(grad_parts, keep)]),
            l2,
        ))
    return dense_grads, gathered


def _summed_slices_tf(grad: Any, variable: Any) -> Any:
    """An ``IndexedSlices`` gradient with one entry per distinct id (others: as they are); its
    padding entries carry zeros, so adding duplicates back up changes nothing.

    A table with no more rows than the batch's lookups gets its dense gradient instead (the same
    per-id sums, one ``unsorted_segment_sum``) instead of a sort of the ids. Same result. The
    choice needs the batch's static size, which the step has under
    :meth:`ZooModel.make_train_function`; on the `din` zoo model (22-row tables, batch 1024, one
    thread, TensorFlow profiler) the sort's ``TopKV2`` and ``LowerBound`` took 0.9 ms each and its
    ``UnsortedSegmentSum`` 2.6 ms per step, against 1.0 ms for the dense gradients.
    """
    import tensorflow as tf

    if not isinstance(grad, tf.IndexedSlices):
        return grad
    if is_small_table(variable, grad.indices):
        return tf.convert_to_tensor(grad)
    rows, summed = combine_duplicates(grad.indices, grad.values, zero_padding=True)
    return tf.IndexedSlices(summed, rows, grad.dense_shape)


def _dense_tf(grad: Any) -> Any:
    import tensorflow as tf

    return tf.convert_to_tensor(grad) if grad is not None else grad


def _write_rows_tf(variable: Any, rows: Any, values: Any) -> None:
    import tensorflow as tf

    variable.value.scatter_update(tf.IndexedSlices(tf.cast(values, variable.dtype), rows))


def _write_rows_torch(variable: Any, rows: Any, values: Any) -> None:
    variable.value.data.index_copy_(0, rows.long(), values.to(variable.value.dtype))


# --- memory ----------------------------------------------------------------------------------------
@dataclass
class OptimizerMemory:
    """Optimizer state of a compiled model: per table ``rows × slot floats per row``.

    Attributes:
        tables: ``[(name, rows, dim, slot_floats_per_row)]`` of every embedding table.
        table_bytes: bytes of the tables themselves.
        table_state_bytes: bytes of the tables' optimizer state.
        dense_state_bytes: bytes of the other weights' optimizer state.
        optimizer: a short name of the embedding optimizer.

    Example:
        >>> memory = OptimizerMemory([("emb_C1", 1000, 16, 1)], 64000, 4000, 0, "rowwise_adagrad")
        >>> memory.summary().split("; ")[1]
        'optimizer state per row: 1 float in the 1 table of width 16'
    """

    tables: list
    table_bytes: int
    table_state_bytes: int
    dense_state_bytes: int
    optimizer: str

    def summary(self) -> str:
        """One line for ``reclayers train``: the tables' rows, the optimizer state each row keeps
        (per table width: dense Adam keeps two floats per weight, so 2 for a width-1 table and
        32 for a width-16 one), and the bytes.

        Example:
            >>> memory = OptimizerMemory([("emb_C1", 1000, 16, 32), ("lin_C1", 1000, 1, 2)],
            ...                          68000, 136000, 0, "Adam (dense)")
            >>> print(*memory.summary().split("; "), sep="\\n")
            embedding optimizer Adam (dense): 2,000 table rows
            optimizer state per row: 32 floats in the 1 table of width 16, 2 floats in the 1 table of width 1
            in all 132.8 KiB of optimizer state for 66.4 KiB of tables
            the other weights' optimizer state 0 B
        """
        rows = sum(t[1] for t in self.tables)
        groups: dict = {}
        for _, _, dim, per_row in self.tables:
            groups.setdefault((per_row, dim), 0)
            groups[(per_row, dim)] += 1
        parts = [f"{'no state' if k == 0 else f'{k} float' + 's' * (k != 1)} in the {n} "
                 f"table{'s' * (n != 1)} of width {d}"
                 for (k, d), n in sorted(groups.items(), key=lambda g: (-g[0][0], -g[0][1]))]
        return (
            f"embedding optimizer {self.optimizer}: {rows:,} table rows; optimizer state per row: "
            f"{', '.join(parts) or 'none'}; in all {_bytes_text(self.table_state_bytes)} of optimizer state "
            f"for {_bytes_text(self.table_bytes)} of tables; the other weights' optimizer state "
            f"{_bytes_text(self.dense_state_bytes)}"
        )


def _bytes_text(n: int) -> str:
    """Bytes in the largest binary unit that keeps the number at or above 1 (``66.4 KiB``)."""
    for power, unit in ((3, "GiB"), (2, "MiB"), (1, "KiB")):
        if n >= 1024**power:
            return f"{n / 1024**power:.1f} {unit}"
    return f"{n:,} B"


def optimizer_memory(model: Any) -> OptimizerMemory:
    """The optimizer state a compiled zoo model keeps, per embedding table (rows × slots).

    Counts what the optimizer will allocate (it need not be built yet): the row rule's slots for
    the tables of a sparse-embedding optimizer, or the dense optimizer's per-weight slots
    (Adam: 2, Adagrad: 1, SGD: 0) for every table otherwise.

    Args:
        model: a compiled model of :func:`reclayers.models.get_model`.

    Example:
        >>> from reclayers import data, models
        >>> ds = data.make_synthetic(n_rows=200, n_categorical=2, vocab_size=10, seed=0)
        >>> m = models.get_model("mlp", ds.schema, embedding_dim=4, hidden_units=[4])
        >>> _ = models.compile_model(m, ds.schema, embedding_optimizer="rowwise_adagrad")
        >>> models.optimizer_memory(m).tables[0][3]
        1
    """
    opt = model.optimizer
    tables = [v for v in model.trainable_variables if getattr(v, "sparse_table", False)]
    dense = [v for v in model.trainable_variables if not getattr(v, "sparse_table", False)]
    if isinstance(opt, SparseEmbeddingOptimizer):
        name = opt.rule.name

        def per_row(v: Any) -> int:
            return sum(shape[1] for _, shape, _ in opt.rule.slot_shapes(1, int(v.shape[1])))

        dense_slots = _dense_slots(opt.dense_optimizer)
    else:
        name = f"{type(opt).__name__} (dense)"
        dense_slots = _dense_slots(opt)

        def per_row(v: Any) -> int:
            return dense_slots * int(v.shape[1])

    info = [(v.path.split("/")[0], int(v.shape[0]), int(v.shape[1]), per_row(v)) for v in tables]
    return OptimizerMemory(
        tables=info,
        table_bytes=sum(4 * r * d for _, r, d, _ in info),
        table_state_bytes=sum(4 * r * s for _, r, _, s in info),
        dense_state_bytes=sum(4 * dense_slots * math.prod(v.shape) for v in dense),
        optimizer=name,
    )


def _dense_slots(opt: Any) -> int:
    name = type(opt).__name__.lower()
    return {"sgd": 0, "adagrad": 1, "rmsprop": 1, "ftrl": 2, "adam": 2, "adamw": 2, "nadam": 2}.get(name, 2)
