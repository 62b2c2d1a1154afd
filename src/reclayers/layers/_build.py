"""How a composite layer builds its parts: one way for every layer of the library.

Three things every layer that owns other layers or several weights does, each done here once:

* :func:`sublayer` makes a sub-layer that runs under the owner's dtype policy, so
  ``MMoE(..., dtype="mixed_bfloat16")`` computes its experts in ``bfloat16`` just as a global
  ``mixed_bfloat16`` policy would.
* :func:`fresh_initializer` gives each weight its own copy of an initializer, with a distinct
  seed per weight when the initializer is seeded (a Keras 3 initializer object draws the same
  values at every call, so two weights sharing one would start identical).
* :func:`activation` resolves an activation identifier with one set of names for every layer:
  the names of :mod:`reclayers.layers.advanced_activations` (including the reference's extra
  names ``sigmoid2``, ``thresholdedrelu``, ``prelu``, ...) first, then any other name Keras
  knows (``relu6``, ``mish``, ...). :func:`activation_config` is its inverse for ``get_config``.

It also holds the option block shared by every layer built from :class:`~reclayers.layers.mlp.MLP`
towers (:data:`MLP_OPTIONS`, :func:`check_mlp_options`, :func:`set_mlp_options`,
:func:`mlp_options_config`), and
:class:`ElementwiseWeightLayer`, the base of the shape-preserving layers whose weights take one
``initializer`` and one ``regularizer``.
"""

from __future__ import annotations

import inspect
import weakref
import zlib
from typing import Any

import keras

from reclayers.layers import advanced_activations
from reclayers.layers.utils import check_float, invalid

__all__ = [
    "MLP_OPTIONS",
    "ElementwiseWeightLayer",
    "activation",
    "activation_config",
    "activation_function",
    "activations_per_layer",
    "batch_norm",
    "batch_norm_supports_renorm",
    "call_sublayer",
    "can_call_directly",
    "check_mlp_options",
    "config_of",
    "fresh_initializer",
    "initializers_per_layer",
    "is_plain_layer",
    "mlp_options_config",
    "set_mlp_options",
    "set_weight_options",
    "sublayer",
    "tower_arguments",
    "tower_config",
]


def sublayer(owner: keras.layers.Layer, cls: type, **kwargs: Any) -> Any:
    """``cls(**kwargs)`` running under ``owner``'s dtype policy (unless ``dtype`` is given).

    Args:
        owner: the composite layer that will hold the sub-layer.
        cls: the sub-layer's class.
        **kwargs: the sub-layer's constructor arguments.

    Example:
        >>> outer = keras.layers.Layer(dtype="mixed_bfloat16")
        >>> sublayer(outer, keras.layers.Dense, units=2).compute_dtype
        'bfloat16'
    """
    kwargs.setdefault("dtype", owner.dtype_policy)
    return cls(**kwargs)


def is_plain_layer(layer: Any) -> bool:
    """Whether ``layer.__call__`` adds nothing to ``layer.call`` for float32 tensors without masks.

    True for a built Keras layer with no activity regulariser, a ``float32`` dtype policy (no
    autocast, no input conversion of float32 tensors), neither rematerialised nor quantized, and
    no mask of its own: the default ``compute_mask`` (an unmasked input gives an unmasked
    output), a merge layer's, an ``Embedding`` without ``mask_zero``, or a layer class that
    declares ``_unmasked_in_unmasked_out = True`` (its ``compute_mask`` returns ``None`` when no
    input is masked: the sequence layers ``DIN``, ``DIEN``, ``DMR_U2I`` and ``CAN``, and the NAS
    layers, whose ``compute_mask`` passes the input mask on). For such a layer, called
    on unmasked float32 tensors inside another layer's call, ``__call__`` only re-checks the input
    spec, opens a name scope, resolves the training flag from the enclosing call and flattens its
    arguments.

    Args:
        layer: any object (``False`` for anything that is not a Keras layer).

    Example:
        >>> dense = keras.layers.Dense(2)
        >>> is_plain_layer(dense), (dense.build((None, 3)) or is_plain_layer(dense))
        (False, True)
    """
    from keras.src.layers.core.embedding import Embedding
    from keras.src.layers.layer import Layer
    from keras.src.layers.merging.base_merge import Merge
    from keras.src.layers.merging.concatenate import Concatenate

    if not isinstance(layer, Layer) or not layer.built:
        return False
    if layer.activity_regularizer is not None or layer.dtype_policy.name != "float32":
        return False
    if getattr(layer, "_remat_mode", None) or getattr(layer, "quantization_mode", None) is not None:
        return False  # ``__call__`` runs a rematerialised or quantized call instead of ``call``
    if getattr(type(layer), "_unmasked_in_unmasked_out", False):
        return True  # its own compute_mask, declared to give no mask for unmasked inputs
    mask_rule = type(layer).compute_mask
    if mask_rule in (Layer.compute_mask, Merge.compute_mask, Concatenate.compute_mask):
        return True  # no input mask -> no output mask
    return isinstance(layer, Embedding) and mask_rule is Embedding.compute_mask and not layer.mask_zero


