"""DIN: golden values, NumPy reference for every mode/decay/activation/mask, masks, contract."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reclayers.layers import DIN
from tests.contract import Case, LayerContract, assert_allclose, randomize_weights, to_numpy
from tests.reference import seq as ref

MASK = np.array([[1, 1, 0, 1, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], "float32")


def _inputs(rng, b, t=5, h=4):
    return rng.normal(size=(b, h)).astype("float32"), rng.normal(size=(b, t, h)).astype("float32")


def _masked_inputs(rng, b, t=5, h=4):
    q, k = _inputs(rng, b, t, h)
    mask = (rng.uniform(size=(b, t)) > 0.4).astype("float32")
    mask[0, :] = 0.0  # an all-padding row
    return q, k, mask


def _layers(din):
    return [(to_numpy(d.kernel), to_numpy(d.trainable_kernel_norm), to_numpy(d.bias))
            for d in din.compress_tower.dense_layers]


def test_golden_values():
    q = np.array([[1.0, 2.0]], "float32")
    k = np.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]], "float32")
    init = keras.initializers.Constant(0.5)
    assert_allclose(DIN([1], initializer=init)((q, k)), np.array([[8.0, 8.5]]))
    assert_allclose(DIN([1], initializer=init)((q, k), mask=np.array([[1, 1, 0]])), np.array([[3.5, 4.0]]))
    assert_allclose(DIN([1], initializer=init, decay=True)((q, k)), np.array([[5.656854, 6.010408]]))
    assert_allclose(DIN([1], initializer=init, mode="mul")((q, k)),
                    np.array([[[3.5, 0.0], [0.0, 4.0], [4.5, 4.5]]]))


@pytest.mark.parametrize("mode", ["sum", "mul"])
@pytest.mark.parametrize("decay", [False, True])
@pytest.mark.parametrize("activation", [None, "relu"])
def test_matches_reference(mode, decay, activation):
    q, k = _inputs(np.random.default_rng(0), 3)
    din = DIN([6, 3, 1], activation=activation, mode=mode, decay=decay)
    din((q, k))
    randomize_weights(din)
    expected = ref.din(q, k, _layers(din), activation, mode, decay)
    assert_allclose(din((q, k)), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("how", ["call_mask", "bool_mask", "third_input", "lengths"])
def test_masks_match_reference(how):
    q, k = _inputs(np.random.default_rng(1), 3)
    din = DIN([4, 1], activation="sigmoid", mode="sum")
    din((q, k))
    randomize_weights(din)
    valid = MASK >= 1
    if how == "call_mask":
        out = din((q, k), mask=MASK)
    elif how == "bool_mask":
        out = din((q, k), mask=valid)
    elif how == "third_input":
        out = din((q, k, MASK))
    else:
        lengths = np.array([2, 5, 0], "int32")
        valid = ref.valid_from(None, lengths, 5)
        out = din(q, keys=k, sequence_length=lengths)
    expected = ref.din(q, k, _layers(din), "sigmoid", "sum", False, valid=valid)
    assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["sum", "mul"])
def test_padded_positions_do_not_change_result_and_all_padding_is_zero(mode):
    q, k = _inputs(np.random.default_rng(2), 3)
    din = DIN([4, 1], activation="relu", mode=mode)
    out = to_numpy(din((q, k), mask=MASK))
    k2 = np.where(MASK[..., None] >= 1, k, 1e3).astype("float32")
    assert_allclose(din((q, k2), mask=MASK), out)
    assert np.all(np.isfinite(out))
    assert np.all(out[2] == 0)


def test_keras_mask_from_embedding_is_used():
    ids = np.array([[3, 1, 0, 0], [2, 2, 4, 0]], "int32")
    queries = np.random.default_rng(3).normal(size=(2, 4)).astype("float32")
    emb = keras.layers.Embedding(6, 4, mask_zero=True)
    q_in, k_in = keras.Input((4,)), keras.Input((4,), dtype="int32")
    din = DIN([3, 1], activation="relu")
    model = keras.Model([q_in, k_in], din((q_in, emb(k_in))))
    out = model.predict([queries, ids], verbose=0)
    keys = to_numpy(emb(ids))
    assert_allclose(out, din((queries, keys), mask=ids > 0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(out, to_numpy(din((queries, keys))))


def test_original_case_constant_inputs():
    din = DIN([10, 1], initializer=keras.initializers.HeUniform())
    out = to_numpy(din((np.ones((100, 10), "float32"), np.ones((100, 15, 10), "float32"))))
    assert out.shape == (100, 10)
    assert np.allclose(out, out[0:1]) and np.allclose(out, out[:, :1])


def test_activation_none_is_identity_and_config_keeps_everything():
    din = DIN([5, 1], activation=None, mode="mul", decay=True, regularizer="l2")
    acts = din.compress_tower.activations
    assert type(acts[0]).__name__ == "Linear" and acts[1] is None
    config = din.get_config()
    assert config["mode"] == "mul" and config["decay"] is True and config["hidden_units"] == [5, 1]
    clone = DIN.from_config(config)
    assert clone.mode == "mul" and clone.decay is True


def test_kernels_get_distinct_initial_values():
    din = DIN([4, 4, 1])
    din((np.ones((2, 1), "float32"), np.ones((2, 3, 1), "float32")))
    k1, k2 = (to_numpy(d.kernel) for d in din.compress_tower.dense_layers[:2])
    assert not np.allclose(k1[:4], k2)


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs,message", [
    ({"hidden_units": [4, 2]}, "DIN: hidden_units[-1] must be 1 (one score per position); got 2"),
    ({"hidden_units": []}, "DIN: hidden_units must be a non-empty list of integers >= 1; got []"),
    ({"hidden_units": [0, 1]}, "DIN: hidden_units must be a non-empty list of integers >= 1; got [0, 1]"),
    ({"hidden_units": [1], "mode": 3}, "DIN: mode must be a string ('sum' or another value); got 3"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as err:
        DIN(**kwargs)
    assert str(err.value) == message


@pytest.mark.parametrize("q_shape,k_shape,message", [
    ((2, 4, 1), (2, 3, 4), "DIN: queries must be a tensor of rank 2; got shape (2, 4, 1) (rank 3)"),
    ((2, 4), (2, 4), "DIN: keys must be a tensor of rank 3; got shape (2, 4) (rank 2)"),
    ((2, 5), (2, 3, 4), "DIN: queries.shape[-1] must be equal to keys.shape[-1]=4; got 5"),
])
def test_bad_shapes(q_shape, k_shape, message):
    with pytest.raises(ValueError) as err:
        DIN([1])((np.ones(q_shape, "float32"), np.ones(k_shape, "float32")))
    assert str(err.value) == message


# ---------------------------------------------------------------------------- contract


class TestDINContract(LayerContract):
    cases = [
        Case("sum_tanh", lambda **kw: DIN([6, 1], activation="tanh", **kw), _inputs),
        Case("mul_decay_masked", lambda **kw: DIN([4, 1], mode="mul", decay=True, **kw), _masked_inputs),
        Case("sum_relu_masked", lambda **kw: DIN([4, 1], activation="relu", **kw), _masked_inputs,
             fd_check=False, keras_save=False),
    ]
