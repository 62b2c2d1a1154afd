"""NASGatingLayer and SimpleNasLayer: reference math, sampling, STE gradients, readout, contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
from keras import ops

from reclayers.layers import NASGatingLayer, SimpleNasLayer
from tests.contract import Case, LayerContract
from tests.nas.helpers import built, close, grad_and_output, out_np, set_alpha
from tests.reference import sparse_nas as ref

# ------------------------------------------------------------------------------- gating ----


def test_gating_inference_gates():
    layer = built(NASGatingLayer(segment_sizes=[2, 3, 1]), 6)
    set_alpha(layer, [2.0, -1.0, 0.5])
    x = np.random.default_rng(0).normal(size=(3, 6)).astype("float32")
    expected = ref.gating_inference([2.0, -1.0, 0.5], [2, 3, 1])
    np.testing.assert_array_equal(expected, [1, 1, 0, 0, 0, 1])
    close(out_np(layer, x), x * expected)
    close(out_np(layer, x, training=False), x * expected)


def test_gating_zero_logit_is_dropped_at_inference():
    layer = built(NASGatingLayer(segment_sizes=[2, 2]), 4)
    set_alpha(layer, [0.0, 1e-3])
    close(out_np(layer, np.ones((1, 4), "float32"))[0], [0, 0, 1, 1])
    arch = layer.get_architecture()
    assert [a["size"] for a in arch] == [0, 2]
    assert arch[1]["columns"] == [0, 1] and arch[0]["columns"] == []


@pytest.mark.parametrize("use_logistic", [True, False])
def test_gating_training_is_binary_batch_shared_and_follows_sigmoid(use_logistic):
    # 1000 segments alternating α = 3 / −3: 4 seeded calls give 2000 draws per logit value.
    segments, calls = 1000, 4
    layer = NASGatingLayer(segment_sizes=[1] * segments, use_logistic=use_logistic, temperature=0.7, seed=9)
    x = np.ones((2, segments), "float32")
    layer(x)
    set_alpha(layer, np.tile([3.0, -3.0], segments // 2))
    kept = np.zeros(2)
    for _ in range(calls):
        out = out_np(layer, x, training=True)
        assert set(np.unique(out)) <= {0.0, 1.0}
        np.testing.assert_array_equal(out[0], out[1])
        kept += out[0].reshape(-1, 2).sum(axis=0)
    freq = kept / (calls * segments // 2)
    # logistic noise samples Bernoulli(σ(α)) whatever the temperature; the uniform draw uses σ(α/T)
    scale = 1.0 if use_logistic else 0.7
    np.testing.assert_allclose(freq, [ref.sigmoid(3.0 / scale), ref.sigmoid(-3.0 / scale)], atol=0.03)


@pytest.mark.parametrize("ste_type", ["none", "clip", "softplus"])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_gating_ste_gradients(ste_type, temperature):
    sizes = [2, 3, 1]
    layer = NASGatingLayer(segment_sizes=sizes, ste_type=ste_type, use_logistic=False,
                           temperature=temperature, seed=4)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 2, 6)).astype("float32")
    layer(x)
    alpha = np.array([0.5, -1.5, 2.5], "float32")  # 'clip': |a| < 1 only for some entries
    set_alpha(layer, alpha)
    R = rng.normal(size=x.shape)
    grad, out = grad_and_output(layer, x, R, training=True)
    bounds = np.cumsum([0] + sizes)
    upstream = np.array([np.sum((R * x)[..., bounds[f]:bounds[f + 1]]) for f in range(3)])
    close(grad, upstream * ref.ste_derivative(alpha, ste_type, temperature), rtol=1e-4, atol=1e-5)
    gates = np.divide(out, x)[0, 0]
    for f in range(3):
        block = gates[bounds[f]:bounds[f + 1]]
        assert np.allclose(block, 0) or np.allclose(block, 1)


def test_gating_readout_and_metadata():
    layer = built(NASGatingLayer(segment_names=["a", "b"], segment_sizes=[3, 2], temperature=2.0), 5)
    set_alpha(layer, [1.0, -2.0])
    arch = layer.get_architecture()
    p = ref.sigmoid(np.array([0.5, -1.0]))
    np.testing.assert_allclose([a["probabilities"][1] for a in arch], p, rtol=1e-6)
    assert [a["size"] for a in arch] == [3, 0]
    total = float(ops.convert_to_numpy(layer.expected_size()))
    np.testing.assert_allclose(total, 3 * p[0] + 2 * p[1], rtol=1e-5)
    assert NASGatingLayer.architecture_from_weights([1.0, -2.0], layer.get_config()) == arch
    assert layer.get_summary_metadata() == {"tag_type": "gating", "segment_names": ["a", "b"],
                                            "segment_sizes": [3, 2], "group_index": [0, 1]}


@pytest.mark.parametrize("kwargs,match", [
    (dict(segment_sizes=[2, 0]), r"segment_sizes must be a non-empty list of integers > 0; got \[2, 0\]"),
    (dict(segment_sizes=[]), "segment_sizes must be a non-empty list of integers > 0"),
    (dict(segment_sizes=None), "segment_sizes must be a non-empty list of integers > 0; got None"),
    (dict(segment_sizes=[[2]]), "segment_sizes must be a non-empty list of integers > 0"),
    (dict(segment_sizes=[2], segment_names=["a", "b"]), "segment_names must be None or a list of 1 strings"),
    (dict(segment_sizes=[2], ste_type="sigmoid"),
     "ste_type must be one of 'softplus', 'clip', 'none'; got 'sigmoid'"),
    (dict(segment_sizes=[2], temperature=-1.0), "temperature must be a number in"),
    (dict(segment_sizes=[2], use_logistic="yes"), "use_logistic must be a bool; got 'yes'"),
])
def test_gating_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=f"NASGatingLayer: {match}"):
        NASGatingLayer(**kwargs)


def test_gating_width_mismatch():
    with pytest.raises(ValueError, match=r"NASGatingLayer: inputs must be .* last dimension 6 \(feature "
                                         r"widths \[2, 3, 1\]\); got shape \(2, 5\)"):
        NASGatingLayer(segment_sizes=[2, 3, 1])(np.ones((2, 5), "float32"))


# --------------------------------------------------------------------------- simple NAS ----

P_SPEC = [0.05, 0.1, 0.6, 0.2, 0.05]


def test_simple_nas_spec_example():
    layer = built(SimpleNasLayer(segment_sizes=[4], temperature=1.5, use_gumbel=False), 4)
    alpha = 1.5 * np.log(P_SPEC)
    set_alpha(layer, alpha)
    p, cdf, k, hard, soft = ref.simple_nas(alpha, 1.5, 0.9)
    np.testing.assert_allclose(p, P_SPEC, rtol=1e-12)
    np.testing.assert_allclose(cdf, [.05, .15, .75, .95, 1.0], rtol=1e-12)
    assert k == 3
    np.testing.assert_array_equal(hard, [1, 1, 1, 0])
    np.testing.assert_allclose(soft, [.95, .85, .25, .05], rtol=1e-12)
    for training in (False, True):  # use_gumbel=False: training is deterministic too
        close(out_np(layer, np.ones((2, 4), "float32"), training=training), [[1, 1, 1, 0]] * 2)
    arch = layer.get_architecture()[0]
    assert arch["size"] == 3 and arch["columns"] == [0, 1, 2]
    np.testing.assert_allclose(arch["probabilities"], P_SPEC, rtol=1e-6)
    np.testing.assert_allclose(arch["expected_size"], np.dot(P_SPEC, range(5)), rtol=1e-6)


@pytest.mark.parametrize("training", [False, True])
def test_simple_nas_gradient_is_the_survival_jacobian(training):
    sizes = [4, 2]
    layer = SimpleNasLayer(segment_sizes=sizes, temperature=1.5, use_gumbel=False)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 6)).astype("float32")
    layer(x)
    alpha = np.concatenate([1.5 * np.log(P_SPEC), [0.3, -0.2, 0.4]]).astype("float32")
    set_alpha(layer, alpha)
    R = rng.normal(size=x.shape)
    grad, out = grad_and_output(layer, x, R, training=training)
    g1 = ref.simple_nas_grad(alpha[:5], 1.5, np.sum(R * x, axis=0)[:4])
    g2 = ref.simple_nas_grad(alpha[5:], 1.5, np.sum(R * x, axis=0)[4:])
    close(grad, np.concatenate([g1, g2]), rtol=1e-4, atol=1e-5)
    _, _, k2, hard2, _ = ref.simple_nas(alpha[5:].astype("float64"), 1.5, 0.9)
    close(out, x * np.concatenate([[1, 1, 1, 0], hard2]))


def test_simple_nas_uniform_keeps_everything():
    layer = built(SimpleNasLayer(segment_sizes=[8], use_gumbel=False), 8)
    set_alpha(layer, np.zeros(9))
    _, cdf, k, _, _ = ref.simple_nas(np.zeros(9), 1.5, 0.9)
    np.testing.assert_allclose(cdf, np.arange(1, 10) / 9)
    assert k == 8
    close(out_np(layer, np.ones((1, 8), "float32"))[0], np.ones(8))
    assert layer.get_architecture()[0]["size"] == 8


def test_simple_nas_threshold_one_and_readout_from_weights():
    layer = built(SimpleNasLayer(segment_names=["u", "i"], segment_sizes=[3, 2], threshold=1.0), 5)
    alpha = [5.0, 0.0, 0.0, 0.0, 0.0, 5.0, 0.0]
    set_alpha(layer, alpha)
    out = out_np(layer, np.ones((1, 5), "float32"))[0]
    assert np.all(np.isin(out, [0.0, 1.0]))
    arch = layer.get_architecture()
    assert SimpleNasLayer.architecture_from_weights(alpha, layer.get_config()) == arch
    assert arch[0]["size"] <= 3 and arch[1]["size"] <= 2
    assert layer.get_summary_metadata()["tag_type"] == "simple"


def test_simple_nas_gumbel_training_gives_prefix_masks():
    layer = SimpleNasLayer(segment_sizes=[5] * 8, temperature=1.0, seed=3)
    x = np.ones((2, 40), "float32")
    layer(x)
    inference = out_np(layer, x)
    sizes = set()
    for _ in range(5):
        gates = out_np(layer, x, training=True)
        np.testing.assert_array_equal(gates[0], gates[1])
        blocks = gates[0].reshape(8, 5)
        assert np.all(np.isin(blocks, [0.0, 1.0]))
        assert np.all(np.diff(blocks, axis=1) <= 0)  # ones then zeros
        sizes.update(blocks.sum(axis=1).tolist())
    assert len(sizes) > 1  # noise changes the cut
    close(out_np(layer, x), inference)  # inference unaffected by training draws


@pytest.mark.parametrize("kwargs,match", [
    (dict(segment_sizes=[4], threshold=0.0), r"threshold must be a number in \(0.0, 1.0\]; got 0.0"),
    (dict(segment_sizes=[4], threshold=1.5), r"threshold must be a number in \(0.0, 1.0\]; got 1.5"),
    (dict(segment_sizes=[4], temperature=0), "temperature must be a number in"),
    (dict(segment_sizes=[4, -1]), "segment_sizes must be a non-empty list of integers > 0"),
    (dict(segment_sizes=[4], use_gumbel=None), "use_gumbel must be a bool; got None"),
    (dict(segment_sizes=[4], segment_names="u"), "segment_names must be None or a list of 1 strings"),
])
def test_simple_nas_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=f"SimpleNasLayer: {match}"):
        SimpleNasLayer(**kwargs)


def test_simple_nas_list_input_errors():
    layer = SimpleNasLayer(segment_sizes=[4, 2])
    with pytest.raises(ValueError, match=r"SimpleNasLayer: inputs\[0\] must be .* last dimension 4"):
        layer([np.ones((2, 3), "float32"), np.ones((2, 2), "float32")])


# ----------------------------------------------------------------------------- contract ----


def _x(width):
    return lambda rng, b: rng.normal(size=(b, width)).astype("float32")


class TestGatingSimpleContract(LayerContract):
    cases = [
        Case("gating-softplus-logistic",
             lambda **kw: NASGatingLayer(segment_sizes=[2, 3, 1], ste_type="softplus", seed=1, **kw),
             _x(6), grad_kwargs={"training": True}, fd_check=False),
        Case("simple-gumbel-list",
             lambda **kw: SimpleNasLayer(segment_sizes=[4, 3], seed=5, **kw),
             lambda rng, b: [rng.normal(size=(b, 4)).astype("float32"),
                             rng.normal(size=(b, 3)).astype("float32")],
             grad_kwargs={"training": True}, fd_check=False),
    ]


def test_expected_size_is_differentiable_penalty():
    """The expected size can serve as a resource penalty: its gradient lowers large choices."""
    layer = built(SimpleNasLayer(segment_sizes=[3], use_gumbel=False), 3)
    from tests.contract import BACKEND

    alpha = np.zeros(4, "float32")
    set_alpha(layer, alpha)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = layer.expected_size()
        grad = tf.convert_to_tensor(tape.gradient(value, layer.arch_weights.value)).numpy()
    elif BACKEND == "jax":
        import jax

        grad = np.asarray(jax.grad(lambda a: layer._expected_and_entropy(a)[0].sum())(
            layer.arch_weights.value))
    else:
        import torch

        layer.arch_weights.value.grad = None
        with torch.enable_grad():
            layer.expected_size().backward()
        grad = layer.arch_weights.value.grad.numpy()
    p = np.full(4, 0.25)
    expected = p * (np.arange(4) - 1.5) / 1.5  # ∂E/∂α_k = p_k (k − E) / T
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)
    assert math.isclose(float(ops.convert_to_numpy(layer.expected_size())), 1.5, rel_tol=1e-6)
