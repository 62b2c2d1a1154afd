"""Training runs as a library: a resumable :class:`Trainer` over a model, a data split and a run
directory, its :class:`TrainingOptions` (optimizers, schedules, clipping, monitor, early stopping)
and what a run leaves (checkpoints, logs, curves). ``reclayers train`` is a thin layer over it;
see ``docs/guides/training.md``.
"""

from reclayers.training.checkpoint import atomic_write, load_checkpoint, save_checkpoint
from reclayers.training.evaluation import metrics_table, predict, score
from reclayers.training.logs import EventWriter, Tee, plot_curves, read_events, write_history_csv
from reclayers.training.options import (
    OPTIMIZERS,
    SCHEDULES,
    OptionError,
    TrainingOptions,
    WarmupCosine,
    build_optimizer,
    make_optimizer,
)
from reclayers.training.runs import load_model
from reclayers.training.trainer import RunInterruptedError, Trainer

__all__ = [
    "OPTIMIZERS", "SCHEDULES", "EventWriter", "OptionError", "RunInterruptedError", "Tee", "Trainer",
    "TrainingOptions", "WarmupCosine", "atomic_write", "build_optimizer", "load_checkpoint", "load_model",
    "make_optimizer", "metrics_table", "plot_curves", "predict", "read_events", "save_checkpoint", "score",
    "write_history_csv",
]
