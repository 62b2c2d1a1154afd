"""Normalisation layers: LayerNorm, GradNorm (multi-task loss balancing) and a BatchNorm."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from reclayers.layers._build import ElementwiseWeightLayer, config_of
from reclayers.layers.utils import check_float, invalid, known_last_dim

__all__ = ["BatchNorm", "GradNorm", "LayerNorm"]


@keras.saving.register_keras_serializable(package="reclayers")
class LayerNorm(ElementwiseWeightLayer):
    """Layer normalisation over the last axis (Ba et al. 2016, https://arxiv.org/abs/1607.06450).

    ``y = (x - μ) / sqrt(v + 1e-6) · γ + β`` with ``μ``, ``v`` the mean and population variance
    of each example's last axis. Epsilon is 1e-6 (the reference's; Keras uses 1e-3). Training
    and inference compute the same thing.

    Shapes: ``(..., D)`` → ``(..., D)``; weights ``gamma``, ``beta`` of shape ``(D,)``.

    Args:
        initializer: ``gamma`` initializer (``None`` → ones). Optional here (the original made it
            a required positional argument). Default ``None``.
        regularizer: regularizer of both ``beta`` and ``gamma``. Default ``None``.

    Example:
        >>> import numpy as np
        >>> y = LayerNorm()(np.array([[1.0, 2.0, 3.0]], "float32"))
        >>> [round(float(v), 3) for v in y[0]]
        [-1.225, 0.0, 1.225]
    """

    epsilon = 1e-6
    default_initializer = "ones"

    def __init__(self, initializer: Any = None, regularizer: Any = None, **kwargs: Any) -> None:
        super().__init__(initializer, regularizer, **kwargs)

    def build(self, input_shape: tuple) -> None:
        dim = known_last_dim("LayerNorm", "inputs", input_shape)
        self.beta = self.add_weight(
            name="beta", shape=(dim,), initializer="zeros", regularizer=self.regularizer
        )
        self.gamma = self.add_weight(
            name="gamma", shape=(dim,), initializer=self.initializer, regularizer=self.regularizer
        )

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, "float32") if self.compute_dtype != "float64" else inputs
        mean = ops.mean(x, axis=-1, keepdims=True)
        var = ops.mean(ops.square(x - mean), axis=-1, keepdims=True)
        gamma = ops.cast(self.gamma, x.dtype)
        beta = ops.cast(self.beta, x.dtype)
        y = (x - mean) * ops.rsqrt(var + self.epsilon) * gamma + beta
        return ops.cast(y, self.compute_dtype)


@keras.saving.register_keras_serializable(package="reclayers")
class GradNorm(keras.layers.Layer):
    """GradNorm multi-task loss balancing (Chen et al. 2018, https://arxiv.org/abs/1711.02257).

    Task weights are ``w = softmax(grad_norm_weights)`` (uniform at start). Given the task losses
    ``L_i`` and the norm ``G_i`` of each task's gradient with respect to the shared bottom:

    .. code-block:: text

        G      = stop_gradient([G_1 .. G_n])
        wg_i   = G_i · w_i;             avg = mean_i(wg_i)
        diff_i = |wg_i - avg|           (/ (avg + epsilon) if relative_diff)
        gnorm_loss    = scale · Σ_i diff_i ** loss_pow
        weighted_loss = Σ_i L_i · stop_gradient(w_i)

    ``call((losses, grads))`` returns ``(gnorm_loss, weighted_loss)``; the training objective is
    their sum. Only ``gnorm_loss`` moves ``grad_norm_weights``; only ``weighted_loss`` moves the
    model. ``grads`` is either a vector ``(n,)`` of precomputed norms, or a list of ``n`` entries
    where entry ``i`` is a tensor or a list of tensors — the gradients of ``L_i`` with respect
    to the shared tensors (``G_i`` is the Frobenius norm over all of them). Compute them with
    :func:`reclayers.autodiff.gradient`, which works on every backend; see
    ``tests/core/test_norms.py`` for a full two-task ``fit``.

    Shapes: ``losses`` a list of ``n`` scalars; ``grads`` a vector ``(n,)`` or a list of ``n``
    tensors / tensor lists of any shape → ``(gnorm_loss, weighted_loss)``, two scalars. Weight:
    ``grad_norm_weights`` of shape ``(n,)``.

    Deviations (all deliberate): the original took symbolic ``tf.gradients`` inside the layer
    (TF1 only) — here the gradients come in as inputs; it overrode ``get_weights`` to return
    ``w`` — here ``w`` is the :meth:`task_weights` method and ``get_weights`` is Keras's.

    Args:
        loss_names: one name per task (``n = len(loss_names)``, at least 2).
        scale: multiplier of ``gnorm_loss``. Default 1.0.
        loss_pow: exponent ``p`` of the deviations. Default 2.0.
        relative_diff: divide deviations by ``avg + epsilon``. Default ``False``.
        epsilon: small constant of the relative form. Default 1e-06.

    Example:
        >>> import numpy as np
        >>> gn = GradNorm(loss_names=["ctr", "cvr"])
        >>> gnorm, weighted = gn(([np.float32(1.0), np.float32(3.0)], np.array([1.0, 3.0], "float32")))
        >>> round(float(gnorm), 4), round(float(weighted), 4)
        (0.5, 2.0)
    """

    def __init__(
        self,
        loss_names: list[str],
        scale: float = 1.0,
        loss_pow: float = 2.0,
        relative_diff: bool = False,
        epsilon: float = 1e-6,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (
            not isinstance(loss_names, (list, tuple))
            or len(loss_names) < 2
            or not all(isinstance(n, str) for n in loss_names)
        ):
            raise invalid("GradNorm", "loss_names", "a list of at least 2 task names", loss_names)
        self.loss_names = list(loss_names)
        self.scale = check_float("GradNorm", "scale", scale)
        self.loss_pow = check_float("GradNorm", "loss_pow", loss_pow, low=0.0, low_inclusive=False)
        self.relative_diff = bool(relative_diff)
        self.epsilon = check_float("GradNorm", "epsilon", epsilon, low=0.0)

    @property
    def num_tasks(self) -> int:
        return len(self.loss_names)

    def build(self, input_shape: Any = None) -> None:
        self.grad_norm_weights = self.add_weight(
            name="grad_norm_weights", shape=(self.num_tasks,), initializer="zeros"
        )

    def task_weights(self) -> Any:
        """The task weights ``softmax(grad_norm_weights)``, shape ``(n,)``."""
        return ops.softmax(ops.convert_to_tensor(self.grad_norm_weights), axis=-1)

    def _norms(self, grads: Any) -> Any:
        n = self.num_tasks
        if not isinstance(grads, (list, tuple)):
            norms = ops.convert_to_tensor(grads)
            if tuple(norms.shape) != (n,):
                raise ValueError(
                    f"GradNorm: grads must be a vector of {n} norms or a list of {n} gradient "
                    f"lists; got a tensor of shape {tuple(norms.shape)}"
                )
            return ops.cast(norms, "float32")
        if len(grads) != n:
            raise ValueError(
                f"GradNorm: grads must hold one entry per task ({n}); got {len(grads)}"
            )
        norms = []
        for task_grads in grads:
            parts = task_grads if isinstance(task_grads, (list, tuple)) else [task_grads]
            sq = [ops.sum(ops.square(ops.cast(g, "float32"))) for g in parts]
            norms.append(ops.sqrt(sum(sq[1:], sq[0])))
        return ops.stack(norms)

    def call(self, inputs: Any) -> tuple[Any, Any]:
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError("GradNorm: inputs must be the pair (losses, grads)")
        losses, grads = inputs
        if not isinstance(losses, (list, tuple)) or len(losses) != self.num_tasks:
            got = len(losses) if isinstance(losses, (list, tuple)) else type(losses).__name__
            raise ValueError(
                f"GradNorm: losses must be a list of {self.num_tasks} scalar losses; got {got}"
            )
        norms = ops.stop_gradient(self._norms(grads))
        w = self.task_weights()
        wg = norms * w
        avg = ops.mean(wg)
        diff = ops.abs(wg - avg)
        if self.relative_diff:
            diff = diff / (avg + self.epsilon)
        gnorm_loss = self.scale * ops.sum(ops.power(diff, self.loss_pow))
        w_fixed = ops.stop_gradient(w)
        loss_vec = ops.stack([ops.cast(ops.reshape(v, ()), "float32") for v in losses])
        weighted_loss = ops.sum(loss_vec * w_fixed)
        return gnorm_loss, weighted_loss

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (), ()

    def get_config(self) -> dict:
        return {**super().get_config(), **config_of(
            self,
            "loss_names", "scale", "loss_pow", "relative_diff", "epsilon",
        )}


@keras.saving.register_keras_serializable(package="reclayers")
class BatchNorm(keras.layers.Layer):
    """Batch normalisation over axis 0 with explicit moving statistics.

    Training (``training=True``, or ``mode='train'`` when ``training`` is ``None``):
    ``μ_B, v_B`` over the batch (of ``stop_gradient(x)`` if ``stop_grad_of_var_mean``);
    with ``training_use_global_dist`` the statistics used are
    ``μ = gdm · m + (1 - gdm) μ_B`` (likewise ``v``), else ``μ_B, v_B``; moving statistics update
    as ``m <- momentum m + (1 - momentum) μ_B``. Inference uses the moving statistics.
    ``y = (x - μ) / sqrt(v + epsilon) · γ + β``.

    Deliberate change: the original's moving statistics were trainable variables moved by a
    custom gradient and an external optimizer; here they are non-trainable and updated in place,
    and ``momentum`` (unused in the original) drives the update.

    Shapes: ``(B, ..., D)`` with a known ``D`` → the same shape. Statistics are taken over every
    axis but the last; the weights ``gamma_scale`` (γ), ``beta_offset`` (β), ``moving_mean`` and
    ``moving_variance`` have shape ``(D,)``.

    Args:
        momentum: decay of the moving statistics, in ``[0, 1]``. Default 0.99.
        center: learn the offset ``β`` (else ``β = 0``). Default ``True``.
        scale: learn the scale ``γ`` (else ``γ = 1``). Default ``True``.
        moving_mean_initializer: initializer of ``moving_mean``. Default ``'zeros'``.
        moving_variance_initializer: initializer of ``moving_variance``. Default ``'ones'``.
        beta_initializer: initializer of ``β``. Default ``'zeros'``.
        gamma_initializer: initializer of ``γ``. Default ``'ones'``.
        regularizer: regularizer of ``β`` and ``γ``. Default ``None``.
        training_use_global_dist: in training, mix the moving statistics into the batch ones with
            weight ``global_dist_momentum`` (``gdm`` above). Can be switched later with
            ``set_use_global_dist(bool)``. Default ``False``.
        global_dist_momentum: ``gdm`` in ``[0, 1]``; 1 uses the moving statistics only. Default 1.0.
        stop_grad_of_var_mean: compute the batch statistics on ``stop_gradient(x)``, so no
            gradient flows through ``μ_B``, ``v_B``. Default ``False``.
        epsilon: added to the variance, ``>= 0``. Default 1e-06.
        mode: ``'train'``, ``'eval'`` or ``'infer'``; decides the behaviour when ``training`` is
            not passed (``'train'``: batch statistics, the others: moving statistics).
            Default ``'train'``.

    Example:
        >>> import numpy as np
        >>> from keras import ops
        >>> bn = BatchNorm(momentum=0.9)
        >>> x = np.array([[1.0, 10.0], [3.0, 30.0]], "float32")
        >>> print(np.round(ops.convert_to_numpy(bn(x, training=True)), 3))
        [[-1. -1.]
         [ 1.  1.]]
        >>> print(np.round(ops.convert_to_numpy(bn.moving_mean), 3))  # 0.9 · 0 + 0.1 · batch mean
        [0.2 2. ]
    """

    def __init__(
        self,
        momentum: float = 0.99,
        center: bool = True,
        scale: bool = True,
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        regularizer: Any = None,
        training_use_global_dist: bool = False,
        global_dist_momentum: float = 1.0,
        stop_grad_of_var_mean: bool = False,
        epsilon: float = 1e-6,
        mode: str = "train",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.momentum = check_float("BatchNorm", "momentum", momentum, 0.0, 1.0)
        self.center = bool(center)
        self.scale = bool(scale)
        self.moving_mean_initializer = keras.initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = keras.initializers.get(moving_variance_initializer)
        self.beta_initializer = keras.initializers.get(beta_initializer)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.regularizer = keras.regularizers.get(regularizer)
        self.set_use_global_dist(training_use_global_dist)
        self.global_dist_momentum = check_float(
            "BatchNorm", "global_dist_momentum", global_dist_momentum, 0.0, 1.0
        )
        self.stop_grad_of_var_mean = bool(stop_grad_of_var_mean)
        self.epsilon = check_float("BatchNorm", "epsilon", epsilon, low=0.0)
        if mode not in ("train", "eval", "infer"):
            raise invalid("BatchNorm", "mode", "one of 'train', 'eval', 'infer'", mode)
        self.mode = mode

    def set_use_global_dist(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise invalid("BatchNorm", "training_use_global_dist", "a bool", value)
        self.training_use_global_dist = value

    def build(self, input_shape: tuple) -> None:
        shape = (known_last_dim("BatchNorm", "inputs", input_shape),)
        self.moving_mean = self.add_weight(
            name="moving_mean", shape=shape, initializer=self.moving_mean_initializer,
            trainable=False,
        )
        self.moving_variance = self.add_weight(
            name="moving_variance", shape=shape, initializer=self.moving_variance_initializer,
            trainable=False,
        )
        self.beta_offset = self.add_weight(
            name="beta_offset", shape=shape, initializer=self.beta_initializer,
            regularizer=self.regularizer,
        ) if self.center else None
        self.gamma_scale = self.add_weight(
            name="gamma_scale", shape=shape, initializer=self.gamma_initializer,
            regularizer=self.regularizer,
        ) if self.scale else None

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        is_training = self.mode == "train" if training is None else bool(training)
        x = ops.cast(inputs, "float32")
        moving_mean = ops.cast(self.moving_mean, "float32")
        moving_var = ops.maximum(ops.cast(self.moving_variance, "float32"), 0.0)
        if is_training:
            stats_x = ops.stop_gradient(x) if self.stop_grad_of_var_mean else x
            axes = tuple(range(len(x.shape) - 1))
            mean_b = ops.mean(stats_x, axis=axes)
            var_b = ops.mean(ops.square(stats_x - mean_b), axis=axes)
            if self.training_use_global_dist:
                gdm = self.global_dist_momentum
                mean = gdm * moving_mean + (1.0 - gdm) * mean_b
                var = gdm * moving_var + (1.0 - gdm) * var_b
            else:
                mean, var = mean_b, var_b
            m = self.momentum
            self.moving_mean.assign(m * moving_mean + (1.0 - m) * ops.stop_gradient(mean_b))
            self.moving_variance.assign(m * moving_var + (1.0 - m) * ops.stop_gradient(var_b))
        else:
            mean, var = moving_mean, moving_var
        y = (x - mean) * ops.rsqrt(var + self.epsilon)
        if self.gamma_scale is not None:
            y = y * ops.cast(self.gamma_scale, "float32")
        if self.beta_offset is not None:
            y = y + ops.cast(self.beta_offset, "float32")
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict:
        ser = keras.initializers.serialize
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "center": self.center,
                "scale": self.scale,
                "moving_mean_initializer": ser(self.moving_mean_initializer),
                "moving_variance_initializer": ser(self.moving_variance_initializer),
                "beta_initializer": ser(self.beta_initializer),
                "gamma_initializer": ser(self.gamma_initializer),
                "regularizer": keras.regularizers.serialize(self.regularizer),
                "training_use_global_dist": self.training_use_global_dist,
                "global_dist_momentum": self.global_dist_momentum,
                "stop_grad_of_var_mean": self.stop_grad_of_var_mean,
                "epsilon": self.epsilon,
                "mode": self.mode,
            }
        )
        return config
