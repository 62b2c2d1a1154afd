"""Helpers shared by the multi-task / LHUC tests: read a library MLP's weights for the references."""

from __future__ import annotations

import numpy as np
from keras import ops


def _value(layer, suffix):
    found = [w for w in layer.weights if w.path.endswith(suffix)]
    return np.asarray(ops.convert_to_numpy(found[0])).astype("float64") if found else None


def dense_weights(dense):
    """``(kernel, g or None, bias or None)`` of a library Dense."""
    return (_value(dense, "/kernel"), _value(dense, "/trainable_kernel_norm"), _value(dense, "/bias"))


def mlp_weights(mlp):
    """Per-layer ``(kernel, g, bias)`` of a library MLP."""
    return [dense_weights(d) for d in mlp.dense_layers]


def np_(x):
    return np.asarray(ops.convert_to_numpy(x)).astype("float64")
