"""advanced_activations: formulas, get/serialize/deserialize rules, round trips."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from reclayers.layers import advanced_activations as aa
from tests.contract import Case, LayerContract, WeightlessContract, assert_allclose
from tests.reference import core as ref

NAMES = ["relu", "leakyrelu", "elu", "softmax", "thresholdedrelu", "prelu", "exponential", "gelu",
         "hardsigmoid", "linear", "selu", "sigmoid", "softplus", "softsign", "swish", "tanh",
         "sigmoid2", "hard_sigmoid", "silu"]


@pytest.mark.parametrize("name", NAMES)
def test_every_activation_matches_its_formula(name):
    x = np.random.default_rng(0).uniform(-3, 3, size=(10, 20)).astype("float32")
    layer = aa.get(name)
    assert isinstance(layer, keras.layers.Layer)
    assert_allclose(layer(x), ref.ACTIVATIONS[name](x.astype("float64")), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_get_serialize_get_round_trip(name):
    layer = aa.get(name)
    config = aa.serialize(layer)
    assert isinstance(config, dict)
    json.dumps(config)  # JSON-compatible
    again = aa.get(config)
    assert type(again) is type(layer)
    assert aa.serialize(again) == config
    assert type(aa.get(json.dumps(config))) is type(layer)


@pytest.mark.parametrize("layer", [keras.layers.ReLU(max_value=6.0), keras.layers.PReLU(),
                                   aa.ThresholdedReLU(theta=0.5), keras.layers.ELU(alpha=0.7),
                                   keras.layers.Softmax(axis=1),
                                   keras.layers.LeakyReLU(negative_slope=0.1)])
def test_keras_layer_instances_keep_their_arguments(layer):
    config = aa.serialize(layer)
    clone = aa.deserialize(config)
    x = np.random.default_rng(1).normal(size=(4, 6)).astype("float32") * 4
    assert_allclose(clone(x), layer(x), rtol=1e-6)


def test_leaky_relu_uses_legacy_alpha_key():
    config = aa.serialize(keras.layers.LeakyReLU(negative_slope=0.1))
    assert config == {"name": "LeakyReLU", "alpha": 0.1}
    assert aa.deserialize(config).negative_slope == pytest.approx(0.1)


def test_legacy_repr_strings_parse_without_eval():
    layer = aa.get("{'name': 'ELU', 'alpha': 0.5}")
    assert isinstance(layer, keras.layers.ELU) and layer.alpha == pytest.approx(0.5)
    with pytest.raises(ValueError):
        aa.get("__import__('os').getcwd()")


@pytest.mark.parametrize("fn, cls", [(keras.activations.relu, keras.layers.ReLU),
                                     (keras.activations.tanh, aa.Tanh),
                                     (keras.activations.sigmoid, aa.Sigmoid),
                                     (keras.activations.softsign, aa.Softsign),
                                     (keras.activations.softplus, aa.Softplus),
                                     (keras.activations.softmax, keras.layers.Softmax),
                                     (keras.activations.exponential, aa.Exponential),
                                     (keras.activations.elu, keras.layers.ELU),
                                     (keras.activations.gelu, aa.Gelu),
                                     (keras.activations.hard_sigmoid, aa.HardSigmoid),
                                     (keras.activations.selu, aa.Selu),
                                     (keras.activations.swish, aa.Swish),
                                     (keras.activations.linear, aa.Linear),
                                     (keras.activations.leaky_relu, keras.layers.LeakyReLU)])
def test_keras_functions_resolve_by_name(fn, cls):
    assert type(aa.get(fn)) is cls


def test_get_resolution_rules():
    assert aa.get(None) is None
    inst = keras.layers.PReLU()
    assert aa.get(inst) is inst
    assert isinstance(aa.get(aa.Sigmoid2), aa.Sigmoid2)
    fn = lambda x: x  # noqa: E731
    assert aa.get(fn) is fn
    with pytest.raises(TypeError, match="Could not interpret activation function identifier"):
        aa.get(3)


def test_unknown_names_raise_value_error():
    with pytest.raises(ValueError, match="advanced_activations.deserialize: name must be one of"):
        aa.deserialize({"name": "nope"})
    with pytest.raises(ValueError):
        aa.get("relu7")


def test_deserialize_does_not_mutate_its_argument():
    config = {"name": "ELU", "alpha": 0.5}
    aa.deserialize(config)
    assert config == {"name": "ELU", "alpha": 0.5}


def test_sigmoid2_serializes():
    assert aa.serialize(aa.Sigmoid2()) == {"name": "Sigmoid2"}
    assert aa.serialize(lambda x: x) is None


def test_thresholded_relu_is_strict_and_validates():
    y = aa.ThresholdedReLU(theta=1.0)(np.array([[0.5, 1.0, 1.5]], "float32"))
    assert_allclose(y, np.array([[0.0, 0.0, 1.5]]))
    with pytest.raises(ValueError, match="ThresholdedReLU: theta must be a number >= 0; got -1"):
        aa.ThresholdedReLU(theta=-1)


def _x(rng, b):
    return rng.normal(size=(b, 7)).astype("float32")


class TestActivationContract(WeightlessContract, LayerContract):
    cases = [
        Case("sigmoid2", lambda **kw: aa.Sigmoid2(**kw), _x),
        Case("gelu", lambda **kw: aa.Gelu(**kw), _x),
        Case("thresholdedrelu", lambda **kw: aa.ThresholdedReLU(theta=0.2, **kw), _x,
             fd_check=False),
    ]