_PLAIN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def call_sublayer(layer: Any, inputs: Any, training: bool | None = None) -> Any:
    """``layer(inputs, training=training)`` as a composite layer's ``call`` calls its parts.

    On PyTorch, layers run eagerly and every ``Layer.__call__`` costs host time on every step
    (argument flattening, input-spec checks, name scopes, mask and symbolic-tensor look-ups: tens
    to hundreds of microseconds, more than the arithmetic of a small layer at batch 1024). There,
    for a plain layer (:func:`is_plain_layer`) receiving one unmasked float32 tensor, inside the
    call of the layer that owns it and with no autocast scope open, this calls ``layer.call``
    directly: the same outputs, gradients, weight updates and added losses. ``training`` is
    passed on to a ``call`` that takes it, and must then be the owner's resolved flag (what
    ``__call__`` would read from the enclosing call); with ``training=None`` such a layer still
    goes through ``__call__``. Everywhere else (JAX and TensorFlow, which trace the call once,
    symbolic inputs, other dtypes, masks, mixed precision) this is ``layer(inputs, ...)``.

    Args:
        layer: the sub-layer, or a plain function (called as ``layer(inputs)``).
        inputs: one tensor.
        training: the owner's training flag. Default ``None``.

    Example:
        >>> dense = keras.layers.Dense(2)
        >>> tuple(call_sublayer(dense, keras.ops.ones((4, 3))).shape)
        (4, 2)
    """
    if not isinstance(layer, keras.layers.Layer):
        return layer(inputs)
    if can_call_directly(layer, inputs, training):
        if layer._call_has_training_arg:
            return layer.call(inputs, training=training)
        return layer.call(inputs)
    return layer(inputs) if training is None else layer(inputs, training=training)


def can_call_directly(layer: Any, inputs: Any, training: bool | None = None) -> bool:
    """Whether :func:`call_sublayer` calls ``layer.call`` directly for ``inputs`` (see there).

    For composite layers that drive a sub-layer's ``call`` themselves (an RNN cell over the time
    steps): True only on PyTorch, inside an enclosing layer call with no autocast scope and no
    distribution, for a plain layer (:func:`is_plain_layer`) and one unmasked float32 tensor, and
    with ``training`` given when the layer's ``call`` takes it.

    Args:
        layer: the sub-layer.
        inputs: the tensor it is to be called on.
        training: the owner's resolved training flag. Default ``None``.
    """
    if keras.backend.backend() != "torch" or not keras.ops.is_tensor(inputs):
        return False
    if str(inputs.dtype) != "torch.float32" or getattr(inputs, "_keras_mask", None) is not None:
        return False
    plain = _PLAIN.get(layer)
    if plain is None:
        plain = is_plain_layer(layer)
        if layer.built:  # an unbuilt layer is asked again once its __call__ has built it
            _PLAIN[layer] = plain
    if not plain or (training is None and layer._call_has_training_arg):
        return False
    from keras.src.backend.common import global_state
    from keras.src.backend.common.variables import get_autocast_scope

    # Inside the owner's call (a call context is open), not under another layer's autocast, and
    # no distribution that could lay out the output.
    return (global_state.get_global_attribute("current_call_ctx") is not None
            and get_autocast_scope() is None and keras.distribution.distribution() is None)


