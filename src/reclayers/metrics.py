"""Evaluation metrics of click-through-rate models: AUC, logloss, group AUC, calibration.

The functions take whole arrays; :class:`StreamingMetrics` accumulates them batch by batch (the
exact AUC needs every score, kept as ``float32`` with a one-byte label: 5 bytes per row). An
undefined value (an AUC over one class only) is ``nan`` in the array functions and ``None`` with
a reason in :meth:`StreamingMetrics.result`, so that the results are valid strict JSON
(:func:`json_safe` does the same to any nested result).

``reclayers.metrics`` imports only numpy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "StreamingMetrics",
    "auc",
    "calibration",
    "group_auc",
    "json_safe",
    "logloss",
    "undefined_reason",
]


def auc(y, score) -> float:
    """ROC AUC by the rank-sum formula (ties count one half); ``nan`` without both classes.

    ``AUC = (Σ_{positives} rank − n₊(n₊+1)/2) / (n₊ · n₋)`` with average ranks for ties: the
    probability that a random positive scores above a random negative.

    Args:
        y: binary labels.
        score: scores or probabilities, one per label.

    Example:
        >>> auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        0.75
    """
    y = np.asarray(y).astype(bool).ravel()
    score = np.asarray(score, np.float64).ravel()
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inv, counts = np.unique(score, return_inverse=True, return_counts=True)
    avg_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based average rank of each distinct score
    ranks = avg_rank[inv]
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def logloss(y, p, eps: float = 1e-12) -> float:
    """Mean binary cross-entropy of probabilities ``p``; ``nan`` on no rows.

    ``−mean(y log p + (1 − y) log(1 − p))`` with ``p`` clipped to ``[eps, 1 − eps]``.

    Args:
        y: binary labels.
        p: predicted probabilities.
        eps: clipping bound.

    Example:
        >>> round(logloss([1, 0], [0.9, 0.2]), 4)
        0.1643
    """
    y = np.asarray(y, np.float64).ravel()
    if y.size == 0:
        return float("nan")
    p = np.clip(np.asarray(p, np.float64).ravel(), eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def calibration(y, p) -> float:
    """Mean prediction divided by the observed positive rate (1.0 is calibrated); ``nan`` when
    there is no positive.

    Args:
        y: binary labels.
        p: predicted probabilities.

    Example:
        >>> calibration([1, 0, 0, 0], [0.5, 0.25, 0.25, 0.0])
        1.0
    """
    y = np.asarray(y, np.float64).ravel()
    rate = float(y.mean()) if y.size else 0.0
    if rate == 0.0:
        return float("nan")
    return float(np.mean(np.asarray(p, np.float64))) / rate


def group_auc(y, p, groups) -> float:
    """Impression-weighted mean of the per-group AUC over the groups having both classes (GAUC);
    ``nan`` when no group has both.

    Args:
        y: binary labels.
        p: predicted probabilities.
        groups: group id of each row (usually the user).

    Example:
        >>> group_auc([0, 1, 0, 1, 1], [0.1, 0.9, 0.8, 0.2, 0.5], [1, 1, 2, 2, 3])
        0.5
    """
    y, p, groups = np.asarray(y).ravel(), np.asarray(p).ravel(), np.asarray(groups).ravel()
    order = np.argsort(groups, kind="stable")
    cuts = np.flatnonzero(np.diff(groups[order])) + 1
    total, weight = 0.0, 0
    for idx in np.split(order, cuts):  # one AUC per group: a loop over groups, not rows
        yy = y[idx]
        if 0 < yy.sum() < len(yy):
            total += len(idx) * auc(yy, p[idx])
            weight += len(idx)
    return float(total / weight) if weight else float("nan")


def undefined_reason(y) -> str | None:
    """Why the AUC of labels ``y`` is undefined (``None`` when it is defined).

    Args:
        y: binary labels.

    Example:
        >>> undefined_reason([0, 0]), undefined_reason([0, 1])
        ('no positive example among 2 rows', None)
    """
    y = np.asarray(y).astype(bool).ravel()
    if y.size == 0:
        return "no rows"
    if not y.any():
        return f"no positive example among {y.size} rows"
    if y.all():
        return f"no negative example among {y.size} rows"
    return None


def json_safe(obj: Any) -> Any:
    """``obj`` with every ``nan``/``inf`` float replaced by ``None`` and numpy scalars made Python
    numbers, in nested dicts, lists and tuples: what ``json.dumps(..., allow_nan=False)`` accepts.

    Args:
        obj: a nested structure of dicts, lists, tuples and numbers.

    Example:
        >>> json_safe({"auc": float("nan"), "n": np.int64(3), "h": [1.5, float("inf")]})
        {'auc': None, 'n': 3, 'h': [1.5, None]}
    """
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


class StreamingMetrics:
    """Accumulates labels and predictions over batches; :meth:`result` gives every metric.

    Args:
        labels: the label names.

    Example:
        >>> m = StreamingMetrics(["click"])
        >>> m.update({"click": [0, 1]}, {"click": [0.2, 0.7]})
        >>> m.update({"click": [0, 1]}, {"click": [0.6, 0.4]})
        >>> r = m.result()["click"]
        >>> r["auc"], r["n"], r["rate"]
        (0.75, 4, 0.5)
        >>> m2 = StreamingMetrics(["buy"]); m2.update({"buy": [0, 0]}, {"buy": [0.1, 0.2]})
        >>> m2.result()["buy"]["auc"], m2.result()["buy"]["auc_undefined"]
        (None, 'no positive example among 2 rows')
    """

    def __init__(self, labels):
        self.labels = list(labels)
        self._y: dict[str, list] = {lab: [] for lab in self.labels}
        self._p: dict[str, list] = {lab: [] for lab in self.labels}
        self._groups: list = []

    def update(self, labels: dict, predictions: dict, groups=None) -> None:
        """Adds one batch.

        Args:
            labels: ``{label: array [n]}``.
            predictions: ``{label: array [n]}`` of probabilities.
            groups: optional group ids ``[n]`` for the group AUC.
        """
        for lab in self.labels:
            self._y[lab].append(np.asarray(labels[lab]).ravel().astype(np.int8))
            self._p[lab].append(np.asarray(predictions[lab], np.float32).ravel())
        if groups is not None:
            self._groups.append(np.asarray(groups).ravel())

    def result(self) -> dict:
        """``{label: {auc, logloss, calibration, rate, n, gauc?}}``; undefined values are ``None``
        with an ``auc_undefined`` reason."""
        out = {}
        groups = np.concatenate(self._groups) if self._groups else None
        for lab in self.labels:
            y = np.concatenate(self._y[lab]) if self._y[lab] else np.zeros(0, np.int8)
            p = np.concatenate(self._p[lab]) if self._p[lab] else np.zeros(0, np.float32)
            m: dict[str, Any] = {"auc": auc(y, p), "logloss": logloss(y, p), "calibration": calibration(y, p),
                                 "rate": float(y.mean()) if y.size else None, "n": int(y.size)}
            reason = undefined_reason(y)
            if reason:
                m["auc_undefined"] = reason
            if groups is not None and len(groups) == len(y):
                m["gauc"] = group_auc(y, p, groups)
            out[lab] = json_safe(m)
        return out
