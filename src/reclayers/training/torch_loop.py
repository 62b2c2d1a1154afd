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

    variables = model.trainable_variables
    optimizer = model.optimizer
    bar = keras.utils.Progbar(len(batches), stateful_metrics=["loss"]) if verbose else None
    total = torch.zeros((), dtype=torch.float32)
    rows = torch.zeros((), dtype=torch.float32)
    model.train()  # ``fit`` does the same for torch modules that read ``self.training``
    try:
        for i in range(len(batches)):
            callback.on_train_batch_begin(i)
            x, y = batches[i][:2]
            x, y = keras.tree.map_structure(_tensor, x), keras.tree.map_structure(_tensor, y)
            y_pred = lean_forward(model, x) if lean else model(x, training=True)
            model.zero_grad()
            loss = model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=None, training=True)
            n = next(t for t in keras.tree.flatten(x) if t is not None).shape[0]
            with torch.no_grad():
                total = total + loss.detach().float() * n
                rows = rows + n
            optimizer.scale_loss(loss).backward()
            with torch.no_grad():
                optimizer.apply([v.value.grad for v in variables], variables)
            logs = {"loss": total / rows}
            callback.on_train_batch_end(i, logs)
            if bar is not None:
                bar.update(i + 1, [("loss", float(logs["loss"]))], finalize=i + 1 == len(batches))
    finally:
        model.eval()


def _tensor(value: Any) -> Any:
    return None if value is None else keras.ops.convert_to_tensor(value)


def lean_forward(model: Any, x: Any) -> Any:
    """``model(x, training=True)`` for a functional model, with the graph's plain layers (see
    :func:`reclayers.layers._build.is_plain_layer`) called through ``layer.call`` instead of
    ``layer.__call__``.

    On PyTorch every ``Layer.__call__`` flattens its arguments, checks them against the input
    spec, opens a name scope and looks for masks and symbolic tensors (about a quarter of a
    millisecond per layer); the zoo's models call 20 to 40 layers per forward pass, most of them
    plain (embedding lookups, stacking, dense heads). The model's own ``__call__`` still runs
    (input standardisation, the training flag that nested layers read), and so does ``__call__``
    of every layer that could make a mask, has an activity regulariser or another dtype policy,
    or receives a masked tensor. Outputs, random draws, added losses and gradients are the same.

    Args:
        model: a built Keras model (not functional: ``model(x, training=True)``).
        x: its inputs.
    """
    if not isinstance(model, keras.Model) or not hasattr(model, "_nodes_by_depth"):
        return model(x, training=True)
    plain = model.__dict__.setdefault("_reclayers_plain_layers", {})
    graph = type(model)._run_through_graph

    def run(inputs, operation_fn=lambda op: op, call_fn=None):
        def wrap(op):
            ok = plain.get(id(op))
            if ok is None:
                ok = plain[id(op)] = is_plain_layer(op)
            if not ok:
                return operation_fn(op)
            training = {"training": True} if op._call_has_training_arg else {}

            def call(*args, **kwargs):
                if any(getattr(a, "_keras_mask", None) is not None for a in args):
                    return operation_fn(op)(*args, **kwargs)
                return op.call(*args, **{**kwargs, **training})

            return call

        return graph(model, inputs, operation_fn=wrap, call_fn=call_fn)

    object.__setattr__(model, "_run_through_graph", run)  # this call only (not tracked by Keras)
    try:
        return model(x, training=True)
    finally:
        object.__delattr__(model, "_run_through_graph")
