"""Activations as layer objects, looked up by name and serialised to plain dicts.

Every activation the reference library knows is available as a *layer*, so it can be stacked in
an :class:`~reclayers.layers.mlp.MLP`, cloned per layer, and saved. ``get`` resolves names,
dicts, JSON strings, Keras activation functions, layer classes and layer instances;
``serialize`` / ``deserialize`` round-trip an activation layer through a JSON-compatible dict.

Registry (key → class, formula). The classes of this module are weightless and element-wise:
any shape → the same shape, masks pass through unchanged.

=====================================  ===============  ===========================================
key(s)                                  class            y = f(x)
=====================================  ===============  ===========================================
``exponential``                         Exponential      ``e**x``
``gelu``                                Gelu             ``0.5 x (1 + erf(x / sqrt 2))`` (exact)
``hard_sigmoid``, ``hardsigmoid``       HardSigmoid      ``clip(0.2 x + 0.5, 0, 1)``
``linear``                              Linear           ``x``
``selu``                                Selu             SELU with the usual λ, α
``sigmoid``                             Sigmoid          ``σ(x)``
``sigmoid2``                            Sigmoid2         ``2 σ(x)``
``softplus``                            Softplus         ``log(1 + e**x)``
``softsign``                            Softsign         ``x / (1 + |x|)``
``swish``, ``silu``                     Swish            ``x σ(x)``
``tanh``                                Tanh             ``tanh(x)``
``relu``                                keras ReLU       ``max(x, 0)`` (with Keras's options)
``leakyrelu``, ``leaky_relu``           keras LeakyReLU  ``x if x >= 0 else α x``, α = 0.3
``elu``                                 keras ELU        ``x if x > 0 else α (e**x - 1)``
``softmax``                             keras Softmax    softmax over ``axis``
``thresholdedrelu``                     ThresholdedReLU  ``x if x > θ else 0``, θ = 1
``prelu``                               keras PReLU      ``max(x, 0) - α max(-x, 0)``, α learnt
=====================================  ===============  ===========================================

Deliberate differences from the original (which ``eval``-ed strings):

* ``serialize`` returns a JSON-compatible ``dict`` (the original returned the ``repr`` of one);
  ``deserialize``/``get`` accept such dicts, their JSON text, and legacy ``repr`` strings, parsed
  with a literal-only parser — nothing is ever evaluated. Unknown names raise ``ValueError``.
* ``Sigmoid2`` serialises (the original returned ``None`` and lost it).
* ``deserialize`` does not mutate its argument.
* LeakyReLU is written with the legacy key ``alpha`` and read back into Keras 3's
  ``negative_slope``; Keras 3 names (``silu``, ``leaky_relu``) are accepted as aliases.
* HardSigmoid keeps the reference's slope 0.2 (Keras 3's ``hard_sigmoid`` uses 1/6) and Gelu is
  the exact erf form (Keras's default is the tanh approximation).
"""

from __future__ import annotations

import ast
import inspect
import json
from typing import Any

import keras
from keras import ops

__all__ = [
    "ELU",
    "Exponential",
    "Gelu",
    "HardSigmoid",
    "LeakyReLU",
    "Linear",
    "PReLU",
    "ReLU",
    "Selu",
    "Sigmoid",
    "Sigmoid2",
    "Softmax",
    "Softplus",
    "Softsign",
    "Swish",
    "Tanh",
    "ThresholdedReLU",
]

ReLU = keras.layers.ReLU
LeakyReLU = keras.layers.LeakyReLU
ELU = keras.layers.ELU
Softmax = keras.layers.Softmax
PReLU = keras.layers.PReLU

_register = keras.saving.register_keras_serializable(package="reclayers")


