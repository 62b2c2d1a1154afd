"""TensorFlow ``MirroredStrategy`` over 2 logical CPU devices. Run by ``test_launch.py`` in a
subprocess with ``KERAS_BACKEND=tensorflow`` (logical devices must be configured before
TensorFlow initialises its runtime)."""

from __future__ import annotations

import tensorflow as tf

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tests.distribute import _model  # noqa: E402


class _Losses(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


def _fit(model, features, labels):
    n = _model.GLOBAL_BATCH * _model.STEPS
    data = tf.data.Dataset.from_tensor_slices(
        ({k: v[:n] for k, v in features.items()}, labels[:n])
    ).batch(_model.GLOBAL_BATCH)
    record = _Losses()
    model.fit(data, epochs=1, verbose=0, shuffle=False, callbacks=[record])
    return record.losses


def test_mirrored_strategy_matches_single_device():
    assert keras.backend.backend() == "tensorflow"
    features, labels, vocab = _model.data()
    reference = _model.build(vocab, partitioner=2)
    weights = [np.array(w) for w in reference.get_weights()]
    _model.compile_sgd(reference)
    expected = _fit(reference, features, labels)

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = _model.build(vocab, partitioner=2)
        model.set_weights(weights)
        _model.compile_sgd(model)
    assert isinstance(model.get_layer("wide").kernel.value, tf.distribute.DistributedValues)
    losses = _fit(model, features, labels)
    assert len(losses) == _model.STEPS
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
