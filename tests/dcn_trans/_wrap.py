"""Test-only wrapper giving a parameter-free layer one trainable input scale.

The contract's gradient checks need trainable weights; for a weight-free layer ``L`` the wrapper
``y = L(x ⊙ w)`` has ``∂y/∂w = ∂y/∂x ⊙ x``, so those checks exercise ``L``'s input gradients.
"""

from __future__ import annotations

import keras
from keras import ops


class InputScale(keras.layers.Layer):
    def __init__(self, inner: keras.layers.Layer, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner

    def build(self, input_shape):
        self.scale = self.add_weight(
            name="input_scale", shape=tuple(input_shape[1:]),
            initializer=keras.initializers.RandomNormal(1.0, 0.3, seed=11),
        )
        self.inner.build(input_shape)

    def call(self, x):
        return self.inner(x * ops.cast(self.scale, self.compute_dtype))


def with_input_scale(case):
    """A copy of a contract ``Case`` whose factory wraps the layer in :class:`InputScale`."""
    import dataclasses

    return dataclasses.replace(
        case, factory=lambda **kw: InputScale(case.factory(**kw), **kw)
    )