class _ElementwiseActivation(keras.layers.Layer):
    """Base of the weightless element-wise activation layers.

    A subclass gives its formula as the class keyword ``fn`` (``class Tanh(...,
    fn=ops.tanh)``) and is registered for Keras serialisation under the package ``reclayers``.
    Shapes: any shape → the same shape. No weights; masks pass through unchanged.
    """

    def __init_subclass__(cls, fn: Any = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if fn is not None:
            cls.fn = staticmethod(fn)
        _register(cls)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def call(self, inputs: Any) -> Any:
        return self.fn(inputs)

    def get_config(self) -> dict:
        # Keras's own config (name, dtype policy, trainable): no arguments of our own.
        return super().get_config()

    @staticmethod
    def fn(x: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


class Exponential(_ElementwiseActivation, fn=ops.exp):
    """Exponential activation: ``y = exp(x)``, element-wise.

    Unbounded above; useful as the last activation of a positive-valued output (a rate, a
    variance).

    Shapes: any shape → the same shape, values in ``(0, ∞)``.

    Example:
        >>> from keras import ops
        >>> print(ops.convert_to_numpy(Exponential()(ops.array([-2.0, 0.0, 1.5]))).round(4))
        [0.1353 1.     4.4817]
    """


class Gelu(_ElementwiseActivation, fn=lambda x: ops.gelu(x, approximate=False)):
    """Exact GELU: ``y = x · Φ(x) = 0.5 x (1 + erf(x / sqrt(2)))``, element-wise.

    ``Φ`` is the standard normal CDF. This is the erf form, not the tanh approximation that
    ``keras.activations.gelu`` uses by default.

    Paper: Hendrycks & Gimpel, Gaussian Error Linear Units, https://arxiv.org/abs/1606.08415

    Shapes: any shape → the same shape, values in ``[-0.17, ∞)`` (approximately).

    Example:
        >>> from keras import ops
        >>> print(ops.convert_to_numpy(Gelu()(ops.array([-2.0, 0.0, 1.5]))).round(4))
        [-0.0455  0.      1.3998]
    """


class HardSigmoid(_ElementwiseActivation, fn=lambda x: ops.clip(0.2 * x + 0.5, 0.0, 1.0)):
    """Piecewise-linear sigmoid: ``y = clip(0.2 x + 0.5, 0, 1)``, element-wise.

    The slope is 0.2 as in the reference library (TF 2.4); Keras 3's ``hard_sigmoid`` uses 1/6, so
    the two differ for ``|x| < 3``.

    Shapes: any shape → the same shape, values in ``[0, 1]``.

    Example:
        >>> from keras import ops
        >>> print(ops.convert_to_numpy(HardSigmoid()(ops.array([-2.0, 0.0, 1.5]))).round(4))
        [0.1 0.5 0.8]
    """


class Linear(_ElementwiseActivation, fn=lambda x: x):
    """Identity activation: ``y = x``.

    Stands for "no activation" where a layer object is required (e.g. the last layer of an
    ``MLP`` given ``activations=[..., 'linear']``).

    Shapes: any shape → the same shape, values in all reals.

    Example:
        >>> from keras import ops
        >>> print(ops.convert_to_numpy(Linear()(ops.array([-2.0, 0.0, 1.5]))).round(4))
        [-2.   0.   1.5]
    """


class Selu(_ElementwiseActivation, fn=ops.selu):
    """Scaled exponential linear unit (SELU), element-wise.

    ``y = λ x`` for ``x > 0``, ``y = λ α (exp(x) - 1)`` otherwise, with ``λ ≈ 1.0507`` and
    ``α ≈ 1.6733`` (the self-normalising constants).

    Paper: Klambauer et al., Self-Normalizing Neural Networks, https://arxiv.org/abs/1706.02515

    Shapes: any shape → the same shape, values in ``(-λα, ∞)`` ≈ ``(-1.76, ∞)``.

    Example:
        >>> from keras import ops
        >>> print(ops.convert_to_numpy(Selu()(ops.array([-2.0, 0.0, 1.5]))).round(4))
        [-1.5202  0.      1.5761]
    """


class Sigmoid(_ElementwiseActivation, fn=ops.sigmoid):
    """Logistic sigmoid: ``y = σ(x) = 1 / (1 + exp(-x))``, element-wise.

    Range ``(0, 1)``: the usual output activation of a click-through-rate model.

    Shapes: any shape → the same shape, values in ``(0, 1)``.

    Example:
        >>> from keras import ops
        >>> print(ops.convert_to_numpy(Sigmoid()(ops.array([-2.0, 0.0, 1.5]))).round(4))
        [0.1192 0.5    0.8176]
    """


class Sigmoid2(_ElementwiseActivation, fn=lambda x: 2.0 * ops.sigmoid(x)):
    """Doubled sigmoid: ``y = 2 σ(x)``, element-wise, range ``(0, 2)``.

    A multiplicative gate centred on 1 (``σ2(0) = 1``), as used for the gates of
    ``SeNet``-style re-weighting and LHUC: an untrained gate leaves its input unchanged.

    Shapes: any shape → the same shape, values in ``(0, 2)``.

    Example:
        >>> from keras import ops
        >>> print(ops.convert_to_numpy(Sigmoid2()(ops.array([-2.0, 0.0, 1.5]))).round(4))
        [0.2384 1.     1.6351]
    """


class Softplus(_ElementwiseActivation, fn=ops.softplus):
    """Softplus: ``y = log(1 + exp(x))``, element-wise, computed in a numerically stable form.

    A smooth, positive approximation of ReLU.

    Shapes: any shape → the same shape, values in ``(0, ∞)``.

    Example:
        >>> from keras import ops
        >>> print(ops.convert_to_numpy(Softplus()(ops.array([-2.0, 0.0, 1.5]))).round(4))
        [0.1269 0.6931 1.7014]
    """


class Softsign(_ElementwiseActivation, fn=ops.softsign):
    """Softsign: ``y = x / (1 + |x|)``, element-wise, range ``(-1, 1)``.

    Like ``tanh`` but with polynomial rather than exponential saturation.

    Shapes: any shape → the same shape, values in ``(-1, 1)``.

    Example:
        >>> from keras import ops
        >>> print(ops.convert_to_numpy(Softsign()(ops.array([-2.0, 0.0, 1.5]))).round(4))
        [-0.6667  0.      0.6   ]
    """


class Swish(_ElementwiseActivation, fn=lambda x: x * ops.sigmoid(x)):
    """Swish / SiLU: ``y = x · σ(x)``, element-wise.

    Registered under both ``'swish'`` and ``'silu'``.

    Paper: Ramachandran et al., Searching for Activation Functions, https://arxiv.org/abs/1710.05941

    Shapes: any shape → the same shape, values in ``[-0.28, ∞)`` (approximately).

    Example:
        >>> from keras import ops
        >>> print(ops.convert_to_numpy(Swish()(ops.array([-2.0, 0.0, 1.5]))).round(4))
        [-0.2384  0.      1.2264]
    """


class Tanh(_ElementwiseActivation, fn=ops.tanh):
    """Hyperbolic tangent: ``y = tanh(x)``, element-wise, range ``(-1, 1)``.

    Shapes: any shape → the same shape, values in ``(-1, 1)``.

    Example:
        >>> from keras import ops
        >>> print(ops.convert_to_numpy(Tanh()(ops.array([-2.0, 0.0, 1.5]))).round(4))
        [-0.964   0.      0.9051]
    """


class ThresholdedReLU(_ElementwiseActivation):
    """Thresholded ReLU: ``y = x if x > θ else 0``, element-wise (strict inequality).

    Keras 3 dropped this layer; it is kept because the reference library registers it under
    ``'thresholdedrelu'``. With ``θ = 0`` it equals ReLU.

    Args:
        theta: the threshold ``θ``, a number ``>= 0``. Default 1.0.

    Shapes: any shape → the same shape, values in ``{0} ∪ (θ, ∞)``.

    Example:
        >>> import numpy as np
        >>> from keras import ops
        >>> y = ThresholdedReLU(theta=1.0)(np.array([0.5, 1.0, 2.0], "float32"))
        >>> print(np.round(ops.convert_to_numpy(y), 4))
        [0. 0. 2.]
    """

    def __init__(self, theta: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if theta is None or float(theta) < 0:
            raise ValueError(f"ThresholdedReLU: theta must be a number >= 0; got {theta!r}")
        self.theta = float(theta)

    def call(self, inputs: Any) -> Any:
        return ops.where(inputs > self.theta, inputs, ops.zeros_like(inputs))

    def get_config(self) -> dict:
        return {**super().get_config(), "theta": self.theta}


#: registry key → class (keys are lower case).
_REGISTRY: dict[str, type] = {
    "exponential": Exponential,
    "gelu": Gelu,
    "hard_sigmoid": HardSigmoid,
    "hardsigmoid": HardSigmoid,
    "linear": Linear,
    "selu": Selu,
    "sigmoid": Sigmoid,
    "sigmoid2": Sigmoid2,
    "softplus": Softplus,
    "softsign": Softsign,
    "swish": Swish,
    "silu": Swish,
    "tanh": Tanh,
    "relu": ReLU,
    "leakyrelu": LeakyReLU,
    "leaky_relu": LeakyReLU,
    "elu": ELU,
    "softmax": Softmax,
    "thresholdedrelu": ThresholdedReLU,
    "prelu": PReLU,
}

_SIMPLE = (Linear, Exponential, Selu, HardSigmoid, Gelu, Sigmoid, Sigmoid2, Softplus, Softsign,
           Swish, Tanh)


def _parse_text(text: str) -> Any:
    """Parse JSON or a Python literal (legacy ``repr`` strings); never evaluates code."""
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError) as err:
        raise ValueError(
            f"advanced_activations: identifier must be a known activation name, a dict or its "
            f"JSON text; got {text!r}"
        ) from err


def serialize(activation: Any) -> dict | None:
    """Serialise an activation layer to a JSON-compatible dict (``None`` if it is not one).

    The dict holds ``'name'`` (the class name) and the layer's arguments under the reference's
    keys (LeakyReLU and ELU: ``alpha``; ReLU: ``max_value``, ``negative_slope``, ``threshold``;
    PReLU: ``alpha_initializer``, ``alpha_regularizer``, ``alpha_constraint``, ``shared_axes``;
    Softmax: ``axis``; ThresholdedReLU: ``theta``).

    Args:
        activation: an activation layer of the registry (or ``None``).

    Example:
        >>> serialize(LeakyReLU(negative_slope=0.1))
        {'name': 'LeakyReLU', 'alpha': 0.1}
    """
    if activation is None:
        return None
    if isinstance(activation, _SIMPLE):
        return {"name": type(activation).__name__}
    if isinstance(activation, LeakyReLU):
        return {"name": "LeakyReLU", "alpha": float(activation.negative_slope)}
    if isinstance(activation, ELU):
        return {"name": "ELU", "alpha": float(activation.alpha)}
    if isinstance(activation, ReLU):
        max_value = activation.max_value
        return {
            "name": "ReLU",
            "max_value": None if max_value is None else float(max_value),
            "negative_slope": float(activation.negative_slope),
            "threshold": float(activation.threshold),
        }
    if isinstance(activation, PReLU):
        shared = activation.shared_axes
        return {
            "name": "PReLU",
            "alpha_initializer": keras.initializers.serialize(activation.alpha_initializer),
            "alpha_regularizer": keras.regularizers.serialize(activation.alpha_regularizer),
            "alpha_constraint": keras.constraints.serialize(activation.alpha_constraint),
            "shared_axes": None if shared is None else [int(a) for a in shared],
        }
    if isinstance(activation, Softmax):
        axis = activation.axis
        return {"name": "Softmax", "axis": axis if isinstance(axis, int) else list(axis)}
    if isinstance(activation, ThresholdedReLU):
        return {"name": "ThresholdedReLU", "theta": float(activation.theta)}
    return None


def deserialize(identifier: Any, dtype: Any = None) -> Any:
    """Build an activation layer from :func:`serialize`'s dict (or its JSON / repr text).

    ``None`` gives ``None``. The argument is not modified. Unknown names raise ``ValueError``.

    Args:
        identifier: ``None``, a dict with a ``'name'`` key (a registry key or class name, any
            case) and the layer's arguments, or the JSON / Python-literal text of such a dict.
        dtype: dtype policy of the new layer. Default ``None`` (the global policy).

    Returns:
        A new activation layer, or ``None``.

    Example:
        >>> layer = deserialize({"name": "LeakyReLU", "alpha": 0.1})
        >>> type(layer).__name__, float(layer.negative_slope)
        ('LeakyReLU', 0.1)
    """
    if identifier is None:
        return None
    config = _parse_text(identifier) if isinstance(identifier, str) else identifier
    if not isinstance(config, dict):
        raise ValueError(
            f"advanced_activations.deserialize: identifier must be a dict with a 'name'; "
            f"got {identifier!r}"
        )
    config = dict(config)
    name = config.pop("name", None)
    key = str(name).lower() if name is not None else None
    if key not in _REGISTRY:
        raise ValueError(
            "advanced_activations.deserialize: name must be one of "
            + ", ".join(repr(k) for k in sorted(_REGISTRY))
            + f"; got {name!r}"
        )
    cls = _REGISTRY[key]
    if cls is LeakyReLU and "alpha" in config:
        config["negative_slope"] = config.pop("alpha")
    if dtype is not None:
        config["dtype"] = dtype
    return cls(**config)


def get(identifier: Any, dtype: Any = None) -> Any:
    """Resolve an activation identifier to an activation *layer* (or ``None``).

    Resolution order:

    1. ``None`` → ``None`` (no activation).
    2. a string: a registry key (case-insensitive) → a new default instance; otherwise JSON or a
       legacy dict literal → :func:`deserialize`; anything else → ``ValueError``.
    3. a dict → :func:`deserialize`.
    4. a Layer class → a new default instance; a Layer instance → that same object; a function
       whose ``__name__`` is a registry key (e.g. ``keras.activations.relu``) → a new instance of
       that layer; any other callable (a lambda, ``tf.nn.relu6``) is returned unchanged.
    5. anything else → ``TypeError``.

    Args:
        identifier: ``None``, a name, a dict or its text, a Layer class or instance, or a callable.
        dtype: dtype policy of a newly made layer. Default ``None`` (the global policy); a
            layer instance passed in keeps its own.

    Example:
        >>> type(get("sigmoid2")).__name__
        'Sigmoid2'
    """
    if identifier is None:
        return None
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in _REGISTRY:
            return _REGISTRY[key](dtype=dtype)
        return deserialize(_parse_text(identifier), dtype=dtype)
    if isinstance(identifier, dict):
        return deserialize(identifier, dtype=dtype)
    if inspect.isclass(identifier) and issubclass(identifier, keras.layers.Layer):
        return identifier(dtype=dtype)
    if isinstance(identifier, keras.layers.Layer):
        return identifier
    if callable(identifier):
        name = getattr(identifier, "__name__", None)
        if name in _REGISTRY:
            return _REGISTRY[name](dtype=dtype)
        return identifier
    raise TypeError(f"Could not interpret activation function identifier: {identifier!r}")


def clone(activation: Any, dtype: Any = None) -> Any:
    """A fresh, unbuilt copy of an activation layer (callables are returned unchanged).

    Used by MLP so that one PReLU given for every layer becomes one PReLU *per* layer.

    Args:
        activation: an activation layer (copied from its config, weights not shared) or any
            other callable (returned as is).
        dtype: dtype policy of the copy. Default ``None`` (the original's).

    Example:
        >>> prelu = get("prelu")
        >>> copy = clone(prelu)
        >>> copy is prelu, type(copy).__name__
        (False, 'PReLU')
    """
    if isinstance(activation, keras.layers.Layer):
        config = activation.get_config()
        config.pop("name", None)
        if dtype is not None:
            config["dtype"] = dtype
        return type(activation).from_config(config)
    return activation
