"""Multi-task layers: Multi-gate Mixture-of-Experts (MMoE) and Sub-Network Routing (SNR)."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from reclayers.layers._build import (
    activation_config,
    config_of,
    fresh_initializer,
    mlp_options_config,
    set_mlp_options,
    sublayer,
)
from reclayers.layers.mlp import MLP
from reclayers.layers.utils import check_float, check_int, check_one_of, check_rank, invalid

__all__ = ["MMoE", "SNR", "hard_concrete_ste"]


# --------------------------------------------------------------------------------------------
# small helpers of this module
# --------------------------------------------------------------------------------------------


def _split_inputs(owner: str, inputs: Any) -> tuple[Any, Any]:
    """``x`` or ``(x,)`` → ``(x, x)``; ``(expert_input, gate_input)`` → itself."""
    if isinstance(inputs, (list, tuple)):
        if len(inputs) == 1:
            return inputs[0], inputs[0]
        if len(inputs) == 2:
            return inputs[0], inputs[1]
        raise invalid(owner, "inputs", "one tensor or a list of 1 or 2 tensors",
                      f"a list of {len(inputs)} tensors")
    return inputs, inputs


def _per_expert(owner: str, arg: str, what: str, value: Any, n_exp: int) -> list:
    """One value per expert: a list of ``n_exp`` as is, anything else repeated."""
    if not isinstance(value, (list, tuple)):
        return [value] * n_exp
    if len(value) != n_exp:
        raise invalid(owner, arg, f"one {what} or a list of {n_exp} (one per expert)", list(value))
    return list(value)


def _is_shape(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and all(d is None or isinstance(d, int) for d in x)


# --------------------------------------------------------------------------------------------
# MMoE
# --------------------------------------------------------------------------------------------

_GATE_TYPES = ("softmax", "topk", "noise_topk")


@keras.saving.register_keras_serializable(package="reclayers")
class MMoE(keras.layers.Layer):
    """Multi-gate Mixture-of-Experts: ``E`` expert MLPs shared by ``N`` tasks, one gate per task.

    With expert input ``x [B, F]`` and gate input ``g [B, G]`` (``g = x`` for a single input):

    .. code-block:: text

        Y[:, :, e] = expert_e(x)                                   # [B, D, E]
        L = g @ gate_weight                                        # [B, E·N], column t·E + e
        L = L + ε ⊙ softplus(g @ gate_noise),  ε ~ N(0, 1)         # noise_topk, training only
        P[b, t, :] = softmax_e(L[b, t, :])                         # [B, N, E]
        P = P ⊙ keep / Σ_e (P ⊙ keep)                              # topk / noise_topk
        out_t = Σ_e P[:, t, e] · Y[:, :, e]                        # N tensors [B, D]

    ``keep`` marks exactly ``top_k`` experts per example and task: the largest logits, ties going
    to the lower expert index. Renormalising the kept softmax equals a softmax over the kept
    logits (Shazeer's KeepTopK then softmax). For ``'topk'``/``'noise_topk'`` the load-balancing
    loss ``balance_loss_weight · Σ_t CV²(I[:, t])`` is added with ``add_loss``, where
    ``I[e, t] = Σ_b P[b, t, e]`` (importance) and ``CV² = Var_e / Mean_e²`` (population variance).

    Every expert is a :class:`~reclayers.layers.mlp.MLP` named ``expert_{e}``; its hidden layers
    use the expert's activation and its last layer none. ``None`` means **identity** (as in
    Keras, not the MLP's ReLU default); names resolve like every activation of the library
    (:func:`reclayers.layers.advanced_activations.get`, so ``'PReLU'`` and ``'sigmoid2'`` work).
    Each expert gets its own copy of its initializer with a distinct seed per expert and layer,
    so no two experts start identical, seeded or not.

    Weights: ``gate_weight (G, E·N)`` zeros; ``gate_noise (G, E·N)`` Glorot-normal
    (``noise_topk`` only); the experts' weights.

    Number of experts when ``num_experts`` is ``None``: the length of ``expert_output_dims`` if
    it is a list of lists, else of ``expert_activations`` if a list, else of
    ``expert_initializers`` if a list.

    Shapes: ``x [B, F]`` or ``(x [B, F], g [B, G])`` → list of ``num_tasks`` tensors ``[B, D]``.

    Args:
        num_tasks: number of tasks ``N`` (gates and outputs).
        expert_output_dims: one MLP shape for every expert (``list[int]``) or one per expert
            (``list[list[int]]``, last widths equal).
        expert_activations: one activation for all experts or a list with one per expert.
        expert_initializers: one kernel initializer for all experts or one per expert.
            Default ``'glorot_uniform'``.
        gate_type: ``'softmax'``, ``'topk'`` or ``'noise_topk'``. Default ``'softmax'``.
        top_k: experts kept per example and task, default 1 (ignored for ``'softmax'``).
            ``topk`` is accepted as an alias (the reference doc's spelling); ``get_config``
            writes ``top_k``.
        num_experts: number of experts ``E``. Default ``None``: inferred from
            ``expert_output_dims``.
        kernel_regularizer, use_weight_norm, use_learnable_weight_norm, use_bias,
        bias_regularizer, enable_batch_normalization, batch_normalization_momentum,
        batch_normalization_renorm, batch_normalization_renorm_clipping,
        batch_normalization_renorm_momentum: passed unchanged to every expert MLP (defaults as
            in :class:`~reclayers.layers.mlp.MLP`).
        balance_loss_weight: coefficient of the load-balancing loss (extension; default 1 as in
            the original).
        seed: seed of the gate noise generator (extension). Default ``None``.

    Example:
        >>> import numpy as np
        >>> mmoe = MMoE(num_tasks=2, expert_output_dims=[8, 4], expert_activations="relu",
        ...             num_experts=3, gate_type="topk", top_k=2)
        >>> [tuple(o.shape) for o in mmoe(np.ones((5, 6), "float32"))]
        [(5, 4), (5, 4)]

    Papers: Ma et al., "Modeling Task Relationships in Multi-task Learning with Multi-gate
    Mixture-of-Experts", KDD 2018; Shazeer et al., "Outrageously Large Neural Networks: The
    Sparsely-Gated Mixture-of-Experts Layer", ICLR 2017.

    Deliberate deviations from the original:

    * top-k keeps exactly ``k`` experts (ties by lower index); the original kept every expert
      ``>=`` the k-th gate, i.e. all experts while the zero-initialised gate weights tie. So with
      zero gate weights and ``'topk'`` every example starts on experts ``0 … k-1``; the others
      receive gradient once the gate weights separate.
    * gate noise is added only when ``training`` is true (the original also added it at
      inference, making predictions random).
    * the balance loss is one scalar, the sum over tasks (the original added a length-``N``
      vector).
    * expert activations survive serialisation (the original lost them).
    """

    def __init__(
        self,
        num_tasks: int,
        expert_output_dims: list,
        expert_activations: Any,
        expert_initializers: Any = "glorot_uniform",
        gate_type: str = "softmax",
        top_k: int | None = None,
        num_experts: int | None = None,
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
        balance_loss_weight: float = 1.0,
        seed: int | None = None,
        topk: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.num_tasks = check_int(owner, "num_tasks", num_tasks, minimum=1)
        self.gate_type = check_one_of(owner, "gate_type", gate_type, _GATE_TYPES)
        if top_k is not None and topk is not None and top_k != topk:
            raise invalid(owner, "top_k", f"equal to topk={topk!r} when both are given", top_k)
        k = top_k if top_k is not None else (topk if topk is not None else 1)
        self.top_k = check_int(owner, "top_k", k, minimum=1)
        self.balance_loss_weight = check_float(owner, "balance_loss_weight", balance_loss_weight,
                                               low=0.0)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

        # ---- expert shapes and count ------------------------------------------------------
        if not isinstance(expert_output_dims, (list, tuple)) or not expert_output_dims:
            raise invalid(owner, "expert_output_dims",
                          "a non-empty list of integers or a list of lists of integers",
                          expert_output_dims)
        is_list = [isinstance(d, (list, tuple)) for d in expert_output_dims]
        if any(is_list) and not all(is_list):
            raise invalid(owner, "expert_output_dims",
                          "either a list of integers or a list of lists, not a mix",
                          expert_output_dims)
        per_expert = all(is_list)
        if num_experts is None:
            if per_expert:
                num_experts = len(expert_output_dims)
            elif isinstance(expert_activations, (list, tuple)):
                num_experts = len(expert_activations)
            elif isinstance(expert_initializers, (list, tuple)):
                num_experts = len(expert_initializers)
            else:
                raise invalid(owner, "num_experts",
                              "set (or given by a list of expert_output_dims, expert_activations "
                              "or expert_initializers)", None)
        self.num_experts = check_int(owner, "num_experts", num_experts, minimum=1)
        n_exp = self.num_experts

        def dims_ok(d: Any) -> bool:
            return bool(d) and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in d
            )

        if per_expert:
            if len(expert_output_dims) != n_exp:
                raise invalid(owner, "expert_output_dims",
                              f"a list of {n_exp} lists (one per expert)", expert_output_dims)
            dims = [list(d) for d in expert_output_dims]
            for e, d in enumerate(dims):
                if not dims_ok(d):
                    raise invalid(owner, f"expert_output_dims[{e}]",
                                  "a non-empty list of integers >= 1", d)
            for e, d in enumerate(dims):
                if d[-1] != dims[0][-1]:
                    raise invalid(owner, f"expert_output_dims[{e}]",
                                  f"a list whose last width equals expert 0's ({dims[0][-1]})", d)
        else:
            if not dims_ok(expert_output_dims):
                raise invalid(owner, "expert_output_dims", "a non-empty list of integers >= 1",
                              expert_output_dims)
            dims = [list(expert_output_dims) for _ in range(n_exp)]
        self.expert_output_dims = (
            [list(d) for d in dims] if per_expert else list(expert_output_dims)
        )
        self._dims = dims
        self.output_dim = dims[0][-1]

        acts = _per_expert(owner, "expert_activations", "activation", expert_activations, n_exp)
        inits = _per_expert(owner, "expert_initializers", "initializer", expert_initializers, n_exp)
        self.expert_activations = expert_activations
        self.expert_initializers = expert_initializers
        if self.gate_type != "softmax" and self.top_k > n_exp:
            raise invalid(owner, "top_k", f"an integer in [1, num_experts={n_exp}]", self.top_k)

        set_mlp_options(self, locals())

        self.experts = [
            sublayer(
                self,
                MLP,
                output_dims=dims[e],
                activations=acts[e] if acts[e] is not None else "linear",
                initializers=fresh_initializer(inits[e], e),
                **self._options,
                name=f"expert_{e}",
            )
            for e in range(n_exp)
        ]

    # ---------------------------------------------------------------------------------------

    def _split_shapes(self, input_shape: Any) -> tuple[tuple, tuple]:
        owner = type(self).__name__
        if _is_shape(input_shape):
            return tuple(input_shape), tuple(input_shape)
        shapes = list(input_shape)
        if len(shapes) == 1:
            return tuple(shapes[0]), tuple(shapes[0])
        if len(shapes) != 2:
            raise invalid(owner, "inputs", "one tensor or a list of 1 or 2 tensors",
                          f"a list of {len(shapes)} tensors")
        return tuple(shapes[0]), tuple(shapes[1])

    def build(self, input_shape: Any) -> None:
        owner = type(self).__name__
        expert_shape, gate_shape = self._split_shapes(input_shape)
        check_rank(owner, "expert_input", expert_shape, (2,), known_last=True)
        check_rank(owner, "gate_input", gate_shape, (2,), known_last=True)
        b1, b2 = expert_shape[0], gate_shape[0]
        if b1 is not None and b2 is not None and b1 != b2:
            raise invalid(owner, "gate_input", f"a tensor with batch size {b1}", f"shape {gate_shape}")
        for expert in self.experts:
            expert.build(expert_shape)
        width = self.num_experts * self.num_tasks
        self.gate_weight = self.add_weight(
            name="gate_weight", shape=(int(gate_shape[-1]), width), initializer="zeros"
        )
        if self.gate_type == "noise_topk":
            self.gate_noise = self.add_weight(
                name="gate_noise", shape=(int(gate_shape[-1]), width), initializer="glorot_normal"
            )
        else:
            self.gate_noise = None

    def _keep_mask(self, logits: Any) -> Any:
        """1 for exactly ``top_k`` experts per row (largest logits, ties → lower index), else 0."""
        n_exp = self.num_experts
        a = ops.expand_dims(logits, -1)  # [B, N, E, 1]: candidate e
        b = ops.expand_dims(logits, -2)  # [B, N, 1, E]: competitor e'
        idx = ops.arange(n_exp)
        lower = ops.expand_dims(idx, 1) > ops.expand_dims(idx, 0)  # [e, e'] : e' < e
        beats = ops.logical_or(ops.greater(b, a), ops.logical_and(ops.equal(b, a), lower))
        rank = ops.sum(ops.cast(beats, "int32"), axis=-1)  # experts ranked before e
        return ops.cast(ops.less(rank, self.top_k), logits.dtype)

    def gates(self, gate_input: Any, training: bool | None = None) -> Any:
        """The gate probabilities ``P [B, N, E]`` (rows sum to 1)."""
        g = ops.cast(gate_input, self.compute_dtype)
        logits = ops.matmul(g, ops.cast(self.gate_weight, self.compute_dtype))
        if self.gate_noise is not None and training:
            scale = ops.softplus(ops.matmul(g, ops.cast(self.gate_noise, self.compute_dtype)))
            eps = keras.random.normal(ops.shape(logits), dtype=self.compute_dtype,
                                      seed=self.seed_generator)
            logits = logits + eps * scale
        logits = ops.reshape(logits, (-1, self.num_tasks, self.num_experts))
        if self.gate_type == "softmax":
            return ops.softmax(logits, axis=-1)
        keep = self._keep_mask(logits)
        e = ops.exp(logits - ops.max(logits, axis=-1, keepdims=True)) * keep
        return e / ops.sum(e, axis=-1, keepdims=True)

    def call(self, inputs: Any, training: bool | None = None) -> list[Any]:
        expert_input, gate_input = _split_inputs(type(self).__name__, inputs)
        outputs = [
            ops.cast(expert(expert_input, training=training), self.compute_dtype)
            for expert in self.experts
        ]
        y = ops.stack(outputs, axis=-1)  # [B, D, E]
        p = self.gates(gate_input, training=training)  # [B, N, E]
        o = ops.einsum("bde,bte->btd", y, p)
        if self.gate_type != "softmax":
            importance = ops.sum(ops.cast(p, "float32"), axis=0)  # [N, E]
            mean = ops.mean(importance, axis=-1)
            var = ops.mean(ops.square(importance - mean[:, None]), axis=-1)
            cv2 = var / ops.maximum(ops.square(mean), 1e-12)
            self.add_loss(self.balance_loss_weight * ops.sum(cv2))
        return [o[:, t, :] for t in range(self.num_tasks)]

    def compute_output_shape(self, input_shape: Any) -> list[tuple]:
        expert_shape, _ = self._split_shapes(input_shape)
        return [(expert_shape[0], self.output_dim) for _ in range(self.num_tasks)]

    def get_config(self) -> dict:
        config = super().get_config()
        acts = self.expert_activations
        inits = self.expert_initializers
        config.update(
            {
                "num_tasks": self.num_tasks,
                "expert_output_dims": self.expert_output_dims,
                "expert_activations": [activation_config(a) for a in acts]
                if isinstance(acts, (list, tuple))
                else activation_config(acts),
                "expert_initializers": [
                    None if i is None else keras.initializers.serialize(keras.initializers.get(i))
                    for i in inits
                ]
                if isinstance(inits, (list, tuple))
                else (None if inits is None
                      else keras.initializers.serialize(keras.initializers.get(inits))),
                "gate_type": self.gate_type,
                "top_k": self.top_k,
                "num_experts": self.num_experts,
                **mlp_options_config(self._options),
                "balance_loss_weight": self.balance_loss_weight,
                "seed": self.seed,
            }
        )
        return config

# --------------------------------------------------------------------------------------------
# SNR
# --------------------------------------------------------------------------------------------


def hard_concrete_ste(x: Any) -> Any:
    """``clip(x, 0, 1)`` forward, identity gradient backward (straight-through estimator).

    Written ``x + stop_gradient(clip(x, 0, 1) - x)``: the incoming gradient passes unchanged
    everywhere, also where the value is clipped.

    Shapes: any shape → the same shape.

    Args:
        x: a float tensor (SNR's stretched hard-concrete gate values).

    Example:
        >>> import numpy as np
        >>> [float(v) for v in hard_concrete_ste(np.array([-0.5, 0.3, 1.7], "float32"))]
        [0.0, 0.30000001192092896, 1.0]
    """
    if not isinstance(x, keras.KerasTensor):
        x = ops.convert_to_tensor(x)
    return x + ops.stop_gradient(ops.clip(x, 0.0, 1.0) - x)


_SNR_TYPES = ("trans", "aver")
_MODES = ("train", "eval", "infer", "predict")


@keras.saving.register_keras_serializable(package="reclayers")
class SNR(keras.layers.Layer):
    """Sub-Network Routing: ``M`` input sub-networks feed ``K`` outputs through hard-concrete gates.

    Routes ``r = i·K + j`` (input ``i``, output ``j``), ``R = M·K``; one gate ``z_r`` per route,
    shared over the batch:

    .. code-block:: text

        training:   u ~ U(1e-6, 1 - 1e-6)   s = σ((log u - log(1 - u) + log_alpha) / β)
        inference:                           s = σ(log_alpha)
        z = clip(s (ζ - γ) + γ, 0, 1)        # hard_concrete_ste(...) when use_ste
        out_j = Σ_i z_ij · (x_i @ W_ij)      # 'trans'
        out_j = Σ_i z_ij · x_i               # 'aver' (W_ij = I): a gated sum, not a mean

    Auxiliary loss (expected L0 norm, Louizos et al.), added with ``add_loss`` on every call:
    ``l0_weight · Σ_r σ(log_alpha_r - β log(-γ / ζ))`` (``R · 0.7683375`` at initialisation).

    Weights: ``log_alpha (R, 1)`` zeros; ``'trans'``: ``weight (R, d_in·d_out)`` whose row ``r``
    reshaped row-major to ``(d_in, d_out)`` is ``W_ij``. It is created with this 2-D shape, so
    Glorot uses fans ``R`` and ``d_in·d_out`` (much smaller values than a per-block Glorot), as in
    the original.

    Sampling follows ``training``: stochastic iff ``training`` is true. When ``training`` is
    ``None`` (a direct call outside ``fit``/``predict``), ``mode`` decides: stochastic for
    ``'train'`` and ``'eval'``, deterministic for ``'infer'`` (``'predict'`` is an alias).

    Shapes: a list of ``M >= 1`` tensors ``[B, d_in]`` → a list of ``K`` tensors ``[B, d_out]``.

    Args:
        num_out_subnet: number of outputs ``K``.
        out_subnet_dim: width ``d_out`` of each output.
        snr_type: ``'trans'`` (learned ``W_ij``) or ``'aver'`` (``W_ij = I``, needs
            ``d_in == d_out``). Default ``'trans'``.
        zeta: upper stretch limit ``ζ > 1``. Default 1.1.
        gamma: lower stretch limit ``γ < 0``. Default -0.1.
        beta: concrete temperature ``β > 0``. Default 0.5.
        use_ste: straight-through gradient for the clip (:func:`hard_concrete_ste`).
            Default ``False``.
        mode: ``'train'``, ``'eval'``, ``'infer'`` or ``'predict'``; fallback for ``training``.
            Default ``'train'``.
        initializer: initializer of ``weight`` (``'trans'``). Default ``'glorot_uniform'``.
        regularizer: regularizer of ``weight`` (``'trans'``). Default ``None``.
        l0_weight: coefficient of the L0 loss (extension; the paper's λ, default 1).
        seed: seed of the gate sampler (extension). Default ``None``.

    Example:
        >>> import numpy as np
        >>> snr = SNR(num_out_subnet=3, out_subnet_dim=4, snr_type="aver", mode="infer")
        >>> outs = snr([np.ones((2, 4), "float32")] * 4)
        >>> [float(o[0, 0]) for o in outs]
        [2.0, 2.0, 2.0]

    Papers: Ma et al., "SNR: Sub-Network Routing for Flexible Parameter Sharing in Multi-Task
    Learning", AAAI 2019; Louizos, Welling & Kingma, "Learning Sparse Neural Networks through L0
    Regularization", ICLR 2018.

    Deliberate deviations from the original: sampling follows ``training`` (the original sampled
    whenever ``mode != 'infer'``, so evaluation was random); the L0 loss is computed in ``call``
    (the original computed it once in ``build``); ``u`` is clamped away from 0 and 1.
    """

    def __init__(
        self,
        num_out_subnet: int,
        out_subnet_dim: int,
        snr_type: str = "trans",
        zeta: float = 1.1,
        gamma: float = -0.1,
        beta: float = 0.5,
        use_ste: bool = False,
        mode: str = "train",
        initializer: Any = "glorot_uniform",
        regularizer: Any = None,
        l0_weight: float = 1.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.num_out_subnet = check_int(owner, "num_out_subnet", num_out_subnet, minimum=1)
        self.out_subnet_dim = check_int(owner, "out_subnet_dim", out_subnet_dim, minimum=1)
        self.snr_type = check_one_of(owner, "snr_type", snr_type, _SNR_TYPES)
        self.zeta = check_float(owner, "zeta", zeta, low=1.0, low_inclusive=False)
        self.gamma = check_float(owner, "gamma", gamma, high=0.0, high_inclusive=False)
        self.beta = check_float(owner, "beta", beta, low=0.0, low_inclusive=False)
        self.use_ste = bool(use_ste)
        self.mode = check_one_of(owner, "mode", mode, _MODES)
        self.initializer = keras.initializers.get(initializer or "glorot_uniform")
        self.regularizer = keras.regularizers.get(regularizer)
        self.l0_weight = check_float(owner, "l0_weight", l0_weight, low=0.0)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape: Any) -> None:
        owner = type(self).__name__
        if _is_shape(input_shape) or not isinstance(input_shape, (list, tuple)) or not input_shape:
            raise invalid(owner, "inputs", "a non-empty list of tensors [B, d_in]",
                          f"a single tensor of shape {tuple(input_shape)}")
        shapes = [tuple(s) for s in input_shape]
        for i, shape in enumerate(shapes):
            check_rank(owner, f"inputs[{i}]", shape, (2,), known_last=True)
        d_in = int(shapes[0][-1])
        for i, shape in enumerate(shapes):
            if shape[-1] != d_in:
                raise invalid(owner, f"inputs[{i}]", f"a tensor of width {d_in} (as inputs[0])",
                              f"shape {shape}")
        if self.snr_type == "aver" and d_in != self.out_subnet_dim:
            raise invalid(owner, "out_subnet_dim",
                          f"equal to the input width {d_in} for snr_type='aver'",
                          self.out_subnet_dim)
        self.num_in_subnet = len(shapes)
        self.in_subnet_dim = d_in
        routes = self.num_in_subnet * self.num_out_subnet
        self.log_alpha = self.add_weight(name="log_alpha", shape=(routes, 1), initializer="zeros")
        if self.snr_type == "trans":
            self.weight = self.add_weight(
                name="weight",
                shape=(routes, d_in * self.out_subnet_dim),
                initializer=self.initializer,
                regularizer=self.regularizer,
            )
        else:
            self.weight = None

    def _stochastic(self, training: bool | None) -> bool:
        if training is None:
            return self.mode in ("train", "eval")
        return bool(training)

    def gate_values(self, training: bool | None = None) -> Any:
        """The route gates ``z`` of shape ``(R, 1)`` (variable dtype), sampled when stochastic."""
        log_alpha = ops.convert_to_tensor(self.log_alpha)
        if self._stochastic(training):
            u = keras.random.uniform(ops.shape(log_alpha), minval=1e-6, maxval=1.0 - 1e-6,
                                     dtype=log_alpha.dtype, seed=self.seed_generator)
            s = ops.sigmoid((ops.log(u) - ops.log(1.0 - u) + log_alpha) / self.beta)
        else:
            s = ops.sigmoid(log_alpha)
        stretched = s * (self.zeta - self.gamma) + self.gamma
        return hard_concrete_ste(stretched) if self.use_ste else ops.clip(stretched, 0.0, 1.0)

    def l0_loss(self) -> Any:
        """Expected number of open gates: ``Σ_r σ(log_alpha_r - β log(-γ/ζ))``."""
        shift = self.beta * math.log(-self.gamma / self.zeta)
        return ops.sum(ops.sigmoid(ops.convert_to_tensor(self.log_alpha) - shift))

    def call(self, inputs: Any, training: bool | None = None) -> list[Any]:
        m, k = self.num_in_subnet, self.num_out_subnet
        x = ops.stack([ops.cast(t, self.compute_dtype) for t in inputs], axis=1)  # [B, M, d_in]
        z = ops.cast(ops.reshape(self.gate_values(training), (m, k)), self.compute_dtype)
        if self.snr_type == "trans":
            w = ops.reshape(ops.cast(self.weight, self.compute_dtype),
                            (m, k, self.in_subnet_dim, self.out_subnet_dim))
            w = w * z[:, :, None, None]
            out = ops.einsum("bmi,mkio->bko", x, w)
        else:
            out = ops.einsum("bmi,mk->bki", x, z)
        self.add_loss(self.l0_weight * self.l0_loss())
        return [out[:, j, :] for j in range(k)]

    def compute_output_shape(self, input_shape: Any) -> list[tuple]:
        batch = tuple(input_shape[0])[0]
        return [(batch, self.out_subnet_dim) for _ in range(self.num_out_subnet)]

    def get_config(self) -> dict:
        return {**super().get_config(), **config_of(
            self,
            "num_out_subnet", "out_subnet_dim", "snr_type", "zeta", "gamma", "beta", "use_ste", "mode",
            "initializer", "regularizer", "l0_weight", "seed",
        )}
