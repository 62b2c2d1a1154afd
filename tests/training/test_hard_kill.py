"""SIGKILL a real ``reclayers train`` process mid-epoch, during a checkpoint write and during
validation, resume each time: the end equals the uninterrupted run (test AUC to 1e-6, counters).

``RECLAYERS_KILL_AT=phase:N`` makes the process SIGKILL itself at the N-th ``phase`` event (a
batch end, between a checkpoint's files and its manifest, after the validation predictions); the
kill is a real ``SIGKILL``, no Python clean-up runs. ``benchmarks/hard_kill.py`` kills at random
wall-clock moments on longer runs.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from reclayers.cli import main
from tests.conftest import REPO_ROOT

BACKEND = keras.backend.backend()
NO_JIT = [] if BACKEND == "jax" else ["--no-jit"]
# 320 training rows / 32 = 10 steps per epoch, 2 epochs, a checkpoint every 3 steps
ARGS = ["--model", "deepfm", "--data", "synthetic", "--examples", "400", "--batch-size", "32",
        "--epochs", "2",
        "--checkpoint-every", "3", "--set", "embedding_dim=4", "--set", "hidden_units=[8]",
        "--set", "dropout=0.2",
        "--quiet", *NO_JIT]


OTHER = {"jax": "torch", "tensorflow": "jax", "torch": "tensorflow"}[BACKEND]


def _killed(argv: list[str], kill_at: str, env_backend: str = BACKEND) -> None:
    env = dict(os.environ, RECLAYERS_KILL_AT=kill_at, KERAS_BACKEND=env_backend,
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT)]))
    env.pop("PYTEST_CURRENT_TEST", None)
    proc = subprocess.run([sys.executable, "-m", "reclayers", "train", *argv], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, (kill_at, proc.returncode, proc.stderr[-2000:])


def _only_run(parent: Path) -> Path:
    (run,) = [p for p in parent.iterdir() if p.is_dir()]
    return run


def test_sigkill_at_any_moment_then_resume_equals_uninterrupted_run(tmp_path):
    ref_parent, parent = tmp_path / "reference", tmp_path / "killed"
    assert main(["train", *ARGS, "--run-dir", str(ref_parent)]) == 0
    reference = json.loads((_only_run(ref_parent) / "metrics.json").read_text())

    step = random.Random(BACKEND).randrange(4, 9)  # a batch of epoch 1 past the first checkpoint
    _killed([*ARGS, "--run-dir", str(parent)], f"batch:{step}")
    run = _only_run(parent)
    assert json.loads((run / "config.json").read_text())["status"] == "running"
    # no --backend and KERAS_BACKEND naming another one: the run's recorded backend is used;
    # killed inside its 2nd checkpoint write, then inside the validation of epoch 2
    _killed(["--resume", str(run)], "checkpoint:2", env_backend=OTHER)
    _killed(["--resume", str(run)], "validation:1", env_backend=OTHER)
    assert main(["train", "--resume", str(run), "--quiet"]) == 0

    resumed = json.loads((run / "metrics.json").read_text())
    for key in ("train_examples", "train_steps", "best_epoch", "epochs_trained", "backend"):
        assert resumed[key] == reference[key], key
    assert resumed["train_examples"] == 2 * 320
    assert resumed["test"]["click"]["auc"] == pytest.approx(reference["test"]["click"]["auc"], abs=1e-6)
    ref_loss = reference["test"]["click"]["logloss"]
    assert resumed["test"]["click"]["logloss"] == pytest.approx(ref_loss, abs=1e-6)
    history = json.loads((run / "history.json").read_text())
    ref_history = json.loads((_only_run(ref_parent) / "history.json").read_text())
    assert [h["valid_auc"] for h in history] == pytest.approx([h["valid_auc"] for h in ref_history], abs=1e-6)
    assert json.loads((run / "config.json").read_text())["status"] == "complete"
