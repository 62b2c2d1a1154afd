"""Multilayer perceptron: a stack of weight-normalised Dense layers with optional batch norm."""

from __future__ import annotations

import inspect
from typing import Any

import keras

from reclayers.layers import advanced_activations
from reclayers.layers.dense import Dense
from reclayers.layers.utils import check_float, check_int_list, invalid

__all__ = ["MLP", "batch_norm_supports_renorm", "resolve_activations", "resolve_initializers"]


def batch_norm_supports_renorm() -> bool:
    """Whether the installed Keras BatchNormalization has batch renormalisation (Keras >= 3.11).

    :class:`MLP` passes its ``batch_normalization_renorm*`` options to Keras only when this is
    true. Takes no arguments.

    Example:
        >>> isinstance(batch_norm_supports_renorm(), bool)
        True
    """
    return "renorm" in inspect.signature(keras.layers.BatchNormalization.__init__).parameters


def resolve_activations(owner: str, activations: Any, n: int) -> list[Any]:
    """Per-layer activation *layers* (``None`` for no activation), as :class:`MLP` uses them.

    A list gives one activation per layer (each resolved with
    :func:`~reclayers.layers.advanced_activations.get` and cloned, so layers never share weights);
    a single value applies to every layer but the last; ``None`` means ReLU on every layer but
    the last.

    Args:
        owner: the calling layer's name, for error messages.
        activations: ``None``, one identifier, or a list of ``n`` identifiers.
        n: number of layers.

    Example:
        >>> [type(a).__name__ if a is not None else None for a in resolve_activations("MLP", "tanh", 3)]
        ['Tanh', 'Tanh', None]
    """
    if activations is None:
        return [advanced_activations.ReLU() for _ in range(n - 1)] + [None]
    if isinstance(activations, (list, tuple)):
        if len(activations) != n:
            raise invalid(owner, "activations", f"a list of length {n} (one per layer)",
                          list(activations))
        return [advanced_activations.clone(advanced_activations.get(a)) for a in activations]
    resolved = advanced_activations.get(activations)
    return [advanced_activations.clone(resolved) for _ in range(n - 1)] + [None]


def resolve_initializers(initializers: Any, n: int) -> list[Any]:
    """One fresh kernel initializer object per layer, as :class:`MLP` uses them.

    A list is padded with ``None`` (→ ``'glorot_uniform'``) or cut to ``n``; a single value is
    used for every layer. Each entry is a new object, so a seeded initializer does not repeat
    its draws across layers.

    Args:
        initializers: ``None``, one Keras initializer identifier, or a list of them.
        n: number of layers.

    Example:
        >>> [type(i).__name__ for i in resolve_initializers(["he_normal"], 2)]
        ['HeNormal', 'GlorotUniform']
    """
    if isinstance(initializers, (list, tuple)):
        items = list(initializers)[:n] + [None] * max(0, n - len(initializers))
    else:
        items = [initializers] * n
    resolved = []
    for item in items:
        init = keras.initializers.get(item if item is not None else "glorot_uniform")
        # One object per layer: a seeded initializer shared by layers would repeat its draws.
        resolved.append(init.__class__.from_config(init.get_config()))
    return resolved