def _derived_seed(seed: int, index: int) -> int:
    """A seed for weight ``index`` of a layer seeded with ``seed``; differs for every index."""
    return zlib.crc32(f"{seed}/{index}".encode()) & 0x7FFFFFFF


def fresh_initializer(identifier: Any, index: int = 0, default: Any = "glorot_uniform") -> Any:
    """A new initializer object for the ``index``-th weight of a layer.

    ``identifier`` is resolved with ``keras.initializers.get`` (``None`` gives ``default``) and
    copied from its config, so weights never share an initializer object. A seeded random
    initializer gets the seed ``crc32(f"{seed}/{index}")``: reproducible, and different for every
    index, so the weights of one layer, and the weights of the sub-layers of a layer
    (``fresh_initializer(fresh_initializer(init, expert), layer)``), never start identical.
    An unseeded initializer draws fresh values anyway; a callable that is not a Keras
    initializer is returned as is.

    Args:
        identifier: a Keras initializer identifier (name, dict, object) or ``None``.
        index: the weight's position among the weights that share ``identifier``. Default 0.
        default: the identifier used when ``identifier`` is ``None``. Default
            ``'glorot_uniform'``.

    Example:
        >>> import numpy as np
        >>> init = keras.initializers.RandomNormal(seed=3)
        >>> a = fresh_initializer(init, 0)((2, 2))
        >>> b = fresh_initializer(init, 1)((2, 2))
        >>> bool(np.allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)))
        False
    """
    init = keras.initializers.get(identifier if identifier is not None else default)
    if not isinstance(init, keras.initializers.Initializer):
        return init
    config = init.get_config()
    if isinstance(config.get("seed"), int):
        config = {**config, "seed": _derived_seed(config["seed"], index)}
    return init.__class__.from_config(config)


def set_weight_options(layer: keras.layers.Layer, initializer: Any, regularizer: Any,
                       default: Any = "glorot_normal") -> None:
    """Store the ``initializer`` and ``regularizer`` that all of ``layer``'s weights share.

    Sets ``layer.initializer`` (``None`` → ``default``, resolved with ``keras.initializers.get``)
    and ``layer.regularizer`` (``keras.regularizers.get``), the pair that most layers of the
    library take and write back with :func:`config_of`. Each weight then takes its own copy with
    :func:`fresh_initializer`.

    Args:
        layer: the layer being constructed.
        initializer: the layer's ``initializer`` argument (``None`` → ``default``).
        regularizer: the layer's ``regularizer`` argument (``None``: no regularization).
        default: the initializer the layer documents for ``None``. Default ``'glorot_normal'``.

    Example:
        >>> layer = keras.layers.Layer()
        >>> set_weight_options(layer, None, "l2", "he_normal")
        >>> type(layer.initializer).__name__, type(layer.regularizer).__name__
        ('HeNormal', 'L2')
    """
    layer.initializer = keras.initializers.get(initializer if initializer is not None else default)
    layer.regularizer = keras.regularizers.get(regularizer)


