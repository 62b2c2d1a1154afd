"""Growing vocabularies and synthetic days (backend-independent: run under one backend)."""

import numpy as np
import pytest

from reclayers.cli.datasets import UsageError, parse_spec, synthetic_spec
from reclayers.data import CategoricalFeature, Label, Preprocessor, Schema, SequenceFeature, make_synthetic
from reclayers.data.schema import OOV_ID

SCHEMA = Schema(features=(CategoricalFeature("item"), SequenceFeature("hist", table="item", max_len=3)),
                labels=(Label("click"),))


def chunk(items, hist=None):
    import pyarrow as pa

    hist = hist if hist is not None else [[i] for i in items]
    return {"item": np.array(items), "hist": pa.array(hist, pa.list_(pa.string())),
            "click": np.zeros(len(items))}


def test_existing_ids_keep_their_encoding_and_admission_is_after_exactly_n_sightings():
    day1 = chunk(["a", "a", "a", "b", "c"])
    pre = Preprocessor(SCHEMA, min_count=3, oov_buckets=4, block=16).fit([day1])
    assert pre.vocabs["item"] == ["a"]  # a: 3 + 3 (hist) sightings; b, c: 2 each
    probe = chunk(["a", "b", "c", "z", ""])
    before = pre.transform(probe)[0]
    grown = pre.update([chunk(["b"], hist=[[]])])  # b: 3 sightings in all -> admitted; c: still 2
    after = grown.transform(probe)[0]
    assert after["item"][0] == before["item"][0]  # existing id: same id
    st = grown.tables_state["item"]
    b_id = int(st["ids"][grown.vocabs["item"].index("b")])
    assert after["item"][1] == b_id and before["item"][1] != b_id
    buckets = range(st["oov_base"], st["oov_base"] + 4)
    assert after["item"][2] in buckets and after["item"][3] in buckets  # pending / unseen: fallback rows
    assert after["item"][4] == OOV_ID  # a missing value is not an id
    assert grown.report["item"]["admitted"] == 1 and grown.report["item"]["pending"] == 1  # c pending
    assert grown.num_buckets("item") == 16  # one block
    again = grown.update([chunk(["c"], hist=[[]])])  # c's third sighting over three fits
    assert "c" in again.vocabs["item"] and again.transform(probe)[0]["item"][1] == b_id
    assert pre.vocabs["item"] == ["a"]  # update returns a copy


def test_growth_survives_save_and_load_and_grows_in_blocks(tmp_path):
    pre = Preprocessor(SCHEMA, block=4).fit([chunk(["a", "b"])])
    assert pre.num_buckets("item") == 4  # 2 reserved + 2 ids
    pre.save(tmp_path / "p.json")
    loaded = Preprocessor.load(tmp_path / "p.json")
    grown = loaded.update([chunk(["c", "d", "e"])])
    assert grown.num_buckets("item") == 8 and grown.report["item"]["used"] == 7
    x = grown.transform(chunk(["a", "b", "e"]))[0]["item"]
    assert x.tolist()[:2] == pre.transform(chunk(["a", "b"]))[0]["item"].tolist() and x[2] == 6


def test_plain_parent_grows_and_bad_options_are_refused():
    pre = Preprocessor(SCHEMA).fit([chunk(["a", "b"])])  # a frozen vocabulary, no growth state
    grown = pre.update([chunk(["c"])], oov_buckets=2)
    assert grown.transform(chunk(["a", "b"]))[0]["item"].tolist() == [2, 3]
    assert grown.tables_state["item"]["oov_base"] == 4 and grown.vocab_ids("item").tolist() == [2, 3, 6]
    with pytest.raises(ValueError, match="cannot be resized"):
        grown.update([chunk(["d"])], oov_buckets=3)
    with pytest.raises(ValueError, match="min_count"):
        Preprocessor(SCHEMA, min_count=0)


def test_synthetic_days_bring_new_ids_and_one_day_is_the_same_rows():
    ds = make_synthetic(n_rows=1400, days=7, vocab_size=30, seed=1)
    assert sorted(ds.bayes_by_day) == list(range(1, 8))
    assert all(0.5 < m["click"]["auc"] <= 1 for m in ds.bayes_by_day.values())
    day = ds.raw["day"]
    assert (np.diff(day) >= 0).all() and ds.schema.time_column == "day"
    c1 = np.asarray(ds.raw["C1"])
    assert len(set(c1[day == 7]) - set(c1[day == 1])) > 5  # new ids on day 7
    d7 = make_synthetic(n_rows=1400, days=7, vocab_size=30, seed=1, day=7)
    np.testing.assert_array_equal(np.asarray(d7.raw["C1"]), np.asarray(ds.raw["C1"])[day == 7])
    one = make_synthetic(n_rows=300, seed=0, days=1)
    assert make_synthetic(n_rows=300, seed=0).raw["C1"].equals(one.raw["C1"])


def test_synthetic_spec():
    assert synthetic_spec("700,days=7,day=2") == {"rows": 700, "days": 7, "day": 2}
    assert parse_spec("synthetic:days=7") == ("synthetic", "days=7")
    for bad in ("synthetic:days=0", "synthetic:day=3", "synthetic:x=1", "synthetic:abc"):
        with pytest.raises(UsageError):
            parse_spec(bad)
