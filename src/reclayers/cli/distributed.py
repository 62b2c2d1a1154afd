"""``reclayers train --distribute data|model --devices N``: one command, each backend's own engine.

=============  ===========================================  ==========================================
backend        ``--distribute data``                        ``--distribute model``
=============  ===========================================  ==========================================
JAX            ``keras.distribution.DataParallel``          ``ModelParallel`` on a (batch, model)
                                                            mesh, tables and wide kernels sharded
TensorFlow     ``MirroredStrategy`` (N GPUs or N logical    error (JAX only)
               CPU devices), one host
PyTorch        N local processes (gloo on CPU, nccl on      error (JAX only)
               GPU), gradients averaged over them; under
               ``torchrun`` its ``RANK``/``WORLD_SIZE``
=============  ===========================================  ==========================================

``--batch-size`` is the *global* batch: it is split over the devices (and processes). Under
``--distribute`` the last incomplete global batch of each training epoch is dropped, so every
step has the same global batch on every device. Process 0 (the *chief*) writes the run directory.

Device flags must act before the engines start: :func:`prepare` runs in ``reclayers.cli.main``
before Keras is imported (``XLA_FLAGS`` for JAX's virtual CPU devices, TensorFlow's logical CPU
devices, the local torch process launch); :func:`start` then builds the context used by ``train``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reclayers.cli.datasets import UsageError

_LAUNCHED = "RECLAYERS_DISTRIBUTED_CHILD"  # set on the processes started by the local torch launch
_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _backend(args: argparse.Namespace) -> str:
    from reclayers.cli.backend import keras_backend  # the backend Keras will load (not a guess)

    return keras_backend(getattr(args, "backend", None))


def _jax_multiprocess(args: argparse.Namespace) -> bool:
    return bool(args.coordinator or os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES"))


def validate(args: argparse.Namespace) -> None:
    """Checks that need no engine: flag combinations, counts, divisibility of the global batch."""
    mode = getattr(args, "distribute", None)
    backend = _backend(args)
    multi = [f for f, v in (("--coordinator", args.coordinator), ("--num-processes", args.num_processes),
                            ("--process-id", args.process_id)) if v is not None]
    if mode is None:
        for flag, value in (("--devices", args.devices), ("--model-shards", args.model_shards)):
            if value is not None:
                raise UsageError(f"{flag} needs --distribute data|model; got {flag} {value} alone")
        if multi:
            raise UsageError(f"{multi[0]} needs --distribute data|model")
        return
    if backend == "tensorflow" and os.environ.get("TF_CONFIG"):
        raise UsageError("--distribute on tensorflow runs on one host (MirroredStrategy); got TF_CONFIG "
                         "set: several TensorFlow workers are not supported by reclayers train yet "
                         "(use the JAX backend with --coordinator, or torch with torchrun)")
    if mode == "model" and backend != "jax":
        raise UsageError(f"--distribute model: model parallel is supported on the JAX backend; "
                         f"got backend {backend} (select JAX with --backend jax or KERAS_BACKEND=jax)")
    if args.devices is not None and args.devices < 1:
        raise UsageError(f"--devices must be >= 1; got {args.devices}")
    if args.model_shards is not None:
        if mode != "model":
            raise UsageError(f"--model-shards needs --distribute model; got --distribute {mode}")
        if args.model_shards < 1 or (args.devices is not None and args.devices % args.model_shards):
            raise UsageError(f"--model-shards must divide --devices ({args.devices}); "
                             f"got {args.model_shards}")
    if multi:
        if backend != "jax":
            how = "it runs on one host" if backend == "tensorflow" else "launch with torchrun"
            raise UsageError(f"{multi[0]} is for the JAX backend; on {backend} {how}")
        if len(multi) != 3:
            raise UsageError("--coordinator, --num-processes and --process-id go together; got only "
                             + ", ".join(multi))
        if args.num_processes < 1 or not 0 <= args.process_id < args.num_processes:
            raise UsageError(f"--process-id must be in [0, --num-processes={args.num_processes}); "
                             f"got {args.process_id}")
        if ":" not in args.coordinator:
            raise UsageError(f"--coordinator must be HOST:PORT; got {args.coordinator!r}")
    batch = getattr(args, "batch_size", None)
    if args.devices and batch:
        total = args.devices * (args.num_processes or 1)
        replicas = total // (args.model_shards or total) if mode == "model" else total
        if batch % replicas:
            raise UsageError(f"--batch-size (the global batch) must be divisible by the {replicas} "
                             f"data-parallel replicas; got {batch}")
    if backend == "torch" and os.environ.get("WORLD_SIZE") and not os.environ.get(_LAUNCHED):
        local = os.environ.get("LOCAL_WORLD_SIZE")
        if args.devices is not None and local is not None and args.devices != int(local):
            raise UsageError(f"--devices must match torchrun's --nproc_per_node ({local}) or be left out; "
                             f"got {args.devices}")


def prepare(args: argparse.Namespace, argv: list[str]) -> int | None:
    """Before Keras is imported. Returns an exit code when this process only launched workers."""
    validate(args)
    if getattr(args, "distribute", None) is None:
        return None
    backend = _backend(args)
    if backend == "jax":
        if "jax" not in sys.modules and args.devices and args.devices > 1:
            # Virtual CPU devices (no effect on GPU/TPU platforms, whose real devices are used).
            flags = os.environ.get("XLA_FLAGS", "")
            if "xla_force_host_platform_device_count" not in flags:
                count = f"--xla_force_host_platform_device_count={args.devices}"
                os.environ["XLA_FLAGS"] = f"{flags} {count}".strip()
        if _jax_multiprocess(args):
            _init_jax_processes(args)
    elif backend == "tensorflow":
        _tf_devices(args)
    elif backend == "torch" and not os.environ.get("WORLD_SIZE"):
        n = args.devices or _torch_local_devices()
        if _cuda() and n > _torch_local_devices():
            raise UsageError(f"--devices must be at most the {_torch_local_devices()} GPUs of this host; "
                             f"got {n}")
        if n > 1:
            return _launch_torch(argv, n)
    return None


def _init_jax_processes(args: argparse.Namespace) -> None:
    """``jax.distributed`` start-up (through ``keras.distribution.initialize``), before any JAX call."""
    import jax

    # CPU-only hosts need a cross-process collective implementation (GPUs use NCCL).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    import keras

    if args.coordinator:
        keras.distribution.initialize(job_addresses=args.coordinator, num_processes=args.num_processes,
                                      process_id=args.process_id)
    else:  # KERAS_DISTRIBUTION_JOB_ADDRESSES / _NUM_PROCESSES / _PROCESS_ID
        keras.distribution.initialize()


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _torch_local_devices() -> int:
    import torch

    return max(1, torch.cuda.device_count())


def _tf_devices(args: argparse.Namespace) -> None:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    n = args.devices or max(1, len(gpus))
    if gpus:
        if n > len(gpus):
            raise UsageError(f"--devices must be at most the {len(gpus)} GPUs of this host; got {n}")
        args._tf_devices = [f"/gpu:{i}" for i in range(n)]
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError as e:  # the runtime already started (Keras loaded earlier in this process)
        if len(tf.config.list_logical_devices("CPU")) != n:
            raise UsageError(f"--devices {n}: TensorFlow is already initialised in this process with "
                             f"{len(tf.config.list_logical_devices('CPU'))} CPU devices; run "
                             "reclayers in a fresh process") from e
    args._tf_devices = [f"/cpu:{i}" for i in range(n)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_torch(argv: list[str], n: int) -> int:
    """Start ``n`` copies of this command as ranks 0..n-1 (torchrun's variables) and wait for them."""
    import reclayers

    src = str(Path(reclayers.__file__).resolve().parents[1])
    port = str(_free_port())
    procs = []
    for rank in range(n):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(n),
                   LOCAL_WORLD_SIZE=str(n), MASTER_ADDR="127.0.0.1", MASTER_PORT=port,
                   KERAS_BACKEND="torch", **{_LAUNCHED: "1"})
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        out = None if rank == 0 else subprocess.DEVNULL
        procs.append(subprocess.Popen([sys.executable, "-m", "reclayers", *argv], env=env, stdout=out))
    code = 0
    try:
        while any(p.poll() is None for p in procs):
            failed = [p for p in procs if p.returncode not in (None, 0)]
            if failed:  # the others would wait forever in a collective
                code = failed[0].returncode
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            p.wait()
    return code or next((p.returncode for p in procs if p.returncode), 0)


