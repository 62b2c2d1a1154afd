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


def test_expiry_frees_ids_of_values_unseen_for_d_runs_and_recycles_them():
    pre = Preprocessor(SCHEMA, expire_after=2, block=8).fit([chunk(["a", "b", "c"])])
    ids = dict(zip(pre.vocabs["item"], pre.vocab_ids("item").tolist()))
    day2 = pre.update([chunk(["a"])])  # b, c: unseen for 1 run, kept
    assert day2.vocabs["item"] == pre.vocabs["item"] and day2.report["item"]["expired"] == 0
    day3 = day2.update([chunk(["a", "d"])])  # b, c unseen in the last 2 runs: dropped; d takes a freed id
    assert sorted(day3.vocabs["item"]) == ["a", "d"] and day3.report["item"]["expired"] == 2
    d_id = int(day3.vocab_ids("item")[day3.vocabs["item"].index("d")])
    assert d_id == min(ids["b"], ids["c"]) and day3.report["item"]["recycled"] == 1
    assert day3.recycled_ids()["item"].tolist() == sorted([ids["b"], ids["c"]])
    x = day3.transform(chunk(["a", "b", "d"]))[0]["item"].tolist()
    assert x == [ids["a"], OOV_ID, d_id]  # a forgotten value is unseen again (its counts are gone)
    assert day3.tables_state["item"]["free"] == [max(ids["b"], ids["c"])]
    day4 = Preprocessor.from_dict(day3.to_dict())  # the state survives saving
    day4 = day4.update([chunk(["a", "d", "e", "f"])])  # e: the last free id, f: a new one
    got = dict(zip(day4.vocabs["item"], day4.vocab_ids("item").tolist()))
    assert got["e"] == max(ids["b"], ids["c"]) and got["f"] == 5
    assert day4.recycled_ids()["item"].tolist() == [4]


def test_expiry_by_time_counts_days_of_the_rows_and_bounds_the_table():
    """14 days, each with 20 ids of its own and 5 shared: with expiry after 2 days the table
    holds about 2 days of ids; without, every id ever seen."""
    def day(d):
        items = [f"s{i}" for i in range(5)] + [f"d{d}_{i}" for i in range(20)]
        return {**chunk(items), "_time": np.full(len(items), d * 86400.0)}

    grow = Preprocessor(SCHEMA, min_count=1, block=16).fit([day(1)])
    expire = Preprocessor(SCHEMA, expire_after=2, expire_by="time", block=16).fit([day(1)])
    sizes = []
    for d in range(2, 15):
        grow, expire = grow.update([day(d)]), expire.update([day(d)])
        sizes.append(expire.num_buckets("item"))
        assert expire.report["item"]["ids"] == 5 + 2 * 20  # today's and yesterday's
    assert max(sizes) <= 64 and grow.num_buckets("item") >= 2 + 5 + 14 * 20
    with pytest.raises(ValueError, match="_time"):
        Preprocessor(SCHEMA, expire_after=1, expire_by="time").fit([chunk(["a"])])
    with pytest.raises(ValueError, match="expire_after"):
        Preprocessor(SCHEMA, expire_after=0)


def test_adaptive_growth_step():
    from reclayers.data.preprocess import growth_step

    pre = Preprocessor(SCHEMA, min_count=1).fit([chunk([f"v{i}" for i in range(1038)])])
    assert pre.report["item"]["used"] == 1040 and pre.num_buckets("item") == 1280  # not 2048
    small = Preprocessor(SCHEMA, min_count=1).fit([chunk(["a", "b"])])
    assert small.num_buckets("item") == 64
    assert [growth_step(n) for n in (1, 512, 513, 100_000)] == [64, 64, 128, 16384]


def test_long_tail_of_rare_ids_and_min_count_keeps_them_out_of_the_table():
    ds = make_synthetic(n_rows=3000, days=3, day=2, vocab_size=30, seed=2, tail=0.3)
    c1 = np.asarray(ds.raw["C1"].to_numpy(zero_copy_only=False))
    rare = np.char.startswith(c1.astype(str), "r1-2-")
    assert 0.25 < rare.mean() < 0.35
    _, seen = np.unique(c1[rare], return_counts=True)
    assert np.median(seen) <= 2 and seen.max() < 10  # most rare ids seen once or twice
    whole = make_synthetic(n_rows=3000, days=3, vocab_size=30, seed=2, tail=0.3)
    np.testing.assert_array_equal(np.asarray(whole.raw["C1"])[whole.raw["day"] == 2], c1)  # day alone = slice
    raw = ds.raw_split("train")
    one = Preprocessor(ds.preprocessor.schema, min_count=1).fit([raw])
    five = Preprocessor(ds.preprocessor.schema, min_count=5, oov_buckets=8).fit([raw])
    assert five.report["C1"]["ids"] < one.report["C1"]["ids"] / 3
    assert parse_spec("synthetic:700,days=7,tail=30") == ("synthetic", "700,days=7,tail=30")
    for bad in ("synthetic:tail=100", "synthetic:tail=0"):
        with pytest.raises(UsageError):
            parse_spec(bad)
