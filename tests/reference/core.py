"""Independent NumPy implementations of the core layers, written from the spec's formulas."""

from __future__ import annotations

import math

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def l2_normalize_columns(v, eps=1e-6):
    """TF ``l2_normalize(v, axis=0, epsilon=eps)``: the floor is on the squared norm."""
    sq = np.sum(v * v, axis=0, keepdims=True)
    return v / np.sqrt(np.maximum(sq, eps))


def dense(x, kernel, bias=None, activation=None, kernel_norm=False, norm_scale=None):
    w = kernel
    if kernel_norm:
        w = l2_normalize_columns(kernel)
        if norm_scale is not None:
            w = w * norm_scale[None, :]
    y = x @ w
    if bias is not None:
        y = y + bias
    return activation(y) if activation is not None else y


def relu(x):
    return np.maximum(x, 0.0)


_erf = np.vectorize(math.erf)

ACTIVATIONS = {
    "relu": relu,
    "leakyrelu": lambda x: np.where(x >= 0, x, 0.3 * x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "softmax": lambda x: np.exp(x - x.max(-1, keepdims=True))
    / np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True),
    "thresholdedrelu": lambda x: np.where(x > 1.0, x, 0.0),
    "prelu": relu,  # alpha initialised to zero
    "exponential": np.exp,
    "gelu": lambda x: 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0))),
    "hardsigmoid": lambda x: np.clip(0.2 * x + 0.5, 0.0, 1.0),
    "hard_sigmoid": lambda x: np.clip(0.2 * x + 0.5, 0.0, 1.0),
    "linear": lambda x: x,
    "selu": lambda x: 1.0507009873554805
    * np.where(x > 0, x, 1.6732632423543772 * np.expm1(np.minimum(x, 0))),
    "sigmoid": sigmoid,
    "sigmoid2": lambda x: 2.0 * sigmoid(x),
    "softplus": lambda x: np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0),
    "softsign": lambda x: x / (1.0 + np.abs(x)),
    "swish": lambda x: x * sigmoid(x),
    "silu": lambda x: x * sigmoid(x),
    "tanh": np.tanh,
}


def batch_norm_inference(x, gamma, beta, mean, var, eps=1e-3):
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def batch_norm_train(x, gamma, beta, eps=1e-3):
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes)
    var = x.var(axis=axes)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def batch_renorm_train(x, gamma, beta, moving_mean, moving_std, eps=1e-3, rmax=np.inf, rmin=0.0,
                       dmax=np.inf):
    """Batch renormalisation (Ioffe 2017) in training: ``((x-μB)/σB · r + d) γ + β``."""
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes)
    std = np.sqrt(x.var(axis=axes) + eps)
    r = np.clip(std / moving_std, rmin, rmax)
    d = np.clip((mean - moving_mean) / moving_std, -dmax, dmax)
    return ((x - mean) / std * r + d) * gamma + beta


def mlp(x, layers, activations, weight_norm=True, bn=None, training=False):
    """``layers``: list of (kernel, g or None, bias or None); ``bn``: {"in"|i: (γ, β, mean, var)}."""
    h = x
    if bn is not None:
        h = _bn(h, bn["in"], training)
    n = len(layers)
    for i, (kernel, g, bias) in enumerate(layers):
        h = dense(h, kernel, bias, kernel_norm=weight_norm, norm_scale=g)
        if bn is not None and i < n - 1:
            h = _bn(h, bn[i], training)
        if activations[i] is not None:
            h = activations[i](h)
    return h


def _bn(h, stats, training):
    gamma, beta, mean, var = stats
    if training:
        return batch_norm_train(h, gamma, beta)
    return batch_norm_inference(h, gamma, beta, mean, var)


def layer_norm(x, gamma, beta, eps=1e-6):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def grad_norm(norms, logits, losses, scale=1.0, loss_pow=2.0, relative_diff=False, eps=1e-6):
    w = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    wg = norms * w
    avg = wg.mean()
    diff = np.abs(wg - avg)
    if relative_diff:
        diff = diff / (avg + eps)
    return scale * np.sum(diff**loss_pow), float(np.sum(np.asarray(losses) * w))


def log_sigmoid(x):
    return -(np.maximum(x, 0) - x + np.log1p(np.exp(-np.abs(x))))


def logit_correction(x, r=None, sample_bias=False, activation=None):
    y = log_sigmoid(x) if sample_bias else x
    if r is not None:
        y = y - np.log(r)
    return activation(y) if activation is not None else y
