"""Shared fixtures of the zoo tests: tiny synthetic data, tiny configs, one-epoch fit, round trip."""

from __future__ import annotations

import keras
import numpy as np

from reclayers import data, models
from tests.contract import assert_allclose

TINY = {"embedding_dim": 4, "hidden_units": [8]}
EXTRA = {
    "dcn_mix": {"low_rank": 2, "num_experts": 2},
    "xdeepfm": {"cin_units": [4, 4]},
    "din": {"attention_hidden": [4]},
    "dmr": {"cmp_dim": 4},
    "mmoe": {"num_experts": 2, "tower_hidden": [4]},
    "snr": {"tower_hidden": [4]},
    "nas": {"candidate_sizes": [2, 4]},
    "can": {"coaction_dim": 2},
}


def fit_one_epoch(model, ds):
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss={k: "binary_crossentropy" for k in ds.schema.label_names},
        run_eagerly=True,
    )
    hist = model.fit(data.keras_dataset(ds.splits["train"], 96, label_format="dict"), epochs=1, verbose=0)
    return hist.history["loss"][-1]


def check_model(name, tiny, tmp_path):
    model = models.get_model(name, tiny.schema, **TINY, **EXTRA.get(name, {}))
    assert set(model.output) == set(tiny.schema.label_names)
    before = [np.array(w) for w in model.trainable_weights]
    loss = fit_one_epoch(model, tiny)
    assert np.isfinite(loss)
    moved = [not np.allclose(b, np.array(w)) for b, w in zip(before, model.trainable_weights)]
    assert any(moved)
    x = tiny.splits["test"].features
    pred = model.predict(x, verbose=0)
    for lab in tiny.schema.label_names:
        assert pred[lab].shape == (len(tiny.splits["test"]), 1)
        assert np.all(np.isfinite(pred[lab])) and np.all((pred[lab] >= 0) & (pred[lab] <= 1))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    again = loaded.predict(x, verbose=0)
    for lab in tiny.schema.label_names:
        assert_allclose(again[lab], pred[lab], rtol=1e-5, atol=1e-6)
