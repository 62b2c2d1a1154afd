"""Independent NumPy implementations of AutoInt, iRazor and SeNet (spec §19-§21)."""

from __future__ import annotations

import numpy as np


def softmax(z, axis=-1):
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def merge(y, out_type, keep_list=False):
    """``merge_tensor_list`` for one (B, F, E) array."""
    if out_type == "stack":
        out = y
    elif out_type == "concat":
        out = y.reshape(y.shape[0], -1)
    else:
        return [y[:, f, :] for f in range(y.shape[1])]
    return [out] if keep_list else out


def autoint(x, layer_num):
    h = x.astype("float64")
    for _ in range(layer_num):
        a = softmax(np.einsum("bfe,bge->bfg", h, h), axis=-1)
        h = np.einsum("bfg,bge->bfe", a, h)
    return h


def irazor_mask(nas_weight, nas_space, t):
    """Returns (P, S): P (F, K) softmax(nas_weight / t); S[f, e] = P[f, group(e)]."""
    p = softmax(nas_weight.astype("float64") / t, axis=1)
    f, e = p.shape[0], nas_space[-1]
    s = np.zeros((f, e))
    for col in range(e):
        group = next(i for i in range(1, len(nas_space)) if nas_space[i - 1] <= col < nas_space[i])
        s[:, col] = p[:, group]
    return p, s


def irazor(x, nas_weight, nas_space, t, feature_weight=None):
    """Returns (Y (B, F, E), loss or None)."""
    _, s = irazor_mask(nas_weight, nas_space, t)
    loss = None
    if feature_weight is not None:
        loss = float(np.sum(np.asarray(feature_weight) * s.sum(axis=1)))
    return x.astype("float64") * s[None], loss


def weight_norm_dense(z, kernel, norm, bias):
    w = kernel / np.sqrt(np.maximum(np.sum(kernel * kernel, axis=0, keepdims=True), 1e-6))
    return z @ (w * norm[None, :]) + bias


def senet_scale(z, tower=None):
    """Excitation: ``tower`` = (k0, g0, b0, k1, g1, b1) of the weight-normalised MLP, or None."""
    if tower is None:
        return z
    k0, g0, b0, k1, g1, b1 = tower
    hidden = np.maximum(weight_norm_dense(z, k0, g0, b0), 0.0)
    return 1.0 / (1.0 + np.exp(-weight_norm_dense(hidden, k1, g1, b1)))


def senet(x, tower=None):
    """Tensor input (B, F, E) -> Y (B, F, E)."""
    x = x.astype("float64")
    s = senet_scale(x.mean(axis=2), tower)
    return x * s[:, :, None]


def senet_list(xs, tower=None):
    """List input [(B, E_f)] -> list of Y_f."""
    xs = [x.astype("float64") for x in xs]
    z = np.stack([x.mean(axis=1) for x in xs], axis=1)
    s = senet_scale(z, tower)
    return [x * s[:, f:f + 1] for f, x in enumerate(xs)]
