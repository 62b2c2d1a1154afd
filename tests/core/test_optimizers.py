"""MultiOptimizer: per-layer optimizers in model.fit on every backend."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from reclayers import layers
from reclayers.optimizers import MultiOptimizer, assign_optimizer


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 1))).astype("float32")
    return x, y


def _model(first, second):
    return keras.Sequential([keras.Input((4,)), layers.Dense(3, optimizer=first, name="frozen"),
                             layers.Dense(1, optimizer=second, name="moving")])


def _values(layer):
    return [ops.convert_to_numpy(w).copy() for w in layer.trainable_weights]


def test_lr_zero_layer_stays_and_lr_one_layer_moves_in_fit():
    x, y = _data()
    model = _model(keras.optimizers.SGD(0.0), keras.optimizers.SGD(0.1))
    model.compile(optimizer=MultiOptimizer("adam"), loss="mse")
    frozen0, moving0 = _values(model.get_layer("frozen")), _values(model.get_layer("moving"))
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    for a, b in zip(frozen0, _values(model.get_layer("frozen"))):
        np.testing.assert_array_equal(a, b)
    assert any(not np.allclose(a, b) for a, b in zip(moving0, _values(model.get_layer("moving"))))
    assert int(ops.convert_to_numpy(model.optimizer.iterations)) == 8


def test_untagged_variables_use_the_default_optimizer():
    x, y = _data()
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3, name="a"), layers.Dense(1, name="b")])
    assign_optimizer(model.get_layer("a"), keras.optimizers.SGD(0.0))
    model.compile(optimizer=MultiOptimizer(keras.optimizers.SGD(0.05)), loss="mse")
    a0, b0 = _values(model.get_layer("a")), _values(model.get_layer("b"))
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    for a, b in zip(a0, _values(model.get_layer("a"))):
        np.testing.assert_array_equal(a, b)
    assert any(not np.allclose(a, b) for a, b in zip(b0, _values(model.get_layer("b"))))
    assert len(model.optimizer.sub_optimizers) == 2


def test_stateful_sub_optimizer_state_is_tracked_and_config_round_trips(tmp_path):
    x, y = _data()
    model = _model(keras.optimizers.Adam(0.01), None)
    model.compile(optimizer=MultiOptimizer(keras.optimizers.SGD(0.01)), loss="mse")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    names = [v.path for v in model.optimizer.variables]
    assert any("adam" in n for n in names), names
    config = model.optimizer.get_config()
    clone = MultiOptimizer.from_config(config)
    assert isinstance(clone.default_optimizer, keras.optimizers.SGD)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert isinstance(loaded.get_layer("frozen").optimizer, keras.optimizers.Adam)


def test_dense_rejects_bad_optimizer():
    with pytest.raises(ValueError, match="Dense: optimizer must be None, a keras Optimizer"):
        layers.Dense(2, optimizer=object())
