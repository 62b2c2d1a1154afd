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


def _count_layer_calls(monkeypatch) -> list:
    calls = []
    original = keras.layers.Layer.__call__

    def counting(self, *args, **kwargs):
        calls.append(type(self).__name__)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(keras.layers.Layer, "__call__", counting)
    return calls


def test_call_sublayer_skips_layer_call_only_on_torch(monkeypatch):
    # An MLP calls its Dense and activation layers through call_sublayer: on PyTorch their
    # ``call`` runs directly (eager: __call__ is host time on every step), elsewhere through
    # __call__; the outputs are the same either way.
    mlp = MLP(output_dims=[4, 2], activations=["relu", "sigmoid"])
    x = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    expected = to_numpy(mlp(x))
    calls = _count_layer_calls(monkeypatch)
    out = mlp(keras.ops.convert_to_tensor(x), training=True)
    np.testing.assert_array_equal(to_numpy(out), expected)
    if keras.backend.backend() == "torch":
        assert calls == ["MLP"]
    else:
        assert calls[0] == "MLP" and calls.count("Dense") == 2


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="the direct call is PyTorch's only")
def test_call_sublayer_keeps_layer_call_where_it_does_something(monkeypatch):
    from reclayers.layers._build import call_sublayer

    x = keras.ops.convert_to_tensor(np.ones((2, 3), "float32"))
    dense = Dense(2)
    dense.build((None, 3))
    calls = _count_layer_calls(monkeypatch)
    call_sublayer(dense, x)  # outside any layer call: no enclosing call to take training from
    call_sublayer(dense, keras.ops.cast(x, "float16"))  # __call__ would cast the input
    masked = keras.ops.convert_to_tensor(np.ones((2, 3), "float32"))
    masked._keras_mask = keras.ops.convert_to_tensor(np.array([True, False]))
    call_sublayer(dense, masked)  # a mask to propagate
    half = Dense(2, dtype=BF16)
    half.build((None, 3))
    call_sublayer(half, x)  # mixed precision: __call__ opens the autocast scope
    unbuilt = Dense(2)
    call_sublayer(unbuilt, x)  # __call__ builds it
    assert calls == ["Dense"] * 5


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="the direct call is PyTorch's only")
def test_direct_sublayer_call_gives_the_same_training_step():
    # SeNet's excitation MLP through call_sublayer (direct on PyTorch) and through __call__:
    # the same loss, input gradients and weight gradients, and the training flag still reaches
    # the sub-layers (a Dense monitor that updates in training calls only).
    import torch

    from reclayers.layers import _build

    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 3, 4)).astype("float32")

    class Outer(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.senet = SeNet(num_feature=3, cmp_dim=2)
            self.monitor = Dense(2, activation="relu", inactive_relu_monitor=True)

        def call(self, inputs, training=None):
            y = self.senet(inputs)
            return _build.call_sublayer(self.monitor, y, training)

    def step(layer):
        xt = torch.tensor(x, requires_grad=True)
        out = layer(xt, training=True)
        loss = (out ** 2).mean()
        loss.backward()
        grads = [to_numpy(v.value.grad) for v in layer.trainable_variables]
        return [to_numpy(loss), to_numpy(xt.grad), *grads]

    direct, through = Outer(), Outer()
    direct(x)
    through(x)
    through.set_weights(direct.get_weights())
    got = step(direct)
    original = _build.can_call_directly
    _build.can_call_directly = lambda *a, **kw: False
    try:
        want = step(through)
    finally:
        _build.can_call_directly = original
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    moving = to_numpy(direct.monitor.inactive_relu_count_moving_avg)
    np.testing.assert_array_equal(moving, to_numpy(through.monitor.inactive_relu_count_moving_avg))
    before = moving.copy()
    direct(x, training=False)
    np.testing.assert_array_equal(to_numpy(direct.monitor.inactive_relu_count_moving_avg), before)


def test_a_quantized_layer_is_not_plain():
    # Its ``__call__`` runs ``quantized_call``: calling ``call`` directly would skip the quantization.
    from reclayers.layers._build import is_plain_layer

    dense = keras.layers.Dense(2)
    dense.build((None, 3))
    assert is_plain_layer(dense)
    dense.quantize("int8")
    assert not is_plain_layer(dense)
