"""Independent NumPy references for the embedding-NAS layers (spec §6), written from the formulas."""

from __future__ import annotations

import numpy as np


def softmax(z, t=1.0):
    z = np.asarray(z, dtype="float64") / t
    e = np.exp(z - z.max())
    return e / e.sum()


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype="float64")))


# ---------------------------------------------------------------------------------- masks ----


def width(choices, mode):
    nonzero = [s for s in choices if s > 0]
    return int(sum(nonzero)) if mode == "none" else int(max(nonzero))


def mask_left(choices):
    w = width(choices, "left")
    return np.array([[1 if j < s else 0 for j in range(w)] for s in choices], dtype="float64")


def mask_diff(choices):
    w = width(choices, "diff")
    rows, prev = [], 0
    for s in choices:
        rows.append([1 if prev <= j < s else 0 for j in range(w)])
        prev = s
    return np.array(rows, dtype="float64")


def mask_none(choices):
    w = width(choices, "none")
    rows = []
    for c, s in enumerate(choices):
        lo = sum(choices[:c])
        rows.append([1 if lo <= j < lo + s else 0 for j in range(w)])
    return np.array(rows, dtype="float64")


def masks_random(all_choices, seed):
    """Spec rule: RandomState(seed); per feature, per row: full row if s == W, empty if 0, else
    ``randint(0, W, size=s)`` columns set (with replacement)."""
    rs = np.random.RandomState(seed)
    out = []
    for choices in all_choices:
        w = width(choices, "random")
        m = np.zeros((len(choices), w))
        for c, s in enumerate(choices):
            if s == w:
                m[c] = 1
            elif s > 0:
                for j in rs.randint(0, w, size=s):
                    m[c, j] = 1
        out.append(m)
    return out


MASKS = {"left": mask_left, "diff": mask_diff, "none": mask_none}


# --------------------------------------------------------------------------- selection ----


def column_gate(gates_per_feature, masks):
    """Concatenate ``g_fᵀ M_f`` over features."""
    return np.concatenate([np.asarray(g) @ np.asarray(m) for g, m in zip(gates_per_feature, masks)])


def soft_selection(alphas, masks, temperature=1.0):
    """``weight_grad_mode='none'``: column gate with ``g_f = softmax(α_f / T)``."""
    return column_gate([softmax(a, temperature) for a in alphas], masks)


def argmax_selection(alphas, masks):
    gates = []
    for a in alphas:
        g = np.zeros(len(a))
        g[int(np.argmax(a))] = 1.0
        gates.append(g)
    return column_gate(gates, masks)


def discrete_grad(alpha_f, chosen, upstream_g, temperature):
    """``∂L/∂α_f = (∂L/∂g_{c*}) · π_{c*} (e_{c*} − π) / T`` with ``π = softmax(α_f / T)``."""
    p = softmax(alpha_f, temperature)
    e = np.zeros_like(p)
    e[chosen] = 1.0
    return upstream_g * p[chosen] * (e - p) / temperature


# ------------------------------------------------------------------------------- gating ----


def gating_inference(alpha, sizes):
    return np.concatenate([np.full(w, 1.0 if a > 0 else 0.0) for a, w in zip(alpha, sizes)])


def ste_derivative(alpha, ste_type, temperature):
    a = np.asarray(alpha, dtype="float64") / temperature
    if ste_type == "none":
        p = sigmoid(a)
        return p * (1 - p) / temperature
    if ste_type == "clip":
        return (np.abs(a) < 1).astype("float64") / temperature
    return sigmoid(a) / temperature


# ----------------------------------------------------------------------------- simple NAS ----


def simple_nas(alpha_f, temperature, threshold):
    """Returns ``(p, cdf, k*, hard mask, soft survival mask)`` for one feature, no noise."""
    p = softmax(alpha_f, temperature)
    d = len(alpha_f) - 1
    cdf = np.cumsum(p)
    k = min(d, int(np.sum(cdf < threshold)))
    hard = np.array([1.0 if j < k else 0.0 for j in range(d)])
    soft = np.array([1.0 - cdf[j] for j in range(d)])
    return p, cdf, k, hard, soft


def simple_nas_grad(alpha_f, temperature, upstream):
    """Gradient of ``Σ_j upstream_j · s_j`` (``s_j = Σ_{k>j} p_k``) w.r.t. ``α_f``.

    Tempered softmax Jacobian: ``∂p_k/∂α_i = p_k (δ_ki − p_i) / T``.
    """
    p = softmax(alpha_f, temperature)
    d = len(alpha_f) - 1
    jac_p = (np.diag(p) - np.outer(p, p)) / temperature  # [k, i]
    ds_dp = np.array([[1.0 if k > j else 0.0 for k in range(d + 1)] for j in range(d)])  # [j, k]
    return np.asarray(upstream) @ ds_dp @ jac_p