@keras.saving.register_keras_serializable(package="reclayers")
class MLP(keras.layers.Layer):
    """Multilayer perceptron built from :class:`~reclayers.layers.dense.Dense` layers.

    For ``n = len(output_dims)`` layers, with optional batch normalisation (BN):

    .. code-block:: text

        h = BN_in(x)                                  # if enable_batch_normalization
        h = act_i(BN_i(Dense_i(h)))   for i < n - 1   # BN before the activation
        y = act_{n-1}(Dense_{n-1}(h))                 # last act only when given in a list

    Every Dense has no activation of its own, ``allow_kernel_norm=use_weight_norm`` and
    ``kernel_norm_trainable=use_learnable_weight_norm`` — **both on by default**, as in the
    reference. Activations resolve through :func:`reclayers.layers.advanced_activations.get`:
    ``None`` means ReLU on hidden layers and nothing on the last; a single identifier applies to
    every hidden layer (a single layer *instance* such as ``PReLU()`` is cloned per layer, where
    the original shared it and failed on layers of different width); a list gives one per layer
    and its last entry is honoured.

    BN is Keras ``BatchNormalization(momentum, renorm, renorm_clipping, renorm_momentum)``
    (axis -1, epsilon 1e-3), following the ``training`` argument. Batch renormalisation
    (Ioffe 2017, https://arxiv.org/abs/1702.03275) uses Keras's implementation:
    ``y = γ ((x - μ_B) / σ_B · r + d) + β`` with ``r = clip(σ_B / σ, 1/rmax, rmax)`` and
    ``d = clip((μ_B - μ) / σ, -dmax, dmax)`` from moving statistics updated with
    ``renorm_momentum``.

    Shapes: ``(..., d_in)`` → ``(..., output_dims[-1])``.

    Args:
        output_dims: width of each layer (non-empty).
        activations: ``None``, one identifier, or a list of ``len(output_dims)`` identifiers.
        initializers: ``None``, one kernel initializer, or a list (padded with glorot_uniform).
        kernel_regularizer: regularizer of every kernel.
        use_weight_norm: weight-normalise every kernel.
        use_learnable_weight_norm: learn the weight-norm scales.
        use_bias: add biases.
        bias_regularizer: regularizer of every bias.
        enable_batch_normalization: BN on the input and after every hidden Dense.
        batch_normalization_momentum: BN moving-average momentum.
        batch_normalization_renorm: use batch renormalisation.
        batch_normalization_renorm_clipping: ``None`` or a dict with keys ``rmax``, ``rmin``,
            ``dmax``.
        batch_normalization_renorm_momentum: momentum of the renorm statistics.

    Example:
        >>> import numpy as np
        >>> mlp = MLP(output_dims=[8, 4, 1], activations=["relu", "tanh", None])
        >>> tuple(mlp(np.ones((2, 5), "float32")).shape)
        (2, 1)

    Paper: Weight Normalization, https://arxiv.org/abs/1602.07868.
    """

    def __init__(
        self,
        output_dims: list[int],
        activations: Any = None,
        initializers: Any = None,
        kernel_regularizer: Any = None,
        use_weight_norm: bool = True,
        use_learnable_weight_norm: bool = True,
        use_bias: bool = True,
        bias_regularizer: Any = None,
        enable_batch_normalization: bool = False,
        batch_normalization_momentum: float = 0.99,
        batch_normalization_renorm: bool = False,
        batch_normalization_renorm_clipping: dict | None = None,
        batch_normalization_renorm_momentum: float = 0.99,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.output_dims = check_int_list(owner, "output_dims", output_dims)
        n = len(self.output_dims)
        self._activation_layers = resolve_activations(owner, activations, n)
        self._initializers = resolve_initializers(initializers, n)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.use_weight_norm = bool(use_weight_norm)
        self.use_learnable_weight_norm = bool(use_learnable_weight_norm)
        self.use_bias = bool(use_bias)
        self.enable_batch_normalization = bool(enable_batch_normalization)
        self.batch_normalization_momentum = check_float(
            owner, "batch_normalization_momentum", batch_normalization_momentum, 0.0, 1.0
        )
        self.batch_normalization_renorm = bool(batch_normalization_renorm)
        if batch_normalization_renorm_clipping is not None:
            if not isinstance(batch_normalization_renorm_clipping, dict) or (
                set(batch_normalization_renorm_clipping) - {"rmax", "rmin", "dmax"}
            ):
                raise invalid(owner, "batch_normalization_renorm_clipping",
                              "None or a dict with keys among 'rmax', 'rmin', 'dmax'",
                              batch_normalization_renorm_clipping)
            batch_normalization_renorm_clipping = dict(batch_normalization_renorm_clipping)
        self.batch_normalization_renorm_clipping = batch_normalization_renorm_clipping
        self.batch_normalization_renorm_momentum = check_float(
            owner, "batch_normalization_renorm_momentum", batch_normalization_renorm_momentum,
            0.0, 1.0,
        )
        if self.batch_normalization_renorm and not batch_norm_supports_renorm():
            raise NotImplementedError(
                f"{owner}: batch_normalization_renorm needs a Keras whose BatchNormalization "
                f"supports renorm (>= 3.11); installed Keras is {keras.__version__}"
            )
        self.supports_masking = True

        self.dense_layers = [
            Dense(
                units=dim,
                activation=None,
                use_bias=self.use_bias,
                kernel_initializer=self._initializers[i],
                bias_initializer="zeros",
                kernel_regularizer=self.kernel_regularizer,
                bias_regularizer=self.bias_regularizer,
                allow_kernel_norm=self.use_weight_norm,
                kernel_norm_trainable=self.use_learnable_weight_norm,
                name=f"dense_{i}",
                dtype=self.dtype_policy,
            )
            for i, dim in enumerate(self.output_dims)
        ]
        self.batch_norm_in = self._make_bn("batch_norm_in") if self.enable_batch_normalization else None
        self.batch_norms = [
            self._make_bn(f"batch_norm_{i}") if self.enable_batch_normalization else None
            for i in range(n - 1)
        ] + [None]
        self._layer_stack = self._flat_stack()

    def _make_bn(self, name: str) -> keras.layers.BatchNormalization:
        kwargs: dict[str, Any] = {"momentum": self.batch_normalization_momentum, "name": name,
                                  "dtype": self.dtype_policy}
        if self.batch_normalization_renorm:
            kwargs.update(
                renorm=True,
                renorm_clipping=self.batch_normalization_renorm_clipping,
                renorm_momentum=self.batch_normalization_renorm_momentum,
            )
        return keras.layers.BatchNormalization(**kwargs)

    def _flat_stack(self) -> list[Any]:
        stack: list[Any] = []
        if self.batch_norm_in is not None:
            stack.append(self.batch_norm_in)
        for dense, bn, act in zip(self.dense_layers, self.batch_norms, self._activation_layers):
            stack.append(dense)
            if bn is not None:
                stack.append(bn)
            if act is not None:
                stack.append(act)
        return stack

    @property
    def activations(self) -> list[Any]:
        """The resolved per-layer activation layers (``None`` where there is none)."""
        return list(self._activation_layers)

    def get_layer(self, index: int) -> Any:
        """The ``index``-th entry of the flat stack (input BN, then Dense, BN, activation ...)."""
        if not 0 <= index < len(self._layer_stack):
            raise invalid(type(self).__name__, "index",
                          f"an integer in [0, {len(self._layer_stack)})", index)
        return self._layer_stack[index]

    def build(self, input_shape: tuple) -> None:
        owner = type(self).__name__
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                f"{owner}: inputs must be a tensor of rank >= 2 with a known last dimension; "
                f"got shape {tuple(input_shape)}"
            )
        shape = tuple(input_shape)
        for layer in self._layer_stack:
            if not isinstance(layer, keras.layers.Layer):
                continue  # a plain activation function keeps the shape
            if not layer.built:
                layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, inputs: Any, training: bool | None = None, **kwargs: Any) -> Any:
        return self._run(inputs, self._layer_stack, training)

    def call_after_first_dense(self, first_dense_output: Any, training: bool | None = None) -> Any:
        """The tower's output given the output of its first ``Dense`` (before BN and activation).

        For callers that compute the first projection in a cheaper factored form (DIN projects the
        query once per example instead of once per sequence position) and let the tower do the
        rest. Not available with ``enable_batch_normalization`` (the input BN comes first).
        """
        if self.batch_norm_in is not None:
            raise ValueError(f"{type(self).__name__}: call_after_first_dense needs "
                             f"enable_batch_normalization=False; got True")
        return self._run(first_dense_output, self._layer_stack[1:], training)

    @staticmethod
    def _run(h: Any, stack: list[Any], training: bool | None) -> Any:
        for layer in stack:
            if isinstance(layer, keras.layers.BatchNormalization):
                h = layer(h, training=training)
            else:
                h = layer(h)
        return h

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape[:-1]) + (self.output_dims[-1],)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "output_dims": list(self.output_dims),
                "activations": [advanced_activations.serialize(a) for a in self._activation_layers],
                "initializers": [keras.initializers.serialize(i) for i in self._initializers],
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "use_weight_norm": self.use_weight_norm,
                "use_learnable_weight_norm": self.use_learnable_weight_norm,
                "use_bias": self.use_bias,
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "enable_batch_normalization": self.enable_batch_normalization,
                "batch_normalization_momentum": self.batch_normalization_momentum,
                "batch_normalization_renorm": self.batch_normalization_renorm,
                "batch_normalization_renorm_clipping": self.batch_normalization_renorm_clipping,
                "batch_normalization_renorm_momentum": self.batch_normalization_renorm_momentum,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict) -> MLP:
        config = dict(config)
        acts = config.get("activations")
        if isinstance(acts, list):
            config["activations"] = [advanced_activations.deserialize(a) for a in acts]
        return cls(**config)
