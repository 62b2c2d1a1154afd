"""Partition requests → mesh layouts (backend-neutral: meshes over named devices, no placement)."""

from __future__ import annotations

import keras
import pytest

from reclayers import distribute
from reclayers.layers.dense import Dense, requested_partitions

DEVICES = [f"cpu:{i}" for i in range(8)]


def mesh(model_shards=4, names=("batch", "model")):
    return keras.distribution.DeviceMesh((8 // model_shards, model_shards), names, DEVICES)


def built_dense(n_in=16, **kw):
    layer = Dense(8, **kw)
    layer.build((None, n_in))
    return layer


def test_requested_partitions_styles():
    assert requested_partitions("Dense", None, (4, 3)) is None
    assert requested_partitions("Dense", 5, (4, 3)) == (5, 1)
    assert requested_partitions("Dense", 2, (4, 3, 2)) == (2, 1, 1)
    seen = {}

    def tf1_style(shape, dtype):
        seen["args"] = (shape, dtype)
        return [1, 3]

    assert requested_partitions("Dense", tf1_style, (4, 3), "float32") == (1, 3)
    assert seen["args"] == ((4, 3), "float32")


@pytest.mark.parametrize("answer", [[1], [0, 1], None, "ab"])
def test_requested_partitions_bad_callable(answer):
    with pytest.raises(ValueError, match=r"^Dense: partitioner must be a callable returning 2 ints >= 1"):
        requested_partitions("Dense", lambda shape, dtype: answer, (4, 3))


def test_dense_kernel_partitions_and_config_unchanged():
    layer = built_dense(partitioner=4)
    assert layer.kernel_partitions() == (4, 1)
    assert built_dense().kernel_partitions() is None
    assert built_dense(partitioner=lambda s, d: (2, 2)).kernel_partitions() == (2, 2)
    assert Dense.from_config(layer.get_config()).partitioner == 4


def test_layout_for_rules():
    m = mesh(4)
    assert distribute.layout_for(None, (16, 8), m) is None
    assert distribute.layout_for((4, 1), (16, 8), m) == ("model", None)
    # a request is mapped onto the model axis whatever its number (the mesh decides the pieces)
    assert distribute.layout_for((3, 1), (16, 8), m) == ("model", None)
    assert distribute.layout_for((1, 2), (16, 8), m) == (None, "model")
    # each mesh axis splits one tensor axis; the batch axis never splits weights
    assert distribute.layout_for((2, 2), (16, 8), m) == ("model", None)
    assert distribute.layout_for((1, 1), (16, 8), m) is None
    # a mesh axis of exactly the requested size is preferred
    m3 = keras.distribution.DeviceMesh((2, 2, 2), ("batch", "model", "rows"), DEVICES)
    two_four = keras.distribution.DeviceMesh((1, 4, 2), ("batch", "model", "rows"), DEVICES)
    assert distribute.layout_for((2, 4), (16, 8), two_four) == ("rows", "model")
    assert distribute.layout_for((4, 4), (16, 8), m3) == ("model", "rows")
    # a pure batch mesh has no axis for weights
    assert distribute.layout_for((4, 1), (16, 8), mesh(1)) is None


def test_layout_for_indivisible_axis_warns_and_replicates():
    with pytest.warns(UserWarning, match=r"^distribute: axis 0 of a weight of shape \(10, 8\)"):
        assert distribute.layout_for((4, 1), (10, 8), mesh(4)) is None


def test_layout_for_bad_arguments():
    with pytest.raises(ValueError, match=r"^distribute: partitions must be one int per axis"):
        distribute.layout_for((4,), (16, 8), mesh(4))
    with pytest.raises(ValueError, match=r"^distribute: model_axis must be one of the mesh axes"):
        distribute.layout_for((4, 1), (16, 8), mesh(4), model_axis="shards")


def test_layout_map_entries():
    m = mesh(4)
    sharded, plain = built_dense(partitioner=2, name="wide"), built_dense(name="plain")
    table, small = keras.layers.Embedding(64, 4, name="table"), keras.layers.Embedding(8, 4)
    for emb in (table, small):
        emb.build((None, 1))
    layouts = distribute.layout_map([sharded, plain, table, small], m, min_embedding_rows=32)
    assert len(layouts) == 2
    assert layouts["wide/kernel"].axes == ("model", None)
    assert layouts["table/embeddings"].axes == ("model", None)
    assert layouts["plain/kernel"] is None and layouts["wide/bias"] is None
    # "wide kernels": any rank >= 2 weight over a size
    wide = distribute.layout_map([plain], m, min_weight_size=128)
    assert wide["plain/kernel"].axes == ("model", None)
    # layers nested in a model are found
    inner = Dense(8, partitioner=4, name="inner")
    model = keras.Sequential([keras.Input((16,)), inner])
    assert distribute.layout_map(model, m)[inner.kernel.path].axes == ("model", None)


def test_layout_map_and_setup_validation():
    m = mesh(4)
    with pytest.raises(ValueError, match=r"^distribute: model must be built"):
        distribute.layout_map(Dense(4, partitioner=2), m)
    with pytest.raises(ValueError, match=r"^distribute: min_embedding_rows must be an int >= 1; got 0"):
        distribute.layout_map([], m, min_embedding_rows=0)
    with pytest.raises(ValueError, match=r"^distribute: min_weight_size must be an int >= 1 or None"):
        distribute.layout_map([], m, min_weight_size=1.5)
    with pytest.raises(ValueError, match=r"^distribute: mode must be 'data' or 'model'; got 'pipeline'"):
        distribute.setup("pipeline")
    with pytest.raises(ValueError, match=r"^distribute: model_shards must be a divisor"):
        distribute.device_mesh(DEVICES, model_shards=3)


def test_device_mesh_shape():
    m = distribute.device_mesh(DEVICES, model_shards=2)
    assert tuple(m.shape) == (4, 2) and tuple(m.axis_names) == ("batch", "model")
    assert tuple(distribute.device_mesh(DEVICES).shape) == (1, 8)


def test_setup_is_jax_only_and_model_mode_needs_a_model():
    if keras.backend.backend() == "jax":  # the working JAX path runs in test_launch.py
        with pytest.raises(ValueError, match=r"^distribute: model must be a built model"):
            distribute.setup("model")
        assert keras.distribution.distribution() is None
    else:
        with pytest.raises(ValueError, match=r"^distribute: the backend must be 'jax'"):
            distribute.setup("data", devices=2)
