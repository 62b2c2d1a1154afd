"""``reclayers.models.serving``: the in-graph preprocessing reproduces ``Preprocessor.transform``."""

from __future__ import annotations

import keras
import numpy as np
import pyarrow as pa
import pytest

from reclayers.data import CategoricalFeature, DenseFeature, Label, Preprocessor, Schema, SequenceFeature
from tests.conftest import AGNOSTIC_BACKEND

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != AGNOSTIC_BACKEND,
    reason=f"TensorFlow ops only, whatever the Keras backend: runs under {AGNOSTIC_BACKEND}",
)


def _chunk(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)

    def dense():
        x = rng.normal(size=n) * 10
        x[rng.random(n) < 0.2] = np.nan
        return x

    words = np.array(["paris", "rome", "oslo", "", "köln", "a b", "x" * 40])
    return {
        "a": dense(), "b": dense(), "c": dense(), "d": dense(),
        "city": pa.array([None if rng.random() < 0.1 else str(w) for w in rng.choice(words, n)]),
        "h": rng.integers(0, 1000, n),  # numbers hashed as their text
        "city2": rng.choice(words, n),
        "hist": pa.array([list(rng.choice(words, rng.integers(0, 7))) for _ in range(n)],
                         pa.list_(pa.string())),
        "hh": pa.array([list(rng.choice(["1", "22", "333", ""], rng.integers(0, 6))) for _ in range(n)],
                       pa.list_(pa.string())),
        "click": rng.integers(0, 2, n).astype(float),
    }


SCHEMA = Schema(
    features=(
        DenseFeature("a", fill="mean", log=True),
        DenseFeature("b", fill="median", num_bins=5),
        DenseFeature("c", fill="zero", standardize=True),
        DenseFeature("d", fill="constant", fill_value=-3.0, log=True, num_bins=4),
        CategoricalFeature("city", min_freq=2),
        CategoricalFeature("h", encoding="hash", num_buckets=97),
        CategoricalFeature("city2", table="city"),
        SequenceFeature("hist", table="city", max_len=4, separator="|"),
        SequenceFeature("hh", encoding="hash", num_buckets=50, max_len=3, truncate="post", pad="pre"),
    ),
    labels=(Label("click"),),
)


@pytest.mark.parametrize("growing", [False, True], ids=["fixed", "growing"])
def test_graph_preprocessing_equals_preprocessor(growing):
    """Every encoding (fills, log, bins, standardising, shared vocabulary, CRC32 hashing of text and
    numbers, sequences with both truncations and paddings), on rows the fit did not see; also for a
    growing vocabulary (ids kept where first given, unseen values in hashed fallback buckets)."""
    import tensorflow as tf

    from reclayers.models.serving import _Encoder, serving_inputs

    if growing:
        pre = Preprocessor(SCHEMA, min_count=3, oov_buckets=5).fit([_chunk(40, 0)]).update([_chunk(300, 2)])
        assert pre.tables_state["city"]["oov_buckets"] == 5
    else:
        pre = Preprocessor(SCHEMA).fit([_chunk(300, 0)])
    chunk = _chunk(200, 1)
    want, _ = pre.transform(chunk)
    raw = {k: tf.constant(v.astype(str).astype(object) if v.dtype == object else v)
           for k, v in serving_inputs(pre, chunk).items()}
    got = tf.function(_Encoder(pre))(raw)
    assert sorted(got) == sorted(want)
    for name, expected in want.items():
        np.testing.assert_array_equal(got[name].numpy(), expected, err_msg=name)


def test_crc32_matches_zlib():
    import zlib

    import tensorflow as tf

    from reclayers.models.serving import _Encoder

    values = ["", "a", "köln", "x" * 300, "\x00\xff", "12345"]
    got = _Encoder(Preprocessor(SCHEMA).fit([_chunk(50, 0)])).crc32(tf.constant(values)).numpy()
    assert got.tolist() == [zlib.crc32(v.encode("utf-8")) for v in values]
