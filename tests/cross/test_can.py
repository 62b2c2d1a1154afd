"""CAN: reference math per mode, original test cases, masking, input gradients, bad input, contract."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reclayers.layers import CAN
from tests.contract import (
    Case,
    LayerContract,
    WeightlessContract,
    assert_allclose,
    input_gradients,
    projected_sum,
)
from tests.reference import core as core_ref
from tests.reference import feature_cross as ref

U = 3
#: (is_seq, is_stacked) -> user shape without the batch axis (F = 2 fields, S = 4 positions).
USER_SHAPES = {(True, True): (2, 4, U), (False, True): (2, U), (True, False): (4, U), (False, False): (U,)}
MODES = list(USER_SHAPES)


def _inputs(is_seq, is_stacked, layer_num=2):
    def make(rng, b):
        user = rng.normal(size=(b,) + USER_SHAPES[(is_seq, is_stacked)]).astype("float32")
        item = rng.normal(scale=0.5, size=(b, layer_num * (U * U + U))).astype("float32")
        return [user, item]

    return make


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("is_seq, is_stacked", MODES)
def test_can_matches_reference(is_seq, is_stacked, activation):
    user, item = _inputs(is_seq, is_stacked, layer_num=3)(np.random.default_rng(0), 5)
    layer = CAN(layer_num=3, activation=activation, is_seq=is_seq, is_stacked=is_stacked)
    out = layer([user, item])
    expected = ref.can(user, item, 3, core_ref.ACTIVATIONS[activation], is_seq, is_stacked)
    assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    shape = layer.compute_output_shape([(None,) + user.shape[1:], (None, item.shape[1])])
    assert shape == (None,) + expected.shape[1:]


@pytest.mark.parametrize("is_seq, is_stacked", MODES)
def test_can_input_gradients_match_reference_differences(is_seq, is_stacked):
    user, item = _inputs(is_seq, is_stacked)(np.random.default_rng(1), 2)
    layer = CAN(layer_num=2, activation="tanh", is_seq=is_seq, is_stacked=is_stacked)
    g = np.random.default_rng(2).normal(size=layer.compute_output_shape([user.shape, item.shape]))
    grads = input_gradients(lambda a, b: projected_sum(layer([a, b]), g), [user, item])

    def ref_loss(a, b):
        return float(np.sum(g * ref.can(a, b, 2, np.tanh, is_seq, is_stacked)))

    rng = np.random.default_rng(3)
    for i, arr in enumerate((user, item)):
        d = rng.normal(size=arr.shape)
        plus = [user.astype("float64"), item.astype("float64")]
        minus = [user.astype("float64"), item.astype("float64")]
        plus[i] = plus[i] + 1e-6 * d
        minus[i] = minus[i] - 1e-6 * d
        numeric = (ref_loss(*plus) - ref_loss(*minus)) / 2e-6
        np.testing.assert_allclose(float(np.sum(grads[i] * d)), numeric, rtol=1e-3, atol=1e-4)


def test_can_original_seq_case():
    layer = CAN(layer_num=2, activation="relu", is_seq=True, is_stacked=True)
    out = keras.ops.convert_to_numpy(layer([np.ones((128, 10, 12, 10), "float32"),
                                            np.ones((128, 220), "float32")]))
    assert out.shape == (128, 10, 10)
    np.testing.assert_array_equal(out, np.full((128, 10, 10), 1332.0))
    assert out.sum() == 17049600


def test_can_original_call_case():
    layer = CAN(layer_num=2, activation="relu", is_seq=False, is_stacked=True)
    out = keras.ops.convert_to_numpy(layer([np.ones((128, 10, 10), "float32"),
                                            np.ones((128, 220), "float32")]))
    assert out.shape == (128, 10, 10)
    np.testing.assert_array_equal(out, np.full((128, 10, 10), 111.0))
    assert out.sum() == 1420800


def test_can_original_params_cases_round_trip():
    for activation in ("sigmoid", "tanh"):
        layer = CAN(layer_num=8, activation=activation, is_seq=False, is_stacked=True)
        clone = CAN.from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()
        assert clone.get_config()["activation"] == activation


def test_can_batch_of_one_keeps_batch_axis():
    layer = CAN(layer_num=1, is_seq=False, is_stacked=False)
    out = layer([np.ones((1, U), "float32"), np.ones((1, U * U + U), "float32")])
    assert tuple(out.shape) == (1, U)
    out = CAN(layer_num=1, is_seq=False, is_stacked=False)([np.ones((1, 1), "float32"),
                                                            np.ones((1, 2), "float32")])
    assert tuple(out.shape) == (1, 1)


@pytest.mark.parametrize("is_stacked", [True, False])
def test_can_mask_excludes_padding(is_stacked):
    user, item = _inputs(True, is_stacked)(np.random.default_rng(4), 3)
    mask = np.ones((3, 4), bool)
    mask[0, 2:] = False
    mask[1, :] = False  # a row that is entirely padding
    layer = CAN(layer_num=2, is_seq=True, is_stacked=is_stacked)
    out = keras.ops.convert_to_numpy(layer([user, item], mask=mask))
    expected = ref.can(user, item, 2, core_ref.relu, True, is_stacked, mask=mask)
    assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert np.all(np.isfinite(out)) and np.all(out[1] == 0)
    noisy = user.copy()
    noisy[0, ..., 2:, :] = 1e3  # padded positions never change the result
    assert_allclose(layer([noisy, item], mask=mask), out, rtol=1e-5, atol=1e-5)


def test_can_keras_mask_from_user_side():
    user, item = _inputs(True, False)(np.random.default_rng(5), 2)
    user[0, 3:] = 0.0
    user_in, item_in = keras.Input((4, U)), keras.Input((2 * (U * U + U),))
    masked = keras.layers.Masking(0.0)(user_in)
    model = keras.Model([user_in, item_in], CAN(2, is_seq=True, is_stacked=False)([masked, item_in]))
    mask = np.ones((2, 4), bool)
    mask[0, 3:] = False
    expected = ref.can(user, item, 2, core_ref.relu, True, False, mask=mask)
    assert_allclose(model([user, item]), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"layer_num": 0}, "CAN: layer_num must be an integer >= 1; got 0"),
        ({"layer_num": 1.5}, "CAN: layer_num must be an integer >= 1; got 1.5"),
    ],
)
def test_can_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as err:
        CAN(**kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "kwargs, shapes, message",
    [
        ({}, [(4, 2, 3), (4, 23)],
         "CAN: item_emb must have width layer_num * (u**2 + u) = 24 (layer_num=2, u=3); got shape (4, 23)"),
        ({}, [(4, 3), (4, 24)],
         "CAN: user_emb must be a tensor of rank 3 (is_seq=False, is_stacked=True); got shape (4, 3)"),
        ({"is_seq": True}, [(4, 2, 3), (4, 24)],
         "CAN: user_emb must be a tensor of rank 4 (is_seq=True, is_stacked=True); got shape (4, 2, 3)"),
        ({}, [(4, 2, 3), (5, 24)],
         "CAN: user_emb and item_emb must have the same batch size; got 4 and 5"),
        ({}, [(4, 2, 3), (4, 2, 12)], "CAN: item_emb must be a tensor of rank 2"),
    ],
)
def test_can_bad_inputs(kwargs, shapes, message):
    with pytest.raises(ValueError) as err:
        CAN(**kwargs)([np.ones(s, "float32") for s in shapes])
    assert message in str(err.value)


def test_can_bad_input_structure_and_unknown_width():
    with pytest.raises(ValueError, match=r"CAN: inputs must be a pair \(user_emb, item_emb\)"):
        CAN().build((None, 2, 3))
    with pytest.raises(ValueError, match="CAN: user_emb must have a known size on axis -1"):
        CAN().build([(None, 2, None), (None, 24)])


def _can_factory(is_seq, is_stacked):
    return lambda **kw: CAN(layer_num=2, activation="tanh", is_seq=is_seq, is_stacked=is_stacked, **kw)


class TestCANContract(WeightlessContract, LayerContract):
    cases = [
        Case(f"seq{int(s)}_stacked{int(t)}", _can_factory(s, t), _inputs(s, t)) for s, t in MODES
    ]
