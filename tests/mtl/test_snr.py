"""SNR and hard_concrete_ste: reference math for both snr_types, deterministic vs stochastic
gates, the L0 loss (value, in model.losses, trainable), STE gradients, bad input, contract."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reclayers.layers import SNR, hard_concrete_ste
from tests.contract import Case, LayerContract, assert_allclose, trainable_gradients
from tests.mtl.helpers import np_
from tests.reference import multi_task as ref


def _xs(rng, b, m=3, d=4):
    return [rng.normal(size=(b, d)).astype("float32") for _ in range(m)]


def _set(layer, rng, log_alpha_scale=1.5):
    la = rng.normal(scale=log_alpha_scale, size=tuple(layer.log_alpha.shape)).astype("float32")
    layer.log_alpha.assign(la)
    if layer.weight is not None:
        layer.weight.assign(rng.normal(size=tuple(layer.weight.shape)).astype("float32"))
    return la


@pytest.mark.parametrize("snr_type, d_out, use_ste", [("trans", 3, False), ("trans", 3, True),
                                                       ("aver", 4, True)])
def test_snr_matches_reference(snr_type, d_out, use_ste):
    rng = np.random.default_rng(0)
    xs = _xs(rng, 6)
    kw = {"zeta": 1.2, "gamma": -0.2, "beta": 0.7}
    layer = SNR(num_out_subnet=2, out_subnet_dim=d_out, snr_type=snr_type, use_ste=use_ste, seed=5,
                **kw)
    layer(xs, training=False)
    la = _set(layer, rng).astype("float64")
    w = None if snr_type == "aver" else np_(layer.weight)
    x64 = [x.astype("float64") for x in xs]
    # inference: deterministic s = σ(log_alpha)
    z = ref.hard_concrete_gates(la, **kw)
    assert_allclose(layer(xs, training=False), ref.snr(x64, z, 2, d_out, w), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_losses(layer), [ref.l0_loss(la, **kw)], rtol=1e-5)
    # training: the concrete sample, u replayed from a generator with the layer's seed
    replay = keras.random.SeedGenerator(5)
    u = np_(keras.random.uniform((6, 1), minval=1e-6, maxval=1 - 1e-6, dtype="float32", seed=replay))
    z = ref.hard_concrete_gates(la, u=u, **kw)
    assert_allclose(layer(xs, training=True), ref.snr(x64, z, 2, d_out, w), rtol=1e-5, atol=1e-5)


def _losses(layer):
    return [float(np_(v)) for v in layer.losses]


def test_original_test_case_golden_values():
    layer = SNR(num_out_subnet=3, out_subnet_dim=128, snr_type="aver", mode="infer")
    outs = layer([np.ones((100, 128), "float32")] * 4)
    assert [tuple(o.shape) for o in outs] == [(100, 128)] * 3
    for o in outs:
        np.testing.assert_array_equal(np_(o), np.full((100, 128), 2.0))
    assert sum(float(np_(o).sum()) for o in outs) == 76800.0
    np.testing.assert_allclose(_losses(layer), [9.2200503], rtol=1e-6)
    template = SNR(num_out_subnet=3, out_subnet_dim=128, use_ste=False)
    assert SNR.from_config(template.get_config()).get_config() == template.get_config()


def test_gate_at_log_alpha_ln11_is_one():
    layer = SNR(1, 2, snr_type="aver", mode="infer")
    layer([np.ones((1, 2), "float32")])
    layer.log_alpha.assign(np.full((1, 1), np.log(11.0), "float32"))
    np.testing.assert_allclose(np_(layer.gate_values()), [[1.0]], atol=1e-6)


def test_deterministic_at_inference_stochastic_in_training():
    xs = _xs(np.random.default_rng(1), 6)
    layer = SNR(2, 3, seed=1)
    a, b = layer(xs, training=False), layer(xs, training=False)
    assert_allclose(a, b, rtol=0, atol=0)
    c, d = layer(xs, training=True), layer(xs, training=True)
    assert not np.allclose(np_(c[0]), np_(d[0]))
    # training=None: mode decides ('train'/'eval' sample, 'infer'/'predict' do not)
    for mode, stochastic in (("train", True), ("eval", True), ("infer", False), ("predict", False)):
        g = SNR(2, 3, mode=mode)
        g(xs)
        assert (not np.allclose(np_(g.gate_values()), np_(g.gate_values()))) == stochastic, mode
    # Functional predict passes training=False, even with mode='train'
    model = keras.Model(inputs := [keras.Input((4,)) for _ in range(3)], SNR(2, 3)(inputs))
    assert_allclose(model.predict(xs, verbose=0), model.predict(xs, verbose=0), rtol=0, atol=0)


def test_l0_loss_in_model_losses_and_falls_when_trained_alone():
    inputs = [keras.Input((4,)) for _ in range(2)]
    layer = SNR(2, 4, snr_type="aver")
    model = keras.Model(inputs, layer(inputs))
    xs = _xs(np.random.default_rng(2), 32, m=2)
    model(xs)
    assert len(model.losses) == 1
    np.testing.assert_allclose(float(np_(model.losses[0])), 4 * 0.7683375, rtol=1e-6)
    before = float(np_(layer.l0_loss()))
    np.testing.assert_allclose(before, 4 * 0.7683375, rtol=1e-6)
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    model.fit(xs, None, epochs=3, batch_size=32, verbose=0)
    assert float(np_(layer.l0_loss())) < before - 0.1


def test_trans_weight_shape_and_glorot_fans():
    layer = SNR(3, 128, snr_type="trans")
    layer([np.ones((2, 128), "float32")] * 4)
    w = np_(layer.weight)
    assert w.shape == (12, 128 * 128) and tuple(layer.log_alpha.shape) == (12, 1)
    assert np.abs(w).max() <= np.sqrt(6 / (12 + 16384)) + 1e-7
    assert [v.path.split("/")[-1] for v in layer.trainable_weights] == ["log_alpha", "weight"]


def test_hard_concrete_ste_forward_and_identity_gradient():
    x = np.array([-0.5, 0.3, 1.7], "float32")
    np.testing.assert_allclose(np_(hard_concrete_ste(x)), [0.0, 0.3, 1.0], rtol=1e-6)
    xs = [np.ones((3, 2), "float32")]
    # log_alpha far above ln 11: the gate is clipped at 1; only STE passes a gradient through.
    grads = {}
    for use_ste in (False, True):
        layer = SNR(1, 2, snr_type="aver", use_ste=use_ste, mode="infer")
        layer(xs)
        layer.log_alpha.assign(np.full((1, 1), 5.0, "float32"))
        g, _ = trainable_gradients(layer, (xs,), {}, proj=[np.ones((3, 2))])
        grads[use_ste] = g[0]
    assert np.all(grads[False] == 0)
    s = 1 / (1 + np.exp(-5.0))
    np.testing.assert_allclose(grads[True], [[6 * 1.2 * s * (1 - s)]], rtol=1e-4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_out_subnet": 0}, "SNR: num_out_subnet must be an integer >= 1; got 0"),
        ({"out_subnet_dim": -1}, "SNR: out_subnet_dim must be an integer >= 1; got -1"),
        ({"snr_type": "avg"}, "SNR: snr_type must be one of 'trans', 'aver'; got 'avg'"),
        ({"zeta": 1.0}, "SNR: zeta must be a number in (1.0, inf); got 1.0"),
        ({"gamma": 0.0}, "SNR: gamma must be a number in (-inf, 0.0); got 0.0"),
        ({"beta": 0}, "SNR: beta must be a number in (0.0, inf); got 0"),
        ({"mode": "test"}, "SNR: mode must be one of 'train', 'eval', 'infer', 'predict'; got 'test'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as err:
        SNR(**{"num_out_subnet": 2, "out_subnet_dim": 3, **kwargs})
    assert message in str(err.value)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"SNR: inputs must be a non-empty list of tensors"):
        SNR(2, 3).build((None, 3))
    with pytest.raises(ValueError, match=r"SNR: inputs\[1\] must be a tensor of width 3 \(as inputs\[0\]\)"):
        SNR(2, 3).build([(None, 3), (None, 4)])
    with pytest.raises(ValueError, match=r"SNR: inputs\[0\] must be a tensor of rank 2"):
        SNR(2, 3).build([(None, 2, 3)])
    with pytest.raises(ValueError, match=r"SNR: out_subnet_dim must be equal to the input width 4"):
        SNR(2, 3, snr_type="aver").build([(None, 4), (None, 4)])


class TestSNRContract(LayerContract):
    cases = [
        Case("trans", lambda **kw: SNR(2, 3, mode="infer", **kw), _xs),
        Case("aver_ste", lambda **kw: SNR(3, 4, snr_type="aver", use_ste=True, mode="infer", **kw),
             lambda rng, b: _xs(rng, b, m=2)),
        # mode='infer' keeps direct calls deterministic; training=True samples the gates.
        Case("trans_sampled", lambda **kw: SNR(2, 3, seed=2, mode="infer", **kw), _xs,
             grad_kwargs={"training": True}, fd_check=False),
    ]
