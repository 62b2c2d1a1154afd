"""PyTorch DDP (gloo) over 2 local processes. Run by ``test_launch.py`` in a subprocess with
``KERAS_BACKEND=torch``; the 2 workers are started with ``torch.multiprocessing``."""

from __future__ import annotations

import os
import socket

import keras
import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from tests.distribute import _model

WORLD = 2


def _train(model, features, labels, rank: int = 0, world: int = 1, wrap=None) -> list:
    """SGD steps on the global batches; each rank takes its contiguous share of every batch."""
    net = wrap(model) if wrap else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for x, y in _model.batches(features, labels):
        share = len(y) // world
        sl = slice(rank * share, (rank + 1) * share)
        x = {k: torch.as_tensor(v[sl]) for k, v in x.items()}
        y = torch.as_tensor(y[sl])
        optimizer.zero_grad()
        loss = keras.ops.mean(keras.losses.binary_crossentropy(y, net(x)))
        loss.backward()
        optimizer.step()
        value = loss.detach().clone()
        if world > 1:
            dist.all_reduce(value)
            value /= world
        losses.append(float(value))
    return losses


def _worker(rank: int, port: int, weights_file: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=WORLD)
    try:
        torch.set_num_threads(1)
        features, labels, vocab = _model.data()
        model = _model.build(vocab, partitioner=2)
        with np.load(weights_file) as saved:
            model.set_weights([saved[f"w{i}"] for i in range(len(saved.files))])
        losses = _train(model, features, labels, rank, WORLD, wrap=DistributedDataParallel)
        if rank == 0:
            np.savez(out_file, losses=np.array(losses),
                     **{f"w{i}": w for i, w in enumerate(model.get_weights())})
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_gloo_two_processes_match_single_process(tmp_path):
    assert keras.backend.backend() == "torch"
    features, labels, vocab = _model.data()
    reference = _model.build(vocab, partitioner=2)
    weights = [np.array(w) for w in reference.get_weights()]
    np.savez(tmp_path / "w.npz", **{f"w{i}": w for i, w in enumerate(weights)})
    expected = _train(reference, features, labels)

    os.environ.setdefault("KERAS_BACKEND", "torch")
    # fork: the workers reuse the imported modules (spawn would re-import torch and keras)
    torch.multiprocessing.start_processes(
        _worker, args=(_free_port(), str(tmp_path / "w.npz"), str(tmp_path / "out.npz")),
        nprocs=WORLD, join=True, start_method="fork",
    )
    with np.load(tmp_path / "out.npz") as out:
        np.testing.assert_allclose(out["losses"], expected, rtol=1e-5)
        for i, w in enumerate(reference.get_weights()):
            np.testing.assert_allclose(out[f"w{i}"], w, rtol=1e-4, atol=1e-6)
