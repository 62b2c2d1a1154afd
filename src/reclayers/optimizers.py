"""Optimizers: :class:`MultiOptimizer` updates each variable with the optimizer its layer named."""

from __future__ import annotations

from typing import Any

import keras

__all__ = [
    "MultiOptimizer", "assign_optimizer", "delegated_learning_rate", "fused_keras_adam", "use_fused_kernel",
]


def delegated_learning_rate(attribute: str) -> property:
    """A ``learning_rate`` property that reads and sets the rate of the optimizer in ``attribute``.

    For an optimizer that wraps others: its rate is the wrapped optimizer's. Setting it before
    that attribute exists (Keras's ``Optimizer.__init__`` sets a rate first) is ignored.

    Args:
        attribute: the name of the attribute holding the wrapped optimizer.

    Example:
        >>> class Wrapper:
        ...     learning_rate = delegated_learning_rate("inner")
        >>> w = Wrapper()
        >>> w.learning_rate = 0.5  # no ``inner`` yet: ignored
        >>> w.inner = keras.optimizers.SGD(learning_rate=0.1)
        >>> w.learning_rate = 0.2
        >>> round(float(w.inner.learning_rate), 3)
        0.2
    """

    def get(self: Any) -> Any:
        return getattr(self, attribute).learning_rate

    def set_(self: Any, value: Any) -> None:
        if hasattr(self, attribute):
            getattr(self, attribute).learning_rate = value

    return property(get, set_, doc="The learning rate of the wrapped optimizer.")


def assign_optimizer(variables: Any, optimizer: keras.optimizers.Optimizer) -> None:
    """Tag ``variables`` (a variable, a list of them, or a layer) to be updated by ``optimizer``.

    Sets the variables' ``optimizer`` attribute, which :class:`MultiOptimizer` reads; a layer
    stands for its trainable weights. Call it after the layer is built.

    Args:
        variables: a ``keras.Variable``, a list or tuple of them, or a built layer.
        optimizer: the Keras optimizer object that should update them.

    Example:
        >>> import keras
        >>> embedding = keras.layers.Embedding(10, 4)
        >>> embedding.build((None,))
        >>> sgd = keras.optimizers.SGD(0.1)
        >>> assign_optimizer(embedding, sgd)
        >>> embedding.embeddings.optimizer is sgd
        True
    """
    if isinstance(variables, keras.layers.Layer):
        variables = variables.trainable_weights
    elif not isinstance(variables, (list, tuple)):
        variables = [variables]
    for v in variables:
        v.optimizer = optimizer


def use_fused_kernel(optimizer: Any) -> Any:
    """Runs a Keras ``Adam``'s update through PyTorch's fused Adam kernel (PyTorch backend only).

    On PyTorch, Keras's ``Adam`` updates its variables with about ten multi-tensor passes
    (``torch._foreach_*``: moments, square root, division, ...) plus a few ``keras.ops`` scalar
    calls per step; ``torch._fused_adam_`` does the same update in one pass per tensor. For the
    zoo's dense weights (one ``DCN-V2``'s: 24 tensors, 115k floats) that is 0.12 ms per step
    against 0.71 ms (one thread). Only the innermost update is replaced: learning-rate schedules,
    gradient clipping, weight decay, EMA, gradient accumulation, loss scaling, constraints and the
    iteration counter stay Keras's, and so do the optimizer's class, variables, configuration and
    checkpoints. The result is Keras's formula to float rounding (:func:`fused_keras_adam`).

    Anything else (another backend or optimizer, ``amsgrad``, a tensor that is not ``float32``)
    is left to Keras, step by step.

    Args:
        optimizer: a Keras optimizer (changed in place when it is a plain ``Adam`` on PyTorch).

    Returns:
        ``optimizer``.

    Example:
        >>> opt = use_fused_kernel(keras.optimizers.Adam(0.01))
        >>> type(opt).__name__
        'Adam'
    """
    if keras.backend.backend() != "torch":
        return optimizer
    import torch
    from keras.src.backend.torch.optimizers.torch_adam import Adam as TorchAdam

    if type(optimizer) is not TorchAdam or getattr(torch, "_fused_adam_", None) is None:
        return optimizer
    import types

    # The instance's method, not the class's (a bound method: copies rebind it to the copy).
    optimizer._parallel_update_step = types.MethodType(_fused_adam_step, optimizer)
    return optimizer


