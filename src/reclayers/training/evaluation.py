"""Predicting a split and scoring the predictions (per label: AUC, logloss, calibration, GAUC)."""

from __future__ import annotations

import numpy as np

from reclayers.metrics import StreamingMetrics

__all__ = ["USER_FEATURES", "metrics_table", "predict", "score"]

USER_FEATURES = ("user", "user_id", "userid", "uid")


def predict(model, arrays, batch_size: int = 4096, shards: int = 1) -> dict:
    """Predictions per label of ``model`` on a split.

    Args:
        model: a compiled zoo model.
        arrays: the split (``reclayers.data.Arrays`` interface).
        batch_size: rows per prediction batch.
        shards: with a JAX distribution each batch splits into this many equal pieces: rows are
            padded to a multiple of it and the padding's predictions dropped.

    Example:
        >>> from reclayers import data, models
        >>> ds = data.make_synthetic(n_rows=300, seed=0)
        >>> m = models.compile_model(models.get_model("lr", ds.schema), ds.schema)
        >>> predict(m, ds.splits["test"])["click"].shape
        (30,)
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
