"""CDot: reference math per option, original test cases, bad input, contract."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reclayers.layers import CDot
from tests.contract import Case, LayerContract, assert_allclose, randomize_weights, weight
from tests.reference import core as core_ref
from tests.reference import feature_cross as ref


def _x(rng, b, f=5, e=3):
    return rng.normal(size=(b, f, e)).astype("float32")


@pytest.mark.parametrize(
    "compress_units, activation", [([6, 5], "relu"), ([4], "tanh"), ([], "relu")]
)
def test_cdot_matches_reference(compress_units, activation):
    x = _x(np.random.default_rng(1), 4)
    layer = CDot(project_dim=2, compress_units=compress_units, activation=activation)
    layer(x)
    randomize_weights(layer, seed=5)
    n = len(compress_units) + 1
    tower_layers = [(weight(layer, f"dense_{i}/kernel"), weight(layer, f"dense_{i}/trainable_kernel_norm"),
                     weight(layer, f"dense_{i}/bias")) for i in range(n)]
    act = core_ref.ACTIVATIONS[activation]

    def tower(flat):
        return core_ref.mlp(flat, tower_layers, [act] * (n - 1) + [None])

    expected = ref.cdot(x, weight(layer, "project_weight"), tower)
    assert expected.shape == (4, 5 * 2 + 3 * 2)
    assert_allclose(layer(x), expected, rtol=1e-4, atol=1e-5)


def test_cdot_original_case_and_weights():
    layer = CDot(project_dim=8, compress_units=[128, 256], activation="tanh")
    out = layer(np.ones((100, 10, 10), "float32"))
    assert tuple(out.shape) == (100, 160)
    shapes = {w.path.split("/", 1)[1]: tuple(w.shape) for w in layer.weights}
    assert shapes["project_weight"] == (10, 8)
    assert shapes["compress_tower/dense_0/kernel"] == (80, 128)
    assert shapes["compress_tower/dense_2/kernel"] == (256, 80)
    assert layer.compute_output_shape((None, 10, 10)) == (None, 160)
    assert CDot.from_config(layer.get_config()).get_config() == layer.get_config()


def test_cdot_regularizer_reaches_projection_and_tower():
    layer = CDot(project_dim=2, compress_units=[3], regularizer=keras.regularizers.L2(0.1))
    layer(_x(np.random.default_rng(0), 2))
    assert len(layer.losses) == 3  # project_weight + 2 tower kernels


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"project_dim": 0, "compress_units": [4]}, "CDot: project_dim must be an integer >= 1; got 0"),
        ({"project_dim": 2, "compress_units": [4, -1]},
         "CDot: compress_units must be a non-empty list of integers >= 1; got [4, -1]"),
        ({"project_dim": 2, "compress_units": "4"},
         "CDot: compress_units must be a non-empty list of integers >= 1; got '4'"),
    ],
)
def test_cdot_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as err:
        CDot(**kwargs)
    assert message in str(err.value)


def test_cdot_bad_inputs():
    with pytest.raises(ValueError, match="CDot: inputs must be a tensor of rank 3"):
        CDot(2, [3])(np.ones((2, 6), "float32"))
    with pytest.raises(ValueError, match="CDot: inputs must have a known size on axis 2"):
        CDot(2, [3]).build((None, 4, None))


class TestCDotContract(LayerContract):
    cases = [
        Case("tanh", lambda **kw: CDot(project_dim=2, compress_units=[4], activation="tanh", **kw), _x),
    ]


def test_cdot_and_group_int_run_in_float64():
    """A float64 layer whose MLP sub-layers compute in float32 still returns float64.

    (JAX without x64 has no float64: there everything is float32.)
    """
    from reclayers.layers import GroupInt

    std = keras.backend.standardize_dtype
    x = _x(np.random.default_rng(0), 2).astype("float64")
    expected = std(keras.ops.convert_to_tensor(x).dtype)
    assert std(CDot(project_dim=2, compress_units=[3], dtype="float64")(x).dtype) == expected
    fields = [[x[:, 0, :], x[:, 1, :]], [x[:, 2, :]]]
    layer = GroupInt(use_attention=True, attention_units=[2, 1], dtype="float64")
    assert std(layer(fields).dtype) == expected
