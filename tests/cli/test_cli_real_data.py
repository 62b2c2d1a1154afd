"""``reclayers train`` end to end on the real samples of ../shared/data (tiny: one epoch, eager)."""

from __future__ import annotations

import json

import keras
import pytest

from reclayers.cli import main

# JAX trains far faster jitted (op-by-op eager dominated its time); the others skip XLA compiles.
NO_JIT = [] if keras.backend.backend() == "jax" else ["--no-jit"]
FAST = [*NO_JIT,
    "--epochs",
    "1",
    "--batch-size",
    "32",
    "--quiet",
    "--set",
    "embedding_dim=4",
    "--set",
    "hidden_units=[8]",
]


@pytest.mark.parametrize(
    "model, spec",
    [
        ("deepfm", "criteo:deepctr/criteo_sample.txt"),
        ("dcn_v2", "avazu:deepctr/avazu_sample.txt"),
        ("wide_deep", "movielens:deepctr/movielens_sample.txt"),
        ("din", "sequences:amazon/din_sample_data.txt"),
        ("dien", "sequences:amazon/din_sample_data.txt"),
        ("dmr", "alimama:alimama/alimama_sampled_train.txt"),
        ("mmoe", "census:deepctr/census-income.sample"),
    ],
)
def test_train_on_real_sample(model, spec, shared_data, tmp_path, capsys):
    fmt, rel = spec.split(":")
    code = main(
        ["train", "--model", model, "--data", f"{fmt}:{shared_data / rel}", "--run-dir", str(tmp_path), *FAST]
    )
    assert code == 0
    run = next(tmp_path.iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == model and metrics["test"]
    assert "AUC on held-out data" in capsys.readouterr().out
