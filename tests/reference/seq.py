"""NumPy references for the sequence layers (``agru``, ``feature_seq``), written from the spec.

Spec: ``shared/spec/seq-multitask-nas.md`` §2 (AGRUCell and the RNN drivers) and §3 (DIN,
DIEN, DMR_U2I). Loops here are plain Python loops over time, on purpose.
"""

from __future__ import annotations

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softplus(x):
    return np.logaddexp(0.0, x)


ACT = {
    None: lambda x: x,
    "linear": lambda x: x,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": sigmoid,
}


def prelu(x, alpha):
    return np.where(x >= 0, x, alpha * x)


def valid_from(mask, lengths, steps):
    if mask is not None:
        m = np.asarray(mask)
        return m.astype(bool) if m.dtype == bool else m >= 1
    if lengths is not None:
        return np.arange(steps)[None, :] < np.asarray(lengths)[:, None]
    return None


# --------------------------------------------------------------------------------------------
# AGRU (§2)
# --------------------------------------------------------------------------------------------


def agru_step(x, h, a, w, att_type="AGRU", act=np.tanh):
    """``w = (gates_kernel, gates_bias, candidate_kernel, candidate_bias)``; ``a`` [B,1] or None."""
    gk, gb, ck, cb = w
    units = h.shape[-1]
    g = sigmoid(np.concatenate([x, h], -1) @ gk + gb)
    r, u = g[:, :units], g[:, units:]
    c = act(np.concatenate([x, r * h], -1) @ ck + cb)
    if a is None:
        return (1 - u) * h + u * c
    a = np.reshape(a, (-1, 1))
    if att_type.upper() == "AUGRU":
        ut = (1 - a) * u
        return ut * h + (1 - ut) * c
    return (1 - a) * h + a * c


def rnn_with_attention(x, scores, w, att_type="AGRU", act=np.tanh, h0=None, valid=None):
    """Returns ``(outputs [B,T,U], final [B,U])``; padded steps keep the state, output 0."""
    b, t_len, _ = x.shape
    units = w[3].shape[0]
    h = np.zeros((b, units)) if h0 is None else h0
    outs = []
    for t in range(t_len):
        hn = agru_step(x[:, t], h, scores[:, t:t + 1], w, att_type, act)
        if valid is None:
            h, o = hn, hn
        else:
            m = valid[:, t:t + 1]
            h = np.where(m, hn, h)
            o = np.where(m, hn, 0.0)
        outs.append(o)
    return np.stack(outs, 1), h


# --------------------------------------------------------------------------------------------
# DIN (§3.1)
# --------------------------------------------------------------------------------------------


def weight_norm_kernel(v, g, eps=1e-6):
    return v / np.sqrt(np.maximum(np.sum(v * v, axis=0, keepdims=True), eps)) * g


def din(q, keys, layers, hidden_act=None, mode="sum", decay=False, valid=None):
    """``layers``: list of ``(V, g, bias)`` of the weight-normalised attention MLP."""
    _, t_len, h_dim = keys.shape
    qq = np.repeat(q[:, None, :], t_len, axis=1)
    z = np.concatenate([qq, keys, qq - keys, qq * keys], -1)
    for i, (v, g, b) in enumerate(layers):
        z = z @ weight_norm_kernel(v, g) + b
        if i < len(layers) - 1:
            z = ACT[hidden_act](z)
    s = z  # [B, T, 1]
    if decay:
        s = s / np.sqrt(h_dim)
    if valid is not None:
        s = np.where(valid[..., None], s, 0.0)
    if mode == "sum":
        return np.sum(s * keys, axis=1)
    return keys * s


# --------------------------------------------------------------------------------------------
# DIEN (§3.2)
# --------------------------------------------------------------------------------------------


def gru_reset_after(x, kernel, rkernel, bias, act, valid=None):
    """Keras GRU (reset_after=True, gates z, r, h); padded steps carry the state."""
    b, t_len, _ = x.shape
    units = rkernel.shape[0]
    h = np.zeros((b, units))
    outs = []
    for t in range(t_len):
        xk = x[:, t] @ kernel + bias[0]
        hk = h @ rkernel + bias[1]
        z = sigmoid(xk[:, :units] + hk[:, :units])
        r = sigmoid(xk[:, units:2 * units] + hk[:, units:2 * units])
        hh = act(xk[:, 2 * units:] + r * hk[:, 2 * units:])
        hn = z * h + (1 - z) * hh
        if valid is not None:
            hn = np.where(valid[:, t:t + 1], hn, h)
        h = hn
        outs.append(h)
    return np.stack(outs, 1)


def masked_softmax(logits, valid=None):
    if valid is None:
        valid = np.ones(logits.shape, bool)
    z = np.where(valid, logits, -np.inf)
    mx = np.max(np.where(valid, logits, -1e30), axis=-1, keepdims=True)
    e = np.where(valid, np.exp(z - mx), 0.0)
    tot = e.sum(-1, keepdims=True)
    return np.where(tot > 0, e / np.where(tot > 0, tot, 1.0), 0.0)


def dien(q, keys, gru_w, agru_w, att_w, act, att_type="AGRU", valid=None):
    """Returns ``(h_T, S)``."""
    s = gru_reset_after(keys, *gru_w, act=act, valid=valid)
    v = q @ att_w.T
    logits = np.einsum("btu,bu->bt", s, v)
    a = masked_softmax(logits, valid)
    _, h = rnn_with_attention(s, a, agru_w, att_type, act, valid=valid)
    return h, s


def dien_aux_loss(s, keys, neg, valid=None):
    b, t_len, _ = s.shape
    total, n = 0.0, 0
    for i in range(b):
        for t in range(t_len - 1):
            if valid is not None and not (valid[i, t] and valid[i, t + 1]):
                continue
            total += softplus(-s[i, t] @ keys[i, t + 1]) + softplus(s[i, t] @ neg[i, t + 1])
            n += 1
    return total / n if n else 0.0


# --------------------------------------------------------------------------------------------
# DMR_U2I (§3.3)
# --------------------------------------------------------------------------------------------


def dmr_u2i(items, seq, pos_emb, emb_w, z_w, bias, dense_k, dense_b, out_act, att_act=np.tanh,
            valid=None):
    c = pos_emb[None] + seq @ emb_w + bias
    logits = (att_act(c) @ z_w)[..., 0]
    alpha = masked_softmax(logits, valid)
    m = np.sum(alpha[..., None] * seq, axis=1)
    return out_act(m @ dense_k + dense_b) * items
