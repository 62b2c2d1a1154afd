"""Embedding-size search, then retraining with the found sizes (runs on any Keras 3 backend).

1. **Search.** Every categorical feature gets an embedding of the largest candidate size. A
   :class:`~reclayers.layers.sparse_nas.MixedNASLayer` (``embedding_share_mode='left'``: size
   ``s`` uses the first ``s`` columns; an automatic size-0 choice can drop the feature) gates
   the concatenated embeddings. Each training step samples one size per feature; the
   architecture logits learn from the data loss, plus an optional penalty on the expected
   number of embedding columns (``MixedNASLayer.expected_size()`` is differentiable).
2. **Read out.** ``get_architecture()`` gives, per feature, the chosen size and the columns it
   uses (``architecture_from_weights`` does the same from checkpointed values).
3. **Retrain.** A plain model with embeddings of the chosen sizes (dropped features removed),
   warm-started from the searched columns, is trained again.

Run: ``python examples/nas_search_then_retrain.py`` (``KERAS_BACKEND`` picks the backend).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from reclayers.layers import MLP, MixedNASLayer

FEATURES = ["user_id", "item_id", "noise_a", "noise_b"]
VOCAB = [50, 40, 30, 30]
CHOICES = [[2, 4, 8]] * len(FEATURES)  # the search space; the maximum width is 8 per feature


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic clicks: the label depends on ``user_id`` and ``item_id`` only (the others are noise)."""
    rng = np.random.default_rng(seed)
    ids = np.stack([rng.integers(0, v, size=n) for v in VOCAB], axis=1).astype("int32")
    truth = np.random.default_rng(1234)  # fixed ground truth shared by every split
    user_bias, item_bias = truth.normal(size=VOCAB[0]), truth.normal(size=VOCAB[1])
    user_vec, item_vec = truth.normal(size=(VOCAB[0], 2)), truth.normal(size=(VOCAB[1], 2))
    logit = 2.0 * (user_bias[ids[:, 0]] + item_bias[ids[:, 1]]) + np.sum(
        user_vec[ids[:, 0]] * item_vec[ids[:, 1]], axis=1)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype("float32")
    return ids, y[:, None]


class SearchModel(keras.Model):
    """Embeddings of the maximum size → MixedNASLayer → MLP → click probability."""

    def __init__(self, size_penalty: float = 0.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.size_penalty = size_penalty
        self.embeddings = [keras.layers.Embedding(v, max(c), name=f"emb_{f}")
                           for f, v, c in zip(FEATURES, VOCAB, CHOICES)]
        self.nas = MixedNASLayer(CHOICES, segment_names=FEATURES, embedding_share_mode="left",
                                 seed=seed, name="nas")
        self.mlp = MLP([16, 1], name="mlp")

    def call(self, ids, training=None):
        x = ops.concatenate([emb(ids[:, i]) for i, emb in enumerate(self.embeddings)], axis=-1)
        x = self.nas(x, training=training)
        if self.size_penalty:
            self.add_loss(self.size_penalty * self.nas.expected_size())
        return ops.sigmoid(self.mlp(x))


def build_retrain_model(sizes: list[int]) -> keras.Model:
    """A plain model whose feature ``f`` has an embedding of ``sizes[f]`` columns (0 → dropped)."""
    ids = keras.Input(shape=(len(FEATURES),), dtype="int32", name="ids")
    parts = []
    for i, (f, v, s) in enumerate(zip(FEATURES, VOCAB, sizes)):
        if s > 0:
            parts.append(keras.layers.Embedding(v, s, name=f"emb_{f}")(ids[:, i]))
    x = parts[0] if len(parts) == 1 else keras.layers.Concatenate()(parts)
    out = keras.layers.Activation("sigmoid")(MLP([16, 1], name="mlp")(x))
    return keras.Model(ids, out)


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(np.asarray(p, dtype="float64"), 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def main(steps: int = 400, batch_size: int = 128, size_penalty: float = 0.0, learning_rate: float = 0.02,
         seed: int = 0, evaluate: bool = True, verbose: int = 0) -> dict:
    """Search, read out, retrain.

    Returns a dict: ``architecture`` (``get_architecture()`` of the search layer), ``sizes`` (the
    embedding size kept per feature), ``search_columns`` / ``retrained_columns`` (total embedding
    columns before / after), ``retrain_model`` and, when ``evaluate``, the validation log-losses
    ``search_val_loss`` / ``retrain_val_loss``.
    """
    keras.utils.set_random_seed(seed)
    x, y = make_data(steps * batch_size, seed=seed)

    # 1. search (one epoch of `steps` steps)
    search = SearchModel(size_penalty=size_penalty, seed=seed)
    search.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy")
    search.fit(x, y, batch_size=batch_size, epochs=1, verbose=verbose)

    # 2. read the architecture out
    architecture = search.nas.get_architecture()
    sizes = [a["size"] for a in architecture]
    if not any(sizes):  # keep at least the most likely non-empty feature
        best = int(np.argmax([1.0 - a["probabilities"][0] for a in architecture]))
        sizes[best] = architecture[best]["choices"][1]

    # 3. retrain with the found sizes, warm-started from the searched columns
    retrain = build_retrain_model(sizes)
    for f, s in zip(FEATURES, sizes):
        if s > 0:
            table = np.asarray(ops.convert_to_numpy(search.get_layer(f"emb_{f}").embeddings))
            retrain.get_layer(f"emb_{f}").set_weights([table[:, :s]])
    retrain.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy")
    retrain.fit(x, y, batch_size=batch_size, epochs=1, verbose=verbose)

    result = {
        "architecture": architecture,
        "sizes": sizes,
        "search_columns": sum(max(c) for c in CHOICES),
        "retrained_columns": int(sum(sizes)),
        "retrain_model": retrain,
    }
    if evaluate:
        x_val, y_val = make_data(2048, seed=seed + 1)
        result["search_val_loss"] = log_loss(search.predict(x_val, verbose=0), y_val)
        result["retrain_val_loss"] = log_loss(retrain.predict(x_val, verbose=0), y_val)
    return result


if __name__ == "__main__":
    result = main(verbose=2)
    for a in result["architecture"]:
        print(f"{a['name']:>8}: size {a['size']}  p={np.round(a['probabilities'], 3).tolist()}")
    print(f"embedding columns: {result['search_columns']} searched -> {result['retrained_columns']} kept")
    print(f"validation loss: search {result['search_val_loss']:.4f}, "
          f"retrained {result['retrain_val_loss']:.4f}")
