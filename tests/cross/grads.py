"""Gradients with respect to *inputs* on every backend (for weightless ops and layers)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

BACKEND = keras.backend.backend()


def input_gradients(fn: Any, args: list[np.ndarray]) -> list[np.ndarray]:
    """Gradients of the scalar ``fn(*tensors)`` w.r.t. each input array (NumPy in, NumPy out)."""
    if BACKEND == "jax":
        import jax

        grads = jax.grad(lambda *a: fn(*a), argnums=tuple(range(len(args))))(
            *[ops.convert_to_tensor(a) for a in args]
        )
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        tensors = [tf.constant(a) for a in args]
        with tf.GradientTape() as tape:
            for t in tensors:
                tape.watch(t)
            value = fn(*tensors)
        grads = tape.gradient(value, tensors)
    else:
        import torch

        tensors = [ops.convert_to_tensor(a).detach().requires_grad_(True) for a in args]
        with torch.enable_grad():
            value = fn(*tensors)
            value.backward()
        grads = [t.grad for t in tensors]
    return [np.asarray(ops.convert_to_numpy(g)) for g in grads]


def projected_sum(out: Any, proj: np.ndarray) -> Any:
    """``Σ proj ⊙ out`` as a backend scalar."""
    return ops.sum(out * ops.convert_to_tensor(proj.astype("float32")))


class WeightlessContract:
    """Replaces the contract's weight-gradient checks for layers without weights.

    Mix in before :class:`tests.contract.LayerContract`. Gradients w.r.t. the *inputs* must be
    finite and non-zero, and match a central finite difference of a random projection.
    """

    def _input_grads(self, case: Any, batch: int = 3) -> tuple[Any, Any, Any, list[np.ndarray]]:
        example = case.example(batch=batch)
        flat = [np.asarray(a, "float32") for a in keras.tree.flatten(example)]
        layer = case.factory()

        def run(*tensors: Any) -> Any:
            return layer(keras.tree.pack_sequence_as(example, list(tensors)), **case.call_kwargs)

        proj = [np.random.default_rng(11).normal(size=tuple(o.shape)).astype("float32")
                for o in keras.tree.flatten(run(*flat))]

        def loss(*tensors: Any) -> Any:
            outs = keras.tree.flatten(run(*tensors))
            return sum(projected_sum(o, p) for o, p in zip(outs, proj))

        return layer, loss, flat, input_gradients(loss, flat)

    def test_gradients_reach_every_weight(self, case: Any) -> None:
        layer, _, _, grads = self._input_grads(case)
        assert not layer.trainable_weights, "use LayerContract for layers with weights"
        for i, g in enumerate(grads):
            assert np.all(np.isfinite(g)), f"non-finite gradient for input {i}"
            assert np.any(g != 0), f"zero gradient for input {i}"

    def test_gradients_match_finite_differences(self, case: Any) -> None:
        _, loss, flat, grads = self._input_grads(case)
        rng = np.random.default_rng(7)
        direction = [rng.normal(size=a.shape).astype("float32") for a in flat]
        analytic = sum(float(np.sum(g * d)) for g, d in zip(grads, direction))
        eps = 1e-2

        def at(sign: float) -> float:
            moved = [a + sign * eps * d for a, d in zip(flat, direction)]
            return float(ops.convert_to_numpy(loss(*moved)))

        numeric = (at(1.0) - at(-1.0)) / (2 * eps)
        np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=1e-3)
