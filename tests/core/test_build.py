"""One way to build a sublayer, clone an initializer and resolve an activation (layers/_build.py).

Each test reproduces a bug that a layer had before the helpers existed: an explicit
``dtype="mixed_bfloat16"`` not reaching sub-layers, two weights of a seeded layer starting
identical, and activation names accepted by one layer and refused by another.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reclayers.layers import CAN, CIN, DIN, DMR_U2I, MLP, CDot, Dense, LHUCTower, LogitCorrection, MMoE, SeNet
from reclayers.layers._build import activation, fresh_initializer
from tests.contract import to_numpy

BF16 = "mixed_bfloat16"


def _sublayer_dtypes(layer: keras.layers.Layer) -> dict[str, str]:
    return {sub.path: sub.compute_dtype for sub in layer._flatten_layers(include_self=False)}


@pytest.mark.parametrize("make, x", [
    (lambda: MMoE(2, [4, 3], "relu", num_experts=2, dtype=BF16), np.ones((2, 5), "float32")),
    (lambda: LHUCTower([4, 2], lhuc_output_dims=[3], enable_batch_normalization=True, dtype=BF16),
     np.ones((2, 5), "float32")),
    (lambda: SeNet(num_feature=3, cmp_dim=2, dtype=BF16), np.ones((2, 3, 4), "float32")),
], ids=["MMoE", "LHUCTower", "SeNet"])
def test_explicit_mixed_bfloat16_reaches_every_sublayer(make, x):
    layer = make()
    out = layer(x)
    for t in keras.tree.flatten(out):
        assert "bfloat16" in str(t.dtype)
    dtypes = _sublayer_dtypes(layer)
    assert dtypes and set(dtypes.values()) == {"bfloat16"}, dtypes


def test_seeded_initializer_gives_every_weight_its_own_draw():
    # T == E: pos_emb (T, cmp) and emb_weight (E, cmp) have one shape and used to start equal.
    layer = DMR_U2I(3, initializer=keras.initializers.GlorotUniform(seed=7))
    layer([np.ones((2, 4), "float32"), np.ones((2, 4, 4), "float32")])
    assert not np.allclose(to_numpy(layer.pos_emb), to_numpy(layer.emb_weight))
    again = DMR_U2I(3, initializer=keras.initializers.GlorotUniform(seed=7))
    again([np.ones((2, 4), "float32"), np.ones((2, 4, 4), "float32")])
    np.testing.assert_array_equal(to_numpy(again.pos_emb), to_numpy(layer.pos_emb))  # reproducible


def test_seeded_experts_start_different():
    mmoe = MMoE(1, [3, 3], "relu", expert_initializers=keras.initializers.GlorotUniform(seed=1),
                num_experts=2)
    mmoe(np.ones((2, 3), "float32"))
    kernels = [to_numpy(w) for w in mmoe.weights if "kernel" in w.path and "norm" not in w.path]
    shapes = [k.shape for k in kernels]
    for i in range(len(kernels)):
        for j in range(i + 1, len(kernels)):
            if shapes[i] == shapes[j]:
                assert not np.allclose(kernels[i], kernels[j]), (i, j)


def test_fresh_initializer_nests_without_collisions():
    init = keras.initializers.RandomNormal(seed=5)
    seeds = {fresh_initializer(fresh_initializer(init, a), b).get_config()["seed"]
             for a in range(4) for b in range(4)}
    assert len(seeds) == 16
    assert fresh_initializer(None, 0, "zeros").get_config() == {}


# Each layer that takes an activation, built with one given name.
ACTIVATION_USERS = {
    "MLP": (lambda a: MLP([3, 1], activations=a), lambda: np.ones((2, 4), "float32")),
    "Dense": (lambda a: Dense(3, activation=a), lambda: np.ones((2, 4), "float32")),
    "CDot": (lambda a: CDot(2, [4], activation=a), lambda: np.ones((2, 3, 4), "float32")),
    "CIN": (lambda a: CIN([2, 2], activation=a), lambda: np.ones((2, 3, 4), "float32")),
    "DIN": (lambda a: DIN([4, 1], activation=a), lambda: [np.ones((2, 4), "float32"),
                                                          np.ones((2, 3, 4), "float32")]),
    "CAN": (lambda a: CAN(layer_num=1, activation=a, is_stacked=False),
            lambda: [np.ones((2, 2), "float32"), np.ones((2, 6), "float32")]),
    "LogitCorrection": (lambda a: LogitCorrection(activation=a),
                        lambda: [np.ones((2, 1), "float32"), np.ones((2, 1), "float32")]),
    "DMR_U2I": (lambda a: DMR_U2I(3, activation=a), lambda: [np.ones((2, 4), "float32"),
                                                             np.ones((2, 3, 4), "float32")]),
}


# PReLU learns one slope per feature of every non-batch axis, so it needs a known sequence length:
# DIN's tower runs on (B, T, 4E) with T unknown at build time.
NAMES = [(u, n) for u in sorted(ACTIVATION_USERS) for n in ("sigmoid2", "PReLU", "relu6")
         if (u, n) != ("DIN", "PReLU")]


@pytest.mark.parametrize("user, name", NAMES)
def test_every_layer_accepts_the_same_activation_names(user, name):
    make, inputs = ACTIVATION_USERS[user]
    layer = make(name)
    out = layer(inputs())
    assert all(np.all(np.isfinite(to_numpy(t))) for t in keras.tree.flatten(out))
    clone = type(layer).from_config(layer.get_config())
    clone(inputs())


@pytest.mark.parametrize("user", sorted(ACTIVATION_USERS))
def test_every_layer_refuses_an_unknown_activation_the_same_way(user):
    make, inputs = ACTIVATION_USERS[user]
    with pytest.raises(ValueError, match="activation: identifier must be one of .*sigmoid2"):
        make("sigmoid3")(inputs())


def test_activation_resolution():
    assert activation(None) is None
    assert type(activation(None, default="linear")).__name__ == "Linear"
    assert type(activation("SIGMOID2")).__name__ == "Sigmoid2"
    assert activation("relu6") is keras.activations.relu6
    owner = keras.layers.Layer(dtype=BF16)
    assert activation("tanh", owner).compute_dtype == "bfloat16"
