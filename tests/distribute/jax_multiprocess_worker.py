"""One of 2 JAX processes on localhost (2 virtual CPU devices each): ``keras.distribution``
multi-process initialisation, then DataParallel over the 4 global devices, each process feeding
its half of every global batch. Started by ``test_launch.py``:
``python jax_multiprocess_worker.py RANK PORT OUT.npz`` with ``XLA_FLAGS`` giving 2 devices."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "src"), str(Path(__file__).resolve().parents[2])]

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")

import keras  # noqa: E402
import numpy as np  # noqa: E402

WORLD = 2


def main(rank: int, port: int, out: str) -> None:
    keras.distribution.initialize(job_addresses=f"127.0.0.1:{port}", num_processes=WORLD,
                                  process_id=rank)
    from reclayers import distribute
    from tests.distribute import _model

    assert jax.process_count() == WORLD and jax.device_count() == 2 * jax.local_device_count()
    features, labels, vocab = _model.data()
    reference = _model.build(vocab)  # one local device, the whole global batch
    weights = [np.array(w) for w in reference.get_weights()]
    _model.compile_sgd(reference)
    expected = _model.train_losses(reference, features, labels)
    dist = distribute.data_parallel()
    with dist.scope():
        model = _model.build(vocab)
        model.set_weights(weights)
        _model.compile_sgd(model)
        losses = []
        for x, y in _model.batches(features, labels):
            share = slice(rank * len(y) // WORLD, (rank + 1) * len(y) // WORLD)
            losses.append(float(model.train_on_batch({k: v[share] for k, v in x.items()}, y[share])))
    np.savez(out, expected=np.array(expected), losses=np.array(losses),
             devices=np.array([jax.device_count(), jax.process_count()]))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