@dataclass
class Context:
    """What ``train`` needs to know about the distributed set-up (``mode=None``: one device)."""

    mode: str | None = None
    backend: str = "jax"
    devices: int = 1  # devices of this process (TF: replicas of this worker)
    processes: int = 1
    rank: int = 0
    batch_shards: int = 1  # how many pieces the global batch is split into
    strategy: Any = None  # TF
    distribution: Any = None  # JAX
    device_list: Any = None  # JAX: the devices used (None: all, several processes)
    info: dict = field(default_factory=dict)
    rebuild: Any = None  # () -> an unbuilt copy of the model's architecture (host_model)

    @property
    def chief(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.mode is not None

    def scope(self):
        """Where the model (and its optimizer) must be created."""
        if self.strategy is not None:
            return self.strategy.scope()
        return contextlib.nullcontext()


def start(args: argparse.Namespace, global_batch: int) -> Context:
    """After Keras is imported: initialise the engine of the backend, check the devices."""
    import keras

    mode = getattr(args, "distribute", None)
    backend = keras.backend.backend()
    if mode is None:
        return Context(backend=backend)
    ctx = Context(mode=mode, backend=backend)
    if backend == "jax":
        _start_jax(args, ctx)
    elif backend == "tensorflow":
        _start_tf(args, ctx)
    else:
        _start_torch(args, ctx)
    if global_batch % ctx.batch_shards:
        raise UsageError(f"--batch-size (the global batch) must be divisible by the {ctx.batch_shards} "
                         f"data-parallel replicas; got {global_batch}")
    ctx.info.update({"mode": mode, "backend": backend, "processes": ctx.processes,
                     "devices_per_process": ctx.devices, "global_batch": global_batch,
                     "batch_per_replica": global_batch // ctx.batch_shards})
    return ctx


def _start_jax(args: argparse.Namespace, ctx: Context) -> None:
    import jax
    import keras

    ctx.processes, ctx.rank = jax.process_count(), jax.process_index()
    local = jax.local_device_count()
    n = args.devices or local
    kind = jax.default_backend().upper()
    if n > local:
        hint = ("; the CPU's virtual devices are fixed when JAX starts: run reclayers in a fresh process"
                if kind == "CPU" else "")
        raise UsageError(f"--devices must be at most the {local} {kind} devices of this process; "
                         f"got {n}{hint}")
    if n != local and ctx.processes > 1:
        raise UsageError(f"--devices: with several processes each one uses all its {local} {kind} devices "
                         f"(select them with CUDA_VISIBLE_DEVICES); got {n}")
    ctx.device_list = keras.distribution.list_devices()[:n] if ctx.processes == 1 else None
    ctx.devices = n
    total = n * ctx.processes
    if args.model_shards is not None and (ctx.mode != "model" or total % args.model_shards):
        raise UsageError(f"--model-shards must divide the {total} devices; got {args.model_shards}")
    if ctx.mode == "data":
        ctx.batch_shards = total
        ctx.distribution = keras.distribution.DataParallel(devices=ctx.device_list,
                                                           auto_shard_dataset=ctx.processes == 1)
        keras.distribution.set_distribution(ctx.distribution)
    else:
        shards = args.model_shards or total
        ctx.batch_shards = total // shards
        ctx.info["mesh"] = {"batch": total // shards, "model": shards}


def model_parallel(model: Any, ctx: Context, args: argparse.Namespace) -> list[dict]:
    """Shard the built ``model`` (JAX, ``--distribute model``); returns the sharded weights."""
    import keras

    from reclayers import distribute

    mesh = distribute.device_mesh(ctx.device_list, args.model_shards)
    layouts = distribute.layout_map(model, mesh, min_embedding_rows=args.min_embedding_rows)
    ctx.distribution = keras.distribution.ModelParallel(layout_map=layouts, batch_dim_name="batch",
                                                        auto_shard_dataset=ctx.processes == 1)
    distribute.apply_layouts(model, layouts)
    keras.distribution.set_distribution(ctx.distribution)
    sharded = []
    for variable in model.weights:
        layout = layouts[variable.path]
        if layout is not None:
            sharded.append({"weight": variable.path, "shape": list(variable.shape),
                            "axes": list(layout.axes)})
    ctx.info["sharded_weights"] = sharded
    return sharded


def pad_tables(prepared: Any, ctx: Context, args: argparse.Namespace) -> Any:
    """``--distribute model``: round the tables that will be sharded (``>= --min-embedding-rows``
    rows) up to a multiple of the model axis, since ``keras.distribution`` shards into equal blocks.
    The extra rows are never looked up (ids stay below the fitted ``num_buckets``)."""
    if ctx.mode != "model":
        return prepared
    import dataclasses

    shards, schema = ctx.info["mesh"]["model"], prepared.schema
    padded = {}
    for f in schema.features:
        n = int(getattr(f, "num_buckets", 0) or 0)
        if f.kind != "dense" and n >= args.min_embedding_rows and n % shards:
            schema = schema.replace_feature(f.name, num_buckets=-(-n // shards) * shards)
            padded[f.table_name] = [n, -(-n // shards) * shards]
    if padded:
        ctx.info["padded_tables"] = padded
    return dataclasses.replace(prepared, schema=schema)


def _start_tf(args: argparse.Namespace, ctx: Context) -> None:
    import tensorflow as tf

    devices = getattr(args, "_tf_devices", None) or ["/cpu:0"]
    ctx.strategy = tf.distribute.MirroredStrategy(devices)
    ctx.batch_shards = ctx.devices = ctx.strategy.num_replicas_in_sync
    ctx.info["replicas"] = ctx.batch_shards


def _start_torch(args: argparse.Namespace, ctx: Context) -> None:
    import torch
    import torch.distributed as dist

    if not os.environ.get("WORLD_SIZE"):  # --devices 1 (or no GPU): one process, nothing to launch
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        dist.init_process_group(backend)  # env:// rendezvous: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE
    if backend == "gloo":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", 1))))
    ctx.processes, ctx.rank = dist.get_world_size(), dist.get_rank()
    ctx.batch_shards = ctx.processes
    ctx.info["process_group"] = backend


def torch_sync(model: Any, ctx: Context) -> None:
    """DDP semantics for a compiled Keras model on torch: same start weights (rank 0's), then every
    optimizer step applies the gradients averaged over the processes."""
    if ctx.backend != "torch" or ctx.processes == 1:
        return
    import torch
    import torch.distributed as dist

    with torch.no_grad():
        for v in model.weights:
            dist.broadcast(v.value.data, src=0)
    optimizer = model.optimizer
    apply = optimizer.apply
    world = ctx.processes

    def averaged_apply(grads, trainable_variables=None):
        for g in grads:
            if g is not None:
                dist.all_reduce(g)
                g.div_(world)
        return apply(grads, trainable_variables)

    optimizer.apply = averaged_apply


def mean_over_processes(value: float, ctx: Context) -> float:
    """The mean of a per-process number (torch ranks each see their share of the batch)."""
    if ctx.backend != "torch" or ctx.processes == 1:
        return value
    import torch
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t[0]) / ctx.processes


def share(dataset: Any, ctx: Context) -> Any:
    """This process's contiguous share of every global batch (torch ranks, JAX processes)."""
    if ctx.backend == "tensorflow" and ctx.strategy is not None:
        return _tf_batches(dataset)  # MirroredStrategy splits each global batch itself
    if ctx.processes == 1:
        return dataset
    import keras

    n, r = ctx.processes, ctx.rank

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


def host_model(model: Any, ctx: Context) -> Any:
    """A model this process can save and run alone. With several JAX processes the weights are
    global arrays that no single process holds: gather them into an unsharded copy
    (``ctx.rebuild()`` creates the architecture). Every process must call this (a collective)."""
    if ctx.backend != "jax" or ctx.processes == 1 or not ctx.active:
        return model
    import keras
    from jax.experimental import multihost_utils

    values = [multihost_utils.process_allgather(v.value, tiled=True) for v in model.weights]
    keras.distribution.set_distribution(None)
    try:
        with same_random_state():  # building must not shift the training run's random streams
            copy = ctx.rebuild()
    finally:
        keras.distribution.set_distribution(ctx.distribution)
    copy.set_weights(values)
    return copy


@contextlib.contextmanager
def same_random_state():
    """Python, NumPy and Keras's global random state are the same after the block as before."""
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


@contextlib.contextmanager
def local(ctx: Context):
    """Run a :func:`host_model` copy on this process alone (no global distribution meanwhile)."""
    if ctx.backend != "jax" or ctx.processes == 1 or not ctx.active:
        yield
        return
    import keras

    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(ctx.distribution)


def report(ctx: Context) -> str:
    """One line for the log."""
    info = ctx.info
    line = (f"distributed: {info['mode']} parallel on {info['backend']}, {ctx.processes} process(es) x "
            f"{ctx.devices} device(s), global batch {info['global_batch']} "
            f"({info['batch_per_replica']} per replica)")
    if "mesh" in info:
        line += f", mesh {info['mesh']}"
    for table, (old, new) in info.get("padded_tables", {}).items():
        line += f"\n  table {table}: {old} rows padded to {new} (a multiple of the model axis)"
    for w in info.get("sharded_weights", []):
        line += f"\n  sharded {w['weight']} {tuple(w['shape'])} over {tuple(w['axes'])}"
    if info.get("mode") == "model" and not info.get("sharded_weights"):
        line += "\n  no weight is large enough to shard (see --min-embedding-rows); all replicated"
    return line
