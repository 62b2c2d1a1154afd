"""Independent NumPy references for the multi-task and LHUC layers, from the spec's formulas."""

from __future__ import annotations

import math

import numpy as np

from tests.reference import core


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def topk_mask(logits, k):
    """1 on the ``k`` largest entries of the last axis; ties go to the lower index."""
    order = np.argsort(-logits, axis=-1, kind="stable")
    mask = np.zeros_like(logits)
    np.put_along_axis(mask, order[..., :k], 1.0, axis=-1)
    return mask


def mmoe(expert_outputs, gate_x, gate_weight, num_tasks, gate_type="softmax", k=1,
         gate_noise=None, eps=None):
    """MMoE forward. ``expert_outputs``: list of ``E`` arrays ``[B, D]``.

    Returns ``(task outputs, gates [B, N, E], balance loss or None)``; ``eps`` is the standard
    normal noise ``[B, E·N]`` (``None``: no noise, i.e. inference).
    """
    n_exp = len(expert_outputs)
    y = np.stack(expert_outputs, axis=-1)  # [B, D, E]
    logits = gate_x @ gate_weight  # [B, E·N], column t·E + e
    if gate_type == "noise_topk" and eps is not None:
        logits = logits + eps * core.ACTIVATIONS["softplus"](gate_x @ gate_noise)
    logits = logits.reshape(-1, num_tasks, n_exp)
    p = softmax(logits)
    loss = None
    if gate_type != "softmax":
        p = p * topk_mask(logits, k)
        p = p / p.sum(-1, keepdims=True)
        importance = p.sum(axis=0)  # [N, E]
        loss = float(np.sum(importance.var(axis=-1) / importance.mean(axis=-1) ** 2))
    outs = [np.einsum("bde,be->bd", y, p[:, t, :]) for t in range(num_tasks)]
    return outs, p, loss


def hard_concrete_gates(log_alpha, zeta=1.1, gamma=-0.1, beta=0.5, u=None):
    """``z = clip(s (ζ-γ) + γ, 0, 1)``; ``s = σ(log_alpha)`` or, with ``u``, the concrete sample."""
    if u is None:
        s = core.sigmoid(log_alpha)
    else:
        s = core.sigmoid((np.log(u) - np.log(1.0 - u) + log_alpha) / beta)
    return np.clip(s * (zeta - gamma) + gamma, 0.0, 1.0)


def snr(xs, z, num_out, d_out, weight=None):
    """``out_j = Σ_i z[i·K + j] · (x_i @ W_ij)``, ``W_ij = weight[i·K + j].reshape(d_in, d_out)``
    (identity when ``weight`` is ``None``)."""
    z = np.asarray(z).reshape(-1)
    d_in = xs[0].shape[-1]
    outs = []
    for j in range(num_out):
        acc = np.zeros((xs[0].shape[0], d_out))
        for i, x in enumerate(xs):
            r = i * num_out + j
            w = np.eye(d_in) if weight is None else weight[r].reshape(d_in, d_out)
            acc = acc + z[r] * (x @ w)
        outs.append(acc)
    return outs


def l0_loss(log_alpha, zeta=1.1, gamma=-0.1, beta=0.5):
    return float(np.sum(core.sigmoid(np.asarray(log_alpha) - beta * math.log(-gamma / zeta))))


def lhuc_tower(x, c, dense_layers, activations, lhuc_mlps, weight_norm=True):
    """``h = act_i(Dense_i(h)) ⊙ 2σ-gate_i(c)``; ``dense_layers``: (kernel, g, bias) per layer;
    ``lhuc_mlps``: per layer a list of (kernel, g, bias) (ReLU hidden, ``2σ`` last)."""
    h = x
    for i, (kernel, g, bias) in enumerate(dense_layers):
        h = core.dense(h, kernel, bias, kernel_norm=weight_norm, norm_scale=g)
        if activations[i] is not None:
            h = activations[i](h)
        layers = lhuc_mlps[i]
        acts = [core.relu] * (len(layers) - 1) + [core.ACTIVATIONS["sigmoid2"]]
        h = h * core.mlp(c, layers, acts, weight_norm=weight_norm)
    return h
