"""The PyTorch backend's training epoch: the step of Keras's ``fit`` without the parts the trainer
does not use.

On PyTorch, ``model.fit`` runs eagerly, so every piece of its step costs host time on every batch:
the per-label training AUC (a 200-threshold confusion matrix per batch, of which the trainer keeps
nothing: it validates with :func:`reclayers.training.score`), the loss tracker's variable updates,
the ``DataLoader`` that wraps the batches and the callback machinery. :func:`train_epoch` runs the
same step — ``model(x, training=True)``, ``model._compute_loss`` (the compiled losses and the
regularisation losses), ``loss.backward()``, ``model.optimizer.apply`` (the compiled Keras
optimizer, its variables, schedule and clipping) — and keeps the epoch's loss as a running mean
weighted by the batch rows, which is what Keras's loss tracker reports. Weights, optimizer state
and losses are the ones ``fit`` produces; checkpoints hold the same variables.

The random stream differs from ``fit``'s in one place: ``fit`` builds a ``DataLoader`` at each
epoch start, which draws a seed from torch's global generator; this loop builds none, so unseeded
dropout draws other masks than under ``fit`` (a resumed run still repeats an uninterrupted one:
both run this loop).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from reclayers.layers._build import is_plain_layer

__all__ = ["train_epoch", "uses_torch_loop"]


def uses_torch_loop(model: Any) -> bool:
    """Whether :func:`train_epoch` trains ``model`` (else the trainer calls ``model.fit``).

    It does on PyTorch for a compiled model whose training step is Keras's own: not with
    ``jit_compile=True`` (``fit`` then runs its ``torch.compile``-d step), not for a
    :class:`reclayers.models.ZooModel` training its tables row-wise (its own ``train_step``), not
    for a model that overrides ``train_step``.

    Args:
        model: a compiled Keras model.
    """
    if keras.backend.backend() != "torch" or getattr(model, "optimizer", None) is None:
        return False
    if getattr(model, "sparse_training", False) or model.jit_compile is True:
        return False
    from keras.src.backend.torch.trainer import TorchTrainer

    own = type(model).train_step
    base = TorchTrainer.train_step
    zoo = _zoo_train_step()
    return own is base or own is zoo


def _zoo_train_step() -> Any:
    from reclayers.models.sparse import ZooModel

    return ZooModel.train_step  # Keras's step whenever ``sparse_training`` is false


def train_epoch(model: Any, batches: Any, callback: Any, verbose: bool = False, lean: bool = True) -> None:
    """Trains ``model`` one pass over ``batches`` (a ``keras.utils.PyDataset`` of ``(x, y)``).

    ``callback`` gets ``on_train_batch_begin(i)`` before and ``on_train_batch_end(i, logs)`` after
    every step, ``logs["loss"]`` being the running mean of the batch losses weighted by their rows
    since the start of this pass (a scalar tensor, read only when the callback reads it).

    Args:
        model: a compiled Keras model on the PyTorch backend (see :func:`uses_torch_loop`).
        batches: the pass's batches, indexed ``0 .. len - 1``.
        callback: a ``keras.callbacks.Callback`` (the trainer's checkpointing loop).
        verbose: show a progress bar with the running loss.
        lean: run the functional graph's plain layers through their ``call`` (see
            :func:`lean_forward`); ``False``: ``model(x, training=True)``.
    """
    import torch
    from keras.src.backend.torch.core import get_device

    device = torch.device(get_device())
    variables = model.trainable_variables
    sources = LossSources(model)
    optimizer = model.optimizer
    bar = keras.utils.Progbar(len(batches), stateful_metrics=["loss"]) if verbose else None
    total = torch.zeros((), dtype=torch.float32)
    rows = torch.zeros((), dtype=torch.float32)
    model.train()  # ``fit`` does the same for torch modules that read ``self.training``
    try:
        for i in range(len(batches)):
            callback.on_train_batch_begin(i)
            x, y = batches[i][:2]
            x, y = _tensors(x, device), _tensors(y, device)
            y_pred = lean_forward(model, x, sources) if lean else model(x, training=True)
            for v in variables:  # model.zero_grad(): only these variables take gradients
                v._value.grad = None
            loss = compute_loss(model, x, y, y_pred, sources) if lean else \
                model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=None, training=True)
            n = _rows(x)
            with torch.no_grad():
                total = total + loss.detach().float() * n
                rows = rows + n
            optimizer.scale_loss(loss).backward()
            with torch.no_grad():  # the torch tensors' own gradients (``v.value`` outside autocast)
                optimizer.apply([v._value.grad for v in variables], variables)
            logs = {"loss": total / rows}
            callback.on_train_batch_end(i, logs)
            if bar is not None:
                bar.update(i + 1, [("loss", float(logs["loss"]))], finalize=i + 1 == len(batches))
    finally:
        model.eval()


def _rows(x: Any) -> int:
    """The batch size: the leading dimension of the first input that is not ``None``."""
    values = x.values() if isinstance(x, dict) else keras.tree.flatten(x)
    return next(t for t in values if t is not None).shape[0]


def _tensors(structure: Any, device: Any) -> Any:
    if isinstance(structure, dict):
        return {k: _tensor(v, device) for k, v in structure.items()}
    return keras.tree.map_structure(lambda v: _tensor(v, device), structure)


def _tensor(value: Any, device: Any = None) -> Any:
    """``keras.ops.convert_to_tensor(value)``; a NumPy array goes straight to ``torch.as_tensor``
    with its own dtype and the backend's device — what Keras does for it, without the per-call
    dtype look-ups (Keras converts only ``uint32`` and ``bfloat16`` arrays differently)."""
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.dtype != np.uint32 \
            and value.dtype.name != "bfloat16" and device is not None:
        import torch

        return torch.as_tensor(value, device=device)
    return keras.ops.convert_to_tensor(value)


class LossSources:
    """Where ``model.losses`` come from, collected once: the model's layers and its regularised
    trainable variables.

    :meth:`clear` is ``model._clear_losses()`` and :meth:`losses` is ``model.losses`` (the same
    tensors in the same order), without the two walks of the layer tree that Keras makes for them
    on every step (a third of a millisecond of host time per PyTorch step for a zoo model of 30
    layers). Valid while the model keeps its layers, variables and trainable flags:
    :func:`train_epoch` collects them again for every pass. Inside a stateless scope, or for a model
    whose losses are overridden, both defer to Keras.

    Args:
        model: a built Keras model.
    """

    def __init__(self, model: Any):
        self.model = model
        self.layers = model._flatten_layers(include_self=True)
        self.regularized = [v for v in model.trainable_weights if v.regularizer is not None]

    def clear(self) -> None:
        from keras.src.backend import in_stateless_scope

        if in_stateless_scope():
            self.model._clear_losses()
            return
        for layer in self.layers:
            layer._losses.clear()
            layer._loss_ids.clear()

    def losses(self) -> list:
        from keras.src.backend import in_stateless_scope

        if in_stateless_scope() or self.model._losses_override:
            return self.model.losses
        out = [loss for layer in self.layers for loss in layer._losses]
        out.extend(v.regularizer(v) for v in self.regularized)
        return out


def lean_forward(model: Any, x: Any, sources: LossSources | None = None) -> Any:
    """``model(x, training=True)`` for a functional model, without Keras's per-call work where it
    adds nothing.

    On PyTorch every ``Layer.__call__`` flattens its arguments, checks them against the input
    spec, opens a name scope and looks for masks and symbolic tensors (about a quarter of a
    millisecond per layer), and the model's own call also standardises the input structure; the
    zoo's models call 20 to 40 layers per forward pass, most of them plain (embedding lookups,
    stacking, dense heads). Here the graph's nodes run in Keras's order from a plan built once
    per model (:class:`_Plan`): the plain layers (see
    :func:`reclayers.layers._build.is_plain_layer`) through ``layer.call``, every other layer
    through ``layer(..., training=True)`` inside the call context that ``model.__call__`` would
    open (so that nested layers read the same training flag). That applies when ``x`` is the
    model's input dict of tensors of the input dtypes and ranks on the backend's device and no
    other layer call, autocast scope, distribution or module hook is active; otherwise the
    model's own ``__call__`` runs, still with ``layer.call`` for its plain layers (a plain layer
    receiving a masked tensor goes through ``__call__`` in both cases). Outputs, random draws,
    added losses and gradients are the same.

    Args:
        model: a built Keras model (not functional: ``model(x, training=True)``).
        x: its inputs.
        sources: ``LossSources(model)`` to clear the added losses with (default:
            ``model._clear_losses()``).
    """
    if not isinstance(model, keras.Model) or not hasattr(model, "_nodes_by_depth"):
        return model(x, training=True)
    plan = model.__dict__.get("_reclayers_plan")
    if plan is None:
        plan = _Plan(model)
        object.__setattr__(model, "_reclayers_plan", plan)  # not tracked by Keras
    flat = plan.inputs(x)
    if flat is None:
        return _graph_forward(model, x, plan)
    return plan.run(flat, sources)


def _graph_forward(model: Any, x: Any, plan: _Plan) -> Any:
    """``model(x, training=True)`` with ``layer.call`` for the plain layers of its graph."""
    graph = type(model)._run_through_graph

    def run(inputs, operation_fn=lambda op: op, call_fn=None):
        def wrap(op):
            if not plan.plain(op):
                return operation_fn(op)
            training = {"training": True} if op._call_has_training_arg else {}

            def call(*args, **kwargs):
                if _masked(args):
                    return operation_fn(op)(*args, **kwargs)
                return op.call(*args, **{**kwargs, **training})

            return call

        return graph(model, inputs, operation_fn=wrap, call_fn=call_fn)

    object.__setattr__(model, "_run_through_graph", run)  # this call only (not tracked by Keras)
    try:
        return model(x, training=True)
    finally:
        object.__delattr__(model, "_run_through_graph")


def _masked(args: Any) -> bool:
    for a in args:
        if isinstance(a, (list, tuple)):
            if any(getattr(b, "_keras_mask", None) is not None for b in a):
                return True
        elif getattr(a, "_keras_mask", None) is not None:
            return True
    return False


class _Plan:
    """A functional model's graph as the list of steps that ``Functional._run_through_graph``
    takes for it (nodes by decreasing depth, skipping input nodes), built once.

    Each step keeps its layer, whether it is plain, and where its arguments come from: the ids of
    the symbolic tensors that feed it when they are passed positionally (one tensor, several, or
    one list of them, as ``Concatenate`` takes) with constant keyword arguments, or else the
    node's own ``arguments.fill_in`` (any other structure)."""

    def __init__(self, model: Any):
        from keras.src.backend import KerasTensor

        self.model = model
        self._plain: dict = {}
        struct = model._inputs_struct
        self.keys = sorted(struct) if isinstance(struct, dict) and \
            all(isinstance(k, str) for k in struct) else None
        from keras.src.backend.torch.core import to_torch_dtype

        self.specs = [(to_torch_dtype(i.dtype), len(i.shape)) for i in model.inputs]
        self.input_ids = [id(i) for i in model.inputs]
        self.output_ids = [id(o) for o in model.outputs]
        self.outputs_struct = model._outputs_struct
        ready = set(self.input_ids)
        self.steps = []
        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                if not node.operation or node.is_input:
                    continue
                if any(id(t) not in ready for t in node.input_tensors):
                    continue  # as Keras: not computable from the model's inputs
                op = model._get_operation_for_node(node)
                args, kwargs = node.arguments.args, node.arguments.kwargs
                feed = None
                if not any(isinstance(v, KerasTensor) for v in keras.tree.flatten(kwargs)):
                    if all(isinstance(a, KerasTensor) for a in args):
                        feed = ("args", [id(a) for a in args], dict(kwargs))
                    elif len(args) == 1 and isinstance(args[0], (list, tuple)) and \
                            all(isinstance(a, KerasTensor) for a in args[0]):
                        feed = ("list", [id(a) for a in args[0]], dict(kwargs))
                context = "training" in getattr(op, "_call_context_args", ())
                self.steps.append((op, node, feed, [id(t) for t in node.outputs], context))
                ready.update(id(t) for t in node.outputs)
        missing = [i for i in self.output_ids if i not in ready]
        self.usable = self.keys is not None and not missing

    def plain(self, op: Any) -> bool:
        ok = self._plain.get(id(op))
        if ok is None:
            ok = self._plain[id(op)] = is_plain_layer(op)
        return ok and getattr(op, "quantization_mode", None) is None  # quantized after the plan

    def inputs(self, x: Any) -> list | None:
        """The model's flat inputs from ``x`` where the planned path applies (see
        :func:`lean_forward`), else ``None``."""
        import torch
        from keras.src.backend import get_autocast_scope
        from keras.src.backend.common import global_state
        from keras.src.backend.torch.core import get_device
        from keras.src.distribution import distribution_lib

        model = self.model
        if not self.usable or not isinstance(x, dict) or len(x) != len(self.keys):
            return None
        if global_state.get_global_attribute("current_call_ctx") is not None or \
                get_autocast_scope() is not None or distribution_lib.distribution() is not None:
            return None
        if model._forward_hooks or model._forward_pre_hooks or _module_hooks() or not model.built or \
                model._remat_mode or getattr(model, "quantization_mode", None) is not None or \
                model.activity_regularizer is not None or model.dtype_policy.name != "float32":
            return None
        device = torch.device(get_device())
        flat = []
        for key, (dtype, rank) in zip(self.keys, self.specs):
            v = x.get(key)
            if not isinstance(v, torch.Tensor) or v.dtype != dtype or v.ndim != rank or \
                    v.device != device or getattr(v, "_keras_mask", None) is not None:
                return None
            flat.append(v)
        return flat

    def run(self, flat: list, sources: LossSources | None = None) -> Any:
        from keras.src.backend.common import global_state
        from keras.src.layers.layer import CallContext

        model = self.model
        context = CallContext(entry_layer=model)  # what model.__call__ opens for its layers
        context.training = True
        global_state.set_global_attribute("current_call_ctx", context)
        model._clear_losses() if sources is None else sources.clear()
        try:
            values = dict(zip(self.input_ids, flat))
            for op, node, feed, out_ids, has_context in self.steps:
                if feed is None:
                    args, kwargs = node.arguments.fill_in(values)
                elif feed[0] == "args":
                    args, kwargs = [values[i] for i in feed[1]], feed[2]
                else:
                    args, kwargs = ([values[i] for i in feed[1]],), feed[2]
                if self.plain(op) and not _masked(args):
                    if op._call_has_training_arg:
                        kwargs = {**kwargs, "training": True}
                    outputs = op.call(*args, **kwargs)
                elif has_context:
                    outputs = op(*args, **{**kwargs, "training": True})
                else:
                    outputs = op(*args, **kwargs)
                if len(out_ids) == 1 and not isinstance(outputs, (list, tuple, dict)):
                    values[out_ids[0]] = outputs
                else:
                    for i, y in zip(out_ids, keras.tree.flatten(outputs)):
                        values[i] = y
        finally:
            if global_state.get_global_attribute("current_call_ctx") is context:
                global_state.set_global_attribute("current_call_ctx", None)
        out = keras.tree.pack_sequence_as(self.outputs_struct, [values[i] for i in self.output_ids])
        return out[0] if isinstance(out, (list, tuple)) and len(out) == 1 else out  # as Functional.call


