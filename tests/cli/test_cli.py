"""The ``reclayers`` command in-process: train, resume, evaluate, predict, compare, export, errors."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from reclayers.cli import main

# JAX trains far faster jitted (op-by-op eager dominated its time); the others skip XLA compiles.
NO_JIT = [] if keras.backend.backend() == "jax" else ["--no-jit"]
TINY = [*NO_JIT,
    "--examples",
    "600",
    "--batch-size",
    "64",
    "--quiet",
    "--set",
    "embedding_dim=4",
    "--set",
    "hidden_units=[8]",
]


def _run_dir(parent: Path, model: str) -> Path:
    runs = sorted(p for p in parent.iterdir() if p.is_dir() and f"-{model}-" in p.name)
    assert runs, f"no run directory for {model} in {parent}"
    return runs[-1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    parent = tmp_path_factory.mktemp("runs")
    code = main(
        [
            "train",
            "--model",
            "deepfm",
            "--data",
            "synthetic",
            "--epochs",
            "2",
            "--run-dir",
            str(parent),
            *TINY,
        ]
    )
    assert code == 0
    return _run_dir(parent, "deepfm")


def test_train_writes_run_directory(trained, capsys):
    for name in (
        "config.json",
        "schema.json",
        "preprocessor.json",
        "metrics.json",
        "history.json",
        "best.keras",
        "model.keras",
        "checkpoint/LATEST",
        "history.csv",
        "train.log",
        "curves.png",
    ):
        assert (trained / name).exists(), name
    log = (trained / "train.log").read_text()
    assert "\x1b" not in log and "\r" not in log and "\b" not in log
    assert "epoch 2 train loss" in log and "valid click: auc" in log  # per-label validation each epoch
    assert list((trained / "tensorboard").glob("events.out.tfevents.*"))
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["backend"] == keras.backend.backend()
    assert 0.0 <= metrics["test"]["click"]["auc"] <= 1.0
    assert metrics["bayes_optimal_auc"]["click"] > 0.5
    history = json.loads((trained / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(row["train_seconds"] > 0 for row in history)
    train_rows = sum(row["train_examples"] for row in history) / 2
    assert train_rows > 0 and all(row["train_examples"] == train_rows for row in history)
    assert metrics["train_seconds"] == pytest.approx(sum(r["train_seconds"] for r in history), abs=0.02)
    config = json.loads((trained / "config.json").read_text())
    assert config["model"] == "deepfm" and config["model_config"]["embedding_dim"] == 4


def test_train_prints_metrics_table(tmp_path, capsys):
    assert main(["train", "--model", "lr", "--epochs", "1", "--run-dir", str(tmp_path), *TINY]) == 0
    out = capsys.readouterr().out
    assert "| label | auc | logloss | bayes_auc | n |" in out
    assert "AUC on held-out data:" in out
    # the speed says what it was computed on: examples, epochs, seconds and what they include
    run = next(tmp_path.iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert (f"training examples over 1 epoch in {metrics['train_seconds']} s of training passes, "
            "compilation included, end-of-epoch validation excluded") in out
    assert f"{metrics['train_examples']:,} training examples" in out


def test_evaluate_and_predict(trained, tmp_path, capsys):
    assert main(["evaluate", str(trained), "--data", "synthetic"]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((trained / "metrics.json").read_text())
    assert f"{metrics['test']['click']['auc']:.4f}" in out  # same test split, same best checkpoint
    dest = tmp_path / "pred.csv"
    assert main(["predict", str(trained), "--data", "synthetic", "--out", str(dest)]) == 0
    table = np.loadtxt(dest, delimiter=",", skiprows=1)
    assert dest.read_text().splitlines()[0] == '"label_click","click"'  # probability named after the label
    assert table.shape == (60, 2) and np.all((table[:, 1] > 0) & (table[:, 1] < 1))


def test_resume_after_interruption_matches_uninterrupted_run(trained, tmp_path, capsys):
    """Kill a run mid-epoch (after 11 of 2 x 8 batches), resume it: same metrics as ``trained``."""
    code = main(
        [
            "train",
            "--model",
            "deepfm",
            "--data",
            "synthetic",
            "--epochs",
            "2",
            "--run-dir",
            str(tmp_path),
            "--interrupt-after",
            "11",
            "--checkpoint-every",
            "2",
            *TINY,
        ]
    )
    assert code == 130
    run = _run_dir(tmp_path, "deepfm")
    latest = (run / "checkpoint" / "LATEST").read_text().strip()
    state = json.loads((run / "checkpoint" / latest / "state.json").read_text())
    assert (state["epoch"], state["batch"]) == (1, 2)  # checkpoints every 2 batches (8 per epoch)
    assert not (run / "metrics.json").exists()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    resumed = json.loads((run / "metrics.json").read_text())
    reference = json.loads((trained / "metrics.json").read_text())
    assert resumed["test"]["click"]["auc"] == pytest.approx(reference["test"]["click"]["auc"], abs=1e-6)
    assert resumed["train_examples"] == reference["train_examples"]


def test_compare_writes_leaderboard(tmp_path, capsys):
    assert (
        main(
            [
                "compare",
                "--models",
                "lr,mlp",
                "--data",
                "synthetic",
                "--epochs",
                "1",
                "--run-dir",
                str(tmp_path),
                *TINY,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| rank | model | test AUC |" in out and "Bayes-optimal" in out
    board = next(tmp_path.glob("compare-*/leaderboard.md")).read_text()
    assert "| lr |" in board and "| mlp |" in board
    assert board.startswith("# Leaderboard: synthetic · ") and board.splitlines()[0].endswith("· 1 epochs")
    rows = json.loads(next(tmp_path.glob("compare-*/leaderboard.json")).read_text())["rows"]
    assert sorted(r["model"] for r in rows) == ["lr", "mlp"] and all(r["epochs"] == 1 for r in rows)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--model", "nope"], "--model must be one of"),
        (["train", "--data", "criteo:/no/such/file.txt"], "file not found"),
        (["train", "--data", "frappe:/"], "--data frappe: PATH must be a file; got /"),
        (["train", "--data", "xml:x"], "--data must be 'synthetic' or one of"),
        (["train", "--epochs", "zero"], "invalid int value"),
        (["evaluate", "/no/such/run"], "RUN_DIR must be a reclayers run directory"),
        (["export", "/no/such/run", "--format", "tflite"], "invalid choice"),
        (["train", "--config", "/no/such/config.json"], "--config: file not found"),
        (["train", "--learning-rate", "-1"], "--learning-rate must be a number > 0; got -1"),
        (["train", "--optimizer", "adamax"], "--optimizer must be one of adam, adamw"),
        (["train", "--embedding-optimizer", "lbfgs"], "--embedding-optimizer must be one of"),
        (["train", "--lr-schedule", "cyclic"], "--lr-schedule must be one of constant"),
        (["train", "--warmup-steps", "10"], "--warmup-steps needs --lr-schedule warmup_cosine"),
        (["train", "--clip-norm", "0"], "--clip-norm must be a number > 0"),
        (["train", "--early-stopping", "0"], "--early-stopping must be an integer > 0"),
        (["train", "--monitor", "valid_acc"], "--monitor must be valid_auc or valid_logloss"),
        (["train", "--monitor", "valid_auc:purchase", "--examples", "300"],
         "--monitor valid_auc:purchase: the label must be one of click"),
    ],
)
def test_bad_arguments_one_line_exit_2(argv, message, capsys, tmp_path):
    if argv[0] == "train":
        argv = [*argv, "--run-dir", str(tmp_path / "runs")]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse errors
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing left behind


def test_wrong_file_format_is_a_usage_error(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["train", "--data", f"frappe:{bad}", "--run-dir", str(tmp_path), *TINY]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(bad) in err


# saved_model: tensorflow and jax (through jax2tf); onnx: torch (torch.onnx). The other pairs are
# refused in one line before any work (tests/cli/test_surface.py).
SUPPORTED = {"tensorflow": "saved_model", "jax": "saved_model", "torch": "onnx"}


def test_export_matches_keras_predictions(trained, tmp_path, capsys):
    fmt = SUPPORTED[keras.backend.backend()]
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    out = tmp_path / "exported"
    assert main(["export", str(trained), "--format", fmt, "--out", str(out)]) == 0
    assert "-> OK" in capsys.readouterr().out
    if fmt == "onnx":  # outputs named after the labels
        import onnx

        assert [o.name for o in onnx.load(str(out)).graph.output] == ["click"]
    else:
        import tensorflow as tf

        signature = tf.saved_model.load(str(out)).signatures["serving_default"]
        assert list(signature.structured_outputs) == ["click"]


def test_nas_searches_then_retrains(tmp_path, capsys):
    assert main(["train", "--model", "nas", "--epochs", "1", "--run-dir", str(tmp_path), *TINY]) == 0
    run = _run_dir(tmp_path, "nas")
    sizes = json.loads((run / "architecture.json").read_text())["embedding_sizes"]
    assert set(sizes) == {f"C{i}" for i in range(1, 9)} and set(sizes.values()) <= {2, 4, 8, 16}
    assert (run / "search" / "best.keras").exists()
    final = keras.saving.load_model(run / "model.keras")
    assert final.name == "nas_retrain"
    assert {t: final.get_layer(f"emb_{t}").output_dim for t in sizes} == sizes


def test_fresh_process_evaluate(trained):
    """``python -m reclayers evaluate`` in a new process (layers registered before loading)."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "reclayers", "evaluate", str(trained), "--data", "synthetic"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "AUC on synthetic" in proc.stdout
