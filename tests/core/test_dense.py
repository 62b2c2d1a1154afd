"""Dense: reference math for every option, monitor, partitioner/optimizer options, contract."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reclayers.layers import Dense
from tests.contract import Case, LayerContract, assert_allclose, randomize_weights, weight
from tests.reference import core as ref


def _x(rng, b, d=5):
    return rng.normal(size=(b, d)).astype("float32")


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("norm", ["off", "unit", "trainable"])
@pytest.mark.parametrize("activation", [None, "sigmoid", "relu"])
def test_dense_matches_reference(use_bias, norm, activation):
    x = _x(np.random.default_rng(0), 7)
    layer = Dense(4, activation=activation, use_bias=use_bias, allow_kernel_norm=norm != "off",
                  kernel_norm_trainable=norm == "trainable")
    layer(x)
    randomize_weights(layer)
    g = weight(layer, "trainable_kernel_norm") if norm == "trainable" else None
    b = weight(layer, "bias") if use_bias else None
    act = ref.ACTIVATIONS[activation] if activation else None
    expected = ref.dense(x, weight(layer, "kernel"), b, act, kernel_norm=norm != "off",
                         norm_scale=g)
    assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-6)


def test_rank3_contracts_last_axis():
    x = np.random.default_rng(1).normal(size=(2, 3, 5)).astype("float32")
    layer = Dense(4)
    y = layer(x)
    assert tuple(y.shape) == (2, 3, 4)
    assert_allclose(y, x @ weight(layer, "kernel") + weight(layer, "bias"), rtol=1e-5)


def test_trainable_norm_starts_as_plain_kernel_and_unit_norm_otherwise():
    x = np.ones((100, 100), "float32")
    layer = Dense(100, activation="sigmoid", kernel_initializer=keras.initializers.GlorotNormal(),
                  allow_kernel_norm=True, kernel_norm_trainable=True)
    layer(x)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.effective_kernel()),
                               weight(layer, "kernel"), rtol=1e-5, atol=1e-6)
    unit = Dense(10, allow_kernel_norm=True)
    unit(x)
    norms = np.linalg.norm(keras.ops.convert_to_numpy(unit.effective_kernel()), axis=0)
    np.testing.assert_allclose(norms, np.ones(10), rtol=1e-5)


def test_inactive_relu_monitor_updates_in_training_only():
    layer = Dense(10, activation="relu", inactive_relu_monitor=True,
                  inactive_relu_monitor_decay=0.5)
    x = np.random.default_rng(2).normal(size=(8, 5)).astype("float32")
    y = keras.ops.convert_to_numpy(layer(x))
    monitor = [w for w in layer.non_trainable_weights
               if w.path.endswith("inactive_relu_count_moving_avg")]
    assert len(monitor) == 1 and tuple(monitor[0].shape) == (10,)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(monitor[0]), np.zeros(10))
    layer(x, training=True)
    zeros = (y == 0).sum(axis=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(monitor[0]), 0.5 * zeros, rtol=1e-6)


def test_monitor_works_with_any_activation():
    # tanh is zero only where its input is: unit 0 gets a zero kernel, so both examples count.
    layer = Dense(3, activation="tanh", inactive_relu_monitor=True, allow_kernel_norm=False)
    x = np.ones((2, 4), "float32")
    layer(x)
    kernel = np.full((4, 3), 0.5, "float32")
    kernel[:, 0] = 0.0
    layer.kernel.assign(kernel)
    y = keras.ops.convert_to_numpy(layer(x, training=True))
    assert np.all(y[:, 0] == 0) and np.all(y[:, 1:] != 0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.inactive_relu_count_moving_avg),
                               [0.1 * 2, 0.0, 0.0], rtol=1e-6)


def test_partitioner_accepted_and_stored():
    x = np.ones((100, 294), "float32")
    layer = Dense(1024, activation="sigmoid", allow_kernel_norm=True, kernel_norm_trainable=True,
                  partitioner=5)
    assert tuple(layer(x).shape) == (100, 1024)
    assert tuple(layer.kernel.shape) == (294, 1024)
    assert layer.get_config()["partitioner"] == 5
    assert Dense.from_config(layer.get_config()).partitioner == 5


def test_optimizer_tags_variables_and_round_trips():
    sgd = keras.optimizers.SGD(0.5)
    layer = Dense(2, optimizer=sgd)
    layer(np.ones((1, 3), "float32"))
    assert layer.optimizer is sgd
    assert all(v.optimizer is sgd for v in layer.trainable_weights)
    clone = Dense.from_config(layer.get_config())
    assert isinstance(clone.optimizer, keras.optimizers.SGD)
    assert float(clone.optimizer.learning_rate) == pytest.approx(0.5)


def test_input_dim_keyword():
    layer = Dense(3, input_dim=4)
    assert layer(np.ones((2, 4), "float32")).shape[-1] == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"units": 0}, "Dense: units must be an integer >= 1; got 0"),
        ({"units": "8"}, "Dense: units must be an integer >= 1; got '8'"),
        ({"units": 2, "partitioner": -1}, "Dense: partitioner must be None, a number of shards"),
        ({"units": 2, "inactive_relu_monitor_decay": 0.0},
         "Dense: inactive_relu_monitor_decay must be a number in (0.0, 1.0]; got 0.0"),
        ({"units": 2, "optimizer": 3}, "Dense: optimizer must be None, a keras Optimizer"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as err:
        Dense(**kwargs)
    assert message in str(err.value)


def test_bad_input_rank_and_unknown_last_dim():
    with pytest.raises(ValueError, match="Dense: inputs must be a tensor of rank >= 2"):
        Dense(2).build((5,))
    with pytest.raises(ValueError, match="Dense: inputs must have a known last dimension"):
        Dense(2).build((None, None))


class TestDenseContract(LayerContract):
    cases = [
        Case("plain", lambda **kw: Dense(4, activation="tanh", **kw), _x),
        Case("weight_norm", lambda **kw: Dense(4, allow_kernel_norm=True, **kw), _x),
        Case("learnable_norm", lambda **kw: Dense(3, activation="sigmoid", allow_kernel_norm=True,
                                                   kernel_norm_trainable=True, **kw), _x),
        Case("monitor", lambda **kw: Dense(3, activation="relu", inactive_relu_monitor=True, **kw),
             _x, grad_kwargs={"training": True}),
    ]
