"""DIEN: NumPy reference for both att_types and masks, padding invariance, aux loss, contract."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reclayers.layers import DIEN
from tests.contract import BACKEND, Case, LayerContract, assert_allclose, randomize_weights, to_numpy
from tests.reference import seq as ref

U = 3
MASK = np.array([[1, 0, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 0, 0, 0]], "float32")


def _inputs(rng, b, t=5, h=4):
    return rng.normal(size=(b, U)).astype("float32"), rng.normal(size=(b, t, h)).astype("float32")


def _masked_inputs(rng, b, t=5, h=4):
    q, k = _inputs(rng, b, t, h)
    mask = (rng.uniform(size=(b, t)) > 0.4).astype("float32")
    mask[0, :] = 0.0
    return q, k, mask


def _weights(dien):
    cell = dien.gru.cell
    gru = tuple(to_numpy(v) for v in (cell.kernel, cell.recurrent_kernel, cell.bias))
    agru = tuple(to_numpy(v) for v in (dien.augru_cell.gates_kernel, dien.augru_cell.gates_bias,
                                       dien.augru_cell.candidate_kernel, dien.augru_cell.candidate_bias))
    return gru, agru, to_numpy(dien.attention_weight)


def _built(att_type="AGRU", activation="relu", **kw):
    dien = DIEN(U, att_type=att_type, activation=activation, **kw)
    dien(_inputs(np.random.default_rng(0), 2, h=kw.pop("h", 4)))
    randomize_weights(dien, scale=0.4)
    return dien


@pytest.mark.parametrize("att_type,masked,activation", [
    ("AGRU", False, "relu"), ("AUGRU", True, "relu"), ("AGRU", True, None), ("AUGRU", False, None),
])
def test_matches_reference(att_type, masked, activation):
    q, k = _inputs(np.random.default_rng(1), 3)
    dien = _built(att_type, activation)
    gru, agru, att = _weights(dien)
    valid = MASK >= 1 if masked else None
    inputs = (q, k, MASK) if masked else (q, k)
    expected, _ = ref.dien(q, k, gru, agru, att, ref.ACT[activation], att_type, valid)
    assert_allclose(dien(inputs), expected, rtol=1e-5, atol=1e-5)
    # In training (no auxiliary loss) the same function; on PyTorch this is the extractor's own
    # step loop (DIEN._extract) instead of Keras's GRU loop.
    assert_allclose(dien(inputs, training=True), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(BACKEND != "torch", reason="the eager step loops run on PyTorch only")
@pytest.mark.parametrize("masked", [False, True])
def test_eager_step_loops_equal_keras_rnn_loops_with_gradients(masked, monkeypatch):
    import torch

    from reclayers.layers import _build, agru

    dien = _built("AUGRU", "relu")
    q, k = _inputs(np.random.default_rng(2), 3)

    def run():
        xs = [torch.tensor(q), torch.tensor(k, requires_grad=True)]
        for v in dien.trainable_variables:
            v.value.grad = None
        out = dien((*xs, torch.tensor(MASK)) if masked else tuple(xs), training=True)
        (out * torch.arange(1.0, U + 1.0)).sum().backward()
        grads = [to_numpy(v.value.grad) for v in dien.trainable_variables]
        return [to_numpy(out), to_numpy(xs[1].grad), *grads]

    calls = []
    original = agru._eager_loop
    monkeypatch.setattr(agru, "_eager_loop", lambda *a: calls.append(1) or original(*a))
    eager = run()
    assert calls, "the eager AUGRU loop did not run"
    monkeypatch.setattr(agru, "_loops_eagerly", lambda inputs: False)
    monkeypatch.setattr(_build, "can_call_directly", lambda *a, **kw: False)
    keras_loops = run()
    assert len(calls) == 1
    for got, want in zip(eager, keras_loops):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_att_type_is_honoured():
    q, k = _inputs(np.random.default_rng(2), 3)
    agru = _built("AGRU")
    augru = DIEN(U, att_type="AUGRU")
    augru((q, k))
    augru.set_weights(agru.get_weights())
    assert not np.allclose(to_numpy(agru((q, k))), to_numpy(augru((q, k))))


def test_padding_equals_the_unpadded_sequence_and_all_padding_is_zero():
    q, k = _inputs(np.random.default_rng(3), 3)
    dien = _built("AUGRU")
    out = to_numpy(dien(q, keys=k, mask=MASK))
    for row in (0, 1):
        keep = MASK[row] >= 1
        short = dien((q[row:row + 1], k[row:row + 1, keep]))
        assert_allclose(short, out[row:row + 1], rtol=1e-5, atol=1e-6)
    assert np.all(out[2] == 0) and np.all(np.isfinite(out))
    k2 = np.where(MASK[..., None] >= 1, k, 50.0).astype("float32")
    assert_allclose(dien((q, k2), mask=MASK >= 1), out, rtol=1e-6, atol=1e-6)
    assert_allclose(dien((q, k), sequence_length=np.array([5, 5, 0])), dien((q, k), mask=np.array(
        [[1] * 5, [1] * 5, [0] * 5], "float32")))


def test_keras_mask_from_embedding_is_used():
    ids = np.array([[3, 1, 0, 0], [2, 2, 4, 0]], "int32")
    queries = np.random.default_rng(3).normal(size=(2, U)).astype("float32")
    emb = keras.layers.Embedding(6, 4, mask_zero=True)
    q_in, k_in = keras.Input((U,)), keras.Input((4,), dtype="int32")
    dien = DIEN(U, att_type="AUGRU")
    model = keras.Model([q_in, k_in], dien((q_in, emb(k_in))))
    out = model.predict([queries, ids], verbose=0)
    keys = to_numpy(emb(ids))
    assert_allclose(out, dien((queries, keys), mask=ids > 0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("masked", [False, True])
def test_aux_loss_matches_reference(masked):
    rng = np.random.default_rng(4)
    q, k = _inputs(rng, 3, h=U)
    neg = rng.normal(size=k.shape).astype("float32")
    dien = DIEN(U, use_aux_loss=True, aux_loss_weight=0.5)
    dien((q, k))
    randomize_weights(dien, scale=0.4)
    assert not dien.losses  # inference: no aux loss
    gru, agru, att = _weights(dien)
    valid = MASK >= 1 if masked else None
    dien((q, k), mask=MASK if masked else None, neg_keys=neg, training=True)
    _, states = ref.dien(q, k, gru, agru, att, ref.ACT["relu"], "AGRU", valid)
    expected = 0.5 * ref.dien_aux_loss(states, k, neg, valid)
    assert len(dien.losses) == 1
    np.testing.assert_allclose(float(to_numpy(dien.losses[0])), expected, rtol=1e-5)


def test_aux_loss_enters_fit_and_needs_neg_keys_in_training():
    rng = np.random.default_rng(5)
    q, k = _inputs(rng, 4, h=U)
    neg = rng.normal(size=k.shape).astype("float32")
    dien = DIEN(U, use_aux_loss=True)
    with pytest.raises(ValueError, match="DIEN: neg_keys must be a"):
        dien((q, k), training=True)
    q_in, k_in, n_in = keras.Input((U,)), keras.Input((5, U)), keras.Input((5, U))
    model = keras.Model([q_in, k_in, n_in], dien((q_in, k_in), neg_keys=n_in))
    model.compile(optimizer="sgd", loss="mse", jit_compile=BACKEND == "jax")  # XLA-compiling a GRU is slow
    history = model.fit([q, k, neg], np.zeros((4, U), "float32"), epochs=1, verbose=0)
    pred = model.predict([q, k, neg], verbose=0)
    mse = float(np.mean(np.square(pred)))
    assert history.history["loss"][0] > mse + 1e-3  # the aux loss is part of the training loss


def test_original_case_constant_inputs():
    dien = DIEN(10, initializer=keras.initializers.HeUniform())
    out = to_numpy(dien((np.ones((100, 10), "float32"), np.ones((100, 15, 10), "float32"))))
    assert out.shape == (100, 10) and np.allclose(out, out[0:1])


def test_weights_and_config():
    dien = DIEN(U, att_type="augru", activation="tanh", regularizer="l2", use_aux_loss=True,
                aux_loss_weight=0.3)
    dien(_inputs(np.random.default_rng(0), 2, h=U))
    shapes = sorted((v.path.split("/")[-1], tuple(v.shape)) for v in dien.weights)
    assert ("attention_weight", (U, U)) in shapes and ("gates_kernel", (2 * U, 2 * U)) in shapes
    assert ("kernel", (U, 3 * U)) in shapes and ("recurrent_kernel", (U, 3 * U)) in shapes
    clone = DIEN.from_config(dien.get_config())
    assert (clone.att_type, clone.use_aux_loss, clone.aux_loss_weight) == ("augru", True, 0.3)


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs,message", [
    ({"num_units": 0}, "DIEN: num_units must be an integer >= 1; got 0"),
    ({"num_units": 2, "att_type": "LSTM"},
     "DIEN: att_type must be one of 'AGRU', 'AUGRU' (case-insensitive); got 'LSTM'"),
    ({"num_units": 2, "activation": "PReLU"},
     "DIEN: activation must be an activation without weights (a plain function is needed here); "
     "got 'PReLU'"),
    ({"num_units": 2, "aux_loss_weight": -1.0},
     "DIEN: aux_loss_weight must be a number in [0.0, inf); got -1.0"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as err:
        DIEN(**kwargs)
    assert str(err.value) == message


@pytest.mark.parametrize("kwargs,q_shape,k_shape,message", [
    ({}, (2, 4), (2, 5, 4), "DIEN: queries.shape[-1] must be equal to num_units=3; got 4"),
    ({}, (2, 3), (2, 5), "DIEN: keys must be a tensor of rank 3; got shape (2, 5) (rank 2)"),
    ({}, (2, 3, 1), (2, 5, 4), "DIEN: queries must be a tensor of rank 2; got shape (2, 3, 1) (rank 3)"),
    ({"use_aux_loss": True}, (2, 3), (2, 5, 4),
     "DIEN: keys.shape[-1] must be equal to num_units=3 when use_aux_loss; got 4"),
])
def test_bad_shapes(kwargs, q_shape, k_shape, message):
    with pytest.raises(ValueError) as err:
        DIEN(U, **kwargs)((np.ones(q_shape, "float32"), np.ones(k_shape, "float32")))
    assert str(err.value) == message


# ---------------------------------------------------------------------------- contract


class TestDIENContract(LayerContract):
    cases = [
        Case("agru_default", lambda **kw: DIEN(U, **kw), _inputs, fd_check=False),
        Case("augru_tanh_masked", lambda **kw: DIEN(U, att_type="AUGRU", activation="tanh", **kw),
             _masked_inputs, keras_save=False),
    ]


@pytest.mark.skipif(BACKEND != "tensorflow", reason="checks TensorFlow's XLA compile of the training step")
def test_training_step_compiles_with_xla_and_matches_eager():
    # The AUGRU loop runs through keras.layers.RNN, whose TensorFlow while_loop is bounded: the
    # training step compiles with XLA (a keras.ops.scan loop made TF's XLA refuse the gradient).
    rng = np.random.default_rng(8)
    q, k, mask = _masked_inputs(rng, 4)
    mask[0, 1] = 1.0
    losses = []
    for jit in (True, False):
        keras.utils.set_random_seed(3)
        q_in, k_in, m_in = keras.Input((U,)), keras.Input((5, 4)), keras.Input((5,))
        model = keras.Model([q_in, k_in, m_in], DIEN(U, att_type="AUGRU")((q_in, k_in, m_in)))
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=jit)
        losses.append([float(model.train_on_batch([q, k, mask], np.ones((4, U), "float32")))
                       for _ in range(3)])
    assert losses[0][2] < losses[0][0]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)
