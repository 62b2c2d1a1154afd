"""TableEmbedding's initial values: the initializer's distribution, reproducible under
``keras.utils.set_random_seed`` (on JAX they are drawn with NumPy, without an XLA compilation per
table shape), on every backend."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reclayers.models.sparse import TableEmbedding


@pytest.mark.parametrize("init, check", [
    (keras.initializers.RandomNormal(mean=0.1, stddev=0.05),
     lambda w: abs(w.mean() - 0.1) < 2e-3 and abs(w.std() - 0.05) < 2e-3),
    (keras.initializers.RandomUniform(-0.2, 0.2),
     lambda w: w.min() >= -0.2 and w.max() <= 0.2 and abs(w.std() - 0.4 / np.sqrt(12)) < 3e-3),
    (keras.initializers.TruncatedNormal(stddev=1.0),
     lambda w: np.abs(w).max() <= 2.0 and 0.85 < w.std() < 0.89),  # N(0,1) cut at ±2: std 0.88
])
def test_initial_values_follow_the_initializer(init, check):
    layer = TableEmbedding(4000, 8, embeddings_initializer=init)
    layer.build()
    w = keras.ops.convert_to_numpy(layer.embeddings)
    assert w.shape == (4000, 8) and w.dtype == np.float32 and check(w)
    assert layer.get_config()["embeddings_initializer"]["class_name"] == type(init).__name__


def test_truncated_normal_never_leaves_two_deviations():
    # 1.6M values: Keras's PyTorch truncated_normal leaves about 7 of them beyond two deviations
    # (none of its four candidates inside, probability 4.3e-6 each); the table's own draw none.
    layer = TableEmbedding(200_000, 8, embeddings_initializer=keras.initializers.TruncatedNormal(stddev=0.5))
    layer.build()
    assert np.abs(keras.ops.convert_to_numpy(layer.embeddings)).max() <= 1.0


def test_initial_values_are_reproducible_and_differ_between_tables():
    def tables():
        keras.utils.set_random_seed(3)
        out = []
        for size in (50, 70):
            layer = TableEmbedding(size, 4, embeddings_initializer=keras.initializers.RandomNormal())
            layer.build()
            out.append(keras.ops.convert_to_numpy(layer.embeddings))
        return out

    a, b = tables(), tables()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.allclose(a[0][:50], a[1][:50])
