"""Issue-level acceptance for the sequence drivers: long-sequence gradients, one compile for two
lengths where the backend has dynamic shapes, and saved models that do not grow with length."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from reclayers.layers.agru import AGRUCell, dynamic_rnn_with_attention
from reclayers.layers.feature_seq import DIEN
from tests.contract import BACKEND, trainable_gradients


class _Drive(keras.layers.Layer):
    """Runs the dynamic driver over (inputs, scores) with a cell it owns."""

    def __init__(self, cell, **kwargs):
        super().__init__(**kwargs)
        self.cell = cell

    def call(self, inputs):
        return dynamic_rnn_with_attention(self.cell, inputs[0], inputs[1])[0]


@pytest.mark.parametrize("att_type", ["AGRU", "AUGRU"])
def test_gradients_through_fifty_steps_are_finite_and_non_zero(att_type):
    rng = np.random.default_rng(0)
    x = ops.convert_to_tensor(rng.normal(size=(3, 50, 4)).astype("float32"))
    a = ops.convert_to_tensor(rng.uniform(0.1, 1.0, size=(3, 50)).astype("float32"))
    layer = _Drive(AGRUCell(6, att_type=att_type))
    grads, _ = trainable_gradients(layer, ((x, a),))
    assert len(grads) == len(layer.trainable_variables) > 0
    for v, g in zip(layer.trainable_variables, grads):
        assert g is not None and np.all(np.isfinite(g)), v.path
        assert np.any(g != 0), v.path


def test_dynamic_driver_traces_once_for_two_lengths():
    if BACKEND != "tensorflow":
        pytest.skip("only TensorFlow traces one graph for an unknown time dimension "
                    "(JAX compiles per shape by design; PyTorch runs eagerly)")
    import tensorflow as tf

    cell = AGRUCell(4, att_type="AUGRU")
    cell.build(((None, 3), (None, 4), (None, 1)))
    fn = tf.function(lambda x, a: dynamic_rnn_with_attention(cell, x, a)[1],
                     input_signature=[tf.TensorSpec([None, None, 3]), tf.TensorSpec([None, None])])
    rng = np.random.default_rng(1)
    for steps in (5, 50):
        fn(rng.normal(size=(2, steps, 3)).astype("float32"),
           rng.uniform(size=(2, steps)).astype("float32"))
    assert fn.experimental_get_tracing_count() == 1


def test_saved_dien_does_not_grow_with_sequence_length(tmp_path):
    sizes = {}
    for steps in (5, 50):
        query = keras.Input((6,))
        keys = keras.Input((steps, 6))
        out = DIEN(6, att_type="AUGRU", name="dien")([query, keys])
        path = tmp_path / f"dien_{steps}.keras"
        keras.Model([query, keys], out).save(path)
        sizes[steps] = path.stat().st_size
    assert abs(sizes[50] - sizes[5]) < 256, sizes
