"""MMoE: reference math for every gate type, exact top-k, noise only in training, balance loss,
serialisation of activations, bad input, a two-task fit, and the layer contract."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reclayers.layers import MMoE
from tests.contract import Case, LayerContract, assert_allclose, randomize_weights
from tests.mtl.helpers import mlp_weights, np_
from tests.reference import core
from tests.reference import multi_task as ref

ACTS = {"relu": core.relu, "tanh": np.tanh, None: lambda v: v}


def _x(rng, b, d=4):
    return rng.normal(size=(b, d)).astype("float32")


def _pair(rng, b):
    return [_x(rng, b, 4), _x(rng, b, 3)]


def _expert_outputs(layer, x, acts):
    outs = []
    for expert, act in zip(layer.experts, acts):
        layers = mlp_weights(expert)
        per_layer = [ACTS[act]] * (len(layers) - 1) + [None]
        outs.append(core.mlp(x.astype("float64"), layers, per_layer, weight_norm=True))
    return outs


def _layer_losses(layer):
    return [float(np_(v)) for v in layer.losses]


@pytest.mark.parametrize(
    "gate_type, two_inputs",
    [("softmax", False), ("softmax", True), ("topk", True), ("noise_topk", False), ("noise_topk", True)],
)
def test_mmoe_matches_reference(gate_type, two_inputs):
    rng = np.random.default_rng(0)
    x = _pair(rng, 6) if two_inputs else _x(rng, 6)
    acts = ["relu", "tanh", None]
    layer = MMoE(num_tasks=2, expert_output_dims=[[4, 4], [4], [3, 2, 4]], expert_activations=acts,
                 gate_type=gate_type, top_k=2, seed=11)
    layer(x)
    randomize_weights(layer, seed=2)
    ex, gx = (x[0], x[1]) if two_inputs else (x, x)
    outs = layer(x, training=False)
    gw = np_(layer.gate_weight)
    expected, _, loss = ref.mmoe(_expert_outputs(layer, ex, acts), gx.astype("float64"), gw, 2,
                                 gate_type, k=2)
    assert_allclose(outs, expected, rtol=1e-5, atol=1e-5)
    if gate_type == "softmax":
        assert layer.losses == []
    else:
        np.testing.assert_allclose(_layer_losses(layer), [loss], rtol=1e-5)
    if gate_type == "noise_topk":
        # Training: the noise is ε ~ N(0, 1) from the layer's seed generator; replay its stream.
        replay = keras.random.SeedGenerator(11)
        eps = np_(keras.random.normal((6, 6), dtype="float32", seed=replay))
        outs = layer(x, training=True)
        expected, _, loss = ref.mmoe(_expert_outputs(layer, ex, acts), gx.astype("float64"), gw, 2,
                                     gate_type, k=2, gate_noise=np_(layer.gate_noise), eps=eps)
        assert_allclose(outs, expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(_layer_losses(layer), [loss], rtol=1e-5)


def test_identity_hidden_layers_when_activation_is_none():
    x = _x(np.random.default_rng(1), 5)
    layer = MMoE(num_tasks=1, expert_output_dims=[4, 3], expert_activations=None, num_experts=2)
    layer(x)
    randomize_weights(layer)
    expected, _, _ = ref.mmoe(_expert_outputs(layer, x, [None, None]), x.astype("float64"),
                              np_(layer.gate_weight), 1)
    assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("gate_type, k", [("topk", 1), ("topk", 3), ("noise_topk", 2)])
def test_topk_keeps_exactly_k_experts_summing_to_one(gate_type, k):
    x = _x(np.random.default_rng(2), 6)
    layer = MMoE(num_tasks=3, expert_output_dims=[4], expert_activations="relu", num_experts=4,
                 gate_type=gate_type, top_k=k)
    layer(x)
    for training in (False, True):
        for randomize in (False, True):  # zero gate weights: every expert ties
            if randomize:
                randomize_weights(layer, seed=5)
            p = np_(layer.gates(x, training=training))
            assert p.shape == (6, 3, 4)
            np.testing.assert_array_equal((p > 0).sum(-1), np.full((6, 3), k))
            np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-6)


def test_topk_golden_values_at_zero_gates():
    """E = 3, k = 2, zero gate weights: experts 0 and 1 at 1/2 each; loss N · (E/k - 1)."""
    x = _x(np.random.default_rng(3), 6)
    layer = MMoE(num_tasks=2, expert_output_dims=[4, 4], expert_activations="relu", num_experts=3,
                 gate_type="topk", top_k=2)
    outs = layer(x)
    y = [np_(e(x)) for e in layer.experts]
    for o in outs:
        assert_allclose(o, (y[0] + y[1]) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_layer_losses(layer), [0.5 * 2], rtol=1e-6)


def test_noise_only_in_training():
    x = _x(np.random.default_rng(4), 6)
    layer = MMoE(num_tasks=2, expert_output_dims=[4], expert_activations="relu", num_experts=4,
                 gate_type="noise_topk", top_k=2)
    layer(x)
    randomize_weights(layer, seed=3)
    a, b = layer(x, training=False), layer(x, training=False)
    assert_allclose(a, b, rtol=0, atol=0)
    assert_allclose(layer(x), a, rtol=0, atol=0)  # training=None is inference
    c, d = np_(layer.gates(x, training=True)), np_(layer.gates(x, training=True))
    assert not np.allclose(c, d)


def test_original_test_case_shapes():
    layer = MMoE(num_tasks=2, num_experts=3, expert_output_dims=[[128, 64, 64], [64, 64], [128, 64]],
                 expert_activations="relu", gate_type="topk", top_k=2,
                 expert_initializers=keras.initializers.GlorotNormal())
    outs = layer(np.ones((100, 128), "float32"))
    assert isinstance(outs, list) and [tuple(o.shape) for o in outs] == [(100, 64)] * 2
    template = MMoE(num_tasks=2, num_experts=3, expert_output_dims=[128, 64, 64],
                    expert_activations="relu", expert_initializers=keras.initializers.GlorotNormal())
    clone = MMoE.from_config(template.get_config())
    assert clone.get_config() == template.get_config()


def test_experts_start_different_and_options_reach_experts():
    layer = MMoE(num_tasks=1, expert_output_dims=[4], expert_activations="relu", num_experts=3,
                 expert_initializers="glorot_uniform", enable_batch_normalization=True,
                 batch_normalization_momentum=0.9, use_weight_norm=False, use_bias=False,
                 kernel_regularizer="l2")
    layer(np.ones((2, 4), "float32"))
    kernels = [np_(e.dense_layers[0].kernel) for e in layer.experts]
    assert not np.allclose(kernels[0], kernels[1])
    for e in layer.experts:
        assert e.enable_batch_normalization and e.batch_normalization_momentum == 0.9
        assert not e.use_weight_norm and not e.use_bias and e.kernel_regularizer is not None


def test_activations_survive_serialisation():
    layer = MMoE(num_tasks=1, expert_output_dims=[3, 2], expert_activations=["relu", "PReLU"])
    clone = MMoE.from_config(layer.get_config())
    types = [type(e.activations[0]).__name__ for e in clone.experts]
    assert types == ["ReLU", "PReLU"]
    fn = MMoE(num_tasks=1, expert_output_dims=[3, 2], num_experts=1,
              expert_activations=keras.activations.tanh)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(fn))
    assert type(clone.experts[0].activations[0]).__name__ == "Tanh"


def test_topk_alias():
    assert MMoE(1, [2], "relu", num_experts=3, gate_type="topk", topk=2).top_k == 2
    assert MMoE(1, [2], "relu", num_experts=3, gate_type="topk", topk=2).get_config()["top_k"] == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_tasks": 0}, "MMoE: num_tasks must be an integer >= 1; got 0"),
        ({"gate_type": "top"}, "MMoE: gate_type must be one of 'softmax', 'topk', 'noise_topk'; got 'top'"),
        ({"gate_type": "topk", "top_k": 0}, "MMoE: top_k must be an integer >= 1; got 0"),
        ({"gate_type": "topk", "top_k": 4}, "MMoE: top_k must be an integer in [1, num_experts=3]; got 4"),
        ({"top_k": 1, "topk": 2}, "MMoE: top_k must be equal to topk=2 when both are given; got 1"),
        ({"num_experts": None}, "MMoE: num_experts must be set"),
        ({"num_experts": 0}, "MMoE: num_experts must be an integer >= 1; got 0"),
        ({"expert_output_dims": []}, "MMoE: expert_output_dims must be a non-empty list"),
        ({"expert_output_dims": [4, [3]]}, "MMoE: expert_output_dims must be either a list of integers"),
        ({"expert_output_dims": [4, 0]},
         "MMoE: expert_output_dims must be a non-empty list of integers >= 1"),
        ({"expert_output_dims": [[4, 2], [3, 2]]}, "MMoE: expert_output_dims must be a list of 3 lists"),
        ({"expert_output_dims": [[4, 2], [3, 2], [5, 3]]},
         "MMoE: expert_output_dims[2] must be a list whose last width equals expert 0's (2); got [5, 3]"),
        ({"expert_activations": ["relu", "relu"]},
         "MMoE: expert_activations must be one activation or a list of 3"),
        ({"batch_normalization_momentum": 1.5},
         "MMoE: batch_normalization_momentum must be a number in [0.0, 1.0]; got 1.5"),
        ({"expert_initializers": ["zeros"]},
         "MMoE: expert_initializers must be one initializer or a list of 3"),
    ],
)
def test_bad_arguments(kwargs, message):
    args = {"num_tasks": 2, "expert_output_dims": [4, 2], "expert_activations": "relu",
            "num_experts": 3, **kwargs}
    with pytest.raises(ValueError) as err:
        MMoE(**args)
    assert message in str(err.value)


def test_num_experts_inferred():
    assert MMoE(1, [[2], [2]], "relu").num_experts == 2
    assert MMoE(1, [2], ["relu"] * 4).num_experts == 4
    assert MMoE(1, [2], "relu", expert_initializers=["zeros"] * 5).num_experts == 5


def test_bad_inputs():
    layer = MMoE(2, [2], "relu", num_experts=2)
    with pytest.raises(ValueError, match=r"MMoE: expert_input must be a tensor of rank 2; got shape"):
        layer.build((None, 3, 4))
    with pytest.raises(ValueError, match=r"MMoE: gate_input must be a tensor of rank 2; got shape"):
        MMoE(2, [2], "relu", num_experts=2).build([(None, 3), (None, 2, 2)])
    with pytest.raises(ValueError, match=r"MMoE: inputs must be one tensor or a list of 1 or 2 tensors"):
        MMoE(2, [2], "relu", num_experts=2).build([(None, 3)] * 3)
    with pytest.raises(ValueError, match=r"MMoE: gate_input must be a tensor with batch size 4"):
        MMoE(2, [2], "relu", num_experts=2).build([(4, 3), (5, 2)])
    with pytest.raises(ValueError, match=r"MMoE: expert_input must have a known last dimension"):
        MMoE(2, [2], "relu", num_experts=2).build((None, None))


def test_two_task_fit_both_losses_fall():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 6)).astype("float32")
    shared = np.tanh(x @ rng.normal(size=(6, 3)))  # structure both tasks share
    y1 = (shared @ np.array([1.0, -1.0, 0.5]))[:, None].astype("float32")
    y2 = (shared @ np.array([0.5, 1.0, -1.0]) + 0.3)[:, None].astype("float32")
    inputs = keras.Input((6,))
    t1, t2 = MMoE(num_tasks=2, expert_output_dims=[16, 8], expert_activations="relu", num_experts=3,
                  seed=1)(inputs)
    o1 = keras.layers.Dense(1, name="task_1")(t1)
    o2 = keras.layers.Dense(1, name="task_2")(t2)
    model = keras.Model(inputs, [o1, o2])
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=["mse", "mse"])
    before = model.evaluate(x, [y1, y2], verbose=0, return_dict=True)
    model.fit(x, [y1, y2], epochs=15, batch_size=64, verbose=0)
    after = model.evaluate(x, [y1, y2], verbose=0, return_dict=True)
    for key in ("task_1_loss", "task_2_loss"):
        assert after[key] < 0.5 * before[key], (key, before, after)


class TestMMoEContract(LayerContract):
    cases = [
        Case("softmax", lambda **kw: MMoE(2, [4, 4], "tanh", num_experts=2, **kw), _x),
        # Inference of noise_topk is the plain top-k path; training adds the noise (gate_noise).
        Case("noise_topk_hetero_pair",
             lambda **kw: MMoE(2, [[4, 4], [4], [3, 4]], ["relu", "tanh", None],
                               gate_type="noise_topk", top_k=2, seed=3, **kw),
             _pair, grad_kwargs={"training": True}, fd_check=False),
    ]