def activation(identifier: Any, owner: keras.layers.Layer | None = None,
               default: Any = None) -> Any:
    """Resolve an activation identifier: an activation layer, a function, or ``None``.

    Resolution, the same for every layer of the library:

    1. ``None`` → ``default`` (resolved the same way); ``default=None`` → ``None`` (identity).
    2. a name of :mod:`~reclayers.layers.advanced_activations` (case-insensitive, e.g.
       ``'relu'``, ``'sigmoid2'``, ``'PReLU'``), a dict or its JSON text, a layer class, a layer
       instance, or a Keras activation function of the same name → an activation layer
       (:func:`reclayers.layers.advanced_activations.get`); a new layer runs under ``owner``'s
       dtype policy;
    3. any other name Keras knows (``'relu6'``, ``'mish'``, ``'log_softmax'``) → that Keras
       function; any other callable → itself;
    4. anything else → ``ValueError`` naming the accepted names.

    Args:
        identifier: ``None``, a name, a dict (or its JSON text), a layer class or instance, or a
            callable.
        owner: the layer that will apply the activation (for the dtype policy). Default
            ``None`` (the global policy).
        default: what ``None`` means. Default ``None`` (no activation).

    Example:
        >>> type(activation("sigmoid2")).__name__, activation("relu6").__name__
        ('Sigmoid2', 'relu6')
    """
    if identifier is None:
        if default is None:
            return None
        identifier = default
    dtype = None if owner is None else owner.dtype_policy
    if isinstance(identifier, dict) and "class_name" in identifier:  # a Keras-serialised layer
        return keras.saving.deserialize_keras_object(identifier)
    if isinstance(identifier, str) and identifier.lower() not in advanced_activations._REGISTRY:
        text = identifier.strip()
        if not text.startswith(("{", "[")):
            try:
                return keras.activations.get(identifier)
            except (ValueError, TypeError):
                raise invalid(
                    "activation", "identifier",
                    "one of " + ", ".join(sorted(advanced_activations._REGISTRY))
                    + ", a Keras activation name, a dict or a callable", identifier,
                ) from None
    return advanced_activations.get(identifier, dtype=dtype)


def activation_function(identifier: Any, owner: keras.layers.Layer | None = None,
                        default: Any = None, layers_with_weights: bool = False) -> Any:
    """Like :func:`activation`, as a plain function where a step function needs one (GRU cells).

    ``None`` (with ``default=None``) is the identity ``keras.activations.linear``; a weightless
    activation layer becomes its ``call`` method (no Keras ``__call__`` overhead inside a
    recurrent loop); ``PReLU``, which has weights, is returned as a layer when
    ``layers_with_weights`` is true and raises ``ValueError`` otherwise (Keras's ``GRU`` cannot
    hold one).

    Args:
        identifier: as for :func:`activation`.
        owner: the layer that applies it (error messages and dtype policy). Default ``None``.
        default: what ``None`` means. Default ``None`` (the identity).
        layers_with_weights: accept ``PReLU`` (returned as a layer). Default ``False``.

    Example:
        >>> import numpy as np
        >>> f = activation_function("sigmoid2")
        >>> float(keras.ops.convert_to_numpy(f(np.zeros((1,), "float32")))[0])
        1.0
    """
    resolved = activation(identifier, owner, default=default)
    if resolved is None:
        return keras.activations.linear
    if isinstance(resolved, advanced_activations.PReLU):
        if layers_with_weights:
            return resolved
        raise invalid(type(owner).__name__ if owner is not None else "activation", "activation",
                      "an activation without weights (a plain function is needed here)",
                      identifier)
    if isinstance(resolved, keras.layers.Layer):
        return resolved.call
    return resolved


def activation_config(identifier: Any) -> Any:
    """The JSON-compatible form of an activation identifier that :func:`activation` reads back.

    Activation layers of the library give :func:`~reclayers.layers.advanced_activations.serialize`'s
    dict, any other Keras layer its Keras serialisation, a function its Keras name.

    Args:
        identifier: what the layer was given (a name, dict, activation layer or function).

    Example:
        >>> activation_config(advanced_activations.LeakyReLU(negative_slope=0.1))
        {'name': 'LeakyReLU', 'alpha': 0.1}
    """
    if identifier is None or isinstance(identifier, (str, dict)):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, keras.layers.Layer):
        identifier = identifier()
    if isinstance(identifier, keras.layers.Layer):
        config = advanced_activations.serialize(identifier)
        return config if config is not None else keras.saving.serialize_keras_object(identifier)
    return keras.activations.serialize(identifier)


# --------------------------------------------------------------------------------------------
# The option block of the layers made of MLP towers (MLP, MMoE, LHUCTower)
# --------------------------------------------------------------------------------------------

