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


# What differs between these cases is the file format (the readers, the schema each gives, its
# encoding): backend-independent, so most run under one backend. Every zoo model trains on every
# backend in tests/models, and one real-sample run below (DIEN: sequences, the GRU loop) covers
# the whole command on every backend.
ONE_BACKEND = pytest.mark.one_backend


@pytest.mark.parametrize(
    "model, spec",
    [
        pytest.param("deepfm", "criteo:deepctr/criteo_sample.txt", marks=ONE_BACKEND),
        pytest.param("dcn_v2", "avazu:deepctr/avazu_sample.txt", marks=ONE_BACKEND),
        pytest.param("wide_deep", "movielens:deepctr/movielens_sample.txt", marks=ONE_BACKEND),
        pytest.param("din", "sequences:amazon/din_sample_data.txt", marks=ONE_BACKEND),
        ("dien", "sequences:amazon/din_sample_data.txt"),
        pytest.param("dmr", "alimama:alimama/alimama_sampled_train.txt", marks=ONE_BACKEND),
        pytest.param("mmoe", "census:deepctr/census-income.sample", marks=ONE_BACKEND),
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
