"""Backend-neutral first-order gradients of a function, for use *inside* a forward pass.

Layers use only ``keras.ops``; the few places that need a gradient inside a model's computation
(GradNorm's per-task gradient norms) call :func:`gradient`, which dispatches on the active Keras
backend: ``jax.grad`` on JAX, ``tf.GradientTape`` on TensorFlow, ``torch.autograd.grad`` on
PyTorch. The result is always detached (no second-order terms), as GradNorm needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

__all__ = ["gradient"]


def gradient(fn: Callable[[Any], Any], x: Any) -> Any:
    """``d fn(x) / d x`` for a scalar-valued ``fn``, detached from the graph.

    Works inside a layer's ``call`` on every backend (JAX ``grad``, a TensorFlow tape, PyTorch
    autograd); the result carries no gradient itself (``stop_gradient``). Used to feed
    :class:`reclayers.layers.GradNorm` the per-task gradient norms.

    Shapes: ``x`` any shape → the gradient has the shape of ``x``.

    Args:
        fn: a function of one tensor returning a scalar tensor.
        x: the point at which to differentiate (a tensor).

    Example:
        >>> import numpy as np
        >>> from keras import ops
        >>> g = gradient(lambda t: ops.sum(t * t), ops.convert_to_tensor(np.ones(3, "float32")))
        >>> [float(v) for v in ops.convert_to_numpy(g)]
        [2.0, 2.0, 2.0]
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        x = jax.lax.stop_gradient(x)
        return jax.lax.stop_gradient(jax.grad(lambda t: fn(t))(x))
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.stop_gradient(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        return tf.stop_gradient(tape.gradient(y, x))
    if backend == "torch":
        import torch

        leaf = x.detach().requires_grad_(True)
        with torch.enable_grad():
            y = fn(leaf)
            (grad,) = torch.autograd.grad(y, leaf, allow_unused=True)
        return torch.zeros_like(leaf) if grad is None else grad.detach()
    raise NotImplementedError(f"gradient: backend must be jax, tensorflow or torch; got {backend!r}")
