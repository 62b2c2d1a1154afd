"""The Python trainer's options on the current backend: early stopping, schedules, the embedding
optimizer, the monitor, strict-JSON history, logs. Tiny data (a few hundred rows, the ``lr`` or a
small ``mmoe`` model); validation results are scripted where a test needs a given sequence of
metrics (the loop's decisions are under test, not the model's learning)."""

from __future__ import annotations

import functools
import itertools
import json
import math

import keras
import numpy as np
import pytest

from reclayers import data, models
from reclayers.training import Trainer, TrainingOptions, WarmupCosine, load_model, read_events

JIT = False  # a handful of steps: compiling costs more than it saves


@pytest.fixture(scope="module")
def ds():
    return data.make_synthetic(n_rows=400, seed=0)  # 320 train rows: 5 steps of 64


@pytest.fixture(scope="module")
def ds2():
    return data.make_synthetic(n_rows=400, seed=0, second_task=True)


def _trainer(ds, tmp_path, model="lr", **options):
    o = TrainingOptions(**{"epochs": 3, "batch_size": 64, "jit_compile": JIT, "learning_rate": 0.01,
                           **options})
    return Trainer(lambda: models.get_model(model, ds.schema), ds.schema, ds.splits["train"],
                   ds.splits["valid"], tmp_path / "run", o, quiet=True)


def _scripted(trainer, aucs: list[dict]):
    """Replace validation by the given per-epoch ``{label: auc}`` values."""
    calls = iter(aucs)

    def validate():
        return {lab: {"auc": a, "logloss": None if a is None else 1 - a, "n": 10}
                for lab, a in next(calls).items()}

    trainer._validate = validate


def test_early_stopping_stops_and_restores_the_best_weights(ds, tmp_path):
    t = _trainer(ds, tmp_path, epochs=6, early_stopping=2)
    _scripted(t, [{"label": a} for a in (0.70, 0.80, 0.75, 0.74, 0.9, 0.9)])
    state = t.fit()
    assert state["stopped_early"] and state["epoch"] == 4 and state["best_epoch"] == 2
    best = load_model(tmp_path / "run" / "best.keras")
    for v, w in zip(t.model.weights, best.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), keras.ops.convert_to_numpy(w))


# The monitor's choice among scripted validation results: the trainer's own logic, the same on
# every backend (restoring the best weights runs on all three in the early-stopping test).
@pytest.mark.one_backend
def test_monitor_on_the_second_label_picks_its_best_epoch(ds2, tmp_path):
    first, second = ds2.schema.label_names
    t = _trainer(ds2, tmp_path, model="mmoe", monitor=f"valid_auc:{second}")
    _scripted(t, [{first: 0.9, second: 0.6}, {first: 0.7, second: 0.8}, {first: 0.8, second: 0.7}])
    assert t.fit()["best_epoch"] == 2
    t2 = _trainer(ds2, tmp_path / "mean", model="mmoe")  # default: the mean over labels
    _scripted(t2, [{first: 0.9, second: 0.6}, {first: 0.7, second: 0.7}, {first: 0.95, second: 0.2}])
    assert t2.fit()["best_epoch"] == 1


# Scoring and the history file are NumPy and JSON after prediction: the same on every backend.
@pytest.mark.one_backend
def test_undefined_auc_is_null_in_strict_history_json(ds2, tmp_path):
    first, second = ds2.schema.label_names
    valid = ds2.splits["valid"]
    no_positive = data.Arrays(valid.features, {**valid.labels, second: np.zeros_like(valid.labels[second])})
    o = TrainingOptions(epochs=1, batch_size=64, jit_compile=JIT)
    t = Trainer(lambda: models.get_model("mmoe", ds2.schema), ds2.schema, ds2.splits["train"], no_positive,
                tmp_path / "run", o, quiet=True)
    t.fit()

    def strict(token):
        raise ValueError(f"not strict JSON: {token}")

    history = json.loads((tmp_path / "run" / "history.json").read_text(), parse_constant=strict)
    assert history[0]["valid"][second]["auc"] is None
    assert "no positive" in history[0]["valid"][second]["auc_undefined"]
    assert history[0]["valid_auc"] == history[0]["valid"][first]["auc"]  # the mean over defined labels


