"""Schema serialisation/validation and the preprocessing maths (NumPy references written from the
docstrings' definitions)."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pyarrow as pa
import pytest

from reclayers.data import (
    CategoricalFeature,
    DenseFeature,
    Label,
    Preprocessor,
    Schema,
    SequenceFeature,
    hash_bucket,
    pad_sequences,
)


def _schema():
    return Schema(
        features=(DenseFeature("d", fill="median", log=True, standardize=True),
                  DenseFeature("q", fill="constant", fill_value=-1.0, num_bins=4),
                  CategoricalFeature("item", min_freq=2, table="items", embedding_dim=16),
                  CategoricalFeature("h", encoding="hash", num_buckets=11),
                  SequenceFeature("hist", table="items", max_len=3)),
        labels=(Label("y", column="label"),), name="toy", time_column="ts")


def _raw():
    return {"d": np.array([0.0, 1.0, np.nan, 9.0, 99.0]),
            "q": np.array([1.0, 2.0, 3.0, np.nan, 5.0]),
            "item": pa.array(["a", "b", "a", "c", "b"]),
            "h": pa.array(["x", "y", "x", "", "z"]),
            "hist": pa.array([["a"], [], ["b", "a", "c", "a"], ["zz", "b"], ["a", "", "b"]],
                             pa.list_(pa.string())),
            "label": np.array([1, 0, 1, 0, 1], np.float32)}


def test_schema_json_round_trip(tmp_path):
    s = _schema()
    again = Schema.from_json(s.to_json())
    assert again == s
    s.save(tmp_path / "schema.json")
    assert Schema.load(tmp_path / "schema.json") == s
    d = json.loads(s.to_json())
    assert d["features"][0] == {"kind": "dense", "name": "d", "fill": "median", "log": True,
                                "standardize": True}
    assert s.tables() == {"items": ["item", "hist"], "h": ["h"]}
    assert s.batch_spec()["hist_mask"] == ((3,), "bool") and s.batch_spec()["q"] == ((), "int32")


@pytest.mark.parametrize("make,msg", [
    (lambda: DenseFeature("x", fill="mode"), "DenseFeature: fill must be one of"),
    (lambda: DenseFeature("x", num_bins=1), "DenseFeature: num_bins must be 0"),
    (lambda: DenseFeature(""), "DenseFeature: name must be a non-empty string"),
    (lambda: CategoricalFeature("c", encoding="hash"), "CategoricalFeature: num_buckets must be an int >= 2"),
    (lambda: CategoricalFeature("c", encoding="onehot"), "CategoricalFeature: encoding must be one of"),
    (lambda: CategoricalFeature("c", min_freq=0), "CategoricalFeature: min_freq must be an int >= 1"),
    (lambda: SequenceFeature("s", max_len=0), "SequenceFeature: max_len must be an int >= 1"),
    (lambda: SequenceFeature("s", truncate="mid"), "SequenceFeature: truncate must be"),
    (lambda: Schema(features=(DenseFeature("a"), CategoricalFeature("a"))),
     "Schema: feature and label names"),
    (lambda: Schema(features=(CategoricalFeature("a", table="t"),
                              CategoricalFeature("b", table="t", encoding="hash", num_buckets=5))),
     "Schema: features sharing table 't' must be the same encoding"),
    (lambda: Schema.from_dict({"features": [{"kind": "wide", "name": "a"}]}), "Schema: feature kind"),
])
def test_schema_validation(make, msg):
    with pytest.raises(ValueError, match=msg):
        make()


def test_pad_sequences_reference():
    flat = np.array([5, 6, 7, 8, 9, 10])
    offsets = np.array([0, 0, 2, 6])  # rows: [], [5,6], [7,8,9,10]
    ids, mask = pad_sequences(flat, offsets, 3, truncate="pre", pad="post")
    assert ids.tolist() == [[0, 0, 0], [5, 6, 0], [8, 9, 10]]
    assert mask.tolist() == [[False] * 3, [True, True, False], [True] * 3]
    ids, _ = pad_sequences(flat, offsets, 3, truncate="post", pad="pre")
    assert ids.tolist() == [[0, 0, 0], [0, 5, 6], [7, 8, 9]]
    ids, mask = pad_sequences(np.zeros(0, int), np.array([0, 0]), 2)
    assert ids.tolist() == [[0, 0]] and not mask.any()


def test_hash_is_stable_crc32():
    ids = hash_bucket(pa.array(["x", "y", "x"]), 11)
    ref = [1 + zlib.crc32(s.encode()) % 10 for s in ["x", "y", "x"]]
    assert ids.tolist() == ref


def test_preprocessor_reference(tmp_path):
    pre = Preprocessor(_schema()).fit([_raw()])
    feats, labels = pre.transform(_raw())
    # dense "d": median fill of the observed raw values, sign*log1p, standardised with observed stats
    obs = np.array([0.0, 1.0, 9.0, 99.0])
    med = np.median(obs)
    t_obs = np.log1p(obs)
    x = np.log1p(np.array([0.0, 1.0, med, 9.0, 99.0]))
    np.testing.assert_allclose(feats["d"], (x - t_obs.mean()) / t_obs.std(), rtol=1e-5)
    # "q": constant fill -1, quartile boundaries of the observed values, ids 1..4
    b = np.unique(np.quantile([1.0, 2.0, 3.0, 5.0], [0.25, 0.5, 0.75]))
    assert feats["q"].tolist() == (np.searchsorted(b, [1, 2, 3, -1, 5], side="right") + 1).tolist()
    assert feats["q"].dtype == np.int32
    # shared vocabulary "items": counts over item + hist: a=5, b=4, c=2, zz=1 -> min_freq 2 keeps a,b,c
    assert pre.vocabs["items"] == ["a", "b", "c"]
    assert feats["item"].tolist() == [2, 3, 2, 4, 3]
    assert feats["hist"].tolist() == [[2, 0, 0], [0, 0, 0], [2, 4, 2], [1, 3, 0], [2, 3, 0]]
    assert feats["hist_mask"].sum(1).tolist() == [1, 0, 3, 2, 2]
    assert feats["h"].tolist() == [1 + zlib.crc32(s.encode()) % 10 for s in ["x", "y", "x", "", "z"]]
    assert labels["y"].tolist() == [1, 0, 1, 0, 1]
    out = pre.output_schema()
    assert out["item"].num_buckets == out["hist"].num_buckets == 5 and out["h"].num_buckets == 11
    assert pre.num_buckets("q") == len(b) + 2
    # statistics survive JSON and give the same batches
    pre.save(tmp_path / "pre.json")
    again = Preprocessor.load(tmp_path / "pre.json")
    f2, _ = again.transform(_raw())
    for k in feats:
        np.testing.assert_array_equal(feats[k], f2[k])


def test_unseen_values_go_to_oov_and_fit_sees_train_only():
    pre = Preprocessor(_schema()).fit([_raw()])
    raw = _raw()
    raw["item"] = pa.array(["a", "new", "zz", "c", "b"])
    feats, _ = pre.transform(raw)
    assert feats["item"].tolist() == [2, 1, 1, 4, 3]


def test_vocab_cap_by_num_buckets():
    s = Schema(features=(CategoricalFeature("c", num_buckets=4),), labels=(Label("y"),))
    pre = Preprocessor(s).fit([{"c": pa.array(list("aaabbc")), "y": np.zeros(6)}])
    assert pre.vocabs["c"] == ["a", "b"] and pre.num_buckets("c") == 4


def test_unfitted_transform_raises():
    with pytest.raises(ValueError, match="Preprocessor: fit"):
        Preprocessor(_schema()).transform(_raw())


def test_fit_streams_over_chunks_like_one_chunk():
    raw = _raw()
    from reclayers.data import take_chunk

    whole = Preprocessor(_schema()).fit([raw])
    parts = Preprocessor(_schema()).fit([take_chunk(raw, [0, 1]), take_chunk(raw, [2, 3, 4])])
    assert whole.vocabs == parts.vocabs
    for k in ("fill", "mean", "std", "boundaries"):
        np.testing.assert_allclose(whole.dense_stats["q"].get(k, 0), parts.dense_stats["q"].get(k, 0))


def test_vocab_lookup_small_and_large_tables_agree():
    """The two lookups (Arrow ``index_in`` for small vocabularies, sorted hashes for large ones)
    give the same ids, unseen and empty values included."""
    import pyarrow as pa

    from reclayers.data.preprocess import _VocabLookup

    rng = np.random.default_rng(0)
    vocab = [f"v{i}" for i in rng.permutation(500)]
    values = pa.array([f"v{i}" for i in rng.integers(0, 700, 5000)] + ["", "v1"])
    small, large = _VocabLookup(vocab), _VocabLookup(vocab, small=0)
    a, b = small(values), large(values)
    assert a.dtype == b.dtype == np.int32 and np.array_equal(a, b)
    assert a[-2] == 1 and a[-1] == vocab.index("v1") + 2 and (a == 1).any()
