"""The options of a training run, checked in one place, and the dense optimizer they describe."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import keras
from keras import ops

from reclayers.embedding_optimizers import EMBEDDING_OPTIMIZERS as _ROW_RULES

__all__ = ["OPTIMIZERS", "SCHEDULES", "OptionError", "TrainingOptions", "WarmupCosine", "build_optimizer",
           "make_optimizer"]

OPTIMIZERS = ("adam", "adamw", "adagrad", "sgd", "ftrl", "rmsprop")
#: the row-wise rules of :mod:`reclayers.embedding_optimizers`, plus ``adam`` (dense Adam on the tables)
EMBEDDING_OPTIMIZERS = (*_ROW_RULES, "adam")
SCHEDULES = ("constant", "warmup_cosine", "exponential", "plateau")


class OptionError(ValueError):
    """A training option with a bad value (the message names the option and what it got)."""


@dataclass
class TrainingOptions:
    """What a :class:`reclayers.training.Trainer` run does; :meth:`validate` checks every field.

    Attributes:
        epochs: passes over the training split.
        batch_size: rows per step (the global batch under a distribution strategy).
        learning_rate: the dense optimizer's (peak) learning rate.
        optimizer: ``adam``, ``adamw``, ``adagrad``, ``sgd``, ``ftrl`` or ``rmsprop``.
        embedding_optimizer: optimizer of the embedding tables (``None``: the dense one).
        embedding_learning_rate: its learning rate, constant (``None``: the dense rate at every
            step, so the tables follow ``lr_schedule`` too).
        lr_schedule: ``constant``, ``warmup_cosine`` (linear warm-up over ``warmup_steps``, then a
            cosine decay to 0 at the last step), ``exponential`` (× ``lr_decay_rate`` per epoch) or
            ``plateau`` (× ``lr_decay_rate`` after ``plateau_patience`` epochs without a better
            monitored metric).
        warmup_steps: warm-up steps of ``warmup_cosine`` (only with it).
        lr_decay_rate: factor of ``exponential`` and ``plateau``, in (0, 1).
        plateau_patience: epochs without improvement before ``plateau`` lowers the rate.
        clip_norm: clip each step's gradients to this global norm (``None``: no clipping).
        monitor: ``valid_auc``, ``valid_logloss``, or ``valid_auc:LABEL`` / ``valid_logloss:LABEL``;
            without a label the mean over the labels with a defined value.
        early_stopping: stop after this many epochs without a better monitored metric and restore
            the best weights (``None``: train every epoch).
        checkpoint_every: save a resumable checkpoint every N steps (0: a quarter epoch, >= 50,
            each one once training has run 20x as long as the last checkpoint took to write).
        seed: seed of the row order (with the epoch number).
        tensorboard: write TensorBoard event files under ``RUN/tensorboard``.
        jit_compile: passed to ``model.compile`` (``False`` also runs eagerly).

    Example:
        >>> TrainingOptions(epochs=2, lr_schedule="warmup_cosine", warmup_steps=10).validate(["click"])
        >>> TrainingOptions(learning_rate=-1).validate(["click"])
        Traceback (most recent call last):
        ...
        reclayers.training.options.OptionError: --learning-rate must be a number > 0; got -1
    """

    epochs: int = 5
    batch_size: int = 256
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    embedding_optimizer: str | None = None
    embedding_learning_rate: float | None = None
    lr_schedule: str = "constant"
    warmup_steps: int | None = None
    lr_decay_rate: float = 0.5
    plateau_patience: int = 1
    clip_norm: float | None = None
    monitor: str = "valid_auc"
    early_stopping: int | None = None
    checkpoint_every: int = 0
    seed: int = 0
    tensorboard: bool = True
    jit_compile: Any = "auto"

    @classmethod
    def keys(cls) -> list[str]:
        """The option names (the run-config keys).

        Example:
            >>> "clip_norm" in TrainingOptions.keys()
            True
        """
        return [f.name for f in fields(cls)]

    def to_dict(self) -> dict:
        """The options as a JSON-ready dict.

        Example:
            >>> TrainingOptions().to_dict()["optimizer"]
            'adam'
        """
        return asdict(self)

    def validate(self, labels) -> None:
        """Raises :class:`OptionError` (one line naming the flag) on the first bad option.

        Args:
            labels: the label names of the data (``--monitor valid_auc:LABEL`` must name one).
        """
        def positive(flag: str, value, integer: bool = False, allow_zero: bool = False) -> None:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            ok = ok and (value >= 0 if allow_zero else value > 0) and (not integer or value == int(value))
            if not ok:
                kind = "an integer" if integer else "a number"
                raise OptionError(f"{flag} must be {kind} {'>= 0' if allow_zero else '> 0'}; got {value}")

        positive("--epochs", self.epochs, integer=True)
        positive("--batch-size", self.batch_size, integer=True)
        positive("--learning-rate", self.learning_rate)
        if self.optimizer not in OPTIMIZERS:
            raise OptionError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        if self.embedding_optimizer is not None and self.embedding_optimizer not in EMBEDDING_OPTIMIZERS:
            raise OptionError(f"--embedding-optimizer must be one of {', '.join(EMBEDDING_OPTIMIZERS)}; "
                              f"got {self.embedding_optimizer!r}")
        if self.embedding_learning_rate is not None:
            positive("--embedding-learning-rate", self.embedding_learning_rate)
        if self.lr_schedule not in SCHEDULES:
            raise OptionError(f"--lr-schedule must be one of {', '.join(SCHEDULES)}; "
                              f"got {self.lr_schedule!r}")
        if self.warmup_steps is not None:
            if self.lr_schedule != "warmup_cosine":
                raise OptionError(f"--warmup-steps needs --lr-schedule warmup_cosine; got --lr-schedule "
                                  f"{self.lr_schedule}")
            positive("--warmup-steps", self.warmup_steps, integer=True, allow_zero=True)
        if not (isinstance(self.lr_decay_rate, (int, float)) and 0 < self.lr_decay_rate < 1):
            raise OptionError(f"--lr-decay-rate must be in (0, 1); got {self.lr_decay_rate}")
        positive("--plateau-patience", self.plateau_patience, integer=True)
        if self.clip_norm is not None:
            positive("--clip-norm", self.clip_norm)
        if self.early_stopping is not None:
            positive("--early-stopping", self.early_stopping, integer=True)
        positive("--checkpoint-every", self.checkpoint_every, integer=True, allow_zero=True)
        metric, _, label = str(self.monitor).partition(":")
        if metric not in ("valid_auc", "valid_logloss"):
            raise OptionError(f"--monitor must be valid_auc or valid_logloss, optionally :LABEL; "
                              f"got {self.monitor!r}")
        if label and label not in list(labels):
            raise OptionError(f"--monitor {self.monitor}: the label must be one of {', '.join(labels)}; "
                              f"got {label!r}")

    def monitored(self) -> tuple[str, str | None, bool]:
        """``(metric, label or None, higher_is_better)`` of :attr:`monitor`.

        Example:
            >>> TrainingOptions(monitor="valid_logloss:buy").monitored()
            ('logloss', 'buy', False)
        """
        metric, _, label = self.monitor.partition(":")
        name = metric.removeprefix("valid_")
        return name, label or None, name == "auc"


@keras.saving.register_keras_serializable(package="reclayers")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """The ``warmup_cosine`` schedule: ``peak·(s+1)/w`` for steps ``s < w``, then
    ``peak·(1 + cos(π·(s − w)/(T − w)))/2``, reaching 0 at step ``T``.

    Args:
        peak: the learning rate at the end of the warm-up.
        warmup_steps: ``w``.
        total_steps: ``T``, the run's last step.

    Example:
        >>> s = WarmupCosine(0.1, warmup_steps=10, total_steps=110)
        >>> [round(float(s(k)), 4) for k in (0, 9, 10, 60, 110)]
        [0.01, 0.1, 0.1, 0.05, 0.0]
    """

    def __init__(self, peak: float, warmup_steps: int, total_steps: int):
        self.peak, self.warmup_steps, self.total_steps = float(peak), int(warmup_steps), int(total_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = float(max(self.warmup_steps, 1))
        decay = float(max(self.total_steps - self.warmup_steps, 1))
        progress = ops.clip((step - self.warmup_steps) / decay, 0.0, 1.0)
        cosine = 0.5 * self.peak * (1.0 + ops.cos(math.pi * progress))
        warming = self.peak * ops.minimum(step + 1.0, warm) / warm
        return ops.where(step < self.warmup_steps, warming, cosine)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


_KERAS_NAMES = {"adam": "Adam", "adamw": "AdamW", "adagrad": "Adagrad", "sgd": "SGD", "ftrl": "Ftrl",
                "rmsprop": "RMSprop", "lazy_adam": "Adam", "rowwise_adagrad": "Adagrad"}


def make_optimizer(name: str, learning_rate: Any, clip_norm: float | None = None):
    """A Keras optimizer by name (``global_clipnorm`` set when ``clip_norm`` is given).

    Args:
        name: one of :data:`OPTIMIZERS` (or an embedding optimizer name).
        learning_rate: a float or a ``LearningRateSchedule``.
        clip_norm: global gradient-norm bound, or ``None``.

    Example:
        >>> type(make_optimizer("ftrl", 0.1)).__name__
        'Ftrl'
    """
    cls = getattr(keras.optimizers, _KERAS_NAMES[name])
    kwargs = {"global_clipnorm": clip_norm} if clip_norm else {}
    return cls(learning_rate=learning_rate, **kwargs)


def build_optimizer(options: TrainingOptions, steps_per_epoch: int):
    """The dense optimizer of ``options``: name, learning-rate schedule and gradient clipping.

    ``plateau`` starts constant (the trainer lowers the rate); ``exponential`` multiplies it by
    ``lr_decay_rate`` every epoch (``steps_per_epoch`` steps).

    Args:
        options: the run's :class:`TrainingOptions`.
        steps_per_epoch: optimizer steps in one epoch.

    Example:
        >>> opt = build_optimizer(TrainingOptions(optimizer="sgd", clip_norm=1.0), steps_per_epoch=10)
        >>> type(opt).__name__, opt.global_clipnorm
        ('SGD', 1.0)
    """
    lr: Any = float(options.learning_rate)
    total = max(1, options.epochs * steps_per_epoch)
    if options.lr_schedule == "warmup_cosine":
        lr = WarmupCosine(lr, options.warmup_steps or 0, total)
    elif options.lr_schedule == "exponential":
        lr = keras.optimizers.schedules.ExponentialDecay(lr, decay_steps=max(1, steps_per_epoch),
                                                         decay_rate=options.lr_decay_rate, staircase=True)
    return make_optimizer(options.optimizer, lr, options.clip_norm)
