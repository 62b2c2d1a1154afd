"""Small helpers shared by the NAS test modules."""

from __future__ import annotations

import numpy as np
from keras import ops

from tests.contract import BACKEND, trainable_gradients


def built(layer, width_or_shape):
    """Call ``layer`` once on ones so it is built; returns the layer."""
    shape = (1, width_or_shape) if isinstance(width_or_shape, int) else width_or_shape
    layer(np.ones(shape, "float32"))
    return layer


def set_alpha(layer, values):
    layer.arch_weights.assign(np.asarray(values, dtype="float32"))


def out_np(layer, x, **kwargs):
    return np.asarray(ops.convert_to_numpy(layer(x, **kwargs)), dtype="float64")


def seed_state(layer):
    return np.asarray(ops.convert_to_numpy(layer.seed_generator.state.value)).copy()


def restore_seed_state(layer, state):
    layer.seed_generator.state.assign(state)


def grad_and_output(layer, x, proj, **kwargs):
    """Gradient of ``Σ proj ⊙ layer(x)`` w.r.t. ``arch_weights`` and the output of the *same* draw.

    The seed generator's state is restored between the gradient call and the output call, so
    both see the same sample on every backend.
    """
    state = seed_state(layer)
    if BACKEND == "jax":  # one jit compile instead of many op-by-op compiles under jax.grad
        import jax

        non_trainable = [v.value for v in layer.non_trainable_variables]

        def loss(trainable):
            out, _ = layer.stateless_call(trainable, non_trainable, x, **kwargs)
            return ops.sum(out * ops.cast(proj, out.dtype))

        grads = [np.asarray(g) for g in jax.jit(jax.grad(loss))([v.value for v in layer.trainable_variables])]
    else:
        grads, _ = trainable_gradients(layer, (x,), kwargs, [proj])
    restore_seed_state(layer, state)
    out = out_np(layer, x, **kwargs)
    return grads[0], out


def close(actual, expected, rtol=1e-5, atol=1e-6):
    """``assert_allclose`` for one tensor/array/nested list against an array-like."""
    a = np.asarray(ops.convert_to_numpy(actual), dtype="float64") if not isinstance(actual, np.ndarray) \
        else actual.astype("float64")
    np.testing.assert_allclose(a, np.asarray(expected, dtype="float64"), rtol=rtol, atol=atol)
