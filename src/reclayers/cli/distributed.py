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
devices, the local torch process launch); :func:`start` then asks ``reclayers.distribute`` for the
:class:`reclayers.strategy.Strategy` the trainer uses (the per-backend engines live there).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
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


def start(args: argparse.Namespace, global_batch: int) -> Any:
    """After Keras is imported: the :class:`reclayers.strategy.Strategy` the flags ask for."""
    from reclayers import distribute

    try:
        return distribute.strategy(
            getattr(args, "distribute", None), devices=getattr(args, "devices", None),
            model_shards=getattr(args, "model_shards", None),
            min_embedding_rows=getattr(args, "min_embedding_rows", 1024), global_batch=global_batch,
            tf_devices=getattr(args, "_tf_devices", None),
        )
    except ValueError as e:  # the strategy checks the flags against the devices it finds
        raise UsageError(str(e).strip().splitlines()[0]) from e