def _fused_adam_step(opt: Any, grads: list, variables: list, learning_rate: Any) -> None:
    """``Adam._parallel_update_step`` through ``torch._fused_adam_`` (see :func:`use_fused_kernel`);
    Keras's own step where the kernel does not apply."""
    import torch
    from keras.src.backend.torch.optimizers.torch_adam import Adam as TorchAdam

    tensors = _adam_tensors(opt, variables)
    if tensors is None or opt.amsgrad or any(g.dtype != torch.float32 for g in grads):
        return TorchAdam._parallel_update_step(opt, grads, variables, learning_rate)
    values, moments, velocities = tensors
    fused_keras_adam(values, [g.contiguous() for g in grads], moments, velocities, float(learning_rate),
                     float(opt.iterations) + 1.0, opt.beta_1, opt.beta_2, opt.epsilon)
    return None


def fused_keras_adam(params: list, grads: list, moments: list, velocities: list, lr: Any, step: float,
                     beta_1: float, beta_2: float, epsilon: float) -> None:
    """Keras's Adam step on lists of PyTorch tensors, in place, in one ``torch._fused_adam_`` call.

    PyTorch's kernel adds ``ε`` after the bias correction (``√v / √(1 - β₂ᵗ) + ε``), Keras adds it
    to ``√v`` (``w -= lr·√(1 - β₂ᵗ)/(1 - β₁ᵗ) · m / (√v + ε)``); given ``ε / √(1 - β₂ᵗ)`` the two
    are the same, so this is Keras's update to float rounding. The kernel computes ``m`` by
    ``lerp`` and ``v`` as ``β₂·v + (1 - β₂)·g²``, the same values.

    Args:
        params, grads, moments, velocities: ``float32`` tensors, one of each per weight.
        lr: the rate (a float or a scalar tensor).
        step: the 1-based step ``t`` of the bias correction.
        beta_1, beta_2, epsilon: Keras's ``Adam`` hyper-parameters.

    Example:
        >>> import torch
        >>> w, m, v = [torch.ones(2)], [torch.zeros(2)], [torch.zeros(2)]
        >>> fused_keras_adam(w, [torch.full((2,), 0.5)], m, v, 0.1, 1, 0.9, 0.999, 1e-7)
        >>> round(float(w[0][0]), 4)  # Adam's first step moves by the rate
        0.9
    """
    import torch

    beta_2 = float(beta_2)
    steps = [torch.tensor(float(step), dtype=torch.float32, device=params[0].device)] * len(params)
    torch._fused_adam_(
        params, grads, moments, velocities, [], steps, lr=lr, beta1=float(beta_1), beta2=beta_2,
        weight_decay=0.0, eps=float(epsilon) / (1.0 - beta_2 ** float(step)) ** 0.5,
        amsgrad=False, maximize=False,
    )


def _adam_tensors(opt: Any, variables: list) -> tuple | None:
    """``(values, moments, velocities)``: the torch tensors behind ``variables`` and their Adam
    slots, or ``None`` unless all are ``float32``. Kept per optimizer and list of variables:
    a Keras variable on PyTorch keeps its tensor for life (assignments copy into it), and
    ``Variable.value`` costs a few microseconds of scope look-ups per read (72 reads per step for
    24 weights). Outside any autocast or stateless scope only, where ``value`` is that tensor."""
    from keras.src.backend.common.stateless_scope import in_stateless_scope
    from keras.src.backend.common.variables import get_autocast_scope

    if in_stateless_scope() or get_autocast_scope() is not None:
        return None
    cache = opt.__dict__.setdefault("_reclayers_adam_tensors", {})
    key = tuple(id(v) for v in variables)
    owners = [*variables, *opt._momentums, *opt._velocities]  # a rebuilt optimizer has new slots
    hit = cache.get(key)
    if hit is None or len(hit[0]) != len(owners) or any(a is not b for a, b in zip(hit[0], owners)):
        values = [v.value for v in variables]
        moments = [opt._momentums[opt._get_variable_index(v)].value for v in variables]
        velocities = [opt._velocities[opt._get_variable_index(v)].value for v in variables]
        ok = all(str(t.dtype) == "torch.float32" for t in values)
        hit = cache[key] = (owners, (values, moments, velocities) if ok else None)
    return hit[1]