def test_schedules_set_the_learning_rate_as_specified(ds, tmp_path):
    steps = 5
    t = _trainer(ds, tmp_path / "cos", lr_schedule="warmup_cosine", warmup_steps=3)
    lrs = [h["lr"] for h in t.fit()["history"]]
    expected = WarmupCosine(0.01, 3, 3 * steps)
    assert lrs == pytest.approx([float(expected(e * steps)) for e in (1, 2, 3)], rel=1e-5)
    assert lrs[-1] == pytest.approx(0.0, abs=1e-9)
    t = _trainer(ds, tmp_path / "exp", lr_schedule="exponential", lr_decay_rate=0.5)
    assert [h["lr"] for h in t.fit()["history"]] == pytest.approx([0.005, 0.0025, 0.00125], rel=1e-5)
    t = _trainer(ds, tmp_path / "plateau", lr_schedule="plateau", lr_decay_rate=0.5, plateau_patience=1)
    _scripted(t, [{"label": a} for a in (0.8, 0.7, 0.9)])
    assert [h["lr"] for h in t.fit()["history"]] == pytest.approx([0.01, 0.005, 0.005], rel=1e-5)


def test_embedding_optimizer_differs_from_the_dense_one(ds, tmp_path):
    # tables on SGD with a zero learning rate stay as initialised; the dense weights move
    t = _trainer(ds, tmp_path, model="deepfm", epochs=1, optimizer="rmsprop", embedding_optimizer="sgd",
                 embedding_learning_rate=1e-12)
    keras.utils.set_random_seed(0)
    start = {v.path: keras.ops.convert_to_numpy(v) for v in models.get_model("deepfm", ds.schema).weights}
    keras.utils.set_random_seed(0)
    t.fit()
    tables = [v for v in t.model.trainable_weights if "embeddings" in v.path]
    dense = [v for v in t.model.trainable_weights if "dense" in v.path and "kernel" in v.path]
    assert tables and dense
    assert type(t.model.optimizer).__name__ == "SparseEmbeddingOptimizer"  # row-wise SGD on the tables
    for v in tables:
        np.testing.assert_allclose(keras.ops.convert_to_numpy(v), start[v.path], atol=1e-9)
    assert any(not np.allclose(keras.ops.convert_to_numpy(v), start[v.path]) for v in dense)


def test_run_directory_logs(ds, tmp_path):
    t = _trainer(ds, tmp_path, epochs=2, clip_norm=1.0)
    t.fit()
    run = tmp_path / "run"
    header = (run / "history.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "loss", "lr", "valid_auc:click", "valid_logloss:click"} <= set(header)
    (events,) = (run / "tensorboard").glob("events.out.tfevents.*")
    tags = {(step, tag) for step, tag, _ in read_events(events)}
    assert {(1, "valid/auc/click"), (2, "valid/auc/click"), (2, "train/loss")} <= tags
    assert (run / "curves.png").stat().st_size > 0 and (run / "train.log").exists()
    assert all(math.isfinite(h["loss"]) for h in json.loads((run / "history.json").read_text()))


@pytest.mark.one_backend  # the loop's bookkeeping; the checkpoint writer is backend-independent
def test_default_mid_epoch_checkpoints_wait_for_training_time(ds, tmp_path, monkeypatch):
    """At the default cadence a scheduled mid-epoch checkpoint is written only once training has
    run 20x as long as the last one took to write; an explicit ``checkpoint_every`` writes each."""
    from reclayers.training import checkpoint as ckpt

    written = []
    real = ckpt.save_checkpoint

    def recording(directory, values, names, state, **kwargs):
        written.append(state["batch"])
        return real(directory, values, names, state, **kwargs)

    monkeypatch.setattr(ckpt, "save_checkpoint", recording)
    # 320 training rows in batches of 2: 160 steps; the default cadence is every 50 (batches 50,
    # 100, 150), then the epoch's end (written at batch 0 of the next epoch).
    for every, expected, paced in ((0, [50, 0], True), (50, [50, 100, 150, 0], False)):
        written.clear()
        t = _trainer(ds, tmp_path / f"every{every}", epochs=1, batch_size=2, checkpoint_every=every)
        readings = itertools.count()  # a clock that moves 1 s per reading: each write "takes" 1 s
        t.pacer.clock = functools.partial(next, readings)
        t.fit()
        assert written == expected
        assert t._told_paced is paced
