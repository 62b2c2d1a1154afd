"""Warm start: continue a finished run's model and optimizer in a new model whose tables grew.

Day-after-day training keeps one model learning as new days of logs arrive: the preprocessing
admits the day's new ids (:meth:`reclayers.data.Preprocessor.update`), so every embedding table
may have more rows than the parent run's. :func:`transfer` copies the parent's checkpoint into the
new model's and optimizer's variables, paired by order (the order in which Keras lists a model's
variables and its optimizer's is fixed by the model's structure): a variable of the same shape
is copied whole; one whose first dimension grew (an embedding table, and each optimizer slot of
it: Adam's moments, Adagrad's accumulators, whatever an embedding optimizer keeps per row) gets
the parent's rows at the top and keeps its fresh initial values below (new rows are initialised
as in a new model; slots of new rows start at their initial values, zeros). Nothing about a
particular optimizer is assumed, so the same code carries sparse row-wise optimizers' state.
The optimizer's step counter is carried over; its learning rate is the new run's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reclayers.training import checkpoint as ckpt

__all__ = ["WarmStartError", "parent_checkpoint", "transfer"]


class WarmStartError(ValueError):
    """The parent run cannot be continued by this model (missing, unfinished, another model)."""


def parent_checkpoint(run_dir) -> tuple[list, list]:
    """``(values, names)`` of a run's latest checkpoint (its model's and optimizer's variables).

    Args:
        run_dir: the parent run directory (it holds ``checkpoint/LATEST``).

    Raises:
        WarmStartError: no such directory, or no complete checkpoint in it.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> _ = ckpt.save_checkpoint(f"{d}/checkpoint", [np.ones(2)], ["w"], {"epoch": 1})
        >>> values, names = parent_checkpoint(d)
        >>> names, values[0].tolist()
        (['w'], [1.0, 1.0])
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise WarmStartError(f"parent run directory not found: {run_dir}")
    found = ckpt.load_checkpoint(run / "checkpoint")
    if found is None:
        raise WarmStartError(f"{run_dir} holds no checkpoint (the run did not train to the end of an epoch)")
    values, state = found
    return values, list(state["variable_names"])


def _keep_new(variable) -> bool:
    """Variables the new run decides itself (the optimizer's learning rate)."""
    return str(getattr(variable, "path", "")).split("/")[-1] == "learning_rate"


def transfer(values: list, names: list, variables: list) -> dict:
    """Copies a parent's variable ``values`` into ``variables`` (see the module docstring).

    Args:
        values: the parent's arrays (model variables, then optimizer variables), e.g. from
            :func:`parent_checkpoint`.
        names: their paths (for messages).
        variables: the new model's variables followed by its optimizer's (built).

    Returns:
        ``{"copied": n, "grown": [{"variable", "rows", "new_rows"}], "kept_new": [paths]}``.

    Raises:
        WarmStartError: another number of variables, or a shape that differs other than by
            more rows (another model, model config or optimizer).

    Example:
        >>> import keras
        >>> table = keras.Variable(np.zeros((4, 2)))
        >>> report = transfer([np.ones((3, 2))], ["emb"], [table])
        >>> keras.ops.convert_to_numpy(table)[:, 0].tolist(), report["grown"][0]["new_rows"]
        ([1.0, 1.0, 1.0, 0.0], 4)
    """
    import keras

    if len(values) != len(variables):
        raise WarmStartError(f"the parent run has {len(values)} model and optimizer variables, this model "
                             f"{len(variables)}: another model, model config or optimizer")
    plan = []
    for value, name, v in zip(values, names, variables):
        old, new = tuple(value.shape), tuple(v.shape)
        if old == new:
            plan.append((v, value, None))
        elif len(old) == len(new) >= 1 and old[1:] == new[1:] and old[0] < new[0]:
            plan.append((v, value, old[0]))
        else:
            raise WarmStartError(f"parent variable {name} has shape {old}, this model's {v.path} {new}: "
                                 "another model, model config or optimizer")
    report: dict = {"copied": 0, "grown": [], "kept_new": []}
    for v, value, rows in plan:  # checked in full first: a refused transfer changes nothing
        if _keep_new(v):
            report["kept_new"].append(v.path)
            continue
        if rows is not None:
            current = np.array(keras.ops.convert_to_numpy(v.value))
            current[:rows] = value
            value = current
            report["grown"].append({"variable": v.path, "rows": int(rows), "new_rows": int(v.shape[0])})
        v.assign(value)
        report["copied"] += 1
    return report
