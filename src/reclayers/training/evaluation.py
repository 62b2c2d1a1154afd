"""Predicting a split and scoring the predictions (per label: AUC, logloss, calibration, GAUC)."""

from __future__ import annotations

import numpy as np

from reclayers.metrics import StreamingMetrics

__all__ = ["USER_FEATURES", "metrics_table", "predict", "predict_keras", "score"]

USER_FEATURES = ("user", "user_id", "userid", "uid")


def predict(model, arrays, batch_size: int = 4096, shards: int = 1) -> dict:
    """Predictions per label of ``model`` on a split, in the split's row order.

    Batches are sliced straight from the split (:class:`reclayers.data.dataset.BatchReader`, no
    ``PyDataset`` adapter) and run through the model's compiled prediction step
    (``predict_on_batch``); the last, short batch is padded to the shape already compiled (rows
    repeated, their predictions dropped), so a split costs one compilation per model instead of
    two. Under a distribution (a JAX ``keras.distribution`` or a TensorFlow strategy) it uses
    ``model.predict``, which lays each batch out over the devices.

    Args:
        model: a compiled zoo model.
        arrays: the split (``reclayers.data.Arrays`` interface).
        batch_size: rows per prediction batch (a split shorter than it is one batch of its size).
            Default 4096.
        shards: with a JAX distribution each batch splits into this many equal pieces: rows are
            padded to a multiple of it and the padding's predictions dropped. Default 1.

    Example:
        >>> from reclayers import data, models
        >>> ds = data.make_synthetic(n_rows=300, seed=0)
        >>> m = models.compile_model(models.get_model("lr", ds.schema), ds.schema)
        >>> predict(m, ds.splits["test"])["click"].shape
        (30,)
    """
    if shards > 1 or _distributed(model):
        return predict_keras(model, arrays, batch_size, shards)
    from reclayers.data.dataset import BatchReader

    n = len(arrays)
    if n == 0:
        return predict_keras(model, arrays, batch_size)
    batch_size = min(int(batch_size), n)
    reader = BatchReader(arrays, batch_size, shuffle=False)
    parts: dict = {}
    try:
        for b in range(len(reader)):
            x, _ = reader[b]
            rows = len(next(iter(x.values())))
            if rows < batch_size:  # pad to the compiled shape by repeating the first row
                pad = np.zeros(batch_size - rows, np.int64)
                x = {k: np.concatenate([v, v[pad]]) for k, v in x.items()}
            out = model.predict_on_batch(x)
            if not isinstance(out, dict):
                out = dict(zip(model.output_names, out if isinstance(out, (list, tuple)) else [out]))
            for k, v in out.items():
                parts.setdefault(k, []).append(np.asarray(v).reshape(-1)[:rows])
    finally:
        reader.close()
    return {k: np.concatenate(v) for k, v in parts.items()}


def predict_keras(model, arrays, batch_size: int = 4096, shards: int = 1) -> dict:
    """:func:`predict` through ``model.predict`` over a ``keras.utils.PyDataset``: the path for
    distributed models, and the reference the fast path is tested against.

    Args:
        model, arrays: as in :func:`predict`.
        batch_size: rows per prediction batch (the last one may be shorter). Default 4096.
        shards: each batch splits into this many equal pieces (rows padded to a multiple of it,
            the padding's predictions dropped). Default 1.

    Example:
        >>> import numpy as np
        >>> from reclayers import data, models
        >>> ds = data.make_synthetic(n_rows=300, seed=0)
        >>> m = models.compile_model(models.get_model("lr", ds.schema), ds.schema)
        >>> test = ds.splits["test"]
        >>> np.allclose(predict_keras(m, test, shards=4)["click"], predict(m, test)["click"], atol=1e-6)
        True
    """
    from reclayers.data import keras_dataset

    n = len(arrays)
    if shards > 1:
        batch_size = shards * max(1, batch_size // shards)
        pad = -n % shards
        if pad:
            arrays = arrays.take(np.concatenate([np.arange(n), np.zeros(pad, np.int64)]))
    pred = model.predict(keras_dataset(arrays, batch_size, shuffle=False, label_format="dict"), verbose=0)
    return {k: np.asarray(v).reshape(-1)[:n] for k, v in pred.items()}


def _distributed(model) -> bool:
    """Whether ``model`` runs under a distribution that ``model.predict`` must lay batches out for."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        return keras.distribution.distribution() is not None
    if backend == "tensorflow":
        import tensorflow as tf

        strategy = getattr(model, "_distribute_strategy", None)
        return tf.distribute.has_strategy() or (strategy is not None and strategy.num_replicas_in_sync > 1)
    return False


def score(schema, arrays, predictions: dict) -> dict:
    """``{label: {auc, logloss, calibration, rate, n, gauc?}}`` of ``predictions`` against the
    split's labels (GAUC over the user feature when there is one); undefined values are ``None``
    with a reason (see :class:`reclayers.metrics.StreamingMetrics`).

    Args:
        schema: the data schema (gives the label names).
        arrays: the split with its labels.
        predictions: ``{label: probabilities}``.

    Example:
        >>> from reclayers import data
        >>> ds = data.make_synthetic(n_rows=300, seed=0)
        >>> test = ds.splits["test"]
        >>> score(ds.schema, test, {"click": test.labels["click"]})["click"]["auc"]
        1.0
    """
    user = next((u for u in USER_FEATURES if u in arrays.features), None)
    m = StreamingMetrics(schema.label_names)
    m.update(arrays.labels, predictions, None if user is None else arrays.features[user])
    return m.result()


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "n/a"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def metrics_table(metrics: dict, bayes: dict | None = None) -> str:
    """A Markdown table of ``{label: {auc, logloss, gauc}}`` (plus the Bayes-optimal AUC).

    Args:
        metrics: per-label metrics, as :func:`score` returns.
        bayes: optional ``{label: Bayes-optimal AUC}``.

    Example:
        >>> print(metrics_table({"click": {"auc": 0.75, "logloss": 0.5, "n": 4}}))
        | label | auc | logloss | n |
        |---|---|---|---|
        | click | 0.7500 | 0.5000 | 4 |
    """
    cols = ["auc", "logloss"] + (["gauc"] if any("gauc" in m for m in metrics.values()) else [])
    head = ["label"] + cols + (["bayes_auc"] if bayes else []) + ["n"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lab, m in metrics.items():
        cells = [lab] + [_fmt(m.get(c)) for c in cols]
        if bayes:
            cells.append(_fmt(bayes.get(lab)))
        rows.append("| " + " | ".join(cells + [str(m["n"])]) + " |")
    return "\n".join(rows)
