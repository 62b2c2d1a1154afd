"""CIN: reference math (layers, activations), alias, original shapes, bad input, contract."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from reclayers.layers import CIN
from tests.contract import Case, LayerContract, assert_allclose, randomize_weights, weight
from tests.reference import core as core_ref
from tests.reference import dcn_cin as ref


def _x(rng, b, m=4, d=3):
    return rng.normal(size=(b, m, d)).astype("float32")


def _ref(layer, x, activation):
    n = len(layer.hidden_uints)
    kernels = [weight(layer, f"/cin_{k}_kernel") for k in range(1, n + 1)]
    biases = [weight(layer, f"/cin_{k}_bias") for k in range(1, n + 1)]
    act = core_ref.ACTIVATIONS[activation] if activation else None
    return ref.cin(x, kernels, biases, act)


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("hidden", [[3], [5, 2], [4, 3, 2]])
def test_cin_matches_reference(hidden, activation):
    x = _x(np.random.default_rng(0), 5)
    layer = CIN(hidden_uints=hidden, activation=activation)
    y = layer(x)
    assert tuple(y.shape) == (5, sum(hidden))
    randomize_weights(layer, scale=0.4)
    assert_allclose(layer(x), _ref(layer, x, activation), rtol=1e-5, atol=1e-5)


def test_weight_shapes_and_regularizer():
    layer = CIN(hidden_uints=[6, 2], regularizer=keras.regularizers.L2(0.01))
    layer(_x(np.random.default_rng(1), 2, m=5, d=3))
    assert tuple(weight(layer, "/cin_1_kernel").shape) == (25, 6)
    assert tuple(weight(layer, "/cin_2_kernel").shape) == (30, 2)
    assert tuple(weight(layer, "/cin_2_bias").shape) == (2,)
    np.testing.assert_array_equal(weight(layer, "/cin_1_bias"), np.zeros(6))
    assert len(layer.losses) == 2  # kernels only


def test_hidden_units_alias():
    x = _x(np.random.default_rng(2), 3)
    layer = CIN(hidden_units=[4, 2], activation="relu")
    assert layer.hidden_uints == [4, 2] and layer.hidden_units == [4, 2]
    assert layer.get_config()["hidden_uints"] == [4, 2]
    assert tuple(layer(x).shape) == (3, 6)
    assert CIN(hidden_uints=[4], hidden_units=[4]).hidden_uints == [4]


def test_original_cases():
    layer = CIN(hidden_uints=[10, 5], activation="sigmoid")
    assert CIN.from_config(layer.get_config()).get_config() == layer.get_config()
    CIN(hidden_uints=[10, 5], activation="tanh")
    y = CIN(hidden_uints=[10, 5], activation="relu")(np.ones((128, 10, 10), "float32"))
    assert tuple(y.shape) == (128, 15)
    assert np.all(np.isfinite(ops.convert_to_numpy(y)))


def test_built_with_one_batch_size_runs_with_another():
    layer = CIN(hidden_uints=[3, 2])
    layer(_x(np.random.default_rng(3), 8))
    assert tuple(layer(_x(np.random.default_rng(4), 2)).shape) == (2, 5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden_uints": []}, "CIN: hidden_uints must be a non-empty list of integers >= 1; got []"),
        ({"hidden_uints": [4, 0]}, "CIN: hidden_uints must be a non-empty list of integers >= 1; got [4, 0]"),
        ({}, "CIN: hidden_uints must be a non-empty list of integers >= 1; got None"),
        ({"hidden_uints": [3], "hidden_units": [4]},
         "CIN: hidden_units must be equal to hidden_uints [3] when both are given; got [4]"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as err:
        CIN(**kwargs)
    assert message in str(err.value)


def test_bad_input_shapes():
    with pytest.raises(ValueError, match=r"CIN: inputs must be a tensor of rank 3; got shape \(2, 4\)"):
        CIN(hidden_uints=[2]).build((2, 4))
    with pytest.raises(ValueError, match="CIN: inputs must have a known size on axis 2"):
        CIN(hidden_uints=[2]).build((None, 4, None))


class TestCINContract(LayerContract):
    cases = [
        Case("one_layer", lambda **kw: CIN(hidden_uints=[3], **kw), _x),
        Case("tanh_three_layers", lambda **kw: CIN(hidden_uints=[4, 3, 2], activation="tanh", **kw),
             _x),
    ]
