"""Sequence, multi-task and NAS zoo models: one epoch on tiny data, .keras round trip."""

from __future__ import annotations

import pytest

from reclayers import models
from tests.models.helpers import TINY, check_model, fit_one_epoch


@pytest.mark.parametrize("name", ["din", "dien", "dmr", "mmoe", "snr", "nas"])
def test_model_trains_and_round_trips(name, tiny, tmp_path):
    check_model(name, tiny, tmp_path)


def test_nas_search_then_retrain(tiny):
    search = models.get_model("nas", tiny.schema, **TINY, candidate_sizes=[2, 4])
    assert search.name == "nas_search"
    fit_one_epoch(search, tiny)
    sizes = models.nas_architecture(search, tiny.schema)
    assert set(sizes) == {"C1", "C2", "C3"} and set(sizes.values()) <= {2, 4}
    final = models.get_model("nas", tiny.schema, **TINY, candidate_sizes=[2, 4], embedding_sizes=sizes)
    assert final.name == "nas_retrain"
    for table, width in sizes.items():
        assert final.get_layer(f"emb_{table}").output_dim == width
    fit_one_epoch(final, tiny)
