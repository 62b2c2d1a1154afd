"""JAX checks on 8 virtual CPU devices. Run by ``test_launch.py`` in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` and ``KERAS_BACKEND=jax`` (the flag must be
set before jax is imported, so these cannot run inside the main test process)."""

from __future__ import annotations

import jax
import keras
import numpy as np
import pytest

from reclayers import distribute
from reclayers.layers import Dense
from tests.distribute import _model

if keras.backend.backend() != "jax" or jax.device_count() < 8:  # pragma: no cover
    raise RuntimeError("run through tests/distribute/test_launch.py (needs 8 JAX devices)")


@pytest.fixture(autouse=True)
def _no_global_distribution():
    yield
    keras.distribution.set_distribution(None)


def _spec(variable) -> tuple:
    return tuple(variable.value.sharding.spec)


def _loss_and_grads(layer, x):
    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]

    def loss(tv):
        y, _ = layer.stateless_call(tv, non_trainable, x)
        return keras.ops.sum(keras.ops.square(y)), y

    (value, y), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(trainable)
    return np.asarray(y), [np.asarray(g) for g in grads], [g.sharding for g in grads]


@pytest.mark.parametrize("partitioner, mesh_shape, expected", [
    (4, (2, 4), ("model", None)),
    (8, (1, 8), ("model", None)),
    (lambda shape, dtype: [1, 2], (4, 2), (None, "model")),
])
def test_dense_kernel_sharded_outputs_and_grads_equal(partitioner, mesh_shape, expected):
    x = np.random.RandomState(0).randn(8, 16).astype("float32")
    layer = Dense(24, activation="tanh", partitioner=partitioner, allow_kernel_norm=True,
                  kernel_norm_trainable=True)
    layer.build(x.shape)
    y0, g0, _ = _loss_and_grads(layer, x)
    mesh = distribute.device_mesh(8, model_shards=mesh_shape[1])
    dist = distribute.model_parallel(layer, mesh=mesh)
    assert _spec(layer.kernel) == expected
    assert len(layer.kernel.value.sharding.device_set) == 8
    assert _spec(layer.bias) in ((), (None,))
    with dist.scope():
        y1, g1, shardings = _loss_and_grads(layer, x)
    np.testing.assert_allclose(y1, y0, rtol=1e-5, atol=1e-6)
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    kernel_index = [id(v) for v in layer.trainable_variables].index(id(layer.kernel))
    assert tuple(shardings[kernel_index].spec) == expected  # the gradient stays sharded


def test_unpartitioned_dense_is_replicated_and_indivisible_axis_warns():
    layer = Dense(8)
    layer.build((None, 12))
    mesh = distribute.device_mesh(8)
    assert len(distribute.layout_map(layer, mesh)) == 0
    odd = Dense(8, partitioner=8)
    odd.build((None, 12))  # 12 rows on 8 devices
    with pytest.warns(UserWarning, match="not divisible"):
        assert len(distribute.layout_map(odd, mesh)) == 0


def test_embedding_tables_row_wise_over_threshold():
    big, small = keras.layers.Embedding(64, 4), keras.layers.Embedding(16, 4)
    big.build((None, 1))
    small.build((None, 1))
    mesh = distribute.device_mesh(8, model_shards=4)
    layouts = distribute.layout_map([big, small], mesh, min_embedding_rows=32)
    assert len(layouts) == 1 and layouts[big.embeddings.path] is not None
    distribute.apply_layouts([big, small], layouts)
    assert _spec(big.embeddings) == ("model", None)
    assert _spec(small.embeddings) in ((None, None), ())
    ids = np.array([[1], [40], [63]])
    np.testing.assert_allclose(np.asarray(big(ids))[:, 0], np.asarray(big.embeddings.value)[[1, 40, 63]])


def _initial(vocab, partitioner=None):
    model = _model.build(vocab, partitioner=partitioner)
    return model, [np.array(w) for w in model.get_weights()]


def test_data_parallel_matches_single_device():
    features, labels, vocab = _model.data()
    reference, weights = _initial(vocab)
    _model.compile_sgd(reference)
    expected = _model.train_losses(reference, features, labels)
    dist = distribute.data_parallel(8)
    with dist.scope():
        model = _model.build(vocab)
        model.set_weights(weights)
        _model.compile_sgd(model)
        losses = _model.train_losses(model, features, labels)
    assert len(model.layers[-1].weights[0].value.sharding.device_set) == 8
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def _columns(shape, dtype):
    return [1, 4]  # a TF1-style partitioner: split the wide kernel's 32 output columns in 4


def test_model_parallel_trains_end_to_end_like_single_device(tmp_path):
    features, labels, vocab = _model.data()
    reference, weights = _initial(vocab, partitioner=_columns)
    _model.compile_sgd(reference)
    expected = _model.train_losses(reference, features, labels)
    model = _model.build(vocab, partitioner=_columns)
    model.set_weights(weights)
    dist = distribute.model_parallel(model, devices=8, model_shards=4, min_embedding_rows=32)
    with dist.scope():
        _model.compile_sgd(model)
        losses = _model.train_losses(model, features, labels)
        history = model.fit(features, labels, batch_size=_model.GLOBAL_BATCH, epochs=1,
                            shuffle=False, verbose=0)
    wide = model.get_layer("wide")
    assert _spec(wide.kernel) == (None, "model")
    assert _spec(model.get_layer("emb_C1").embeddings) == ("model", None)
    assert all(v.value.sharding.spec == wide.kernel.value.sharding.spec
               for v in model.optimizer.variables if v.path.endswith("wide_kernel_momentum"))
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    assert np.isfinite(history.history["loss"]).all()
    assert _spec(wide.kernel) == (None, "model")  # still sharded after fit
    with dist.scope():
        predictions = np.asarray(model.predict(features, batch_size=_model.GLOBAL_BATCH, verbose=0))
    # a checkpoint of the sharded run loads and predicts the same on one device
    model.save(tmp_path / "sharded.keras")
    keras.distribution.set_distribution(None)
    restored = keras.saving.load_model(tmp_path / "sharded.keras", custom_objects={"_columns": _columns})
    np.testing.assert_allclose(np.asarray(restored.predict(features, verbose=0)), predictions,
                               rtol=1e-5, atol=1e-6)