#: The options every MLP tower takes, in :class:`~reclayers.layers.mlp.MLP`'s order.
MLP_OPTIONS = (
    "kernel_regularizer",
    "use_weight_norm",
    "use_learnable_weight_norm",
    "use_bias",
    "bias_regularizer",
    "enable_batch_normalization",
    "batch_normalization_momentum",
    "batch_normalization_renorm",
    "batch_normalization_renorm_clipping",
    "batch_normalization_renorm_momentum",
)
_REGULARIZERS = ("kernel_regularizer", "bias_regularizer")
_BOOLS = ("use_weight_norm", "use_learnable_weight_norm", "use_bias",
          "enable_batch_normalization", "batch_normalization_renorm")
_MOMENTA = ("batch_normalization_momentum", "batch_normalization_renorm_momentum")


def check_mlp_options(owner: str, options: dict) -> dict:
    """Validate and normalise MLP tower options (any subset of :data:`MLP_OPTIONS`).

    Regularizers are resolved with ``keras.regularizers.get``, flags become ``bool``, momenta
    must lie in ``[0, 1]``, the renorm clipping must be ``None`` or a dict with keys among
    ``rmax``, ``rmin``, ``dmax``, and batch renormalisation needs a Keras that has it.

    Args:
        owner: the calling layer's name, for error messages.
        options: option name → value.

    Example:
        >>> check_mlp_options("MLP", {"use_bias": 0, "batch_normalization_momentum": 0.9})
        {'use_bias': False, 'batch_normalization_momentum': 0.9}
    """
    out: dict[str, Any] = {}
    for name, value in options.items():
        if name not in MLP_OPTIONS:
            raise invalid(owner, "option", "one of " + ", ".join(MLP_OPTIONS), name)
        if name in _REGULARIZERS:
            value = keras.regularizers.get(value)
        elif name in _BOOLS:
            value = bool(value)
        elif name in _MOMENTA:
            value = check_float(owner, name, value, 0.0, 1.0)
        elif value is not None:  # batch_normalization_renorm_clipping
            if not isinstance(value, dict) or set(value) - {"rmax", "rmin", "dmax"}:
                raise invalid(owner, name, "None or a dict with keys among 'rmax', 'rmin', 'dmax'",
                              value)
            value = dict(value)
        out[name] = value
    if out.get("batch_normalization_renorm") and not batch_norm_supports_renorm():
        raise NotImplementedError(
            f"{owner}: batch_normalization_renorm needs a Keras whose BatchNormalization "
            f"supports renorm (>= 3.11); installed Keras is {keras.__version__}"
        )
    return out


def batch_norm_supports_renorm() -> bool:
    """Whether the installed Keras BatchNormalization has batch renormalisation (Keras >= 3.11).

    MLP towers pass their ``batch_normalization_renorm*`` options to Keras only when this is
    true. Takes no arguments.

    Example:
        >>> isinstance(batch_norm_supports_renorm(), bool)
        True
    """
    return "renorm" in inspect.signature(keras.layers.BatchNormalization.__init__).parameters


def batch_norm(owner: keras.layers.Layer, name: str) -> keras.layers.BatchNormalization:
    """The Keras ``BatchNormalization`` an MLP tower puts after a layer, from its own options.

    ``owner`` holds checked :data:`MLP_OPTIONS` as attributes; the layer uses its momentum and,
    when ``batch_normalization_renorm`` is set, Keras's batch renormalisation with the renorm
    clipping and momentum. It runs under ``owner``'s dtype policy.

    Args:
        owner: the tower.
        name: the sub-layer's name.

    Example:
        >>> from reclayers.layers.mlp import MLP
        >>> batch_norm(MLP([2], batch_normalization_momentum=0.9), "bn").momentum
        0.9
    """
    kwargs: dict[str, Any] = {"momentum": owner.batch_normalization_momentum, "name": name}
    if owner.batch_normalization_renorm:
        kwargs.update(
            renorm=True,
            renorm_clipping=owner.batch_normalization_renorm_clipping,
            renorm_momentum=owner.batch_normalization_renorm_momentum,
        )
    return sublayer(owner, keras.layers.BatchNormalization, **kwargs)


