"""Sparse embedding training on 4 virtual JAX CPU devices. Run by ``test_distribute.py`` in a
subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (the flag must be set
before jax is imported)."""

from __future__ import annotations

import jax
import keras
import numpy as np
import pytest

from reclayers import data, distribute, models

if keras.backend.backend() != "jax" or jax.device_count() < 4:  # pragma: no cover
    raise RuntimeError("run through tests/sparse/test_distribute.py (needs 4 JAX devices)")

ROWS = 256  # every table: divisible by the model axis (row-sharded), more rows than lookups (sorted path)


@pytest.fixture(scope="module")
def batch():
    ds = data.make_synthetic(256, n_dense=2, n_categorical=3, vocab_size=40, sequence_length=4, seed=0)
    schema = ds.schema
    for f in schema.categorical:
        schema = schema.replace_feature(f.name, num_buckets=ROWS)
    x, y = next(iter(data.keras_dataset(ds.splits["train"], 128, label_format="dict")))
    return schema, {k: np.asarray(v) for k, v in x.items()}, {k: np.asarray(v) for k, v in y.items()}


def _train(batch, mode, rule):
    schema, x, y = batch
    keras.utils.set_random_seed(0)
    try:
        if mode == "data":
            keras.distribution.set_distribution(distribute.data_parallel(4))
        model = models.get_model("mlp", schema, embedding_dim=8, hidden_units=[8])
        if mode == "model":
            keras.distribution.set_distribution(
                distribute.model_parallel(model, devices=4, model_shards=2, min_embedding_rows=16))
        models.compile_model(model, schema, embedding_optimizer=rule, embedding_learning_rate=0.05)
        model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
        weights = {v.path: np.asarray(v.value) for v in model.trainable_variables}
        shardings = {v.path: tuple(getattr(v.value.sharding, "spec", ())) for v in model.trainable_variables
                     + model.optimizer.variables if "emb_C1" in v.path}
        return weights, shardings
    finally:
        keras.distribution.set_distribution(None)


@pytest.mark.parametrize("rule", ["lazy_adam"])
def test_data_and_model_parallel_equal_one_device(batch, rule):
    want, _ = _train(batch, None, rule)
    got, _ = _train(batch, "data", rule)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)
    got, shardings = _train(batch, "model", rule)
    # the table and its slots stay row-sharded over the model axis after the in-place updates
    assert shardings and all(spec[:1] == ("model",) for spec in shardings.values()), shardings
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)
