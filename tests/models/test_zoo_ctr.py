"""CTR zoo models: each builds, trains one epoch on tiny data and round-trips through .keras."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reclayers import data, models
from reclayers.models import blocks
from tests.contract import assert_allclose
from tests.models.helpers import TINY, check_model

CTR = ["lr", "mlp", "wide_deep", "deepfm", "dcn", "dcn_v2", "dcn_mix", "xdeepfm", "autoint", "fibinet", "can"]


@pytest.mark.parametrize("name", CTR)
def test_model_trains_and_round_trips(name, tiny, tmp_path):
    check_model(name, tiny, tmp_path)


def test_shared_tables(tiny):
    """``hist_C1`` shares ``C1``'s table: one Embedding, sized by the fitted vocabulary."""
    model = models.get_model("mlp", tiny.schema, **TINY)
    names = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Embedding)]
    assert sorted(names) == ["emb_C1", "emb_C2", "emb_C3"]
    assert model.get_layer("emb_C1").input_dim == tiny.schema["C1"].num_buckets


def test_masked_mean_pooling_ignores_padding():
    x = np.arange(24, dtype="float32").reshape(2, 4, 3)
    mask = np.array([[True, True, False, False], [False] * 4])
    out = np.asarray(blocks.MaskedMeanPooling()([x, mask]))
    assert_allclose(out[0], x[0, :2].mean(0))
    assert_allclose(out[1], np.zeros(3))
    x2 = x.copy()
    x2[0, 2:] = 1e6  # padded values never matter
    assert_allclose(np.asarray(blocks.MaskedMeanPooling()([x2, mask])), out)


def test_fm_interaction_matches_pairwise_sum():
    v = np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32")
    pairs = [(i, j) for i in range(5) for j in range(i + 1, 5)]
    expected = np.array([[sum(v[b, i] @ v[b, j] for i, j in pairs)] for b in range(3)])
    assert_allclose(np.asarray(blocks.FMInteraction()(v)), expected, rtol=1e-4, atol=1e-5)


def test_registry_errors(tiny):
    with pytest.raises(ValueError, match=r"models: name must be one of .*; got 'nope'"):
        models.get_model("nope", tiny.schema)
    with pytest.raises(ValueError, match=r"config keys of 'deepfm' must be among .*; got \['widht'\]"):
        models.get_model("deepfm", tiny.schema, widht=3)
    with pytest.raises(ValueError, match=r"config key 'hidden' is now 'hidden_units'; got hidden=\[8\]"):
        models.get_model("deepfm", tiny.schema, hidden=[8])
    assert "hidden" not in models.default_config("deepfm")
    for bad in ("false", 0, None):  # --set weight_norm="false" must not read as true
        with pytest.raises(ValueError, match=r"config key 'weight_norm' of 'dcn_v2' must be true or false"):
            models.get_model("dcn_v2", tiny.schema, weight_norm=bad)
    flat = data.make_synthetic(100, n_dense=1, n_categorical=2, vocab_size=5, seed=0)
    with pytest.raises(ValueError, match="needs a behaviour sequence"):
        models.get_model("din", flat.schema)
    unfitted = data.Schema(features=(data.CategoricalFeature("a"),), labels=(data.Label("y"),))
    with pytest.raises(ValueError, match=r"feature 'a' must have num_buckets >= 2"):
        models.get_model("lr", unfitted)
    assert models.resolve_name("DCN-V2") == "dcn_v2"
    from reclayers._model_names import MODEL_NAMES

    assert tuple(models.MODELS) == MODEL_NAMES  # the list the command line checks without Keras
    assert models.default_config("dcn_mix")["low_rank"] == 32


@pytest.mark.parametrize("name", ["dcn_v2", "nas", "snr"])
def test_plain_towers_and_embedded_numerics_only(name, tiny):
    """``weight_norm=False``: no tower Dense carries a norm gain (plain ``x @ W + b``);
    ``raw_numeric=False``: the flat field vector holds the numeric embeddings without the raw
    values, so the cross network and the towers are ``n_dense`` narrower. The defaults keep both."""
    from reclayers.layers.dense import Dense

    def tower_dense(model):
        return [d for d in model._flatten_layers() if isinstance(d, Dense) and
                any(n in d.path for n in ("deep", "subnet", "tower"))]

    default = models.get_model(name, tiny.schema, **TINY)
    plain = models.get_model(name, tiny.schema, **TINY, weight_norm=False, raw_numeric=False)
    assert default.count_params() > plain.count_params()
    assert tower_dense(default) and all(d.allow_kernel_norm and d.trainable_kernel_norm is not None
                                        for d in tower_dense(default))
    assert tower_dense(plain) and not any(d.allow_kernel_norm or d.trainable_kernel_norm is not None
                                          for d in tower_dense(plain))
    n_dense = len(tiny.schema.dense)
    first = {id(m): tower_dense(m)[0].kernel.shape[0] for m in (default, plain)}
    assert first[id(default)] - first[id(plain)] == n_dense
    if name == "dcn_v2":
        assert default.get_layer("cross").input_dim - plain.get_layer("cross").input_dim == n_dense
    x = {k: v[:8] for k, v in tiny.splits["train"].features.items()}
    assert np.isfinite(keras.ops.convert_to_numpy(plain(x)["click"])).all()


def test_flat_fields_after_stacking_are_the_fields_in_order(tiny):
    """``flat()`` after ``stacked()`` flattens the stack (one gradient addition for both uses)
    and still equals ``concat(fields + [raw numeric values])``."""
    inputs = blocks.make_inputs(tiny.schema)
    emb = blocks.embed_features(tiny.schema, inputs, 4)
    fields = list(emb.fields.values())
    want = keras.layers.Concatenate(axis=-1, name="want_flat")(fields + [emb.numeric])
    emb.stacked()
    model = keras.Model(inputs, [emb.flat(), want])
    assert isinstance(model.get_layer("flat_fields_stacked"), keras.layers.Flatten)
    x = {k: v[:8] for k, v in tiny.splits["train"].features.items()}
    got, expected = (keras.ops.convert_to_numpy(t) for t in model(x))
    np.testing.assert_array_equal(got, expected)
