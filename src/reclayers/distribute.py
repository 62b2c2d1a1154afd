"""Sharding and data/model-parallel set-up on the engines that exist (``keras.distribution``).

The reference's ``partitioner`` split a variable into pieces placed on parameter servers. Here a
partitioner becomes a *layout*: an entry of a ``keras.distribution.LayoutMap`` that says along
which mesh axis each axis of the weight is split. No home-made parameter server.

Mapping of the reference's styles onto a device mesh (:func:`layout_for`):

* ``partitioner=None`` → the weight is replicated (no entry in the layout map);
* ``partitioner=n`` (an int) → ``(n, 1, ...)`` partitions: row-wise on the first axis;
* ``partitioner=f`` (a callable ``f(shape, dtype) -> partitions per axis``, e.g. a TF1
  ``variable_axis_size_partitioner`` re-implemented in Python) → its answer.

A tensor axis that asks for ``p > 1`` partitions is split across one mesh axis: a free mesh axis
of size exactly ``p`` if there is one, else the model axis (``"model"``) — so the *mesh* decides
the number of pieces (``p`` is a request, as the number of parameter servers was). Each mesh axis
splits at most one tensor axis, the batch axis is never used for weights, and an axis whose
length is not divisible by the mesh axis size stays replicated (with a warning), since
``keras.distribution`` shards into equal blocks.

Weights sharded by :func:`layout_map`:

* kernels of :class:`reclayers.layers.Dense` (also inside ``MLP`` and every other layer built
  from it) with a ``partitioner``, as requested;
* tables of ``keras.layers.Embedding`` with at least ``min_embedding_rows`` rows, row-wise;
* optionally any other rank >= 2 trainable weight with at least ``min_weight_size`` entries,
  row-wise ("wide kernels").

Typical use (JAX; see ``docs/guides/scaling_out.md``)::

    model = build_model()                                # built, on one device
    dist = reclayers.distribute.model_parallel(model, devices=8, model_shards=4)
    keras.distribution.set_distribution(dist)            # or: with dist.scope(): ...
    model.compile(...); model.fit(...)

``model_parallel`` relays the already created variables out on the mesh, so layer names need not
be known in advance; optimizer slots inherit the layout of their variable.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any

import keras

from reclayers.layers.dense import Dense, requested_partitions

__all__ = [
    "apply_layouts",
    "data_parallel",
    "device_mesh",
    "layout_for",
    "layout_map",
    "model_parallel",
    "requested_partitions",
    "setup",
    "sharded_weights",
    "strategy",
]

_OWNER = "distribute"


def _error(arg: str, expected: str, got: Any) -> ValueError:
    return ValueError(f"{_OWNER}: {arg} must be {expected}; got {got!r}")


def device_mesh(devices: Any = None, model_shards: int | None = None, batch_axis: str = "batch",
                model_axis: str = "model") -> keras.distribution.DeviceMesh:
    """A 2-D ``(batch, model)`` mesh over ``devices``: ``n / model_shards`` rows × ``model_shards``.

    Args:
        devices: a list of device names, a number of devices (the first ``n`` of
            ``keras.distribution.list_devices()``) or ``None`` (all of them).
        model_shards: size of the model axis (``None``: all devices, i.e. pure model parallel);
            must divide the number of devices. The batch axis gets the rest.
        batch_axis: name of the mesh axis the batch is split over.
        model_axis: name of the mesh axis sharded weights are split over.

    Returns:
        A ``keras.distribution.DeviceMesh``.

    Example:
        >>> mesh = device_mesh(["cpu:0", "cpu:1", "cpu:2", "cpu:3"], model_shards=2)
        >>> tuple(mesh.shape), tuple(mesh.axis_names)
        ((2, 2), ('batch', 'model'))
    """
    if devices is None:
        devices = keras.distribution.list_devices()
    elif isinstance(devices, int) and not isinstance(devices, bool):
        available = keras.distribution.list_devices()
        if not 1 <= devices <= len(available):
            raise _error("devices", f"between 1 and the {len(available)} available devices", devices)
        devices = available[:devices]
    devices = list(devices)
    n = len(devices)
    model_shards = n if model_shards is None else model_shards
    if isinstance(model_shards, bool) or not isinstance(model_shards, int) or model_shards < 1 \
            or n % model_shards:
        raise _error("model_shards", f"a divisor of the number of devices ({n})", model_shards)
    return keras.distribution.DeviceMesh(
        shape=(n // model_shards, model_shards), axis_names=(batch_axis, model_axis), devices=devices
    )


def layout_for(partitions: Any, shape: tuple, mesh: keras.distribution.DeviceMesh,
               model_axis: str = "model", batch_axis: str | None = "batch") -> tuple | None:
    """Mesh axes (one per tensor axis, ``None``: not split) for a partition request.

    See the module docstring for the rule: an axis asking for ``p > 1`` pieces is split over a
    free mesh axis of size ``p`` if there is one, else over the model axis; an axis that does not
    divide evenly stays replicated (with a warning).

    Args:
        partitions: pieces requested per tensor axis (``None``: replicate), e.g. the answer of
            :func:`requested_partitions`; ``math.inf`` means "as many as the mesh axis has".
        shape: the weight's shape.
        mesh: the ``keras.distribution.DeviceMesh``.
        model_axis: the mesh axis used when no free axis has exactly ``p`` devices.
        batch_axis: the mesh axis never used for weights (``None``: every axis may be used).

    Returns:
        A tuple of mesh-axis names / ``None`` (one per tensor axis), or ``None`` when nothing
        ends up split.

    Example:
        >>> mesh = device_mesh(["cpu:0", "cpu:1", "cpu:2", "cpu:3"], model_shards=2)
        >>> layout_for((4, 1), (1000, 16), mesh)   # rows over the 2-device model axis
        ('model', None)
        >>> layout_for(None, (1000, 16), mesh) is None
        True
    """
    if partitions is None:
        return None
    shape = tuple(int(d) for d in shape)
    if len(partitions) != len(shape):
        raise _error("partitions", f"one int per axis of shape {shape}", partitions)
    sizes = dict(zip(mesh.axis_names, mesh.shape))
    if model_axis not in sizes:
        raise _error("model_axis", f"one of the mesh axes {tuple(mesh.axis_names)}", model_axis)
    free = [a for a in mesh.axis_names if a != batch_axis and sizes[a] > 1]
    free.sort(key=lambda a: a != model_axis)  # the model axis first
    axes: list = [None] * len(shape)
    for i, p in enumerate(partitions):
        if p <= 1 or not free:
            continue
        exact = [a for a in free if sizes[a] == p]
        axis = exact[0] if exact else free[0]
        if shape[i] % sizes[axis]:
            warnings.warn(
                f"{_OWNER}: axis {i} of a weight of shape {shape} is not divisible by the "
                f"{sizes[axis]} devices of mesh axis {axis!r}; it stays replicated",
                stacklevel=2,
            )
            continue
        axes[i] = axis
        free.remove(axis)
    return tuple(axes) if any(a is not None for a in axes) else None


def _layers(model: Any) -> list:
    if isinstance(model, keras.layers.Layer):
        return list(model._flatten_layers(include_self=True, recursive=True))
    out = []
    for layer in model:
        out.extend(_layers(layer))
    return out


def sharded_weights(model: Any, min_embedding_rows: int = 1024,
                    min_weight_size: int | None = None) -> list:
    """``(variable, partitions)`` for every weight :func:`layout_map` shards (model must be built).

    Args:
        model: a built Keras model or layer, or a list of them.
        min_embedding_rows: ``keras.layers.Embedding`` tables with at least this many rows are
            sharded row-wise.
        min_weight_size: when given, every other rank >= 2 trainable weight with at least this
            many entries is sharded row-wise too ("wide kernels").

    Returns:
        A list of ``(variable, partitions per axis)``; ``Dense`` kernels with a ``partitioner``
        carry their request, row-wise entries ``(inf, 1, ...)``.

    Example:
        >>> import keras
        >>> from reclayers.layers import Dense
        >>> ids = keras.Input((3,), dtype="int32")
        >>> emb = keras.layers.Flatten()(keras.layers.Embedding(2048, 4, name="items")(ids))
        >>> model = keras.Model(ids, Dense(2, partitioner=2, name="head")(emb))
        >>> [(v.path, p) for v, p in sharded_weights(model)]
        [('items/embeddings', (inf, 1)), ('head/kernel', (2, 1))]
    """
    requests: dict = {}
    for layer in _layers(model):
        if not layer.built:
            raise _error("model", "built (call it once or build it) before sharding",
                         type(layer).__name__)
        if isinstance(layer, Dense) and layer.partitioner is not None:
            requests.setdefault(id(layer.kernel), (layer.kernel, layer.kernel_partitions()))
        if isinstance(layer, keras.layers.Embedding):
            table = layer.embeddings
            if table.shape[0] >= min_embedding_rows:
                requests.setdefault(id(table), (table, (math.inf, 1)))
        if min_weight_size is not None:
            for v in layer.trainable_weights:
                if len(v.shape) >= 2 and math.prod(v.shape) >= min_weight_size:
                    requests.setdefault(id(v), (v, (math.inf,) + (1,) * (len(v.shape) - 1)))
    return list(requests.values())


def layout_map(model: Any, mesh: keras.distribution.DeviceMesh, model_axis: str = "model",
               batch_axis: str = "batch", min_embedding_rows: int = 1024,
               min_weight_size: int | None = None) -> keras.distribution.LayoutMap:
    """A ``LayoutMap`` with one entry per sharded weight of a built ``model`` (or list of layers).

    Keys are the variables' paths (regex-escaped, so each matches exactly its own variable);
    values are ``TensorLayout`` s on ``mesh``. Unlisted weights are replicated. Row-wise requests
    from embeddings and ``min_weight_size`` ask for "as many pieces as the model axis has".

    Args:
        model: a built Keras model or layer, or a list of them.
        mesh: the ``keras.distribution.DeviceMesh``.
        model_axis: mesh axis for sharded weights.
        batch_axis: mesh axis of the batch (never used for weights).
        min_embedding_rows: see :func:`sharded_weights`.
        min_weight_size: see :func:`sharded_weights`.

    Returns:
        A ``keras.distribution.LayoutMap``.

    Example:
        >>> import keras
        >>> ids = keras.Input((3,), dtype="int32")
        >>> model = keras.Model(ids, keras.layers.Embedding(2048, 4, name="users")(ids))
        >>> mesh = device_mesh(["cpu:0", "cpu:1"], model_shards=2)
        >>> layouts = layout_map(model, mesh)
        >>> list(layouts.keys()), layouts["users/embeddings"].axes
        (['users/embeddings'], ('model', None))
    """
    for name, value in (("min_embedding_rows", min_embedding_rows),
                        ("min_weight_size", min_weight_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise _error(name, "an int >= 1" + (" or None" if name == "min_weight_size" else ""),
                         value)
    result = keras.distribution.LayoutMap(mesh)
    for variable, partitions in sharded_weights(model, min_embedding_rows, min_weight_size):
        axes = layout_for(partitions, variable.shape, mesh, model_axis, batch_axis)
        if axes is not None:
            result[re.escape(variable.path)] = keras.distribution.TensorLayout(axes, mesh)
    return result


def apply_layouts(model: Any, layouts: keras.distribution.LayoutMap) -> int:
    """Place the existing variables of ``model`` on the mesh of ``layouts`` (JAX backend).

    Variables with an entry are sharded accordingly, all others are replicated on the mesh.
    Optimizer variables created afterwards take the layout of their model variable.

    Args:
        model: a built Keras model or layer, or a list of them.
        layouts: the ``LayoutMap`` (e.g. from :func:`layout_map`).

    Returns:
        The number of sharded variables.

    Example:
        >>> import keras
        >>> ids = keras.Input((3,), dtype="int32")
        >>> model = keras.Model(ids, keras.layers.Embedding(2048, 4)(ids))
        >>> devices = keras.distribution.list_devices()[:1] if keras.backend.backend() == "jax" else None
        >>> if devices:  # keras.distribution places variables on JAX only
        ...     assert apply_layouts(model, layout_map(model, device_mesh(devices))) == 0  # 1 device
    """
    if keras.backend.backend() != "jax":
        raise _error("the backend", "'jax' for keras.distribution layouts (use tf.distribute or "
                     "torch.distributed on the other backends)", keras.backend.backend())
    mesh = layouts.device_mesh
    seen, count = set(), 0
    variables = []
    for layer in _layers(model):
        variables.extend(layer.weights)
    for variable in variables:
        if id(variable) in seen:
            continue
        seen.add(id(variable))
        layout = layouts[variable.path]
        if layout is None:
            layout = keras.distribution.TensorLayout((None,) * len(variable.shape), mesh)
        else:
            count += 1
        variable._layout = layout
        variable.assign(variable.value)
    return count


def data_parallel(devices: Any = None) -> Any:
    """``keras.distribution.DataParallel`` over ``devices``: weights replicated, the batch split.

    Args:
        devices: a list of device names, a count (the first ``n`` devices) or ``None`` (all).

    Returns:
        A ``keras.distribution.DataParallel``; activate it with
        ``keras.distribution.set_distribution`` before building the model.

    Example:
        >>> dist = data_parallel(["cpu:0", "cpu:1"])
        >>> tuple(dist.device_mesh.shape)
        (2,)
    """
    if isinstance(devices, int) and not isinstance(devices, bool):
        devices = device_mesh(devices).devices.flatten().tolist()
    return keras.distribution.DataParallel(devices=devices)


def model_parallel(model: Any, devices: Any = None, model_shards: int | None = None,
                   mesh: keras.distribution.DeviceMesh | None = None, **layout_kwargs: Any) -> Any:
    """A ``keras.distribution.ModelParallel`` for a built ``model``, its variables relaid out.

    The batch is split over the mesh's batch axis, sharded weights over its model axis
    (see :func:`layout_map`, whose keyword arguments ``layout_kwargs`` are). Activate the result
    with ``keras.distribution.set_distribution`` (or its ``scope()``) before compile/fit.
    JAX backend only (the variables are placed by :func:`apply_layouts`).

    Args:
        model: the built model.
        devices: as in :func:`device_mesh` (ignored when ``mesh`` is given).
        model_shards: size of the mesh's model axis (as in :func:`device_mesh`).
        mesh: a ready ``DeviceMesh`` instead of ``devices`` / ``model_shards``.
        **layout_kwargs: ``model_axis``, ``batch_axis``, ``min_embedding_rows``,
            ``min_weight_size`` of :func:`layout_map`.

    Returns:
        A ``keras.distribution.ModelParallel``.

    Example:
        >>> import keras
        >>> ids = keras.Input((3,), dtype="int32")
        >>> model = keras.Model(ids, keras.layers.Embedding(2048, 4)(ids))
        >>> if keras.backend.backend() == "jax":  # keras.distribution layouts need JAX
        ...     dist = model_parallel(model, devices=keras.distribution.list_devices()[:1])
        ...     assert dist.batch_dim_name == "batch"
    """
    mesh = mesh or device_mesh(devices, model_shards)
    layouts = layout_map(model, mesh, **layout_kwargs)
    dist = keras.distribution.ModelParallel(layout_map=layouts, batch_dim_name=mesh.axis_names[0])
    apply_layouts(model, layouts)
    return dist


def setup(mode: str, devices: Any = None, model: Any = None, model_shards: int | None = None,
          **layout_kwargs: Any) -> Any:
    """Entry point for a command line: ``mode`` is ``"data"`` or ``"model"``.

    ``"data"`` sets a global :func:`data_parallel` distribution (call it before building the
    model); ``"model"`` needs the built ``model`` and sets :func:`model_parallel`. JAX backend
    only; on TensorFlow use ``tf.distribute`` strategies and on PyTorch ``torch.distributed``
    (``reclayers train --distribute`` does both, see the scaling-out guide).

    Args:
        mode: ``"data"`` or ``"model"``.
        devices: as in :func:`device_mesh`.
        model: the built model (``"model"`` mode).
        model_shards: size of the model axis (``"model"`` mode).
        **layout_kwargs: passed to :func:`layout_map` (``"model"`` mode).

    Returns:
        The distribution, already set globally.

    Example:
        >>> setup("pipeline")
        Traceback (most recent call last):
        ...
        ValueError: distribute: mode must be 'data' or 'model'; got 'pipeline'
    """
    if mode not in ("data", "model"):
        raise _error("mode", "'data' or 'model'", mode)
    if keras.backend.backend() != "jax":
        raise _error("the backend", "'jax' for keras.distribution", keras.backend.backend())
    if mode == "data":
        dist = data_parallel(devices)
    else:
        if model is None:
            raise _error("model", "a built model for mode 'model'", model)
        dist = model_parallel(model, devices, model_shards, **layout_kwargs)
    keras.distribution.set_distribution(dist)
    return dist


def strategy(mode: str | None = None, *, devices: int | None = None, model_shards: int | None = None,
             min_embedding_rows: int = 1024, global_batch: int = 0, tf_devices: list | None = None) -> Any:
    """The :class:`reclayers.strategy.Strategy` a trainer runs under, its engine started.

    ``mode=None`` is one device; ``"data"`` replicates the model and splits each global batch
    (JAX ``DataParallel``, TensorFlow ``MirroredStrategy``, torch processes averaging gradients);
    ``"model"`` also shards embedding tables and partitioned kernels over a (batch, model) mesh
    (JAX). The trainer asks the strategy to build, shard, feed and gather.

    Args:
        mode: ``None``, ``"data"`` or ``"model"``.
        devices: devices per process (``None``: all).
        model_shards: size of the mesh's model axis (``"model"``; ``None``: all devices).
        min_embedding_rows: shard embedding tables with at least this many rows (``"model"``).
        global_batch: the global batch size (must divide evenly over the replicas).
        tf_devices: TensorFlow device names for the ``MirroredStrategy`` (``None``: ``/cpu:0``).

    Returns:
        A :class:`reclayers.strategy.Strategy`.

    Example:
        >>> s = strategy()
        >>> s.active, s.batch_shards
        (False, 1)
    """
    from reclayers.strategy import Strategy

    return Strategy.start(mode, devices=devices, model_shards=model_shards,
                          min_embedding_rows=min_embedding_rows, global_batch=global_batch,
                          tf_devices=tf_devices)
