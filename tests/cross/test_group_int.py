"""ffm op and GroupInt/FFM: reference math per option, original test cases, bad input, contract."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reclayers.layers import FFM, GroupInt, ffm
from reclayers.layers import feature_cross as fc
from tests.contract import (
    Case,
    LayerContract,
    WeightlessContract,
    assert_allclose,
    input_gradients,
    projected_sum,
    randomize_weights,
    weight,
)
from tests.reference import core as core_ref
from tests.reference import feature_cross as ref


def _fields(rng, b, n, e=4):
    return [rng.normal(size=(b, e)).astype("float32") for _ in range(n)]


def _pair(n_left=3, n_right=2, e=4):
    return lambda rng, b: [_fields(rng, b, n_left, e), _fields(rng, b, n_right, e)]


# ----------------------------------------------------------------------------------------------
# ffm
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("int_type, width", [("multiply", 480), ("dot", 120)])
def test_ffm_original_case_matches_reference(int_type, width):
    rng = np.random.default_rng(0)
    left = rng.uniform(0, 10, size=(8, 40)).astype("float32")
    right = rng.uniform(0, 10, size=(8, 48)).astype("float32")
    out = ffm(left, right, 4, int_type)
    assert tuple(out.shape) == (8, width)
    assert_allclose(out, ref.ffm(left, right, 4, int_type), rtol=1e-5)


@pytest.mark.parametrize("int_type", ["multiply", "dot"])
def test_ffm_gradients_match_reference(int_type):
    rng = np.random.default_rng(1)
    left = rng.uniform(0, 10, size=(8, 40)).astype("float32")
    right = rng.uniform(0, 10, size=(8, 48)).astype("float32")
    g = rng.normal(size=tuple(ffm(left, right, 4, int_type).shape)).astype("float32")
    gl, gr = input_gradients(lambda a, b: projected_sum(ffm(a, b, 4, int_type), g), [left, right])
    assert gl.shape == (8, 40) and gr.shape == (8, 48)
    el, er = ref.ffm_grads(left, right, 4, g, int_type)
    assert_allclose(gl, el, rtol=1e-4, atol=1e-4)
    assert_allclose(gr, er, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "left, right, kwargs, message",
    [
        ((8, 10), (8, 8), {}, "ffm: left must have a width that is a multiple of dim_size 4"),
        ((8, 8), (8, 9), {}, "ffm: right must have a width that is a multiple of dim_size 4"),
        ((8, 2, 4), (8, 8), {}, "ffm: left must be a tensor of rank 2"),
        ((8, 8), (8, 2, 4), {}, "ffm: right must be a tensor of rank 2"),
        ((8, 8), (6, 8), {}, "ffm: left and right must have the same batch size; got 8 and 6"),
        ((8, 8), (8, 8), {"int_type": "add"}, "ffm: int_type must be one of 'multiply', 'dot'; got 'add'"),
        ((8, 8), (8, 8), {"dim_size": 0}, "ffm: dim_size must be an integer >= 1; got 0"),
    ],
)
def test_ffm_bad_input(left, right, kwargs, message):
    kwargs = {"dim_size": 4, **kwargs}
    with pytest.raises(ValueError) as err:
        ffm(np.ones(left, "float32"), np.ones(right, "float32"), **kwargs)
    assert message in str(err.value)


# ----------------------------------------------------------------------------------------------
# GroupInt
# ----------------------------------------------------------------------------------------------


def test_ffm_alias_and_exports():
    assert FFM is GroupInt
    assert fc.__all__ == ["ffm", "GroupInt", "FFM", "AllInt", "CDot", "CAN", "DCN", "CIN"]


@pytest.mark.parametrize("keep_list", [False, True])
@pytest.mark.parametrize("interaction_type", ["multiply", "dot"])
def test_group_int_matches_reference(interaction_type, keep_list):
    rng = np.random.default_rng(2)
    left, right = _fields(rng, 5, 3), _fields(rng, 5, 2)
    layer = GroupInt(interaction_type=interaction_type, keep_list=keep_list)
    out = layer([left, right])
    expected = ref.group_int(left, right, interaction_type)
    assert expected.shape == ((5, 24) if interaction_type == "multiply" else (5, 6))
    if keep_list:
        assert isinstance(out, list) and len(out) == 1
    assert_allclose(out, [expected] if keep_list else expected, rtol=1e-5)
    assert layer.compute_output_shape([[(None, 4)] * 3, [(None, 4)] * 2]) == (
        [(None, expected.shape[1])] if keep_list else (None, expected.shape[1])
    )


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_group_int_attention_matches_reference(activation):
    rng = np.random.default_rng(3)
    left, right = _fields(rng, 6, 2), _fields(rng, 6, 3)
    layer = GroupInt(use_attention=True, attention_units=[5, 3, 1], activation=activation)
    layer([left, right])
    randomize_weights(layer, seed=4)
    layers = [(weight(layer, f"dense_{i}/kernel"), weight(layer, f"dense_{i}/trainable_kernel_norm"),
               weight(layer, f"dense_{i}/bias")) for i in range(3)]
    act = core_ref.ACTIVATIONS[activation]

    def attention(v):
        return core_ref.mlp(v, layers, [act, act, None])

    expected = ref.group_int(left, right, "multiply", attention=attention)
    assert_allclose(layer([left, right]), expected, rtol=1e-4, atol=1e-5)


def test_group_int_original_call_case():
    ones = [np.ones((100, 10), "float32")]
    layer = GroupInt(name="test_dense0", out_type="concat")
    out = keras.ops.convert_to_numpy(layer([ones * 5, ones * 3]))
    assert out.shape == (100, 150)
    np.testing.assert_array_equal(out, np.ones((100, 150)))
    assert out.sum() == 15000


def test_group_int_original_attention_case():
    ones = [np.ones((100, 10), "float32")]
    layer = GroupInt(interaction_type="multiply", use_attention=True, attention_units=[15, 10, 1],
                     activation="relu")
    out = keras.ops.convert_to_numpy(layer([ones * 5, ones * 3]))
    assert out.shape == (100, 150)
    np.testing.assert_allclose(out, np.full_like(out, out[0, 0]), rtol=1e-6)


def test_group_int_original_params_cases_and_attention_weights():
    GroupInt(interaction_type="dot", use_attention=False, attention_units=[128, 256, 1], activation="relu")
    layer = GroupInt(interaction_type="multiply", use_attention=True, attention_units=[128, 256, 1],
                     activation="relu")
    layer.build([[(None, 10)] * 2, [(None, 10)] * 3])
    shapes = {w.path.split("/", 1)[1]: tuple(w.shape) for w in layer.weights}
    assert shapes["groupint_attention_mlp/dense_0/kernel"] == (10, 128)
    assert shapes["groupint_attention_mlp/dense_2/kernel"] == (256, 1)
    assert shapes["groupint_attention_mlp/dense_2/trainable_kernel_norm"] == (1,)
    clone = GroupInt.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize("interaction_type", ["multiply", "dot"])
def test_group_int_out_type_formats_the_pairs(interaction_type):
    rng = np.random.default_rng(5)
    left, right = _fields(rng, 3, 2), _fields(rng, 3, 2)
    flat = ref.group_int(left, right, interaction_type=interaction_type)
    width = 4 if interaction_type == "multiply" else 1  # E = 4; 2 x 2 fields give 4 pairs
    pairs = flat.reshape(3, 4, width)
    concat = GroupInt(interaction_type=interaction_type, out_type="concat")
    assert_allclose(concat([left, right]), flat, rtol=1e-5)
    stack = GroupInt(interaction_type=interaction_type, out_type="stack")
    assert_allclose(stack([left, right]), pairs, rtol=1e-5)
    assert stack.compute_output_shape([[(None, 4)] * 2, [(None, 4)] * 2]) == (None, 4, width)
    listed = GroupInt(interaction_type=interaction_type, out_type=None)([left, right])
    assert isinstance(listed, list) and len(listed) == 4
    assert_allclose(listed[3], pairs[:, 3], rtol=1e-5)
    assert GroupInt(out_type=None).get_config()["out_type"] is None


def test_group_int_regularizer_reaches_attention_kernels():
    layer = GroupInt(use_attention=True, attention_units=[3, 1], regularizer=keras.regularizers.L2(0.1))
    layer([_fields(np.random.default_rng(0), 2, 2), _fields(np.random.default_rng(1), 2, 1)])
    assert len(layer.losses) == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"interaction_type": "add"},
         "GroupInt: interaction_type must be one of 'multiply', 'dot'; got 'add'"),
        ({"interaction_type": "dot", "use_attention": True, "attention_units": [4, 1]},
         "GroupInt: use_attention must be False when interaction_type is 'dot'; got True"),
        ({"use_attention": True},
         "GroupInt: attention_units must be a non-empty list of integers >= 1 ending with 1; got None"),
        ({"use_attention": True, "attention_units": [4, 2]},
         "GroupInt: attention_units must be a non-empty list of integers >= 1 ending with 1; got [4, 2]"),
        ({"attention_units": [4, 0]},
         "GroupInt: attention_units must be a non-empty list of integers >= 1; got [4, 0]"),
        ({"out_type": "sum"}, "GroupInt: out_type must be one of 'stack', 'concat', None; got 'sum'"),
    ],
)
def test_group_int_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as err:
        GroupInt(**kwargs)
    assert message in str(err.value)


def test_group_int_bad_inputs():
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match=r"GroupInt: inputs must be a pair \(left_fields, right_fields\)"):
        GroupInt()([np.ones((2, 4), "float32"), np.ones((2, 4), "float32")])
    with pytest.raises(TypeError, match="GroupInt: inputs must be a pair"):
        GroupInt()([_fields(rng, 2, 2), []])
    with pytest.raises(ValueError, match=r"GroupInt: inputs must share one embedding size E .* \[4, 4, 3\]"):
        GroupInt()([_fields(rng, 2, 2), _fields(rng, 2, 1, e=3)])
    with pytest.raises(ValueError, match=r"GroupInt: right_fields\[0\] must be a tensor of rank 2"):
        GroupInt()([_fields(rng, 2, 2), [np.ones((2, 1, 4), "float32")]])
    with pytest.raises(ValueError, match=r"GroupInt: left_fields\[0\] must have a known size on axis 1"):
        GroupInt().build([[(None, None)], [(None, 4)]])


class TestGroupIntWeightlessContract(WeightlessContract, LayerContract):
    cases = [
        Case("multiply_keep_list", lambda **kw: GroupInt(keep_list=True, **kw), _pair()),
        Case("dot", lambda **kw: GroupInt(interaction_type="dot", **kw), _pair(2, 3)),
    ]


class TestGroupIntContract(LayerContract):
    cases = [
        Case("attention", lambda **kw: GroupInt(use_attention=True, attention_units=[4, 1],
                                                activation="tanh", **kw), _pair(2, 2)),
    ]
