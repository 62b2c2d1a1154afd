"""DMR_U2I: NumPy reference for every activation / attention option and masks, contract."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reclayers.layers import DMR_U2I
from tests.contract import (
    Case,
    LayerContract,
    assert_allclose,
    randomize_weights,
    to_numpy,
    trainable_gradients,
)
from tests.reference import seq as ref

MASK = np.array([[1, 1, 0, 1, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], "float32")


def _inputs(rng, b, t=5, e=4, i=3):
    return rng.normal(size=(b, i)).astype("float32"), rng.normal(size=(b, t, e)).astype("float32")


def _masked_inputs(rng, b, t=5, e=4, i=3):
    items, seq = _inputs(rng, b, t, e, i)
    mask = (rng.uniform(size=(b, t)) > 0.4).astype("float32")
    mask[0, :] = 0.0
    return items, seq, mask


def _reference(layer, items, seq, activation, attention_activation, valid=None):
    if activation == "PReLU":
        alpha = to_numpy(layer.output_activation.alpha)

        def out_act(x):
            return ref.prelu(x, alpha)
    else:
        out_act = ref.ACT[activation]
    return ref.dmr_u2i(
        items, seq, to_numpy(layer.pos_emb), to_numpy(layer.emb_weight), to_numpy(layer.z_weight),
        to_numpy(layer.bias), to_numpy(layer.dense.kernel), to_numpy(layer.dense.bias), out_act,
        ref.ACT[attention_activation], valid,
    )


@pytest.mark.parametrize("activation", ["PReLU", "relu", None])
@pytest.mark.parametrize("attention_activation", ["tanh", None])
def test_matches_reference(activation, attention_activation):
    items, seq = _inputs(np.random.default_rng(0), 3)
    layer = DMR_U2I(6, activation=activation, attention_activation=attention_activation)
    layer((items, seq))
    randomize_weights(layer)
    expected = _reference(layer, items, seq, activation, attention_activation)
    assert_allclose(layer((items, seq)), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("how", ["call_mask", "bool_mask", "third_input", "lengths"])
def test_masks_match_reference(how):
    items, seq = _inputs(np.random.default_rng(1), 3)
    layer = DMR_U2I(6, activation="relu")
    layer((items, seq))
    randomize_weights(layer)
    valid = MASK >= 1
    if how == "call_mask":
        out = layer((items, seq), mask=MASK)
    elif how == "bool_mask":
        out = layer((items, seq), mask=valid)
    elif how == "third_input":
        out = layer((items, seq, MASK))
    else:
        lengths = np.array([2, 5, 0], "int32")
        valid = ref.valid_from(None, lengths, 5)
        out = layer((items, seq), sequence_length=lengths)
    assert_allclose(out, _reference(layer, items, seq, "relu", "tanh", valid), rtol=1e-5, atol=1e-5)


def test_padded_positions_do_not_change_result_and_all_padding_is_finite():
    items, seq = _inputs(np.random.default_rng(2), 3)
    layer = DMR_U2I(6)
    out = to_numpy(layer((items, seq), mask=MASK))
    seq2 = np.where(MASK[..., None] >= 1, seq, 1e3).astype("float32")
    assert_allclose(layer((items, seq2), mask=MASK), out)
    assert np.all(np.isfinite(out))
    # All padding: the pooled vector is zero, so the output is activation(dense bias) ⊙ items.
    bias = to_numpy(layer.dense.bias)
    assert_allclose(out[2], np.maximum(bias, 0) * items[2], atol=1e-6)


def test_zero_attention_weights_give_the_mean():
    items, seq = _inputs(np.random.default_rng(3), 2)
    for attention_activation in ("tanh", None):
        layer = DMR_U2I(4, activation="relu", attention_activation=attention_activation)
        layer((items, seq))
        randomize_weights(layer)
        for w in (layer.pos_emb, layer.emb_weight, layer.bias):
            w.assign(np.zeros(tuple(w.shape), "float32"))
        m = seq.mean(axis=1)
        expected = np.maximum(m @ to_numpy(layer.dense.kernel) + to_numpy(layer.dense.bias), 0) * items
        assert_allclose(layer((items, seq)), expected, rtol=1e-5, atol=1e-6)


def test_bias_is_dead_without_attention_activation_and_alive_with_tanh():
    x = tuple(keras.ops.convert_to_tensor(a) for a in _inputs(np.random.default_rng(4), 3))
    for attention_activation, dead in ((None, True), ("tanh", False)):
        layer = DMR_U2I(4, activation="relu", attention_activation=attention_activation)
        layer(x)
        randomize_weights(layer)
        grads, _ = trainable_gradients(layer, (x,))
        index = [id(v) for v in layer.trainable_variables].index(id(layer.bias))
        bias_grad = grads[index]
        assert np.allclose(bias_grad, 0, atol=1e-6) == dead


def test_prelu_default_and_original_case():
    layer = DMR_U2I(5)
    layer(_inputs(np.random.default_rng(0), 2))
    assert isinstance(layer.output_activation, keras.layers.PReLU)
    assert tuple(layer.output_activation.alpha.shape) == (3,)
    assert not np.any(to_numpy(layer.output_activation.alpha))
    relu = DMR_U2I(5, activation="relu", initializer=keras.initializers.HeUniform())
    out = to_numpy(relu((np.ones((100, 10), "float32"), np.ones((100, 15, 10), "float32"))))
    row = np.maximum(np.ones(10) @ to_numpy(relu.dense.kernel) + to_numpy(relu.dense.bias), 0)
    assert out.shape == (100, 10)
    np.testing.assert_allclose(out, np.broadcast_to(row, (100, 10)), rtol=1e-5, atol=1e-6)


def test_weights_config_and_regularizer():
    layer = DMR_U2I(4, regularizer="l2", attention_activation=None)
    layer(_inputs(np.random.default_rng(0), 2))
    shapes = {v.path.split("/")[-1] + ("@dense" if "/dense/" in v.path else ""): tuple(v.shape)
              for v in layer.weights}
    assert shapes["pos_emb"] == (5, 4) and shapes["emb_weight"] == (4, 4) and shapes["z_weight"] == (4, 1)
    assert shapes["bias"] == (4,) and shapes["kernel@dense"] == (4, 3)
    np.testing.assert_array_equal(to_numpy(layer.z_weight), np.ones((4, 1)))
    assert len(layer.losses) == 3  # pos_emb, emb_weight, dense kernel
    config = layer.get_config()
    assert config["attention_activation"] is None and config["activation"] == "PReLU"
    assert DMR_U2I.from_config(config).get_config() == config


# ---------------------------------------------------------------------------- bad input


def test_bad_arguments():
    with pytest.raises(ValueError) as err:
        DMR_U2I(0)
    assert str(err.value) == "DMR_U2I: cmp_dim must be an integer >= 1; got 0"


@pytest.mark.parametrize("i_shape,s_shape,message", [
    ((2, 3, 1), (2, 5, 4), "DMR_U2I: items must be a tensor of rank 2; got shape (2, 3, 1) (rank 3)"),
    ((2, 3), (2, 5), "DMR_U2I: user_seq must be a tensor of rank 3; got shape (2, 5) (rank 2)"),
    ((2, 3), (4, 5, 4), "DMR_U2I: items.shape[0] must be equal to user_seq.shape[0]=4; got 2"),
    ((2, 3), (2, None, 4), "DMR_U2I: user_seq must have known T and E dimensions; got shape (2, None, 4)"),
    ((2, None), (2, 5, 4), "DMR_U2I: items must have a known last dimension; got shape (2, None)"),
])
def test_bad_shapes(i_shape, s_shape, message):
    with pytest.raises(ValueError) as err:
        DMR_U2I(4).build((i_shape, s_shape))
    assert str(err.value) == message


# ---------------------------------------------------------------------------- contract


class TestDMRContract(LayerContract):
    cases = [
        Case("prelu_default", lambda **kw: DMR_U2I(6, **kw), _inputs, fd_check=False),
        Case("tanh_masked", lambda **kw: DMR_U2I(6, activation="tanh", **kw), _masked_inputs),
    ]
