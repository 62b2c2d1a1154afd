"""AGRUCell, the static/dynamic RNN drivers and create_ta: reference math, masks, graph size."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from reclayers.layers.agru import (
    AGRUCell,
    create_ta,
    dynamic_rnn_with_attention,
    static_rnn_with_attention,
)
from tests.contract import BACKEND, Case, LayerContract, assert_allclose, randomize_weights, to_numpy
from tests.reference import seq as ref


def _w(cell):
    return tuple(to_numpy(v) for v in (cell.gates_kernel, cell.gates_bias, cell.candidate_kernel,
                                       cell.candidate_bias))


def _seq(rng, b=3, t=6, d=5):
    return rng.normal(size=(b, t, d)).astype("float32"), rng.uniform(size=(b, t)).astype("float32")


MASK = np.array([[1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1], [1, 0, 1, 0, 1, 1]], "float32")


@pytest.mark.parametrize("att_type,expected", [("AGRU", 0.5784328), ("AUGRU", 0.6350195),
                                               (None, 0.7382823)])
def test_cell_golden_values(att_type, expected):
    cell = AGRUCell(1, att_type=att_type or "AGRU", initializer=keras.initializers.Constant(0.1))
    x, h = np.array([[1.0]], "float32"), np.array([[0.5]], "float32")
    inputs = (x, h) if att_type is None else (x, h, np.array([[0.25]], "float32"))
    out, state = cell(inputs)
    assert_allclose(out, np.array([[expected]]), rtol=1e-6)
    assert_allclose(state, np.array([[expected]]), rtol=1e-6)


@pytest.mark.parametrize("att_type,activation,score_rank", [
    ("AGRU", None, 2), ("augru", None, 1), ("AUGRU", "relu", 2), ("AGRU", "sigmoid", 1),
    ("AGRU", "relu", None),
])
def test_cell_matches_reference(att_type, activation, score_rank):
    rng = np.random.default_rng(0)
    x, h = rng.normal(size=(4, 5)).astype("float32"), rng.normal(size=(4, 3)).astype("float32")
    a = rng.uniform(size=(4, 1)).astype("float32")
    cell = AGRUCell(3, att_type=att_type, activation=activation)
    args = (x, h) if score_rank is None else (x, h, a if score_rank == 2 else a[:, 0])
    cell(args)
    randomize_weights(cell)
    out, state = cell(args)
    expected = ref.agru_step(x, h, None if score_rank is None else a, _w(cell), att_type,
                             ref.ACT[activation or "tanh"])
    assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert_allclose(state, expected, rtol=1e-5, atol=1e-6)


def test_cell_weights_initial_state_and_original_shapes():
    cell = AGRUCell(10, activation="sigmoid", initializer=keras.initializers.HeUniform())
    out, state = cell((np.ones((100, 100), "float32"), np.ones((100, 10), "float32"),
                       np.ones((100, 1), "float32")))
    assert tuple(out.shape) == (100, 10) and tuple(state.shape) == (100, 10)
    shapes = {v.path.split("/")[-1]: tuple(v.shape) for v in cell.weights}
    assert shapes == {"gates_kernel": (110, 20), "gates_bias": (20,), "candidate_kernel": (110, 10),
                      "candidate_bias": (10,)}
    np.testing.assert_array_equal(to_numpy(cell.gates_bias), np.ones(20))
    np.testing.assert_array_equal(to_numpy(cell.candidate_bias), np.ones(10))
    # Kernels get their own initializer copies (not identical draws).
    assert not np.allclose(to_numpy(cell.gates_kernel)[:, :10], to_numpy(cell.candidate_kernel))
    assert cell.state_size == 10 and cell.output_size == 10
    assert to_numpy(cell.get_initial_state(4)).shape == (4, 10)
    assert to_numpy(cell.zero_state(2, "float32")).shape == (2, 10)
    assert not np.any(to_numpy(cell.get_initial_state(4)))


def test_cell_regularizer_applies_to_all_four_weights():
    cell = AGRUCell(2, regularizer="l2")
    cell((np.ones((2, 3), "float32"), np.ones((2, 2), "float32"), np.ones((2, 1), "float32")))
    assert len(cell.losses) == 4


@pytest.mark.parametrize("att_type", ["AGRU", "AUGRU"])
@pytest.mark.parametrize("padding", ["none", "mask", "bool_mask", "lengths"])
def test_drivers_match_reference_and_each_other(att_type, padding):
    rng = np.random.default_rng(1)
    x, a = _seq(rng)
    h0 = rng.normal(size=(3, 4)).astype("float32")
    cell = AGRUCell(4, att_type=att_type)
    cell((x[:, 0], h0, a[:, :1]))
    randomize_weights(cell)
    kw, valid = {}, None
    if padding == "mask":
        kw, valid = {"mask": MASK}, MASK >= 1
    elif padding == "bool_mask":
        kw, valid = {"mask": MASK >= 1}, MASK >= 1
    elif padding == "lengths":
        lengths = np.array([6, 2, 0], "int32")
        kw, valid = {"sequence_length": lengths}, ref.valid_from(None, lengths, 6)
    exp_out, exp_h = ref.rnn_with_attention(x, a, _w(cell), att_type, np.tanh, h0=h0, valid=valid)
    s_out, s_h = static_rnn_with_attention(cell, x, a, init_state=h0, **kw)
    d_out, d_h = dynamic_rnn_with_attention(cell, x, a, parallel_iterations=32, swap_memory=False,
                                            init_state=h0, **kw)
    assert_allclose(s_out, exp_out, rtol=1e-5, atol=1e-6)
    assert_allclose(s_h, exp_h, rtol=1e-5, atol=1e-6)
    assert_allclose(d_out, s_out, rtol=1e-5, atol=1e-6)
    assert_allclose(d_h, s_h, rtol=1e-5, atol=1e-6)


def test_padded_steps_leave_state_unchanged_and_all_padding_keeps_init():
    rng = np.random.default_rng(2)
    x, a = _seq(rng)
    cell = AGRUCell(4, att_type="AUGRU")
    mask = MASK.copy()
    mask[2] = 0
    out, h = dynamic_rnn_with_attention(cell, x, a, mask=mask)
    out, h = to_numpy(out), to_numpy(h)
    assert np.all(out[mask == 0] == 0)
    assert np.all(h[2] == 0) and np.all(np.isfinite(h))
    # Changing the padded inputs does not change anything.
    x2 = np.where(mask[..., None] >= 1, x, 99.0).astype("float32")
    a2 = np.where(mask >= 1, a, 0.5).astype("float32")
    out2, h2 = dynamic_rnn_with_attention(cell, x2, a2, mask=mask)
    assert_allclose(out2, out)
    assert_allclose(h2, h)
    # Row 1 (left padding) equals the unpadded run of its valid suffix.
    _, h_short = dynamic_rnn_with_attention(cell, x[1:2, 2:], a[1:2, 2:])
    assert_allclose(h_short, h[1:2], rtol=1e-5, atol=1e-6)


def test_original_driver_shapes():
    cell = AGRUCell(10)
    out, h = static_rnn_with_attention(cell, np.ones((100, 20, 10), "float32"), np.ones((100, 20), "float32"))
    assert tuple(out.shape) == (100, 20, 10) and tuple(h.shape) == (100, 10)
    rng = np.random.default_rng(0)
    out, h = dynamic_rnn_with_attention(cell, rng.uniform(size=(100, 20, 10)).astype("float32"),
                                        rng.uniform(size=(100, 20)).astype("float32"))
    assert tuple(out.shape) == (100, 20, 10) and tuple(h.shape) == (100, 10)


def test_dynamic_driver_with_unknown_time_dimension_in_a_model():
    cell = AGRUCell(4)
    x_in, a_in = keras.Input((None, 3)), keras.Input((None,))

    class Wrap(keras.layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.cell = cell

        def build(self, shapes):
            self.cell.build(((None, 3), (None, 4), (None, 1)))

        def call(self, inputs):
            return dynamic_rnn_with_attention(self.cell, inputs[0], inputs[1])[1]

        def compute_output_shape(self, shapes):
            return (shapes[0][0], 4)

    model = keras.Model([x_in, a_in], Wrap()([x_in, a_in]))
    model.compile(jit_compile=BACKEND != "torch")
    rng = np.random.default_rng(0)
    for t in (2, 7):
        x, a = _seq(rng, 2, t, 3)
        expected = ref.rnn_with_attention(x, a, _w(cell), "AGRU", np.tanh)[1]
        assert_allclose(model.predict([x, a], verbose=0), expected, rtol=1e-5, atol=1e-6)


def _graph_size(fn, steps):
    rng = np.random.default_rng(0)
    x, a = _seq(rng, 2, steps, 3)
    if BACKEND == "jax":
        import jax

        return len(jax.make_jaxpr(fn)(x, a).jaxpr.eqns)
    import tensorflow as tf

    graph = tf.function(fn).get_concrete_function(tf.constant(x), tf.constant(a)).graph
    return len(graph.get_operations())


def test_dynamic_graph_does_not_grow_with_sequence_length():
    if BACKEND == "torch":
        pytest.skip("PyTorch runs eagerly: there is no traced graph to measure")
    cell = AGRUCell(4, att_type="AUGRU")
    cell.build(((None, 3), (None, 4), (None, 1)))

    def dynamic(x, a):
        return dynamic_rnn_with_attention(cell, x, a)[1]

    def static(x, a):
        return static_rnn_with_attention(cell, x, a)[1]

    assert _graph_size(dynamic, 5) == _graph_size(dynamic, 50)
    assert _graph_size(static, 50) > _graph_size(static, 5)  # sanity: the unrolled one grows


def test_drivers_gradients_agree():
    rng = np.random.default_rng(3)
    x, a = _seq(rng)
    cell = AGRUCell(4, att_type="AUGRU")
    cell.build(((None, 5), (None, 4), (None, 1)))

    class Drive(keras.layers.Layer):
        def __init__(self, fn, **kw):
            super().__init__(**kw)
            self.cell, self.fn = cell, fn

        def call(self, inputs):
            return self.fn(self.cell, inputs[0], inputs[1], mask=MASK)[0]

    from tests.contract import trainable_gradients

    xs = (ops.convert_to_tensor(x), ops.convert_to_tensor(a))
    g_static, _ = trainable_gradients(Drive(static_rnn_with_attention), (xs,))
    g_dynamic, _ = trainable_gradients(Drive(dynamic_rnn_with_attention), (xs,))
    for gs, gd in zip(g_static, g_dynamic):
        assert np.any(gs != 0)
        np.testing.assert_allclose(gd, gs, rtol=1e-4, atol=1e-6)


def test_create_ta_write_read_stack_unstack():
    ta = create_ta("steps", 3, "float32")
    assert ta.size() == 3
    ta2 = ta.write(1, [1.0, 2.0])
    assert_allclose(ta2.stack(), np.array([[0, 0], [1, 2], [0, 0]]))
    assert_allclose(ta2.read(1), np.array([1.0, 2.0]))
    ta3 = ta2.unstack(np.arange(6, dtype="float32").reshape(3, 2))
    assert_allclose(ta3.read(2), np.array([4.0, 5.0]))
    assert_allclose(ta2.read(1), np.array([1.0, 2.0]))  # functional: the old buffer is untouched


def test_create_ta_inside_compiled_loop():
    ta = create_ta("steps", 4, "float32", element_shape=(2,))

    def body(i, data):
        return ta.unstack(data).write(i, ops.ones((2,)) * ops.cast(i, "float32")).stack()

    def run(data):
        return ops.fori_loop(0, 4, body, data)

    if BACKEND == "jax":
        import jax

        run = jax.jit(run)
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        run = tf.function(run, jit_compile=True)
    out = run(ta.stack())
    assert_allclose(out, np.repeat(np.arange(4, dtype="float32")[:, None], 2, 1))


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs,message", [
    ({"units": 0}, "AGRUCell: units must be an integer >= 1; got 0"),
    ({"units": 2, "att_type": "GRU"}, "AGRUCell: att_type must be one of 'AGRU', 'AUGRU' (case-insensitive); "
                                      "got 'GRU'"),
])
def test_cell_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as err:
        AGRUCell(**kwargs)
    assert str(err.value) == message


@pytest.mark.parametrize("shapes,message", [
    (((2, 3), (2, 5), (2, 1)), "AGRUCell: h.shape[-1] must be equal to units=4; got 5"),
    (((2, 3, 1), (2, 4), (2, 1)), "AGRUCell: x must be a tensor of rank 2; got shape (2, 3, 1) (rank 3)"),
    (((2, None), (2, 4), (2, 1)), "AGRUCell: x must have a known last dimension; got shape (2, None)"),
    (((2, 3), (2, 1, 4), (2, 1)), "AGRUCell: h must be a tensor of rank 2; got shape (2, 1, 4) (rank 3)"),
    (((2, 3), (2, 4), (2, 3)), "AGRUCell: a must be a tensor of shape [B] or [B, 1]; got shape (2, 3)"),
])
def test_cell_bad_shapes(shapes, message):
    with pytest.raises(ValueError) as err:
        AGRUCell(4).build(shapes)
    assert str(err.value) == message


def test_driver_bad_inputs():
    x, a = _seq(np.random.default_rng(0))
    with pytest.raises(ValueError,
                       match="static_rnn_with_attention: cell must be an AGRUCell; got 'GRUCell'"):
        static_rnn_with_attention(keras.layers.GRUCell(4), x, a)
    with pytest.raises(ValueError, match=r"dynamic_rnn_with_attention: att_scores.shape\[1\] must be "
                                         r"equal to inputs.shape\[1\]=6; got 5"):
        dynamic_rnn_with_attention(AGRUCell(4), x, a[:, :5])
    with pytest.raises(ValueError, match="dynamic_rnn_with_attention: inputs must be a tensor of rank 3"):
        dynamic_rnn_with_attention(AGRUCell(4), x[:, 0], a)
    with pytest.raises(ValueError, match=r"static_rnn_with_attention: att_scores must be a tensor of shape"):
        static_rnn_with_attention(AGRUCell(4), x, x)
    with pytest.raises(ValueError, match="give at most one"):
        dynamic_rnn_with_attention(AGRUCell(4), x, a, mask=MASK, sequence_length=[1, 2, 3])


# ---------------------------------------------------------------------------- contract


def _cell_inputs(rng, b):
    return (rng.normal(size=(b, 5)).astype("float32"), rng.normal(size=(b, 3)).astype("float32"),
            rng.uniform(size=(b, 1)).astype("float32"))


class TestAGRUCellContract(LayerContract):
    cases = [
        Case("augru", lambda **kw: AGRUCell(3, att_type="AUGRU", **kw), _cell_inputs),
        Case("agru_relu", lambda **kw: AGRUCell(3, activation="relu", **kw), _cell_inputs, fd_check=False,
             keras_save=False),
    ]
