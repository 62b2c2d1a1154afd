"""Independent NumPy implementations of the feature-cross layers, written from the spec (§12–§16).

Written index by index from the spec's formulas (explicit loops over fields and samples), never by
calling the layers, so they check the vectorised Keras code rather than repeat it.
"""

from __future__ import annotations

import numpy as np


def ffm(left, right, e, int_type="multiply"):
    """``out[b, (l·R + r)·E + k] = Lt[b,l,k]·Rt[b,r,k]`` or ``out[b, l·R + r] = Σ_k …``."""
    b = left.shape[0]
    n_left, n_right = left.shape[1] // e, right.shape[1] // e
    if int_type == "dot":
        out = np.zeros((b, n_left * n_right), left.dtype)
    else:
        out = np.zeros((b, n_left * n_right * e), left.dtype)
    for l in range(n_left):
        lf = left[:, l * e:(l + 1) * e]
        for r in range(n_right):
            rf = right[:, r * e:(r + 1) * e]
            pos = l * n_right + r
            if int_type == "dot":
                out[:, pos] = np.sum(lf * rf, axis=1)
            else:
                out[:, pos * e:(pos + 1) * e] = lf * rf
    return out


def ffm_grads(left, right, e, g, int_type="multiply"):
    """Gradients of ``Σ g ⊙ ffm(left, right)`` w.r.t. left and right (spec §12 FFMGrad)."""
    n_left, n_right = left.shape[1] // e, right.shape[1] // e
    gl, gr = np.zeros_like(left), np.zeros_like(right)
    for l in range(n_left):
        for r in range(n_right):
            pos = l * n_right + r
            lf, rf = left[:, l * e:(l + 1) * e], right[:, r * e:(r + 1) * e]
            if int_type == "dot":
                gp = g[:, pos:pos + 1]
            else:
                gp = g[:, pos * e:(pos + 1) * e]
            gl[:, l * e:(l + 1) * e] += gp * rf
            gr[:, r * e:(r + 1) * e] += gp * lf
    return gl, gr


def group_int(left_fields, right_fields, interaction_type="multiply", attention=None):
    """GroupInt: pairwise products/dots, left-major; ``attention(v)`` scores one pair vector."""
    pieces = []
    for lf in left_fields:
        for rf in right_fields:
            if interaction_type == "dot":
                pieces.append(np.sum(lf * rf, axis=1, keepdims=True))
            else:
                v = lf * rf
                if attention is not None:
                    v = v * attention(v)  # attention returns (B, 1)
                pieces.append(v)
    return np.concatenate(pieces, axis=1)


def merge(o, out_type, keep_list=False):
    """``merge_tensor_list`` for one (B, F, c) tensor."""
    if out_type == "stack":
        out = o
    elif out_type == "concat":
        out = o.reshape(o.shape[0], -1)
    else:
        return [o[:, f, :] for f in range(o.shape[1])]
    return [out] if keep_list else out


def all_int(x, kernel, bias=None):
    """``O[b,f,c] = Σ_f' ⟨x_f, x_f'⟩ K[f',c] + (Σ_e x_{f,e}) bias_c`` (the naive (F, F) form)."""
    gram = np.einsum("bfe,bge->bfg", x, x)
    out = np.einsum("bfg,gc->bfc", gram, kernel)
    if bias is not None:
        out = out + x.sum(axis=2)[:, :, None] * bias[None, None, :]
    return out


def cdot(x, project_weight, tower):
    """CDot: ``tower`` maps (B, E·p) → (B, E·p); output ``[crossed (F·p), C (E·p)]``."""
    b, f, e = x.shape
    p = project_weight.shape[1]
    flat = np.zeros((b, e * p), x.dtype)
    for i in range(e):
        for k in range(p):
            flat[:, i * p + k] = np.sum(x[:, :, i] * project_weight[None, :, k], axis=1)
    c = tower(flat)
    crossed = np.zeros((b, f * p), x.dtype)
    for j in range(f):
        for k in range(p):
            crossed[:, j * p + k] = sum(x[:, j, i] * c[:, i * p + k] for i in range(e))
    return np.concatenate([crossed, c], axis=1)


def can(user, item, layer_num, activation, is_seq, is_stacked, mask=None):
    """CAN, one sample at a time: ``h ← act(h @ W_i + b_i)`` with ``W_i[r, c] = chunk[r·u + c]``.

    ``mask`` (optional, is_seq only) has the user's shape without the last axis (a ``(B, S)`` mask
    with stacked fields applies to every field).
    """
    u = user.shape[-1]
    outs = []
    for b in range(user.shape[0]):
        h = user[b]
        if not is_seq and not is_stacked:
            h = h[None, :]
        start = 0
        for _ in range(layer_num):
            w = item[b, start:start + u * u].reshape(u, u)
            start += u * u
            bias = item[b, start:start + u]
            start += u
            h = activation(h @ w + bias)
        if is_seq:
            if mask is not None:
                m = mask[b].astype(h.dtype)
                if m.ndim == h.ndim - 2:
                    m = np.broadcast_to(m[None, :], h.shape[:-1])
                h = h * m[..., None]
            h = h.sum(axis=-2)
        elif not is_stacked:
            h = h[0]
        outs.append(h)
    return np.stack(outs, axis=0)
