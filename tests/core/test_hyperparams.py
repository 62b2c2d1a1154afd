"""The params() construction style: ``Cls.params().instantiate()``."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reclayers import layers
from reclayers.hyperparams import InstantiableParams, Params, params_for
from reclayers.layers import advanced_activations as aa


def test_dense_params_instantiate():
    p = layers.Dense.params()
    assert p.units is None and p.activation is None and p.use_bias is True
    p.units = 100
    p["activation"] = keras.activations.sigmoid
    p.kernel_initializer = keras.initializers.GlorotNormal()
    layer = p.instantiate()
    assert isinstance(layer, layers.Dense) and layer.units == 100
    assert layer.name.startswith("Dense")
    assert tuple(layer(np.ones((100, 100), "float32")).shape) == (100, 100)


def test_names_are_unique_and_base_args_forwarded():
    p1, p2 = layers.MLP.params(), layers.MLP.params()
    assert p1.name != p2.name
    p1.output_dims = [3, 1]
    p1.trainable = False
    p1.dtype = "float64"
    mlp = p1.instantiate()
    assert mlp.trainable is False and mlp.dtype_policy.name == "float64"


def test_copy_is_independent_and_equality():
    p = layers.AddBias.params()
    q = p.copy()
    assert p == q
    q.regularizer = "l2"
    assert p.regularizer is None and p != q


def test_unknown_field_suggests_close_names():
    p = layers.Dense.params()
    with pytest.raises(AttributeError, match="did you mean"):
        p.unitz = 3


def test_define_rules_and_freeze():
    p = Params()
    p.define("alpha", 1)
    with pytest.raises(AttributeError):
        p.define("alpha", 2)
    with pytest.raises(AttributeError):
        p.define("Bad", 2)
    p.define("inner", Params())
    p.inner.define("beta", 3)
    assert "inner.beta" in p and p.get("inner.beta") == 3
    p.set(**{"inner.beta": 4})
    assert p.inner.beta == 4
    assert dict(p.iter_params())["alpha"] == 1 and len(p) == 2
    p.freeze()
    assert p.is_immutable()
    with pytest.raises(TypeError):
        p.alpha = 5
    p2 = Params()
    p2.define("x", 1)
    p2.delete("x")
    assert len(p2) == 0


def test_keras_layers_get_params_through_params_for():
    p = params_for(layers.Conv1D)
    p.filters, p.kernel_size = 2, 3
    assert isinstance(p.instantiate(), keras.layers.Conv1D)
    assert isinstance(params_for(keras.layers.Embedding), InstantiableParams)


def test_importing_reclayers_changes_no_keras_class():
    """Only reclayers' classes get ``params``; no attribute of a Keras class comes from us."""
    import reclayers.models  # noqa: F401  (everything that could patch is imported)

    for name in dir(keras.layers):
        cls = getattr(keras.layers, name)
        if not isinstance(cls, type):
            continue
        for attr, value in vars(cls).items():
            func = getattr(value, "__func__", value)
            module = getattr(func, "__module__", None) or ""
            assert not module.startswith("reclayers"), f"keras.layers.{name}.{attr} is ours"
    assert not hasattr(keras.layers.Conv2D, "params")
    assert not hasattr(keras.layers.Layer, "params")


@pytest.mark.parametrize("name", ["thresholdedrelu", "exponential", "gelu", "hardsigmoid", "linear",
                                  "selu", "sigmoid", "softplus", "softsign", "swish", "tanh"])
def test_activation_classes_have_params(name):
    assert aa.get(name).__class__.params().instantiate() is not None
