"""The search-then-retrain example runs end to end on tiny data."""

from __future__ import annotations

import importlib.util

import keras
import numpy as np

from tests.conftest import REPO_ROOT


def _load_example():
    path = REPO_ROOT / "examples" / "nas_search_then_retrain.py"
    spec = importlib.util.spec_from_file_location("nas_search_then_retrain", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_search_then_retrain_shrinks_the_embeddings():
    example = _load_example()
    result = example.main(steps=8, batch_size=32, evaluate=False)
    arch = result["architecture"]
    assert [a["name"] for a in arch] == example.FEATURES
    assert all(s in (0, 2, 4, 8) for s in result["sizes"])
    assert result["search_columns"] == 32
    assert 0 < result["retrained_columns"] < result["search_columns"]
    model = result["retrain_model"]
    widths = [layer.output_dim for layer in model.layers if layer.name.startswith("emb_")]
    assert sum(widths) == result["retrained_columns"]
    x, _ = example.make_data(5, seed=1)
    assert np.all(np.isfinite(np.asarray(keras.ops.convert_to_numpy(model(x)))))
