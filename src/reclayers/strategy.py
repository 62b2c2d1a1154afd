"""One object for where a model trains: one device, or each backend's own distribution engine.

=============  ===========================================  ==========================================
backend        ``mode="data"``                              ``mode="model"``
=============  ===========================================  ==========================================
JAX            ``keras.distribution.DataParallel``          ``ModelParallel`` on a (batch, model)
                                                            mesh, tables and wide kernels sharded
TensorFlow     ``MirroredStrategy`` (N GPUs or N logical    not supported (JAX only)
               CPU devices), one host
PyTorch        N processes (``torch.distributed``),         not supported (JAX only)
               gradients averaged over them
=============  ===========================================  ==========================================

A :class:`Strategy` is built by :func:`reclayers.distribute.strategy` once the backend's engine
can start (for virtual CPU devices and process launch, see ``reclayers train --distribute``).
The trainer asks it to :meth:`~Strategy.build` the model, :meth:`~Strategy.shard` each epoch's
batches, :meth:`~Strategy.mean` per-process numbers and :meth:`~Strategy.gather` a model (or
variable values) one process can save; it holds no per-backend code itself.

The batch size given to the trainer is the *global* batch, split over the devices (and
processes); under a distribution the last incomplete global batch of an epoch is dropped so that
every step has the same batch on every device. Process 0 (the *chief*) writes the run directory.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

__all__ = ["Strategy", "same_random_state"]


@dataclass
class Strategy:
    """Where and how a model trains (``mode=None``: one device, everything a no-op).

    Attributes:
        mode: ``None``, ``"data"`` or ``"model"``.
        backend: the Keras backend.
        devices: devices of this process (TF: replicas).
        processes: number of processes.
        rank: this process's index (0 is the chief).
        batch_shards: how many pieces each global batch is split into.
        model_shards: size of the model axis (``mode="model"``).
        min_embedding_rows: shard embedding tables with at least this many rows.
        engine: the TF ``MirroredStrategy`` or the JAX ``keras.distribution`` in use.
        device_list: the JAX devices used (``None``: all, several processes).
        info: what the run directory records (mode, devices, mesh, sharded weights, ...).

    Example:
        >>> s = Strategy()
        >>> s.active, s.chief, s.mean(2.5), s.drop_remainder
        (False, True, 2.5, False)
    """

    mode: str | None = None
    backend: str = field(default_factory=lambda: keras.backend.backend())
    devices: int = 1
    processes: int = 1
    rank: int = 0
    batch_shards: int = 1
    model_shards: int | None = None
    min_embedding_rows: int = 1024
    engine: Any = None
    device_list: Any = None
    info: dict = field(default_factory=dict)
    _rebuild: Any = field(default=None, init=False, repr=False)

    @property
    def chief(self) -> bool:
        """Whether this process writes the run directory."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Whether a distribution is in use."""
        return self.mode is not None

    @property
    def drop_remainder(self) -> bool:
        """Whether the last incomplete global batch of an epoch is dropped."""
        return self.active

    @property
    def predict_shards(self) -> int:
        """The number of equal pieces a prediction batch must split into (JAX, one process)."""
        return self.batch_shards if self.backend == "jax" and self.processes == 1 else 1

    def scope(self):
        """Where the model (and its optimizer) must be created."""
        if self.backend == "tensorflow" and self.engine is not None:
            return self.engine.scope()
        return contextlib.nullcontext()

    # --- building ---------------------------------------------------------------------------------
    def pad_schema(self, schema: Any) -> Any:
        """``mode="model"``: the tables to be sharded (``>= min_embedding_rows`` rows) rounded up
        to a multiple of the model axis (``keras.distribution`` shards into equal blocks); the
        extra rows are never looked up.

        Args:
            schema: the data's :class:`reclayers.data.Schema`.
        """
        if self.mode != "model":
            return schema
        shards, padded = self.info["mesh"]["model"], {}
        for f in schema.features:
            n = int(getattr(f, "num_buckets", 0) or 0)
            if f.kind != "dense" and n >= self.min_embedding_rows and n % shards:
                schema = schema.replace_feature(f.name, num_buckets=-(-n // shards) * shards)
                padded[f.table_name] = [n, -(-n // shards) * shards]
        if padded:
            self.info["padded_tables"] = padded
        return schema

    def build(self, make_model, compile_model) -> Any:
        """A compiled model placed where this strategy wants it, its optimizer built.

        Args:
            make_model: ``() -> model`` (a new, uncompiled model).
            compile_model: ``(model) -> model`` (compiles it).
        """
        initial = None
        if self.backend == "tensorflow" and self.engine is not None:
            # Initial values drawn outside the strategy (inside it the initializers draw others),
            # so that a distributed run starts where the single-device run does.
            with same_random_state():
                initial = make_model().get_weights()
        with self.scope():
            model = make_model()
            if initial is not None:
                model.set_weights(initial)
            if self.mode == "model":
                self._lay_out(model)
            model = compile_model(model)
            model.optimizer.build(model.trainable_variables)
        self._sync_torch(model)
        self._rebuild = lambda: compile_model(make_model())
        return model

    def _lay_out(self, model: Any) -> None:
        from reclayers import distribute

        mesh = distribute.device_mesh(self.device_list, self.model_shards)
        layouts = distribute.layout_map(model, mesh, min_embedding_rows=self.min_embedding_rows)
        self.engine = keras.distribution.ModelParallel(layout_map=layouts, batch_dim_name="batch",
                                                       auto_shard_dataset=self.processes == 1)
        distribute.apply_layouts(model, layouts)
        keras.distribution.set_distribution(self.engine)
        self.info["sharded_weights"] = [
            {"weight": v.path, "shape": list(v.shape), "axes": list(layouts[v.path].axes)}
            for v in model.weights if layouts[v.path] is not None
        ]

    def _sync_torch(self, model: Any) -> None:
        """DDP semantics on torch: rank 0's start weights, then gradients averaged every step."""
        if self.backend != "torch" or self.processes == 1:
            return
        import torch
        import torch.distributed as dist

        with torch.no_grad():
            for v in model.weights:
                dist.broadcast(v.value.data, src=0)
        optimizer, world = model.optimizer, self.processes
        apply = optimizer.apply

        def averaged_apply(grads, trainable_variables=None):
            for g in grads:
                if g is not None:
                    dist.all_reduce(g)
                    g.div_(world)
            return apply(grads, trainable_variables)

        optimizer.apply = averaged_apply

    # --- feeding and gathering --------------------------------------------------------------------
    def shard(self, dataset: Any) -> Any:
        """This process's share of every global batch of a ``keras.utils.PyDataset``.

        Args:
            dataset: the epoch's batches (global batches).
        """
        if self.backend == "tensorflow" and self.engine is not None:
            return _tf_batches(dataset)  # MirroredStrategy splits each global batch itself
        if self.processes == 1:
            return dataset
        n, r = self.processes, self.rank

        class _Share(keras.utils.PyDataset):
            def __init__(self):
                super().__init__()

            def __len__(self):
                return len(dataset)

            def __getitem__(self, i):
                x, y = dataset[i]
                size = len(next(iter(x.values())))
                part = slice(r * size // n, (r + 1) * size // n)
                cut = {k: v[part] for k, v in x.items()}
                return cut, ({k: v[part] for k, v in y.items()} if isinstance(y, dict) else y[part])

            def on_epoch_end(self):
                dataset.on_epoch_end()

        return _Share()

    def mean(self, value: float) -> float:
        """The mean over processes of a per-process number (torch ranks see a share of the batch).

        Args:
            value: this process's number.
        """
        if self.backend != "torch" or self.processes == 1:
            return value
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t[0]) / self.processes

    def random_state(self) -> dict:
        """The backend's global random-generator state that training consumes, as numpy arrays
        (torch: unseeded dropout draws from torch's global generator; JAX and TensorFlow draw
        from the layers' seed variables, which checkpoints already hold)."""
        if self.backend != "torch":
            return {}
        import torch

        state = {"torch_cpu": torch.get_rng_state().numpy()}
        if torch.cuda.is_available():
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                state[f"torch_cuda{i}"] = s.numpy()
        return state

    def set_random_state(self, state: dict) -> None:
        """Restores what :meth:`random_state` returned.

        Args:
            state: ``{name: array}``.
        """
        if self.backend != "torch" or not state:
            return
        import torch

        if "torch_cpu" in state:
            torch.set_rng_state(torch.from_numpy(np.asarray(state["torch_cpu"], np.uint8)))
        for key, value in state.items():
            if key.startswith("torch_cuda") and torch.cuda.is_available():
                torch.cuda.set_rng_state(torch.from_numpy(np.asarray(value, np.uint8)), int(key[10:]))

    def values(self, variables: list) -> list:
        """Numpy values of ``variables``, whole on every process (a collective with several JAX
        processes: every process must call it).

        Args:
            variables: Keras variables (model or optimizer).
        """
        if self.backend == "jax" and self.processes > 1 and self.active:
            import numpy as np
            from jax.experimental import multihost_utils

            return [np.asarray(multihost_utils.process_allgather(v.value, tiled=True)) for v in variables]
        return [keras.ops.convert_to_numpy(v.value) for v in variables]

    def gather(self, model: Any) -> Any:
        """A model this process can save and run alone (an unsharded copy with several JAX
        processes, whose weights no single process holds; every process must call it).

        Args:
            model: the model built by :meth:`build`.
        """
        if self.backend != "jax" or self.processes == 1 or not self.active:
            return model
        values = self.values(model.weights)
        keras.distribution.set_distribution(None)
        try:
            with same_random_state():  # building must not shift the training run's random streams
                copy = self._rebuild()
        finally:
            keras.distribution.set_distribution(self.engine)
        copy.set_weights(values)
        return copy

    @contextlib.contextmanager
    def local(self):
        """Runs a :meth:`gather` copy on this process alone (no global distribution meanwhile)."""
        if self.backend != "jax" or self.processes == 1 or not self.active:
            yield
            return
        keras.distribution.set_distribution(None)
        try:
            yield
        finally:
            keras.distribution.set_distribution(self.engine)

    def report(self) -> str:
        """One paragraph for the log: mode, devices, batch split, sharded weights."""
        info = self.info
        line = (f"distributed: {info['mode']} parallel on {info['backend']}, {self.processes} process(es) x "
                f"{self.devices} device(s), global batch {info['global_batch']} "
                f"({info['batch_per_replica']} per replica)")
        if "mesh" in info:
            line += f", mesh {info['mesh']}"
        for table, (old, new) in info.get("padded_tables", {}).items():
            line += f"\n  table {table}: {old} rows padded to {new} (a multiple of the model axis)"
        for w in info.get("sharded_weights", []):
            line += f"\n  sharded {w['weight']} {tuple(w['shape'])} over {tuple(w['axes'])}"
        if info.get("mode") == "model" and not info.get("sharded_weights"):
            line += "\n  no weight is large enough to shard (see min_embedding_rows); all replicated"
        return line

    # --- start-up ---------------------------------------------------------------------------------
    @classmethod
    def start(cls, mode: str | None = None, *, devices: int | None = None, model_shards: int | None = None,
              min_embedding_rows: int = 1024, global_batch: int = 0,
              tf_devices: list | None = None) -> Strategy:
        """Starts the backend's engine for ``mode`` (``None``: one device) and checks the devices.

        Args:
            mode: ``None``, ``"data"`` or ``"model"``.
            devices: devices per process (``None``: all).
            model_shards: size of the model axis (``"model"``; ``None``: all devices).
            min_embedding_rows: shard tables with at least this many rows (``"model"``).
            global_batch: the global batch size (checked against the data-parallel replicas).
            tf_devices: TensorFlow device names for the ``MirroredStrategy``.
        """
        s = cls(mode=mode, model_shards=model_shards, min_embedding_rows=min_embedding_rows)
        if mode is None:
            return s
        if mode not in ("data", "model"):
            raise ValueError(f"distribute: mode must be 'data' or 'model'; got {mode!r}")
        if mode == "model" and s.backend != "jax":
            raise ValueError(f"distribute: mode 'model' (model parallel) is supported on the JAX backend; "
                             f"got backend {s.backend}")
        getattr(s, f"_start_{s.backend}")(devices, tf_devices)
        if global_batch % s.batch_shards:
            raise ValueError(f"--batch-size (the global batch) must be divisible by the {s.batch_shards} "
                             f"data-parallel replicas; got {global_batch}")
        s.info.update({"mode": mode, "backend": s.backend, "processes": s.processes,
                       "devices_per_process": s.devices, "global_batch": global_batch,
                       "batch_per_replica": global_batch // s.batch_shards})
        return s

    def _start_jax(self, devices: int | None, tf_devices) -> None:
        import jax

        self.processes, self.rank = jax.process_count(), jax.process_index()
        local = jax.local_device_count()
        n = devices or local
        kind = jax.default_backend().upper()
        if n > local:
            hint = ("; the CPU's virtual devices are fixed when JAX starts: run reclayers in a fresh process"
                    if kind == "CPU" else "")
            raise ValueError(f"--devices must be at most the {local} {kind} devices of this process; "
                             f"got {n}{hint}")
        if n != local and self.processes > 1:
            raise ValueError(f"--devices: with several processes each one uses all its {local} {kind} "
                             f"devices (select them with CUDA_VISIBLE_DEVICES); got {n}")
        self.device_list = keras.distribution.list_devices()[:n] if self.processes == 1 else None
        self.devices = n
        total = n * self.processes
        if self.model_shards is not None and (self.mode != "model" or total % self.model_shards):
            raise ValueError(f"--model-shards must divide the {total} devices; got {self.model_shards}")
        if self.mode == "data":
            self.batch_shards = total
            self.engine = keras.distribution.DataParallel(devices=self.device_list,
                                                          auto_shard_dataset=self.processes == 1)
            keras.distribution.set_distribution(self.engine)
        else:
            shards = self.model_shards or total
            self.batch_shards = total // shards
            self.info["mesh"] = {"batch": total // shards, "model": shards}

    def _start_tensorflow(self, devices: int | None, tf_devices) -> None:
        import tensorflow as tf

        self.engine = tf.distribute.MirroredStrategy(tf_devices or ["/cpu:0"])
        self.batch_shards = self.devices = self.engine.num_replicas_in_sync
        self.info["replicas"] = self.batch_shards

    def _start_torch(self, devices: int | None, tf_devices) -> None:
        import torch
        import torch.distributed as dist

        if not os.environ.get("WORLD_SIZE"):  # one process: nothing to launch
            return
        group = "nccl" if torch.cuda.is_available() else "gloo"
        if group == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        if not dist.is_initialized():
            dist.init_process_group(group)  # env:// rendezvous: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE
        if group == "gloo":
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", 1))))
        self.processes, self.rank = dist.get_world_size(), dist.get_rank()
        self.batch_shards = self.processes
        self.info["process_group"] = group


def _tf_batches(dataset: Any) -> Any:
    """The batches of a ``PyDataset`` as a ``tf.data.Dataset``, in order: what ``tf.distribute``
    strategies take (Keras's own conversion of a ``PyDataset`` under a strategy changed the
    trained result in our checks)."""
    import tensorflow as tf

    first = dataset[0]
    spec = tf.nest.map_structure(
        lambda a: tf.TensorSpec((None,) + tuple(a.shape[1:]), tf.as_dtype(a.dtype)), first
    )
    return tf.data.Dataset.from_generator(
        lambda: (dataset[i] for i in range(len(dataset))), output_signature=spec
    )


@contextlib.contextmanager
def same_random_state():
    """Python, NumPy and Keras's global random state are the same after the block as before.

    Example:
        >>> import numpy as np
        >>> with same_random_state():
        ...     _ = np.random.rand()
        >>> a = np.random.get_state()[2]; isinstance(a, int)
        True
    """
    import random

    import numpy as np
    from keras.src.backend.common import global_state
    from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR

    gen = global_state.get_global_attribute(GLOBAL_SEED_GENERATOR)  # None until first used
    saved = (random.getstate(), np.random.get_state(), None if gen is None else np.array(gen.state.value))
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        global_state.set_global_attribute(GLOBAL_SEED_GENERATOR, gen)
        if gen is not None:
            gen.state.assign(saved[2])
