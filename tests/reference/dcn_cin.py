"""Independent NumPy implementations of DCN and CIN, written from the spec's formulas (§17, §18)."""

from __future__ import annotations

import numpy as np


def l2n_columns(w, eps=1e-6):
    """TF ``l2_normalize(w, axis=0, eps)`` (floor on the squared column norm)."""
    return w / np.sqrt(np.maximum(np.sum(w * w, axis=0, keepdims=True), eps))


def effective(w, norm=None):
    """Kernel as used by the product: plain, or weight-normalised with column scale ``norm``."""
    return w if norm is None else l2n_columns(w) * norm[None, :]


def softmax(z, axis=-1):
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def dcn(x, dcn_type, layers, gating="normative", dropout_masks=None, keep_prob=1.0):
    """DCN forward.

    ``layers[i]`` is a dict with ``bias`` (1, d) and ``kernel`` (vector / matrix) or ``experts``:
    a list of dicts ``U, V, C, G`` (already effective kernels). ``gating='as_coded'`` gives every
    expert a gate of 1. ``dropout_masks[i]`` (0/1 arrays shaped like h) apply inverted dropout.
    """
    x0 = x.astype("float64")
    h = x0
    for i, p in enumerate(layers):
        if dcn_type == "vector":
            h = x0 * (h @ p["kernel"]) + p["bias"] + h
        elif dcn_type == "matrix":
            h = x0 * (h @ p["kernel"] + p["bias"]) + h
        else:
            outs, scores = [], []
            for ex in p["experts"]:
                inner = np.tanh(np.tanh(h @ ex["V"]) @ ex["C"])
                outs.append(x0 * (inner @ ex["U"].T + p["bias"]))
                scores.append(h @ ex["G"])  # (..., 1)
            if gating == "as_coded":
                gates = np.ones((len(outs),) + h.shape[:-1] + (1,))
            else:
                s = np.concatenate(scores, axis=-1)  # (..., K)
                gates = np.moveaxis(softmax(s, -1), -1, 0)[..., None]
            h = sum(g * o for g, o in zip(gates, outs)) + h
        if dropout_masks is not None:
            h = h * dropout_masks[i] / keep_prob
    return h


def cin(x, kernels, biases, activation=None):
    """CIN forward: ``x`` (B, m, D); ``kernels[k]`` (H_{k-1}·m, H_k); returns (B, Σ H_k)."""
    x0 = np.transpose(x.astype("float64"), (0, 2, 1))  # (B, D, m)
    b, d, m = x0.shape
    xp = x0
    pooled = []
    for k, (w, bias) in enumerate(zip(kernels, biases)):
        hp = xp.shape[2]
        z = np.zeros((b, d, hp * m))
        for h in range(hp):
            for j in range(m):
                z[:, :, h * m + j] = xp[:, :, h] * x0[:, :, j]
        xk = z @ w + bias
        if k < len(kernels) - 1 and activation is not None:
            xk = activation(xk)
        pooled.append(xk.sum(axis=1))
        xp = xk
    return np.concatenate(pooled, axis=1)