def _module_hooks() -> bool:
    from torch.nn.modules import module

    return bool(module._global_forward_hooks or module._global_forward_pre_hooks)



def compute_loss(model: Any, x: Any, y: Any, y_pred: Any, sources: LossSources | None = None) -> Any:
    """``model._compute_loss(x, y, y_pred)`` (no sample weights), computed directly where the
    compiled loss is the zoo's: a binary cross-entropy on probabilities per output
    (``compile_model``'s ``"binary_crossentropy"``: no label smoothing, mean over the last axis,
    sum over the batch divided by its size), with ``y`` and ``y_pred`` dicts of float32 tensors
    whose predictions are ``(B, 1)`` and labels ``(B,)`` or ``(B, 1)``.

    The same PyTorch operations in the same order as Keras's path (clip to
    ``[ε, 1 − ε]``, ``binary_cross_entropy`` without reduction, mean over the last axis, sum,
    division by the row count, the loss weights, the per-output loss trackers, then the added and
    regularisation losses), so the loss and its gradients are bit-equal; what goes is the
    structure matching and argument conversion of ``CompileLoss`` and ``Loss.__call__`` on every
    step. Anything else (other losses or reductions, masks, a model that overrides
    ``compute_loss``, a loss not built yet) takes ``model._compute_loss``.

    Args:
        model: a compiled Keras model on the PyTorch backend.
        x: its inputs (unused, as in Keras's ``compute_loss``).
        y: the labels.
        y_pred: the model's outputs for ``x``.
        sources: ``LossSources(model)``, read for the added and regularisation losses (default:
            ``model.losses``).
    """
    terms = _bce_terms(model, y, y_pred)
    if terms is None:
        return model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=None, training=True)
    import torch
    from keras.src import backend
    from keras.src.losses.loss import unscale_loss_for_distribution

    cl = model._compile_loss
    metrics = cl.metrics or [None] * len(terms)
    eps = backend.epsilon()
    values = []
    for (y_t, y_p, weight), metric in zip(terms, metrics):
        if y_t.ndim == 1:
            y_t = torch.unsqueeze(y_t, -1)  # Keras's squeeze_or_expand_to_same_rank
        out = torch.clip(y_p, eps, 1.0 - eps)
        bce = torch.nn.functional.binary_cross_entropy(out, y_t, reduction="none")
        per_row = torch.mean(bce, (-1,), False)
        rows = torch.tensor(float(per_row.numel()), dtype=torch.float32)
        value = torch.divide(torch.sum(per_row), rows)
        if metric is not None:
            metric.update_state(unscale_loss_for_distribution(value), sample_weight=y_p.shape[0])
        if weight is not None:
            value = keras.ops.multiply(value, weight)
        values.append(value)
    losses = [sum(values)]
    added = model.losses if sources is None else sources.losses()
    losses += [model._aggregate_additional_loss(loss) for loss in added]
    return losses[0] if len(losses) == 1 else keras.ops.sum(losses)


