"""LHUCTower: reference math for every lhuc_output_dims form and activation rule, lhuc_*
overrides, config round trip of regularizers/overrides, bad input, contract."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reclayers.layers import LHUCTower
from reclayers.layers.lhuc import LHUCTower as LHUCFromModule
from tests.contract import Case, LayerContract, assert_allclose, randomize_weights
from tests.mtl.helpers import dense_weights, mlp_weights, np_
from tests.reference import core
from tests.reference import multi_task as ref


def _x(rng, b, d=4):
    return rng.normal(size=(b, d)).astype("float32")


def _pair(rng, b):
    return [_x(rng, b, 4), _x(rng, b, 3)]


def _reference(layer, x, c, activations):
    dense = [dense_weights(d) for d in layer.dense_layers]
    lhuc = [mlp_weights(m) for m in layer.lhuc_layers]
    return ref.lhuc_tower(x.astype("float64"), c.astype("float64"), dense, activations, lhuc)


@pytest.mark.parametrize(
    "lhuc_dims, expected_dims, two_inputs",
    [
        (None, [[4], [4], [2]], False),
        ([], [[4], [4], [2]], True),
        ([3], [[3, 4], [3, 4], [3, 2]], True),
        ([[3, 4], [4], [2, 4, 2]], [[3, 4], [4], [2, 4, 2]], False),
    ],
)
def test_lhuc_matches_reference(lhuc_dims, expected_dims, two_inputs):
    rng = np.random.default_rng(0)
    inputs = _pair(rng, 6) if two_inputs else _x(rng, 6)
    x, c = (inputs[0], inputs[1]) if two_inputs else (inputs, inputs)
    layer = LHUCTower(output_dims=[4, 4, 2], lhuc_output_dims=lhuc_dims)
    layer(inputs)
    assert [m.output_dims for m in layer.lhuc_layers] == expected_dims
    randomize_weights(layer, seed=3)
    expected = _reference(layer, x, c, [core.relu, core.relu, None])
    assert_allclose(layer(inputs), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "activations, expected",
    [
        (None, [core.relu, core.relu, None]),
        ("relu", [core.relu, core.relu, None]),
        ("tanh", [np.tanh, np.tanh, None]),
        (["tanh", None, "sigmoid"], [np.tanh, None, core.sigmoid]),
    ],
)
def test_activation_rules(activations, expected):
    x = _x(np.random.default_rng(1), 6)
    layer = LHUCTower(output_dims=[4, 4, 2], activations=activations, use_weight_norm=False)
    layer(x)
    randomize_weights(layer, seed=4)
    dense = [dense_weights(d) for d in layer.dense_layers]
    lhuc = [mlp_weights(m) for m in layer.lhuc_layers]
    out = ref.lhuc_tower(x.astype("float64"), x.astype("float64"), dense, expected, lhuc,
                         weight_norm=False)
    assert_allclose(layer(x), out, rtol=1e-5, atol=1e-6)


def test_gate_range_and_batch_norm_inference():
    x = _x(np.random.default_rng(2), 6)
    layer = LHUCTower(output_dims=[4, 1], enable_batch_normalization=True)
    layer(x, training=True)
    names = sorted(layer_.name for layer_ in layer._flatten_layers(include_self=False, recursive=False)
                   if isinstance(layer_, keras.layers.BatchNormalization))
    assert names == ["batch_norm", "layer_1_batch_norm"]
    for m in layer.lhuc_layers:
        gate = np_(m(x))
        assert np.all((gate > 0) & (gate < 2))
        assert m.enable_batch_normalization  # falls back to the main option


def test_lhuc_overrides_and_fallbacks():
    layer = LHUCTower(output_dims=[3, 2], use_bias=True, lhuc_use_bias=False, lhuc_use_weight_norm=None,
                      lhuc_kernel_regularizer="l2", lhuc_unknown_option=3)
    layer(np.ones((2, 4), "float32"))
    assert all(d.use_bias for d in layer.dense_layers)
    assert all(not m.use_bias and m.use_weight_norm for m in layer.lhuc_layers)
    assert all(m.kernel_regularizer is not None for m in layer.lhuc_layers)
    assert all(d.kernel_regularizer is None for d in layer.dense_layers)
    config = layer.get_config()
    assert config["lhuc_use_bias"] is False and "lhuc_use_weight_norm" not in config
    assert "lhuc_unknown_option" not in config
    clone = LHUCTower.from_config(config)
    assert all(not m.use_bias for m in clone.lhuc_layers)
    assert all(m.kernel_regularizer is not None for m in clone.lhuc_layers)


def test_regularizers_round_trip():
    layer = LHUCTower(output_dims=[3, 2], kernel_regularizer=keras.regularizers.L2(0.1),
                      bias_regularizer="l1")
    clone = LHUCTower.from_config(layer.get_config())
    assert isinstance(clone.dense_layers[0].kernel_regularizer, keras.regularizers.L2)
    assert isinstance(clone.dense_layers[0].bias_regularizer, keras.regularizers.L1)
    assert clone.get_config() == layer.get_config()


def test_initializers_cloned_and_padded():
    init = keras.initializers.HeUniform()
    layer = LHUCTower(output_dims=[4, 4, 4], initializers=init)
    layer(np.ones((2, 4), "float32"))
    k = [np_(d.kernel) for d in layer.dense_layers]
    assert not np.allclose(k[1], k[2])
    assert not np.allclose(k[0], np_(layer.lhuc_layers[0].dense_layers[0].kernel))
    padded = LHUCTower(output_dims=[2, 3], initializers=["zeros"])
    padded(np.ones((2, 4), "float32"))
    assert np.all(np_(padded.dense_layers[0].kernel) == 0)
    assert np.any(np_(padded.dense_layers[1].kernel) != 0)


def test_original_test_cases():
    layer = LHUCTower(output_dims=[50, 20, 1], activations=None,
                      lhuc_output_dims=[[50, 50], [50, 50, 20], [100, 1]], use_bias=True,
                      lhuc_use_bias=False, initializers=keras.initializers.HeUniform())
    out = layer([np.ones((100, 100), "float32"), np.ones((100, 50), "float32")])
    assert tuple(out.shape) == (100, 1)
    template = LHUCTower(output_dims=[1, 3, 4, 5], activations=None,
                         initializers=keras.initializers.GlorotNormal())
    assert LHUCTower.from_config(template.get_config()).get_config() == template.get_config()
    assert LHUCFromModule is LHUCTower


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"output_dims": []}, "LHUCTower: output_dims must be a non-empty list of integers >= 1"),
        ({"activations": ["relu"]}, "LHUCTower: activations must be a list of length 2"),
        ({"lhuc_output_dims": [[4, 3], [5]]},
         "LHUCTower: lhuc_output_dims[1] must be a list ending with output_dims[1] = 2; got [5]"),
        ({"lhuc_output_dims": [[3]]}, "LHUCTower: lhuc_output_dims must be a list of 2 lists"),
        ({"lhuc_output_dims": [[3], 2]}, "LHUCTower: lhuc_output_dims must be None, a list of integers"),
        ({"lhuc_output_dims": "3"}, "LHUCTower: lhuc_output_dims must be None, a list of integers"),
        ({"batch_normalization_momentum": 2.0},
         "LHUCTower: batch_normalization_momentum must be a number in [0.0, 1.0]; got 2.0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as err:
        LHUCTower(**{"output_dims": [3, 2], **kwargs})
    assert message in str(err.value)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"LHUCTower: inputs must be one tensor or a pair"):
        LHUCTower([2]).build([(None, 3)] * 3)
    with pytest.raises(ValueError, match=r"LHUCTower: dense_input must be a tensor of rank 2"):
        LHUCTower([2]).build((None, 3, 4))
    with pytest.raises(ValueError, match=r"LHUCTower: lhuc_input must be a tensor of rank 2"):
        LHUCTower([2]).build([(None, 3), (None, 3, 4)])
    with pytest.raises(ValueError, match=r"LHUCTower: lhuc_input must have a known last dimension"):
        LHUCTower([2]).build([(None, 3), (None, None)])


class TestLHUCContract(LayerContract):
    cases = [
        Case("single", lambda **kw: LHUCTower([4, 2], lhuc_output_dims=[4], **kw), _x),
        Case("pair_bn", lambda **kw: LHUCTower([4, 2], activations="tanh",
                                               enable_batch_normalization=True,
                                               lhuc_enable_batch_normalization=False, **kw),
             _pair, grad_kwargs={"training": True}),
    ]
