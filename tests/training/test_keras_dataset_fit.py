"""``model.fit`` on a :func:`reclayers.data.keras_dataset` over several epochs, on every backend:
Keras's calls to ``on_epoch_begin``/``on_epoch_end`` (a peek at a batch to build the model, a reset
before the first epoch, the end of each pass) differ from a plain epoch count, and the data set
must still give fit's epoch ``e`` the seeded order of epoch ``start_epoch + e``."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reclayers import data as rd
from reclayers.data import keras_dataset
from reclayers.data.dataset import BatchReader


class _Record(keras.layers.Layer):
    """Passes its input through and keeps, in training steps, the values it saw."""

    def __init__(self, seen, **kwargs):
        super().__init__(**kwargs)
        self.record = seen.append  # (a list attribute would be copied by Keras's tracking)

    def call(self, x, training=None):
        if training:
            self.record(keras.ops.convert_to_numpy(x).tolist())
        return x


def _fit_order(ds, epochs):
    """The batches (their row ids) that ``model.fit(ds, epochs=epochs, shuffle=False)`` trains on."""
    seen = []
    inp = keras.Input(shape=(), name="x")
    out = keras.layers.Dense(1)(keras.layers.Reshape((1,))(_Record(seen)(inp)))
    model = keras.Model({"x": inp}, out)
    model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
    model.fit(ds, epochs=epochs, shuffle=False, verbose=0)
    return seen


def test_model_fit_epochs_follow_the_seeded_order():
    """fit's epoch e is keras_dataset's epoch start_epoch + e, in BatchReader's order (Keras's
    model-building peek and its reset before the first epoch call on_epoch_end: they must not
    advance the order), and a resumed epoch trains exactly its remaining batches."""
    n = 40
    a = rd.Arrays({"x": np.arange(n, dtype="float32")}, {"y": np.zeros(n, "float32")})

    def order(epoch, start=0):
        reader = BatchReader(a, 8, shuffle=True, seed=3, epoch=epoch)
        return [reader[b][0]["x"].tolist() for b in range(start, len(reader))]

    assert order(0) != order(1) != order(2)
    assert _fit_order(keras_dataset(a, 8, seed=3), epochs=3) == order(0) + order(1) + order(2)
    resumed = keras_dataset(a, 8, seed=3, start_epoch=1, start_batch=2)
    assert _fit_order(resumed, epochs=1) == order(1, start=2)
    with pytest.warns(UserWarning, match="Fit a resumed epoch alone"):
        seen = _fit_order(keras_dataset(a, 8, seed=3, start_epoch=1, start_batch=2), epochs=3)
    # Keras keeps the resumed epoch's 3 steps: the next epochs are cut short but keep their orders
    assert seen == order(1, start=2) + order(2)[:3] + order(3)[:3]
    # one batch left: fit's peek serves all of it before the epoch starts, which must not count
    last = keras_dataset(a, 8, seed=3, start_epoch=1, start_batch=4)
    assert _fit_order(last, epochs=1) == order(1, start=4)
    one = rd.Arrays({"x": np.arange(8, dtype="float32")}, {"y": np.zeros(8, "float32")})
    orders = [BatchReader(one, 8, shuffle=True, seed=3, epoch=e)[0][0]["x"].tolist() for e in range(3)]
    assert _fit_order(keras_dataset(one, 8, seed=3), epochs=3) == orders