def _bce_terms(model: Any, y: Any, y_pred: Any) -> list | None:
    """``[(label, prediction, loss weight)]`` per output where :func:`compute_loss` computes the
    loss itself, else ``None``."""
    import torch
    from keras.src.losses import losses as keras_losses
    from keras.src.trainers.trainer import Trainer

    cl = getattr(model, "_compile_loss", None)
    if cl is None or not cl.built or cl.dtype != "float32" or \
            type(model).compute_loss is not Trainer.compute_loss or \
            type(model)._compute_loss is not Trainer._compute_loss:
        return None
    if not isinstance(y, dict) or not isinstance(y_pred, dict) or len(y) != len(y_pred) \
            or cl.metrics and len(cl.metrics) != len(cl._flat_losses):
        return None
    terms = []
    for path, fn, weight, _ in cl._flat_losses:
        if len(path) != 1 or path[0] not in y or path[0] not in y_pred:
            return None
        if type(fn) is not keras_losses.LossFunctionWrapper or fn.fn is not keras_losses.binary_crossentropy \
                or fn._fn_kwargs or fn.reduction != "sum_over_batch_size" or fn.dtype != "float32":
            return None
        y_t, y_p = y[path[0]], y_pred[path[0]]
        if not isinstance(y_t, torch.Tensor) or not isinstance(y_p, torch.Tensor) \
                or y_t.dtype != torch.float32 or y_p.dtype != torch.float32 \
                or y_p.ndim != 2 or y_p.shape[-1] != 1 or y_t.shape not in (y_p.shape, y_p.shape[:1]) \
                or getattr(y_p, "_keras_mask", None) is not None:
            return None
        terms.append((y_t, y_p, weight))
    return terms
