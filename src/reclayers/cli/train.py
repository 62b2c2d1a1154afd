"""``reclayers train``: fit a model on a data set and write a run directory."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def synthetic_clicks(n: int, num_features: int = 16, seed: int = 0) -> tuple:
    """Clicks from a known logistic model with pairwise interactions.

    ``p(click) = σ(b + w·x + Σ_{i<j} v_ij x_i x_j)`` with ``x ~ N(0, I)``; returns
    ``(x, y, p)`` where ``p`` is the true click probability (the Bayes-optimal score).
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, num_features)).astype("float32")
    w = rng.normal(scale=0.6, size=num_features)
    v = np.triu(rng.normal(scale=0.25, size=(num_features, num_features)), k=1)
    logit = -1.0 + x @ w + np.einsum("bi,ij,bj->b", x, v, x)
    p = 1.0 / (1.0 + np.exp(-logit))
    y = (rng.uniform(size=n) < p).astype("float32")
    return x, y[:, None], p


def auc_score(y: np.ndarray, score: np.ndarray) -> float:
    """Exact ROC AUC (ties counted half) via ranks."""
    y = np.asarray(y).ravel()
    score = np.asarray(score).ravel()
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype="float64")
    sorted_scores = score[order]
    i = 0
    while i < len(score):
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i: j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def logloss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(np.asarray(p, "float64").ravel(), 1e-7, 1 - 1e-7)
    y = np.asarray(y).ravel()
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def train(args: argparse.Namespace) -> int:
    import keras

    from reclayers import layers

    if args.data != "synthetic":
        print(f"reclayers train: --data must be 'synthetic' in this version; got {args.data!r}")
        return 2
    keras.utils.set_random_seed(args.seed)
    x, y, p_true = synthetic_clicks(args.examples, seed=args.seed)
    n_train = int(0.8 * len(x))
    x_tr, y_tr, x_te, y_te = x[:n_train], y[:n_train], x[n_train:], y[n_train:]

    inputs = keras.Input((x.shape[1],), name="features")
    logits = layers.MLP([64, 32, 1], name="mlp")(inputs)
    model = keras.Model(inputs, keras.layers.Activation("sigmoid", name="ctr")(logits))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC(name="auc")])
    start = time.time()
    history = model.fit(x_tr, y_tr, validation_split=0.1, epochs=args.epochs,
                        batch_size=args.batch_size, verbose=0 if args.quiet else 2)
    seconds = time.time() - start
    pred = model.predict(x_te, batch_size=4096, verbose=0)
    metrics = {
        "model": args.model,
        "backend": keras.backend.backend(),
        "test_auc": auc_score(y_te, pred),
        "test_logloss": logloss(y_te, pred),
        "bayes_optimal_auc": auc_score(y_te, p_true[n_train:]),
        "train_seconds": round(seconds, 2),
        "examples_per_second": round(args.epochs * n_train * 0.9 / max(seconds, 1e-9), 1),
        "parameters": int(model.count_params()),
    }
    run_dir = Path(args.run_dir) / f"{time.strftime('%Y%m%d-%H%M%S')}-{args.model}-{metrics['backend']}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(vars(args), indent=2, default=str))
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (run_dir / "history.json").write_text(json.dumps(
        {k: [float(v) for v in vals] for k, vals in history.history.items()}, indent=2))
    model.save(run_dir / "model.keras")

    print()
    print(f"{'metric':<22}{'value':>12}")
    for key in ("test_auc", "test_logloss", "bayes_optimal_auc", "parameters", "train_seconds",
                "examples_per_second"):
        value = metrics[key]
        print(f"{key:<22}{value:>12.4f}" if isinstance(value, float) else f"{key:<22}{value:>12}")
    print(f"AUC on held-out data: {metrics['test_auc']:.4f} (backend {metrics['backend']})")
    print(f"run directory: {run_dir}")
    return 0
