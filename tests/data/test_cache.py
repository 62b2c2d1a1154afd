"""The on-disk data cache: two streaming passes, reuse and invalidation by key, streaming splits
(seeded hash, time, separate files), one batch order in memory and on disk, batch-exact resume,
malformed rows reported in every pass, schema files, parquet, schema inference."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reclayers import data as rd
from reclayers.data import dataset as ds_mod
from reclayers.data.cache import CacheError, build_cache
from reclayers.data.infer import infer_schema
from reclayers.data.splits import RandomSplit, TimeSplit

SCHEMA = rd.Schema(features=(rd.DenseFeature("rid", fill="zero"), rd.CategoricalFeature("user"),
                             rd.DenseFeature("t", fill="zero")),
                   labels=(rd.Label("click"),), time_column="t")


def _csv(path, n, seed=0, bad_lines=()):
    rng = np.random.default_rng(seed)
    lines = ["rid,user,t,click"]
    for i in range(n):
        lines.append(f"{i},u{rng.integers(50)},{rng.integers(1000)},{rng.integers(2)}")
    for at in bad_lines:  # a wrong field count and a bad number
        lines.insert(at, "1,2")
        lines.insert(at + 1, "x,u1,3,1")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return _csv(tmp_path_factory.mktemp("d") / "log.csv", 3000, bad_lines=(10, 2000))


def _counting(source):
    calls = []
    original = source._chunk_fn
    source._chunk_fn = lambda errors: (calls.append(1), original(errors))[1]
    return source, calls


def test_two_passes_then_reuse_and_invalidation(table, tmp_path):
    copy = tmp_path.parent / f"{tmp_path.name}.csv"  # a copy: this test changes the file
    copy.write_bytes(table.read_bytes())
    table = copy
    src, calls = _counting(rd.read_csv(table, SCHEMA, block_size=1 << 14))
    pre, splits, info = build_cache(src, tmp_path, seed=3)
    assert len(calls) == 2 and not info["reused"]  # fit + encode, nothing more
    assert {k: len(v) for k, v in splits.items()} == info["rows"] and sum(info["rows"].values()) == 3000
    for phase in ("fit", "encode"):  # malformed rows are counted in every pass
        assert info["report"][phase]["skipped"] == 4
        assert info["report"][phase]["reasons"] == {"bad number": 2, "field count": 2}
    src2, calls2 = _counting(rd.read_csv(table, SCHEMA))
    _, again, info2 = build_cache(src2, tmp_path, seed=3)
    assert calls2 == [] and info2["reused"] and info2["folder"] == info["folder"]
    np.testing.assert_array_equal(again["test"].features["rid"], splits["test"].features["rid"])
    other = rd.Schema(features=SCHEMA.features[:2], labels=SCHEMA.labels)
    assert build_cache(rd.read_csv(table, other), tmp_path, seed=3)[2]["folder"] != info["folder"]
    assert build_cache(rd.read_csv(table, SCHEMA), tmp_path, seed=4)[2]["folder"] != info["folder"]
    with open(table, "a") as fh:
        fh.write("3000,u1,5,1\n")
    changed = build_cache(rd.read_csv(table, SCHEMA), tmp_path, seed=3)[2]
    assert not changed["reused"] and sum(changed["rows"].values()) == 3001
    assert len([p for p in os.listdir(tmp_path) if not p.startswith(".")]) == 4  # no temp left


def test_random_split_disjoint_complete_and_chunking_free(table, tmp_path):
    _, splits, _ = build_cache(rd.read_csv(table, SCHEMA, block_size=1 << 12), tmp_path, seed=1)
    ids = [np.asarray(s.features["rid"]).astype(int) for s in splits.values()]
    assert sorted(np.concatenate(ids).tolist()) == list(range(3000))
    assert 2250 < len(ids[0]) < 2550 and 200 < len(ids[1]) < 400
    # the assignment is a function of the row number only (any chunking)
    assign = RandomSplit((0.8, 0.1, 0.1), seed=1).start_pass()
    whole = np.concatenate([assign({"x": np.zeros(1000)}) for _ in range(3)])
    np.testing.assert_array_equal(np.flatnonzero(whole == 0), np.sort(ids[0]))


def test_time_split_matches_in_memory(table, tmp_path):
    _, splits, info = build_cache(rd.read_csv(table, SCHEMA), tmp_path, by_time=True, ratios=(0.7, 0.2, 0.1))
    assert set(info["report"]) == {"time", "fit", "encode"}
    raw = rd.read_csv(table, SCHEMA).read_all()
    ref = rd.split_indices(len(raw["t"]), (0.7, 0.2, 0.1), time=raw["t"])
    for (name, split), idx in zip(splits.items(), ref):
        assert sorted(np.asarray(split.features["rid"]).astype(int).tolist()) == \
            sorted(raw["rid"][idx].astype(int).tolist()), name
    assert splits["train"].time.max() <= splits["valid"].time.min()
    with pytest.raises(ValueError, match="split: ratios must be non-negative"):
        TimeSplit((0.5, 0.2))


def test_separate_files_and_fitted_preprocessor(table, tmp_path):
    valid = _csv(tmp_path / "valid.csv", 200, seed=1)
    pre, splits, info = build_cache(rd.read_csv(table, SCHEMA), tmp_path / "c",
                                    valid=rd.read_csv(valid, SCHEMA), test=rd.read_csv(valid, SCHEMA))
    assert info["rows"] == {"train": 3000, "valid": 200, "test": 200}
    # fitted on train only: a user seen only in valid is out of vocabulary
    _, enc, info2 = build_cache(rd.read_csv(valid, SCHEMA), tmp_path / "c", preprocessor=pre, name="all")
    assert list(enc) == ["all"] and len(enc["all"]) == 200 and "fit" not in info2["report"]
    np.testing.assert_array_equal(enc["all"].features["user"], splits["valid"].features["user"])


def test_one_batch_order_in_memory_and_cached_with_exact_resume(table, tmp_path, monkeypatch):
    monkeypatch.setattr(ds_mod, "BLOCK_ROWS", 16)  # several blocks and windows on a small file
    monkeypatch.setattr(ds_mod, "WINDOW_BLOCKS", 4)
    _, splits, _ = build_cache(rd.read_csv(table, SCHEMA), tmp_path, seed=2)
    cached = splits["train"]
    memory = cached.take(np.arange(len(cached)))
    for epoch in (0, 1):
        a = list(cached.batches(100, seed=7, epoch=epoch))
        b = list(memory.batches(100, seed=7, epoch=epoch))
        assert len(a) == len(b) == cached.num_batches(100)
        for (xa, ya), (xb, yb) in zip(a, b):
            np.testing.assert_array_equal(xa["rid"], xb["rid"])
            np.testing.assert_array_equal(ya["click"], yb["click"])
        rows = np.concatenate([x["rid"] for x, _ in a]).astype(int)
        assert sorted(rows.tolist()) == sorted(np.asarray(cached.features["rid"]).astype(int).tolist())
        assert not np.array_equal(rows, np.asarray(cached.features["rid"]).astype(int))  # shuffled
        resumed = list(cached.batches(100, seed=7, epoch=epoch, start_batch=9))
        for (xa, _), (xr, _) in zip(a[9:], resumed):
            np.testing.assert_array_equal(xa["rid"], xr["rid"])
    first = np.concatenate([x["rid"] for x, _ in cached.batches(100, seed=7, epoch=0)])
    second = np.concatenate([x["rid"] for x, _ in cached.batches(100, seed=7, epoch=1)])
    assert not np.array_equal(first, second)
    ks = rd.keras_dataset(cached, batch_size=100, seed=7, start_epoch=1, start_batch=3)
    np.testing.assert_array_equal(ks[0][0]["rid"], list(cached.batches(100, seed=7, epoch=1))[3][0]["rid"])
    assert cached.num_batches(100, drop_remainder=True) == len(cached) // 100


def test_unwritable_cache_folder(table, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CacheError, match="cannot be written"):
        build_cache(rd.read_csv(table, SCHEMA), blocker / "cache")


def test_parquet_unlabeled_and_keep(tmp_path):
    pq.write_table(pa.table({"id": ["a", "b", "c"], "user": [1, 2, 1], "rid": [0.5, None, 2.0],
                             "t": [1, 2, 3], "click": [1, None, 0]}), tmp_path / "x.parquet")
    src = rd.read_parquet(tmp_path / "x.parquet", SCHEMA, keep=("id",))
    raw = src.read_all()
    assert raw["_keep/id"].to_pylist() == ["a", "c"] and src.errors.counts == {"empty label": 1}
    pq.write_table(pa.table({"user": [1], "rid": [0.5], "t": [1]}), tmp_path / "u.parquet")
    unl = rd.read_parquet(tmp_path / "u.parquet", SCHEMA, labeled=None).read_all()
    assert "click" not in unl
    with pytest.raises(rd.DataFormatError, match="missing columns"):
        rd.read_parquet(tmp_path / "u.parquet", SCHEMA)


def test_criteo_unlabeled_layout(tmp_path):
    rd.write_criteo(tmp_path / "t.txt", 30, vocab_size=10)
    lines = [ln.split("\t", 1)[1] for ln in (tmp_path / "t.txt").read_text().splitlines()]
    (tmp_path / "test.txt").write_text("\n".join(lines) + "\n")
    src = rd.criteo(tmp_path / "test.txt", keep=("C1",))
    pre = rd.Preprocessor(rd.criteo(tmp_path / "t.txt").schema).fit(rd.criteo(tmp_path / "t.txt").chunks())
    feats, labels = pre.transform(src.read_all())
    assert labels == {} and len(feats["C1"]) == 30 and len(src.read_all()["_keep/C1"]) == 30


def test_infer_schema_round_trip(table, tmp_path):
    schema = infer_schema(table, "csv", rows=8)  # the rows before the malformed ones
    assert schema.label_names == ("click",) and schema["user"].kind == "categorical"
    assert [f.name for f in schema.features] == ["rid", "user", "t"]
    schema.save(tmp_path / "s.json")
    src = rd.read_csv(table, rd.Schema.load(tmp_path / "s.json"))
    assert len(src.read_all()["click"]) == 3002  # rid is text now: only the 2 short rows are skipped
    with pytest.raises(ValueError, match="not in the file"):
        infer_schema(table, "csv", labels=["nope"])
