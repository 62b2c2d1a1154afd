"""AddBias, SumPooling/AvgPooling/MaxPooling, LogitCorrection: reference math, errors, contract."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reclayers.layers import AddBias, AvgPooling, LogitCorrection, MaxPooling, SumPooling
from tests.contract import (
    Case,
    LayerContract,
    WeightlessContract,
    assert_allclose,
    randomize_weights,
    weight,
)
from tests.reference import core as ref

# ---------------------------------------------------------------- AddBias


@pytest.mark.parametrize("shape", [(4, 10), (2, 3, 4), (2, 3, 4, 5), (2, 2, 3, 4, 2)])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_add_bias_matches_reference(shape, data_format):
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    layer = AddBias()
    layer(x, data_format=data_format)
    randomize_weights(layer)
    assert weight(layer, "bias").shape == shape[1:]
    assert_allclose(layer(x, data_format=data_format), x + weight(layer, "bias")[None], rtol=1e-6)


def test_add_bias_zero_init_is_identity():
    x = np.random.default_rng(1).uniform(size=(100, 10)).astype("float32")
    assert_allclose(AddBias(initializer=keras.initializers.Zeros())(x), x)


def test_add_bias_errors():
    with pytest.raises(ValueError, match="AddBias: data_format must be one of 'channels_first', "
                                         "'channels_last'; got 'nchw'"):
        AddBias()(np.ones((2, 3), "float32"), data_format="nchw")
    with pytest.raises(ValueError, match="AddBias: inputs must be a tensor of rank 2 to 5"):
        AddBias().build((2, 1, 1, 1, 1, 1))


class TestAddBiasContract(LayerContract):
    cases = [
        Case("rank2", lambda **kw: AddBias(initializer="random_normal", **kw),
             lambda rng, b: rng.normal(size=(b, 6)).astype("float32")),
        Case("rank4_channels_first", lambda **kw: AddBias(initializer="random_normal", **kw),
             lambda rng, b: rng.normal(size=(b, 3, 2, 2)).astype("float32"),
             call_kwargs={"data_format": "channels_first"}),
    ]


# ---------------------------------------------------------------- Pooling

POOLS = [(SumPooling, lambda xs: np.sum(xs, axis=0)), (AvgPooling, lambda xs: np.mean(xs, axis=0)),
         (MaxPooling, lambda xs: np.max(xs, axis=0))]


@pytest.mark.parametrize("cls, fn", POOLS)
def test_pooling_matches_numpy(cls, fn):
    xs = [np.random.default_rng(i).uniform(size=(100, 10)).astype("float32") for i in range(5)]
    assert_allclose(cls()(xs), fn(np.stack(xs)), rtol=1e-6)
    assert_allclose(cls()(tuple(xs[:2])), fn(np.stack(xs[:2])), rtol=1e-6)
    assert_allclose(cls()([xs[0]]), xs[0])


@pytest.mark.parametrize("cls", [SumPooling, AvgPooling, MaxPooling])
def test_pooling_errors(cls):
    name = cls.__name__
    with pytest.raises(TypeError, match=f"{name}: inputs must be a list of tensors"):
        cls()(np.ones((2, 3), "float32"))
    with pytest.raises(ValueError, match=f"{name}: inputs must all have the same shape"):
        cls()([np.ones((2, 3), "float32"), np.ones((2, 4), "float32")])
    with pytest.raises(ValueError, match=f"{name}: inputs must be a non-empty list"):
        cls().call([])
    # Through Keras's __call__ too: an empty list is a list, so a ValueError, not a TypeError.
    with pytest.raises(ValueError, match=f"{name}: inputs must be a non-empty list of tensors "
                                         r"\(at least one tensor is needed\); got \[\]"):
        cls()([])


def _three(rng, b):
    return [rng.normal(size=(b, 4)).astype("float32") for _ in range(3)]


class TestPoolingContract(WeightlessContract, LayerContract):
    cases = [Case(c.__name__, c, _three, fd_check=c is not MaxPooling)
             for c in (SumPooling, AvgPooling, MaxPooling)]


# ---------------------------------------------------------------- LogitCorrection


@pytest.mark.parametrize("sample_bias", [False, True])
@pytest.mark.parametrize("with_rate", [False, True])
@pytest.mark.parametrize("activation", [None, "tanh", "sigmoid"])
def test_logit_correction_matches_reference(sample_bias, with_rate, activation):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 10)).astype("float32") * 5
    r = rng.uniform(1e-3, 1.0, size=(100, 1)).astype("float32")
    layer = LogitCorrection(activation=activation, sample_bias=sample_bias)
    y = layer((x, r)) if with_rate else layer(x)
    act = ref.ACTIVATIONS[activation] if activation else None
    expected = ref.logit_correction(x.astype("float64"), r if with_rate else None, sample_bias, act)
    assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_logit_correction_same_count_shapes_do_not_broadcast_to_square():
    x = np.zeros((4, 1), "float32")
    r = np.array([0.5, 0.25, 1.0, 0.1], "float32")
    y = keras.ops.convert_to_numpy(LogitCorrection()((x, r)))
    assert y.shape == (4, 1)
    np.testing.assert_allclose(y[:, 0], -np.log(r), rtol=1e-6)


def test_logit_correction_log_sigmoid_is_stable():
    y = keras.ops.convert_to_numpy(LogitCorrection(sample_bias=True)(
        np.array([[-100.0, 100.0]], "float32")))
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, [[-100.0, 0.0]], atol=1e-5)


def test_logit_correction_bad_rank():
    with pytest.raises(ValueError, match="LogitCorrection: logits must be a tensor of rank 1 or 2"):
        LogitCorrection().build([(2, 3, 4), (2, 1)])


class TestLogitCorrectionContract(WeightlessContract, LayerContract):
    cases = [Case("rate_sample_bias", lambda **kw: LogitCorrection("sigmoid", sample_bias=True, **kw),
                  lambda rng, b: (rng.normal(size=(b, 1)).astype("float32"),
                                  rng.uniform(0.1, 1.0, size=(b, 1)).astype("float32")))]
