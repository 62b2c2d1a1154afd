"""Scoring on the current backend: :func:`reclayers.training.evaluation.predict` (batches sliced
from the split, the last one padded to the compiled shape) gives ``model.predict``'s predictions,
in row order, for one and two labels, a short last batch and a split shorter than a batch."""

from __future__ import annotations

import numpy as np
import pytest

from reclayers import data, models
from reclayers.metrics import auc
from reclayers.training.evaluation import predict, predict_keras


@pytest.fixture(scope="module")
def two_labels():
    ds = data.make_synthetic(n_rows=1000, seed=0, second_task=True, ratios=(0.5, 0.2, 0.3))
    model = models.compile_model(models.get_model("mmoe", ds.schema), ds.schema)
    return ds, model


@pytest.mark.parametrize("batch_size", [64, 1000])  # 300 rows: a short last batch; one batch of 300
def test_predict_equals_model_predict(two_labels, batch_size):
    ds, model = two_labels
    test = ds.splits["test"]
    fast, ref = predict(model, test, batch_size), predict_keras(model, test, batch_size)
    assert set(fast) == set(ref) == set(ds.schema.label_names)
    for k in ref:
        assert fast[k].shape == (len(test),) and fast[k].dtype == ref[k].dtype
        np.testing.assert_allclose(fast[k], ref[k], rtol=1e-5, atol=1e-6)
    # row order: permuting the split permutes the predictions
    perm = np.random.default_rng(0).permutation(len(test))
    shuffled = predict(model, test.take(perm), batch_size)
    for k in ref:
        np.testing.assert_allclose(shuffled[k], fast[k][perm], rtol=1e-5, atol=1e-6)


def test_predict_with_shards_pads_and_trims(two_labels):
    ds, model = two_labels
    valid = ds.splits["valid"]  # 200 rows; shards=3 pads to 201 and trims
    out = predict(model, valid, batch_size=64, shards=3)
    ref = predict_keras(model, valid, batch_size=64)
    for k in ref:
        np.testing.assert_allclose(out[k], ref[k], rtol=1e-5, atol=1e-6)


def test_auc_of_many_rows_is_fast_and_exact():
    import time

    rng = np.random.default_rng(0)
    y = rng.random(400_000) < 0.25
    p = np.round(rng.random(400_000) + 0.1 * y, 3).astype(np.float32)  # many ties
    t = time.perf_counter()
    value = auc(y, p)
    assert time.perf_counter() - t < 5.0  # about 0.05 s unloaded
    # brute force on a subsample agrees (ties count one half)
    ys, ps = y[:2000], p[:2000].astype(np.float64)
    pos, neg = ps[ys], ps[~ys]
    wins = (pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()
    brute = wins / (pos.size * neg.size)
    assert auc(ys, ps) == pytest.approx(brute, abs=1e-12)
    assert 0.5 < value < 1.0
