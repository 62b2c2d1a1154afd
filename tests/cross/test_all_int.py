"""AllInt: reference math per option, original test cases, bad input, contract."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reclayers.layers import AllInt
from tests.contract import Case, LayerContract, assert_allclose, randomize_weights, weight
from tests.reference import feature_cross as ref


def _x(rng, b, f=5, e=3):
    return rng.normal(size=(b, f, e)).astype("float32")


@pytest.mark.parametrize("keep_list", [False, True])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("out_type", ["concat", "stack", None])
def test_all_int_matches_reference(out_type, use_bias, keep_list):
    x = _x(np.random.default_rng(0), 4)
    layer = AllInt(cmp_dim=2, use_bias=use_bias, out_type=out_type, keep_list=keep_list)
    layer(x)
    randomize_weights(layer, seed=2)
    bias = weight(layer, "allint_bias") if use_bias else None
    expected = ref.merge(ref.all_int(x, weight(layer, "allint_kernel"), bias), out_type, keep_list)
    out = layer(x)
    assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    shape = layer.compute_output_shape((None, 5, 3))
    expected_shape = {"concat": (None, 10), "stack": (None, 5, 2)}.get(out_type)
    if out_type is None:
        assert shape == [(None, 2)] * 5
    else:
        assert shape == ([expected_shape] if keep_list else expected_shape)


def test_all_int_weights_and_original_call_case():
    layer = AllInt(cmp_dim=4)
    x = np.ones((100, 10, 10), "float32")
    out = keras.ops.convert_to_numpy(layer(x))
    assert out.shape == (100, 40)
    shapes = {w.path.split("/", 1)[1]: tuple(w.shape) for w in layer.weights}
    assert shapes == {"allint_kernel": (10, 4), "allint_bias": (4,)}
    randomize_weights(layer, seed=3)
    kernel, bias = weight(layer, "allint_kernel"), weight(layer, "allint_bias")
    per_field = 10 * kernel.sum(axis=0) + 10 * bias  # O[b, f, c] for ones input
    out = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(out, np.tile(per_field, (100, 10)), rtol=1e-5)


def test_all_int_unknown_embedding_size_and_regularizer():
    layer = AllInt(cmp_dim=3, regularizer=keras.regularizers.L2(0.1))
    inputs = keras.Input((4, None))
    assert tuple(layer(inputs).shape) == (None, 12)
    assert len(layer.losses) == 1
    clone = AllInt.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cmp_dim": 0}, "AllInt: cmp_dim must be an integer >= 1; got 0"),
        ({"cmp_dim": None}, "AllInt: cmp_dim must be an integer >= 1; got None"),
        ({"cmp_dim": 2, "out_type": "sum"},
         "AllInt: out_type must be one of 'stack', 'concat', None; got 'sum'"),
    ],
)
def test_all_int_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as err:
        AllInt(**kwargs)
    assert message in str(err.value)


def test_all_int_bad_inputs():
    with pytest.raises(ValueError, match=r"AllInt: inputs must be a tensor of rank 3; got shape \(2, 6\)"):
        AllInt(2)(np.ones((2, 6), "float32"))
    with pytest.raises(ValueError, match="AllInt: inputs must have a known size on axis 1"):
        AllInt(2).build((None, None, 4))


class TestAllIntContract(LayerContract):
    cases = [
        Case("concat", lambda **kw: AllInt(cmp_dim=3, **kw), _x),
        Case("stack_no_bias_keep_list",
             lambda **kw: AllInt(cmp_dim=2, use_bias=False, out_type="stack", keep_list=True, **kw), _x),
        Case("none", lambda **kw: AllInt(cmp_dim=2, out_type=None, **kw), _x),
    ]


def test_all_int_never_builds_a_fields_by_fields_intermediate(monkeypatch):
    """The cheap order: Xᵀ·K first (B, E, c), then X·P; no (B, F, F) product is ever formed."""
    from reclayers.layers import feature_cross as fc

    shapes = []
    real_matmul = keras.ops.matmul

    def recording_matmul(a, b):
        out = real_matmul(a, b)
        shapes.append(tuple(out.shape))
        return out

    monkeypatch.setattr(fc.ops, "matmul", recording_matmul)
    AllInt(cmp_dim=2)(np.ones((3, 7, 4), "float32"))
    assert shapes == [(3, 4, 2), (3, 7, 2)]