def set_mlp_options(layer: keras.layers.Layer, arguments: dict) -> dict:
    """Validate the MLP options among a constructor's ``arguments`` and store them on ``layer``.

    The options are picked from ``arguments`` (typically the constructor's ``locals()``) by
    their names in :data:`MLP_OPTIONS`, checked with :func:`check_mlp_options`, set as
    attributes of ``layer`` and kept, as one dict, in ``layer._options`` (which
    :func:`mlp_options_config` writes back into ``get_config``).

    Args:
        layer: the layer that takes the options (its class name is used in error messages).
        arguments: name → value; names that are not MLP options are ignored.

    Returns:
        The validated options (also ``layer._options``).

    Example:
        >>> layer = keras.layers.Layer()
        >>> set_mlp_options(layer, {"use_bias": 0, "units": 3})
        {'use_bias': False}
        >>> layer.use_bias
        False
    """
    options = {name: value for name, value in arguments.items() if name in MLP_OPTIONS}
    layer._options = check_mlp_options(type(layer).__name__, options)
    for name, value in layer._options.items():
        setattr(layer, name, value)
    return layer._options


def mlp_options_config(options: dict) -> dict:
    """The ``get_config`` form of checked MLP options (regularizers serialised).

    Args:
        options: the output of :func:`check_mlp_options`.

    Example:
        >>> mlp_options_config(check_mlp_options("MLP", {"kernel_regularizer": None}))
        {'kernel_regularizer': None}
    """
    return {
        name: (None if value is None else keras.regularizers.serialize(value))
        if name in _REGULARIZERS else value
        for name, value in options.items()
    }


def tower_config(tower: keras.layers.Layer) -> dict:
    """The ``get_config`` entries every MLP-style tower writes (read back by :func:`tower_arguments`).

    ``output_dims``, the per-layer ``activations`` (serialised activation layers) and
    ``initializers`` (Keras serialisations), and the checked MLP options of ``tower._options``.

    Args:
        tower: a layer built with :func:`activations_per_layer`, :func:`initializers_per_layer`
            and :func:`set_mlp_options` (``MLP``, ``LHUCTower``).

    Example:
        >>> from reclayers.layers.mlp import MLP
        >>> config = tower_config(MLP([4, 1], use_bias=False))
        >>> config["output_dims"], config["use_bias"]
        ([4, 1], False)
    """
    return {
        "output_dims": list(tower.output_dims),
        "activations": [advanced_activations.serialize(a) for a in tower._activation_layers],
        "initializers": [keras.initializers.serialize(i) for i in tower._initializers],
        **mlp_options_config(tower._options),
    }


def tower_arguments(config: dict) -> dict:
    """Constructor arguments from a tower's ``get_config`` (``from_config``'s one step).

    A copy of ``config`` whose per-layer ``activations`` list is turned back into activation
    layers; everything else is passed through as written.

    Args:
        config: a config written with :func:`tower_config`.

    Example:
        >>> from reclayers.layers.mlp import MLP
        >>> arguments = tower_arguments(tower_config(MLP([4, 1], activations="tanh")))
        >>> [type(a).__name__ for a in arguments["activations"]]
        ['Tanh', 'NoneType']
    """
    config = dict(config)
    acts = config.get("activations")
    if isinstance(acts, list):
        config["activations"] = [advanced_activations.deserialize(a) for a in acts]
    return config