@keras.saving.register_keras_serializable(package="reclayers")
class MultiOptimizer(keras.optimizers.Optimizer):
    """A Keras optimizer that routes each variable to the optimizer its layer asked for.

    A variable tagged with an ``optimizer`` attribute — set by
    :class:`reclayers.layers.Dense` (``Dense(..., optimizer=SGD(0.1))``) or by
    :func:`assign_optimizer` — is updated by that optimizer; every other variable by
    ``default_optimizer``. Variables that share one optimizer object share its state. Works in
    ``model.fit`` on JAX (through ``stateless_apply``), TensorFlow and PyTorch.

    Args:
        default_optimizer: optimizer (or its name/config) for untagged variables.

    Example:
        >>> import keras
        >>> from reclayers import layers
        >>> model = keras.Sequential([keras.Input((3,)), layers.Dense(2, optimizer="sgd"),
        ...                           layers.Dense(1)])
        >>> model.compile(optimizer=MultiOptimizer("adam"), loss="mse")
    """

    def __init__(self, default_optimizer: Any = "adam", name: str | None = None, **kwargs: Any):
        super().__init__(learning_rate=0.0, name=name, **kwargs)
        self.default_optimizer = keras.optimizers.get(default_optimizer)
        self._groups: list[tuple[Any, list[int]]] = []

    def _optimizer_of(self, variable: Any) -> Any:
        opt = getattr(variable, "optimizer", None)
        if isinstance(opt, keras.optimizers.Optimizer):
            return opt
        return self.default_optimizer

    @property
    def sub_optimizers(self) -> list[Any]:
        """The optimizers in use, default first, in the order they were met."""
        return [opt for opt, _ in self._groups]

    def build(self, var_list: list) -> None:
        groups: dict[int, tuple[Any, list[int]]] = {id(self.default_optimizer): (
            self.default_optimizer, [])}
        for i, v in enumerate(var_list):
            opt = self._optimizer_of(v)
            groups.setdefault(id(opt), (opt, []))[1].append(i)
        self._groups = list(groups.values())
        for opt, idx in self._groups:
            if not opt.built:
                opt.build([var_list[i] for i in idx])
        super().build(var_list)

    @property
    def variables(self) -> list:
        out = list(self._variables)
        for opt, _ in self._groups:
            out.extend(opt.variables)
        return out

    def apply(self, grads: list, trainable_variables: Any = None) -> None:
        if trainable_variables is None:
            trainable_variables = self._trainable_variables
        else:
            trainable_variables = list(trainable_variables)
            if not self.built:
                self.build(trainable_variables)
        grads = list(grads)
        for opt, idx in self._groups:
            if not idx:
                continue
            pairs = [(grads[i], trainable_variables[i]) for i in idx if grads[i] is not None]
            if pairs:
                opt.apply([g for g, _ in pairs], [v for _, v in pairs])
        self.iterations.assign_add(1)

    learning_rate = delegated_learning_rate("default_optimizer")

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "default_optimizer": keras.optimizers.serialize(self.default_optimizer),
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects: Any = None) -> MultiOptimizer:
        config = dict(config)
        default = keras.optimizers.deserialize(config.pop("default_optimizer"),
                                               custom_objects=custom_objects)
        return cls(default, **config)
