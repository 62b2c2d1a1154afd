"""A small CTR model built from reclayers layers on ``make_synthetic`` data (shared by the checks)."""

from __future__ import annotations

import keras
import numpy as np

from reclayers.data import make_synthetic
from reclayers.layers import MLP, Dense

GLOBAL_BATCH = 32
STEPS = 4


def data(n_rows: int = 400, seed: int = 0):
    """Features ``{name: (n, 1)}``, labels ``(n, 1)`` and bucket counts rounded up to 8."""
    synth = make_synthetic(n_rows=n_rows, n_dense=2, n_categorical=3, vocab_size=40, seed=seed)
    train = synth.splits["train"]
    features = {k: np.asarray(v)[:, None] for k, v in train.features.items()}
    labels = np.asarray(train.labels["click"], "float32")[:, None]
    vocab = {f.name: -(-int(f.num_buckets) // 8) * 8
             for f in synth.schema.features if getattr(f, "num_buckets", None)}
    return features, labels, vocab


def build(vocab: dict, dense_names=("I1", "I2"), partitioner=None, seed: int = 0) -> keras.Model:
    """Embeddings per categorical field, a wide ``Dense`` (``partitioner``) and an ``MLP`` head."""
    keras.utils.set_random_seed(seed)
    inputs = {n: keras.Input((1,), name=n) for n in dense_names}
    inputs.update({n: keras.Input((1,), name=n, dtype="int32") for n in vocab})
    parts = [inputs[n] for n in dense_names]
    for n, size in vocab.items():
        emb = keras.layers.Embedding(size, 8, name=f"emb_{n}")(inputs[n])
        parts.append(keras.layers.Flatten()(emb))
    h = keras.layers.Concatenate()(parts)
    h = Dense(32, activation="relu", partitioner=partitioner, name="wide")(h)
    out = MLP([16, 1], activations=["relu", "sigmoid"], name="head")(h)
    return keras.Model(inputs, out)


def batches(features: dict, labels: np.ndarray, steps: int = STEPS, batch: int = GLOBAL_BATCH):
    for s in range(steps):
        sl = slice(s * batch, (s + 1) * batch)
        yield {k: v[sl] for k, v in features.items()}, labels[sl]


def compile_sgd(model: keras.Model) -> None:
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy")


def train_losses(model: keras.Model, features: dict, labels: np.ndarray) -> list:
    return [float(model.train_on_batch(x, y)) for x, y in batches(features, labels)]
