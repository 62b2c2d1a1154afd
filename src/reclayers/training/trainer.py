"""The resumable epoch loop: checkpoints, validation, best model, early stopping, schedules, logs."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np

from reclayers.metrics import json_safe
from reclayers.strategy import Strategy
from reclayers.training import checkpoint as ckpt
from reclayers.training.evaluation import predict, score
from reclayers.training.logs import EventWriter, Tee, plot_curves, write_history_csv
from reclayers.training.options import TrainingOptions, build_optimizer
from reclayers.training.torch_loop import train_epoch, uses_torch_loop

__all__ = ["RunInterruptedError", "Trainer"]

KILL_ENV = "RECLAYERS_KILL_AT"  # test hook: "batch:N", "checkpoint:N" or "validation:N"


#: The default mid-epoch checkpoints wait for this many times their writing time of training
#: (:class:`~reclayers.training.checkpoint.CheckpointPacer`): at most about 5 % of the time.
CHECKPOINT_TIME_RATIO = 20.0


class RunInterruptedError(Exception):
    """Raised when ``interrupt_after`` batches are done (simulates a stopped run)."""


_KILL_COUNTS: dict[str, int] = {}


def _kill_point(phase: str) -> None:
    """SIGKILL this process at the N-th ``phase`` event when ``RECLAYERS_KILL_AT=phase:N`` (tests)."""
    target = os.environ.get(KILL_ENV)
    if not target or not target.startswith(phase + ":"):
        return
    _KILL_COUNTS[phase] = _KILL_COUNTS.get(phase, 0) + 1
    if _KILL_COUNTS[phase] == int(target.partition(":")[2]):
        os.kill(os.getpid(), signal.SIGKILL)


def _new_state() -> dict:
    return {"epoch": 0, "batch": 0, "global_batches": 0, "train_examples": 0, "train_seconds": 0.0,
            "epoch_loss_sum": 0.0, "epoch_loss_rows": 0, "history": [], "best_value": None,
            "best_epoch": 0, "since_best": 0, "plateau_wait": 0, "stopped_early": False}


class Trainer:
    """Trains a model over a run directory: resumable to the batch after any kill.

    Each epoch the rows come in the order of ``(seed, epoch)``; every ``checkpoint_every`` steps
    and at each epoch end the model's and optimizer's variables and the loop state are written
    atomically to ``RUN/checkpoint`` (see :mod:`reclayers.training.checkpoint`). At the default
    cadence (``checkpoint_every=0``: a quarter epoch, at least 50 steps) a mid-epoch checkpoint
    waits until training has run 20× as long as the last checkpoint took to write
    (:class:`~reclayers.training.checkpoint.CheckpointPacer`), so that large tables do not spend a
    quarter of a short epoch on disk writes; an explicit ``checkpoint_every`` is kept. A new ``Trainer``
    on the same run directory continues from the latest checkpoint and ends where an uninterrupted
    run ends. After each epoch every label's validation AUC and logloss is printed and logged;
    the epoch with the best monitored metric is saved as ``RUN/best.keras``.

    The run directory receives ``train.log`` (what was printed, without terminal escape codes),
    ``history.json``/``history.csv`` (one row per epoch), ``tensorboard/`` event files and
    ``curves.png``.

    Args:
        make_model: ``() -> model``: builds a new, uncompiled model (a zoo model: one sigmoid output
            per label).
        schema: the data's schema (label names, embedding tables).
        train: the training split (``reclayers.data.Arrays`` interface).
        valid: the validation split, or ``None``.
        run_dir: the run directory (created).
        options: the :class:`TrainingOptions`.
        strategy: a :class:`reclayers.strategy.Strategy` (``None``: one device).
        quiet: no progress bars and epoch lines.
        title: the curves' title.
        log: tee what is printed into ``RUN/train.log``.
        interrupt_after: raise :class:`RunInterruptedError` after this many steps (tests).
        warm_start: ``(values, names)`` of a parent run's checkpoint
            (:func:`reclayers.training.warm_start.parent_checkpoint`), optionally with a third
            item ``{table: ids}`` of rows recycled by expiry: a new run starts from them
            (tables that grew keep the parent's rows on top, recycled rows start fresh; see
            :func:`reclayers.training.warm_start.transfer`); a resumed run from its own checkpoint.
        progressive: train in one ordered pass over blocks of rows, scoring each block before
            training on it: a row count, or ``(block_seconds, times)`` with the training rows'
            time values (see :mod:`reclayers.training.progressive`).

    Example:
        >>> import tempfile
        >>> from reclayers import data, models
        >>> from reclayers.training import Trainer, TrainingOptions
        >>> ds = data.make_synthetic(n_rows=400, seed=0)
        >>> trainer = Trainer(lambda: models.get_model("lr", ds.schema), ds.schema, ds.splits["train"],
        ...                   ds.splits["valid"], tempfile.mkdtemp(), TrainingOptions(epochs=1), quiet=True)
        >>> state = trainer.fit()
        >>> state["epoch"], state["train_examples"]
        (1, 320)
    """

    def __init__(self, make_model, schema, train, valid=None, run_dir="run",
                 options: TrainingOptions | None = None,
                 strategy: Strategy | None = None, *, quiet: bool = False, title: str = "", log: bool = True,
                 interrupt_after: int | None = None, warm_start: tuple | None = None,
                 progressive=None):
        self.make_model, self.schema, self.train, self.valid = make_model, schema, train, valid
        self.warm_start, self.warm_report = warm_start, None
        self.progressive = progressive
        self.run = Path(run_dir)
        self.options = options or TrainingOptions()
        self.options.validate(schema.label_names)
        self.strategy = strategy or Strategy()
        self.quiet, self.title, self.log, self.interrupt_after = quiet, title, log, interrupt_after
        self.model: Any = None
        self.state: dict = {}
        self.pacer, self._told_paced = ckpt.CheckpointPacer(CHECKPOINT_TIME_RATIO), False
        drop = self.strategy.drop_remainder
        self.steps_per_epoch = train.num_batches(self.options.batch_size, drop)
        if self.steps_per_epoch < 1:
            raise ValueError(f"--batch-size {self.options.batch_size} (the global batch) must be at most "
                             f"the {len(train)} training rows")

    # --- model ------------------------------------------------------------------------------------
    def _compile(self, model):
        from reclayers import models

        o = self.options
        self.dense_optimizer = build_optimizer(o, self.steps_per_epoch)
        return models.compile_model(
            model, self.schema, o.learning_rate, jit_compile=o.jit_compile,
            run_eagerly=o.jit_compile is False,
            optimizer=self.dense_optimizer, embedding_optimizer=o.embedding_optimizer,
            embedding_learning_rate=o.embedding_learning_rate,
            # The loss only: held-out data is scored after each epoch, and a running training AUC
            # cost 7 % (dcn_v2) and 13 % (din) of a JAX epoch (batch 1024, one CPU; TensorFlow
            # 0.97-1.00x); the PyTorch loop never computed it.
            train_auc=False,
        )

    def _variables(self) -> list:
        return list(self.model.variables) + list(self.model.optimizer.variables)

    def learning_rate(self) -> float:
        """The dense optimizer's current learning rate (a schedule evaluated at the current step)."""
        return float(keras.ops.convert_to_numpy(self.dense_optimizer.learning_rate))

    # --- checkpoints ------------------------------------------------------------------------------
    def _save(self) -> None:
        started = self.pacer.clock()
        sync = getattr(self.model, "jax_state_sync", None)  # JAX keeps fit's state apart until synced
        if sync is not None:
            sync()
        variables = self._variables()
        values = self.strategy.values(variables)
        if self.strategy.chief:
            ckpt.save_checkpoint(self.run / "checkpoint", values, [v.path for v in variables], self.state,
                                 on_written=lambda: _kill_point("checkpoint"),
                                 extra=self.strategy.random_state())
        self.pacer.written(started)

    def _mid_epoch_checkpoint_due(self) -> bool:
        """Whether the checkpoint scheduled at this step is written. An explicit
        ``checkpoint_every`` is kept to the step; the default cadence is paced
        (:class:`~reclayers.training.checkpoint.CheckpointPacer`) in a single process. Several
        processes keep the cadence too: writing is a collective there, and each process's clock
        would decide on its own."""
        if self.options.checkpoint_every or self.strategy.processes > 1 or self.pacer.due():
            return True
        if not self._told_paced:
            self._told_paced = True
            self._say(f"checkpoint: the last one took {self.pacer.last_cost:.1f} s to write; the default "
                      f"mid-epoch ones now wait for {self.pacer.ratio:g}x that much training (a fixed "
                      "interval: --checkpoint-every N)")
        return False

    def _restore(self) -> bool:
        found = ckpt.load_checkpoint(self.run / "checkpoint")
        if found is None:
            return False
        values, state = found
        names = state.pop("variable_names")
        ckpt.restore_variables(self._variables(), values, names)
        extra = state.pop("extra", {})
        self.strategy.set_random_state(extra)
        # Mid-epoch, the epoch's batch iterator is created anew before the first step (torch's
        # DataLoader draws its seed from the global generator then): restore once more after it.
        self._pending_random = extra if state["batch"] else None
        self.state = state
        if state["epoch"] and not state["batch"] and state["best_epoch"] == state["epoch"] and \
                self.strategy.chief:
            # killed between the epoch's checkpoint and its copy as the best one: copy it again
            ckpt.copy_latest(self.run / "checkpoint", self.run / "checkpoint_best")
        return True

    def _save_best(self) -> None:
        host = self.strategy.gather(self.model)
        # Every process saves (with several JAX processes saving is a collective); the others'
        # run directories are their own scratch copies.
        tmp = self.run / f".best.tmp{self.strategy.rank}.keras"
        host.save(tmp)
        os.replace(tmp, self.run / "best.keras")

    def restore_best(self) -> None:
        """Loads the best epoch's weights (``RUN/best.keras``) into the model."""
        from reclayers.training.runs import load_model

        best = load_model(self.run / "best.keras")
        for v, w in zip(self.model.weights, best.weights):
            v.assign(keras.ops.convert_to_numpy(w.value))

    # --- the loop ---------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Trains (or resumes) to the last epoch or an early stop; returns the loop state
        (``epoch``, ``history``, ``best_epoch``, ``train_examples``, ...)."""
        self.run.mkdir(parents=True, exist_ok=True)
        if self.log and self.strategy.chief:
            with Tee.capture(self.run / "train.log"):
                return self._fit()
        return self._fit()

    def _fit(self) -> dict:
        o, s = self.options, self.strategy
        self.model = s.build(self.make_model, self._compile)
        if self._restore():
            if not self.quiet:
                print(f"resuming {self.run} at epoch {self.state['epoch'] + 1}, batch {self.state['batch']}")
        else:
            self.state = _new_state()
            if self.warm_start is not None:
                from reclayers.training.warm_start import transfer

                values, names, *reset = self.warm_start
                self.warm_report = transfer(values, names, self._variables(),
                                            reset=reset[0] if reset else None)
        writer = EventWriter(self.run / "tensorboard") if o.tensorboard and s.chief else None
        try:
            if self.progressive is not None and self.state["epoch"] == 0:
                self._progressive_pass()  # the one pass (a resume restarts it from its checkpoint)
                self._end_epoch(writer)
            while self.state["epoch"] < o.epochs and not self.state["stopped_early"] and \
                    self.progressive is None:
                self._train_epoch()
                self._end_epoch(writer)
        finally:
            if writer is not None:
                writer.close()
        if self.state["stopped_early"] and (self.run / "best.keras").exists():
            self.restore_best()
        self._write_logs()
        return self.state

    def _train_epoch(self) -> None:
        from reclayers.data import keras_dataset

        o, st = self.options, self.state
        epoch, start = st["epoch"], st["batch"]
        if not self.quiet:
            print(f"epoch {epoch + 1}/{o.epochs}" + (f" (from batch {start})" if start else ""))
        if start >= self.steps_per_epoch:
            return
        ds = keras_dataset(self.train, o.batch_size, shuffle=True, seed=o.seed, start_epoch=epoch,
                           start_batch=start,
                           label_format="dict", drop_remainder=self.strategy.drop_remainder)
        t0 = time.time()
        loop = _Loop(self)
        if uses_torch_loop(self.model):  # fit's step without the per-batch training AUC (see there)
            train_epoch(self.model, self.strategy.shard(ds), loop, verbose=not self.quiet)
        else:
            self.model.fit(self.strategy.shard(ds), epochs=1, shuffle=False,
                           verbose=0 if self.quiet else 1,
                           callbacks=[loop])
        loop.fold()
        st["train_seconds"] += time.time() - t0
        st["epoch_seconds"] = st.get("epoch_seconds", 0.0) + time.time() - t0

    def _progressive_pass(self) -> None:
        """Scores each block of the (ordered) training rows, then trains on it (one pass)."""
        from reclayers.data import keras_dataset
        from reclayers.training.progressive import block_bounds

        o, st, s = self.options, self.state, self.strategy
        bounds = block_bounds(len(self.train), self.progressive)
        st.setdefault("progressive", [])
        t0 = time.time()
        for k, (a, b) in enumerate(bounds[len(st["progressive"]):], start=len(st["progressive"])):
            part = self.train.take(np.arange(a, b))
            host = s.gather(self.model)
            with s.local():
                scores = score(self.schema, part, predict(host, part, shards=s.predict_shards))
            ds = keras_dataset(part, o.batch_size, shuffle=True, seed=o.seed, start_epoch=k,
                               label_format="dict", drop_remainder=s.drop_remainder)
            hist = self.model.fit(s.shard(ds), epochs=1, shuffle=False, verbose=0)
            loss = float(np.asarray(hist.history["loss"][-1])) if hist.history.get("loss") else None
            st["global_batches"] += len(ds)
            st["train_examples"] += b - a
            st["epoch_loss_sum"] += (loss or 0.0) * (b - a)
            st["epoch_loss_rows"] += b - a
            st["progressive"].append(json_safe({"block": k + 1, "start": a, "rows": b - a, "train_loss": loss,
                                                "scores": {lab: {"auc": m["auc"], "logloss": m["logloss"]}
                                                           for lab, m in scores.items()}}))
            first = next(iter(scores.values()))
            self._say(f"block {k + 1}/{len(bounds)} rows {a}-{b}: scored before training, auc "
                      f"{'undefined' if first['auc'] is None else format(first['auc'], '.4f')}")
        st["train_seconds"] += time.time() - t0
        st["epoch_seconds"] = time.time() - t0

    def _batch_rows(self, b: int) -> int:
        bs = self.options.batch_size
        return bs if self.strategy.drop_remainder else min(bs, len(self.train) - b * bs)

    def _validate(self) -> dict:
        s = self.strategy
        host = s.gather(self.model)
        with s.local():
            result = score(self.schema, self.valid, predict(host, self.valid, shards=s.predict_shards))
        _kill_point("validation")
        return result

    def _monitored(self, valid: dict) -> float | None:
        metric, label, _ = self.options.monitored()
        if label is not None:
            return valid[label][metric]
        values = [m[metric] for m in valid.values() if m[metric] is not None]
        return float(np.mean(values)) if values else None

    def _end_epoch(self, writer) -> None:
        o, st = self.options, self.state
        epoch = st["epoch"] + 1
        loss = self.strategy.mean(st["epoch_loss_sum"] / max(st["epoch_loss_rows"], 1))
        rows = self.steps_per_epoch * o.batch_size if self.strategy.drop_remainder else len(self.train)
        row: dict[str, Any] = {"epoch": epoch, "loss": loss, "lr": None,
                               "train_examples": rows,
                               "train_seconds": round(st.get("epoch_seconds", 0.0), 3)}
        improved = False
        if self.valid is not None and len(self.valid):
            valid = self._validate()
            row["valid"] = valid
            for name in ("auc", "logloss"):
                values = [m[name] for m in valid.values() if m[name] is not None]
                row[f"valid_{name}"] = float(np.mean(values)) if values else None
            value = self._monitored(valid)
            row["monitor"] = value
            _, _, higher = o.monitored()
            best = st["best_value"]
            if value is None:
                if st["best_epoch"] == 0:
                    warnings.warn(f"{o.monitor} is undefined at epoch {epoch} (no validation label has both "
                                  "classes); keeping this epoch as the best until one is defined",
                                  stacklevel=2)
                    improved = True
            elif best is None or (value > best if higher else value < best):
                st["best_value"] = value
                improved = True
            self._say(_epoch_line(epoch, loss, valid))
        else:
            improved = True  # without validation data the last epoch is the best
        if improved:
            st["best_epoch"], st["since_best"], st["plateau_wait"] = epoch, 0, 0
            self._save_best()
        else:
            st["since_best"] += 1
            st["plateau_wait"] += 1
            if o.lr_schedule == "plateau" and st["plateau_wait"] >= o.plateau_patience:
                lr = self.learning_rate() * o.lr_decay_rate
                self.dense_optimizer.learning_rate = lr
                st["plateau_wait"] = 0
                self._say(f"plateau: learning rate lowered to {lr:.3g}")
            if o.early_stopping and st["since_best"] >= o.early_stopping:
                st["stopped_early"] = True
                self._say(f"early stopping: no better {o.monitor} for {st['since_best']} epochs; "
                          f"restoring the weights of epoch {st['best_epoch']}")
        row["lr"] = self.learning_rate()  # the rate the next step uses (after a plateau cut)
        st["history"].append(json_safe(row))
        st["epoch"], st["batch"], st["epoch_loss_sum"], st["epoch_loss_rows"] = epoch, 0, 0.0, 0
        st["epoch_seconds"] = 0.0
        if writer is not None:
            writer.scalars(epoch, _scalars(row))
        self._save()
        if improved and self.strategy.chief:  # the best epoch's model *and* optimizer (warm starts)
            ckpt.copy_latest(self.run / "checkpoint", self.run / "checkpoint_best")
        if self.strategy.chief:
            self._write_logs(curves=False)  # the figure once, at the end (matplotlib is slow)

    def _say(self, line: str) -> None:
        """Prints ``line``; with ``quiet`` it still goes to ``train.log``."""
        if not self.quiet:
            print(line)
        elif isinstance(sys.stdout, Tee):
            sys.stdout.log_only(line)

    def _write_logs(self, curves: bool = True) -> None:
        if not self.strategy.chief:
            return
        history = self.state["history"]
        text = json.dumps(json_safe(history), indent=2, allow_nan=False)
        ckpt.atomic_write(self.run / "history.json", text)
        write_history_csv(history, self.run / "history.csv")
        blocks = self.state.get("progressive")
        if blocks:
            from reclayers.training.progressive import write_progressive_csv

            write_progressive_csv(blocks, self.run / "progressive.csv")
        if curves:
            title = self.title or self.run.name
            plot_curves(history, self.run / "curves.png", title, self.state["best_epoch"], progressive=blocks)


class _Loop(keras.callbacks.Callback):
    """Counts steps and rows, keeps the epoch's loss sum, checkpoints every N steps."""

    def __init__(self, trainer: Trainer):
        super().__init__()
        self.t = trainer
        self.rows = 0
        self.loss = 0.0
        o = trainer.options
        self.every = o.checkpoint_every or max(50, trainer.steps_per_epoch // 4)

    def on_train_batch_begin(self, batch, logs=None):
        pending = getattr(self.t, "_pending_random", None)
        if pending:
            self.t.strategy.set_random_state(pending)
            self.t._pending_random = None

    def on_train_batch_end(self, batch, logs=None):
        st = self.t.state
        rows = self.t._batch_rows(st["batch"])
        self.rows += rows
        st["batch"] += 1
        st["global_batches"] += 1
        st["train_examples"] += rows
        self.last_logs = logs
        _kill_point("batch")
        if st["batch"] % self.every == 0 and st["batch"] < self.t.steps_per_epoch and \
                self.t._mid_epoch_checkpoint_due():
            self.fold()
            self.t._save()
        if self.t.interrupt_after is not None and st["global_batches"] >= self.t.interrupt_after:
            raise RunInterruptedError(f"interrupted after {st['global_batches']} batches")

    def fold(self) -> None:
        """Adds the rows and loss since the last fold to the state (the running mean of Keras's
        loss tracker times the rows it covers)."""
        logs = getattr(self, "last_logs", None) or {}
        if "loss" in logs and self.rows:
            mean = float(keras.ops.convert_to_numpy(logs["loss"]))
            st = self.t.state
            total_rows = self.rows
            new_rows = total_rows - getattr(self, "_folded_rows", 0)
            new_sum = mean * total_rows - getattr(self, "_folded_sum", 0.0)
            st["epoch_loss_sum"] += new_sum
            st["epoch_loss_rows"] += new_rows
            self._folded_rows, self._folded_sum = total_rows, mean * total_rows


def _epoch_line(epoch: int, loss: float, valid: dict) -> str:
    parts = []
    for lab, m in valid.items():
        a = "undefined" if m["auc"] is None else f"{m['auc']:.4f}"
        ll = "n/a" if m["logloss"] is None else f"{m['logloss']:.4f}"
        parts.append(f"{lab}: auc {a} logloss {ll}")
    return f"epoch {epoch} train loss {loss:.4f} | valid " + " | ".join(parts)


def _scalars(row: dict) -> dict:
    out = {"train/loss": row.get("loss"), "train/learning_rate": row.get("lr")}
    for lab, m in row.get("valid", {}).items():
        out[f"valid/auc/{lab}"] = m.get("auc")
        out[f"valid/logloss/{lab}"] = m.get("logloss")
    return out
