"""Sparse embedding training under each backend's distribution: JAX meshes (in a fresh subprocess),
PyTorch processes (gloo, forked workers) and TensorFlow ``tf.distribute`` (refused)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from reclayers import data, models
from tests.conftest import xla_flags

ROOT = Path(__file__).resolve().parents[2]
WORLD, GLOBAL_BATCH = 2, 16


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="keras.distribution meshes: JAX only")
def test_sparse_training_on_a_jax_mesh():
    env = dict(os.environ, KERAS_BACKEND="jax", XLA_FLAGS=xla_flags(4))
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         str(Path("tests") / "sparse" / "jax_distribute_checks.py")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


def _tiny():
    ds = data.make_synthetic(96, n_dense=2, n_categorical=3, vocab_size=12, seed=0)
    x, y = next(iter(data.keras_dataset(ds.splits["train"], 64, label_format="dict")))
    x = {k: keras.ops.convert_to_numpy(v) for k, v in x.items()}
    y = {k: keras.ops.convert_to_numpy(v) for k, v in y.items()}
    return ds.schema, x, y


def _model(schema, rule):
    keras.utils.set_random_seed(0)
    model = models.get_model("deepfm", schema, embedding_dim=4, hidden_units=[8])
    return models.compile_model(model, schema, optimizer=keras.optimizers.SGD(0.1),
                                embedding_optimizer=rule, embedding_learning_rate=0.05)


def _share(arrays: dict, rank: int) -> dict:
    """This rank's contiguous half of every global batch (what the trainer's strategy feeds)."""
    local = GLOBAL_BATCH // WORLD
    n = len(next(iter(arrays.values())))
    rows = np.concatenate([np.arange(s + rank * local, s + (rank + 1) * local)
                           for s in range(0, n, GLOBAL_BATCH)])
    return {k: v[rows] for k, v in arrays.items()}


def _worker(rank: int, port: int, rule: str, out_file: str) -> None:
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        schema, x, y = _tiny()
        model = _model(schema, rule)
        model.fit(_share(x, rank), _share(y, rank), batch_size=GLOBAL_BATCH // WORLD, epochs=1,
                  shuffle=False, verbose=0)
        np.savez(f"{out_file}.{rank}.npz",
                 **{f"w{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(model.trainable_variables)})
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch.distributed processes")
@pytest.mark.parametrize("rule", ["lazy_adam", "rowwise_adagrad"])
def test_torch_processes_train_like_one_process_on_the_global_batch(rule, tmp_path):
    """Two gloo processes, each fed half of every global batch, end with the weights of one
    process trained on the global batches (repeated ids across the processes' halves)."""
    import torch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # fork (the workers reuse the imported modules) before this process trains: a child forked
    # after torch's thread pool started can hang in it
    torch.multiprocessing.start_processes(
        _worker, args=(port, rule, str(tmp_path / "out")), nprocs=WORLD, join=True, start_method="fork",
    )
    schema, x, y = _tiny()
    reference = _model(schema, rule)
    reference.fit(x, y, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0)
    want = [keras.ops.convert_to_numpy(v) for v in reference.trainable_variables]
    for rank in range(WORLD):
        with np.load(tmp_path / f"out.{rank}.npz") as got:
            assert len(got.files) == len(want)
            for i, w in enumerate(want):
                np.testing.assert_allclose(got[f"w{i}"], w, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute strategies")
def test_tensorflow_strategy_is_refused_in_one_line():
    import tensorflow as tf

    from reclayers.models.sparse import TF_STRATEGY_REFUSED

    schema, x, y = _tiny()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope(), pytest.raises(ValueError, match="tf.distribute strategy") as caught:
        _model(schema, "lazy_adam")
    assert str(caught.value) == TF_STRATEGY_REFUSED and "\n" not in TF_STRATEGY_REFUSED
    model = _model(schema, "lazy_adam")  # compiled outside, fitted inside: refused at the step
    with strategy.scope(), pytest.raises(ValueError, match="tf.distribute strategy"):
        model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=1, verbose=0)
    with strategy.scope():  # dense tables still train under the strategy
        _model(schema, None).fit(x, y, batch_size=GLOBAL_BATCH, epochs=1, verbose=0)
