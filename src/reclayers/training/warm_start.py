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

Rows *recycled* by vocabulary expiry (:meth:`reclayers.data.Preprocessor.recycled_ids`: ids whose
value was dropped, now free or given to a new value) are not copied: they keep the new model's
fresh initial values, in the table and in every optimizer slot of it, exactly as a new row. A
table's variable is found by its layer's name (the zoo names each table's embedding layer
``PREFIX_TABLE``, e.g. ``emb_item`` and ``linear_w_item``) and its optimizer slots by the name
Keras optimizers and :class:`~reclayers.embedding_optimizers.SparseEmbeddingOptimizer` give a
slot (the variable's path with ``/`` as ``_``, then ``_SLOT``).

The parent's *best* checkpoint (the epoch saved as ``best.keras``, kept with its optimizer's
state in ``RUN/checkpoint_best``) is the default starting point; ``which="last"`` takes the last
epoch's instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reclayers.training import checkpoint as ckpt

__all__ = ["WarmStartError", "parent_checkpoint", "table_rows", "transfer"]


class WarmStartError(ValueError):
    """The parent run cannot be continued by this model (missing, unfinished, another model)."""


def parent_checkpoint(run_dir, which: str = "best") -> tuple[list, list]:
    """``(values, names)`` of a run's best or last checkpoint (its model's and optimizer's
    variables).

    Args:
        run_dir: the parent run directory (it holds ``checkpoint/LATEST`` and, for runs that
            validated, ``checkpoint_best/LATEST``).
        which: ``"best"`` (the epoch kept as ``best.keras``: the run's chosen model; a run
            saved before best checkpoints existed gives its last) or ``"last"``.

    Raises:
        WarmStartError: no such directory, or no complete checkpoint in it.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> _ = ckpt.save_checkpoint(f"{d}/checkpoint", [np.ones(2)], ["w"], {"epoch": 2})
        >>> _ = ckpt.save_checkpoint(f"{d}/checkpoint_best", [np.zeros(2)], ["w"], {"epoch": 1})
        >>> parent_checkpoint(d)[0][0].tolist(), parent_checkpoint(d, "last")[0][0].tolist()
        ([0.0, 0.0], [1.0, 1.0])
    """
    if which not in ("best", "last"):
        raise WarmStartError(f"which must be 'best' or 'last'; got {which!r}")
    run = Path(run_dir)
    if not run.is_dir():
        raise WarmStartError(f"parent run directory not found: {run_dir}")
    found = ckpt.load_checkpoint(run / "checkpoint_best") if which == "best" else None
    if found is None:
        found = ckpt.load_checkpoint(run / "checkpoint")
    if found is None:
        raise WarmStartError(f"{run_dir} holds no checkpoint (the run did not train to the end of an epoch)")
    values, state = found
    return values, list(state["variable_names"])


def table_rows(variables: list, reset: dict) -> dict:
    """``{variable path: ids}``: the rows of ``reset`` (``{table: ids}``) in each table variable
    and each optimizer slot of it (see the module docstring for how they are found).

    Example:
        >>> import keras
        >>> emb = keras.layers.Embedding(5, 2, name="emb_item"); emb.build((None,))
        >>> table_rows([emb.embeddings], {"item": np.array([3])})
        {'emb_item/embeddings': array([3])}
    """
    found: dict = {}
    tables = sorted(reset, key=len, reverse=True)  # the longest table name first (item < hist_item)
    for v in variables:
        parts = str(v.path).split("/")
        if len(v.shape) != 2 or len(parts) < 2 or parts[-1] != "embeddings":
            continue
        table = next((t for t in tables if parts[-2].endswith(f"_{t}")), None)
        if table is not None and len(reset[table]):
            found[str(v.path)] = np.asarray(reset[table], np.int64)
    slots = {path.replace("/", "_") + "_": ids for path, ids in found.items()}
    for v in variables:
        last = str(v.path).split("/")[-1]
        for prefix, ids in slots.items():
            if last.startswith(prefix) and len(v.shape) >= 1:
                found[str(v.path)] = ids
    return found


def _keep_new(variable) -> bool:
    """Variables the new run decides itself (the optimizer's learning rate)."""
    return str(getattr(variable, "path", "")).split("/")[-1] == "learning_rate"


def transfer(values: list, names: list, variables: list, reset: dict | None = None) -> dict:
    """Copies a parent's variable ``values`` into ``variables`` (see the module docstring).

    Args:
        values: the parent's arrays (model variables, then optimizer variables), e.g. from
            :func:`parent_checkpoint`.
        names: their paths (for messages).
        variables: the new model's variables followed by its optimizer's (built).
        reset: ``{table: ids}`` whose rows keep the new model's initial values (recycled ids:
            :meth:`reclayers.data.Preprocessor.recycled_ids`).

    Returns:
        ``{"copied": n, "grown": [{"variable", "rows", "new_rows"}], "kept_new": [paths],
        "reset": {variable path: rows re-initialised}}``.

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
    resets = table_rows(variables, reset or {})
    report: dict = {"copied": 0, "grown": [], "kept_new": [], "reset": {}}
    for v, value, rows in plan:  # checked in full first: a refused transfer changes nothing
        if _keep_new(v):
            report["kept_new"].append(v.path)
            continue
        fresh = resets.get(str(v.path))
        if fresh is not None:
            fresh = fresh[fresh < value.shape[0]]  # rows past the parent's are new anyway
        if rows is not None or (fresh is not None and fresh.size):
            current = np.array(keras.ops.convert_to_numpy(v.value))
            initial = current.copy()
            current[:value.shape[0]] = value
            if fresh is not None and fresh.size:
                current[fresh] = initial[fresh]
                report["reset"][v.path] = int(fresh.size)
            value = current
        if rows is not None:
            report["grown"].append({"variable": v.path, "rows": int(rows), "new_rows": int(v.shape[0])})
        v.assign(value)
        report["copied"] += 1
    return report
