"""Atomic, resumable checkpoints: every variable of the model and its optimizer plus the loop state.

A checkpoint is a directory ``ckpt-NNNNNNNNN/`` (``variables.npz`` and ``state.json``) written in
full and flushed to disk before the one-line manifest ``LATEST`` is replaced (``os.replace``) to
name it; older directories are removed afterwards. A process killed at any moment therefore
leaves either the previous checkpoint or the new one, never a mix of the two: resuming reads
``LATEST`` only. The variables include the random-seed states of dropout-like layers and the
optimizer's step counter and learning rate, so that a resumed run takes the same steps.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from reclayers.metrics import json_safe

__all__ = ["CheckpointPacer", "atomic_write", "copy_latest", "load_checkpoint", "restore_variables",
           "save_checkpoint", "variable_values"]

MANIFEST = "LATEST"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory descriptors
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file renamed into place (readers see the
    old or the new content, never a part).

    Args:
        path: the file to (re)write.
        text: its new content.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.json"
        >>> atomic_write(p, "{}"); p.read_text()
        '{}'
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def save_checkpoint(directory, values: list, names: list, state: dict, on_written=None,
                    extra: dict | None = None) -> Path:
    """Writes one checkpoint under ``directory`` and makes it the latest.

    Args:
        directory: the run's checkpoint folder.
        values: numpy arrays, one per variable (model variables, then optimizer variables).
        names: their paths (checked on load).
        state: the loop state (JSON-ready).
        on_written: called after the files are written, before the manifest (a test hook).
        extra: more named arrays to keep (e.g. a random generator's state), returned by
            :func:`load_checkpoint` under ``state["extra"]``.

    Returns:
        The checkpoint's directory.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> _ = save_checkpoint(d, [np.ones(2)], ["w"], {"global_batches": 3})
        >>> load_checkpoint(d)[1]["global_batches"]
        3
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"ckpt-{int(state.get('global_batches', 0)):09d}-{int(state.get('epoch', 0)):04d}"
    if target.exists():
        shutil.rmtree(target)
    work = directory / f".{target.name}.partial"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    with open(work / "variables.npz", "wb") as fh:
        np.savez(fh, **{f"v{i:05d}": np.asarray(v) for i, v in enumerate(values)},
                 **{f"x_{k}": np.asarray(v) for k, v in (extra or {}).items()})
        fh.flush()
        os.fsync(fh.fileno())
    with open(work / "state.json", "w") as fh:
        json.dump(json_safe({**state, "variable_names": list(names)}), fh, allow_nan=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(work, target)
    _fsync_dir(directory)
    if on_written is not None:
        on_written()
    atomic_write(directory / MANIFEST, target.name + "\n")
    for old in directory.iterdir():  # what the manifest no longer names
        if old.is_dir() and old.name != target.name:
            shutil.rmtree(old, ignore_errors=True)
    return target


def copy_latest(directory, target) -> Path | None:
    """Makes ``directory``'s latest checkpoint the latest of ``target`` too (hard links where the
    file system allows, else a copy; written as :func:`save_checkpoint` writes: complete before
    the manifest names it). Returns the copy's directory, or ``None`` when there is nothing.

    Args:
        directory: a checkpoint folder (e.g. ``RUN/checkpoint``).
        target: another (e.g. ``RUN/checkpoint_best``).

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> _ = save_checkpoint(f"{d}/a", [np.ones(1)], ["w"], {"epoch": 1})
        >>> _ = copy_latest(f"{d}/a", f"{d}/b"); load_checkpoint(f"{d}/b")[1]["epoch"]
        1
    """
    directory, target = Path(directory), Path(target)
    if not (directory / MANIFEST).exists():
        return None
    source = directory / (directory / MANIFEST).read_text().strip()
    target.mkdir(parents=True, exist_ok=True)
    work = target / f".{source.name}.partial"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    for f in source.iterdir():
        try:
            os.link(f, work / f.name)
        except OSError:
            shutil.copy2(f, work / f.name)
    final = target / source.name
    if final.exists():
        shutil.rmtree(final)
    os.replace(work, final)
    _fsync_dir(target)
    atomic_write(target / MANIFEST, final.name + "\n")
    for old in target.iterdir():
        if old.is_dir() and old.name != final.name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(directory) -> tuple[list, dict] | None:
    """``(values, state)`` of the latest complete checkpoint, or ``None`` when there is none.

    Args:
        directory: the run's checkpoint folder.

    Example:
        >>> import tempfile
        >>> load_checkpoint(tempfile.mkdtemp()) is None
        True
    """
    directory = Path(directory)
    manifest = directory / MANIFEST
    if not manifest.exists():
        return None
    target = directory / manifest.read_text().strip()
    state = json.loads((target / "state.json").read_text())
    with np.load(target / "variables.npz") as npz:
        values = [npz[k] for k in sorted(npz.files) if k.startswith("v")]
        state["extra"] = {k[2:]: npz[k] for k in npz.files if k.startswith("x_")}
    return values, state


def restore_variables(variables: list, values: list, names: list[str]) -> None:
    """Assigns saved ``values`` to ``variables`` (same order, same shapes).

    Args:
        variables: the live variables (model variables, then optimizer variables).
        values: the saved arrays.
        names: the saved variable paths, for the error message.

    Example:
        >>> import keras
        >>> v = keras.Variable(np.zeros(2))
        >>> restore_variables([v], [np.ones(2)], ["v"]); keras.ops.convert_to_numpy(v).tolist()
        [1.0, 1.0]
    """
    if len(variables) != len(values):
        raise ValueError(f"checkpoint: {len(values)} saved variables for a model with {len(variables)}; "
                         "got a checkpoint of another model or optimizer")
    for v, value, name in zip(variables, values, names):
        if tuple(v.shape) != tuple(value.shape):
            raise ValueError(f"checkpoint: variable {name} has shape {tuple(value.shape)}; the model's "
                             f"{v.path} has {tuple(v.shape)}")
        v.assign(value)


def variable_values(variables: list) -> list[Any]:
    """The values of ``variables`` as numpy arrays.

    Args:
        variables: Keras variables.

    Example:
        >>> import keras
        >>> variable_values([keras.Variable(np.ones(1))])[0].tolist()
        [1.0]
    """
    import keras

    return [keras.ops.convert_to_numpy(v.value) for v in variables]


class CheckpointPacer:
    """Keeps the default mid-epoch checkpoints to a bounded share of the training time.

    A checkpoint of a model with large embedding tables is slow to write: every variable and
    optimizer slot, flushed to disk (a 34M-parameter ``deepfm`` with lazy-Adam slots: 400 MB,
    1.4–2.2 s on the development machine). At the default cadence (a quarter epoch) that was a
    quarter of a 20-second epoch. The pacer lets a scheduled checkpoint through only once the
    training since the last checkpoint has run ``ratio`` times as long as that checkpoint took to
    write, so checkpoints take at most about ``1 / (ratio + 1)`` of the time (5 % at 20). The
    first one is always written (its cost is not known yet), and so is every epoch's last.

    A run killed between two checkpoints loses at most the longer of the cadence and ``ratio``
    times a checkpoint's writing time; the resumed run is the same either way (it restarts from
    whatever checkpoint is the latest).

    Args:
        ratio: training time per unit of checkpoint-writing time before the next one is due.
        clock: seconds, monotonic (a test passes its own).

    Example:
        >>> now = [0.0]
        >>> pacer = CheckpointPacer(ratio=20, clock=lambda: now[0])
        >>> pacer.due()                      # nothing written yet
        True
        >>> pacer.written(started=0.0)       # took no time on this clock...
        >>> now[0] = 2.0; pacer.written(started=0.0)   # ...this one took 2 s, ending at t = 2
        >>> now[0] = 30.0; pacer.due()       # 28 s of training since: less than 20 x 2 s
        False
        >>> now[0] = 42.0; pacer.due()
        True
    """

    def __init__(self, ratio: float = 20.0, clock: Callable[[], float] = time.monotonic):
        self.ratio, self.clock = ratio, clock
        self.last_end: float | None = None
        self.last_cost = 0.0

    def written(self, started: float) -> None:
        """Records a checkpoint written from ``started`` (a reading of ``clock``) until now."""
        self.last_end = self.clock()
        self.last_cost = self.last_end - started

    def due(self) -> bool:
        """Whether a scheduled checkpoint should be written now."""
        if self.last_end is None:
            return True
        return self.clock() - self.last_end >= self.ratio * self.last_cost