def activations_per_layer(owner: keras.layers.Layer, activations: Any, n: int) -> list[Any]:
    """One activation layer per layer of an ``n``-layer tower (``None`` for no activation).

    A list gives one activation per layer (its last entry honoured); a single value applies to
    every layer but the last; ``None`` means ReLU on every layer but the last. Each entry is
    resolved with :func:`activation` under ``owner``'s dtype policy and is a distinct object
    (a ``PReLU`` instance given once becomes one ``PReLU`` per layer).

    Args:
        owner: the tower (for error messages and the dtype policy).
        activations: ``None``, one identifier, or a list of ``n`` identifiers.
        n: number of layers.

    Example:
        >>> tower = keras.layers.Layer(name="tower")
        >>> [type(a).__name__ for a in activations_per_layer(tower, "tanh", 3)]
        ['Tanh', 'Tanh', 'NoneType']
    """
    if isinstance(activations, (list, tuple)):
        if len(activations) != n:
            raise invalid(type(owner).__name__, "activations",
                          f"a list of length {n} (one per layer)", list(activations))
        items = list(activations)
    else:
        items = [activations if activations is not None else "relu"] * (n - 1) + [None]
    return [advanced_activations.clone(activation(a, owner), owner.dtype_policy) for a in items]


def initializers_per_layer(initializers: Any, n: int) -> list[Any]:
    """One kernel initializer object per layer of an ``n``-layer tower.

    A list is padded with ``None`` (→ ``'glorot_uniform'``) or cut to ``n``; a single value is
    used for every layer. Each entry comes from :func:`fresh_initializer` with the layer's
    index, so a seeded initializer gives every layer different starting values.

    Args:
        initializers: ``None``, one Keras initializer identifier, or a list of them.
        n: number of layers.

    Example:
        >>> [type(i).__name__ for i in initializers_per_layer(["he_normal"], 2)]
        ['HeNormal', 'GlorotUniform']
    """
    if isinstance(initializers, (list, tuple)):
        items = list(initializers)[:n] + [None] * max(0, n - len(initializers))
    else:
        items = [initializers] * n
    return [fresh_initializer(item, i) for i, item in enumerate(items)]


def config_of(layer: keras.layers.Layer, *names: str, **values: Any) -> dict:
    """``get_config`` entries: the named attributes of ``layer``, serialised, plus ``values``.

    Keras initializers, regularizers and constraints are written with their Keras
    serialisation, lists and tuples as new lists, anything else as is; ``values`` are written unchanged
    (already serialised values such as an activation identifier).

    Args:
        layer: the layer whose attributes are read.
        *names: attribute names, each written under its own name.
        **values: further entries, written as given.

    Example:
        >>> layer = keras.layers.Layer()
        >>> layer.initializer = keras.initializers.Zeros()
        >>> config = config_of(layer, "initializer", mode="sum")
        >>> config["initializer"]["class_name"], config["mode"]
        ('Zeros', 'sum')
    """
    return {**{name: _config_value(getattr(layer, name)) for name in names}, **values}


def _config_value(value: Any) -> Any:
    if isinstance(value, keras.initializers.Initializer):
        return keras.initializers.serialize(value)
    if isinstance(value, keras.regularizers.Regularizer):
        return keras.regularizers.serialize(value)
    if isinstance(value, keras.constraints.Constraint):
        return keras.constraints.serialize(value)
    if isinstance(value, (list, tuple)):
        return list(value)  # a copy: editing a config never edits the layer
    return value


class ElementwiseWeightLayer(keras.layers.Layer):
    """Base of a shape-preserving layer whose weights take one ``initializer`` and ``regularizer``.

    Stores the two (``None`` initializer → the class's ``default_initializer``), passes masks
    through, keeps the input shape, and writes both into ``get_config``. A subclass builds its
    weights with ``self.initializer`` / ``self.regularizer`` and implements ``call``.

    Args:
        initializer: the weights' initializer; ``None`` → ``default_initializer``
            (``'zeros'`` unless the subclass says otherwise). Default ``None``.
        regularizer: the weights' regularizer. Default ``None``.
        **kwargs: Keras layer arguments (``name``, ``dtype``, ...).

    Example:
        >>> layer = ElementwiseWeightLayer(regularizer="l2")
        >>> type(layer.initializer).__name__, layer.compute_output_shape((2, 3))
        ('Zeros', (2, 3))
    """

    default_initializer = "zeros"

    def __init__(self, initializer: Any = None, regularizer: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(initializer or self.default_initializer)
        self.regularizer = keras.regularizers.get(regularizer)
        self.supports_masking = True

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {**super().get_config(), **config_of(self, "initializer", "regularizer")}
