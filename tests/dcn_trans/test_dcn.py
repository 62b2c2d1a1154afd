"""DCN: reference math for every dcn_type, kernel norm, gating, dropout/mode, bad input, contract."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from reclayers.layers import DCN
from tests.contract import Case, LayerContract, assert_allclose, randomize_weights, weight
from tests.reference import dcn_cin as ref


def _x(rng, b, d=6):
    return rng.normal(size=(b, d)).astype("float32")


def _x3(rng, b):
    return rng.normal(size=(b, 3, 5)).astype("float32")


def _ref_layers(layer, kernel_norm):
    """Effective weights of a built DCN, read from its variables (not from the layer's math)."""

    def eff(name):
        w = weight(layer, f"/{name}")
        return ref.effective(w, weight(layer, f"/{name}_trainable_norm") if kernel_norm else None)

    layers = []
    for i in range(layer.layer_num):
        p = {"bias": weight(layer, f"/bias_{i}")}
        if layer.dcn_type == "mixed":
            p["experts"] = [
                {n: eff(f"{n}_{i}_{j}") for n in "UVCG"} for j in range(layer.num_experts)
            ]
        else:
            p["kernel"] = eff(f"kernel_{i}")
        layers.append(p)
    return layers


@pytest.mark.parametrize("kernel_norm", [False, True])
@pytest.mark.parametrize(
    "dcn_type, extra",
    [("vector", {}), ("matrix", {}), ("mixed", {"num_experts": 1, "low_rank": 3}),
     ("mixed", {"num_experts": 3, "low_rank": 2})],
)
def test_dcn_matches_reference(dcn_type, extra, kernel_norm):
    x = _x(np.random.default_rng(0), 7)
    layer = DCN(layer_num=2, dcn_type=dcn_type, allow_kernel_norm=kernel_norm, **extra)
    layer(x)
    randomize_weights(layer, scale=0.4)
    expected = ref.dcn(x, dcn_type, _ref_layers(layer, kernel_norm))
    assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel_norm", [False, True])
def test_deep_vector_stack_matches_the_layer_by_layer_reference(kernel_norm):
    # 'vector' runs all its cross layers at once (x0 ⊙ s + c, see DCN._vector_stack): five
    # layers on a rank-3 input against the reference's layer-by-layer loop (the contract below
    # checks its gradients against finite differences).
    x = _x3(np.random.default_rng(5), 4)
    layer = DCN(layer_num=5, dcn_type="vector", allow_kernel_norm=kernel_norm)
    layer(x)
    randomize_weights(layer, scale=0.3)
    expected = ref.dcn(x, "vector", _ref_layers(layer, kernel_norm))
    assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-5)


def test_rank3_input_crosses_last_axis():
    x = _x3(np.random.default_rng(1), 4)
    layer = DCN(layer_num=3, dcn_type="matrix")
    layer(x)
    randomize_weights(layer, scale=0.3)
    expected = ref.dcn(x, "matrix", _ref_layers(layer, False))
    assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-5)


def test_mixed_single_expert_equals_as_coded_sum_and_gates_normalise():
    x = _x(np.random.default_rng(2), 5)
    one = DCN(layer_num=2, dcn_type="mixed", num_experts=1, low_rank=3)
    one(x)
    randomize_weights(one)
    layers = _ref_layers(one, False)
    assert_allclose(one(x), ref.dcn(x, "mixed", layers, gating="as_coded"), rtol=1e-5, atol=1e-5)
    two = DCN(layer_num=1, dcn_type="mixed", num_experts=2, low_rank=3)
    two(x)
    randomize_weights(two)
    layers = _ref_layers(two, False)
    normative = ref.dcn(x, "mixed", layers)
    assert_allclose(two(x), normative, rtol=1e-5, atol=1e-5)
    # Gates sum to one: with identical experts the normative mixture equals one expert's output.
    for name in "UVC":
        w0 = [w for w in two.weights if w.path.endswith(f"/{name}_0_0")][0]
        w1 = [w for w in two.weights if w.path.endswith(f"/{name}_0_1")][0]
        w1.assign(w0)
    single = ref.dcn(x, "mixed", [{"bias": layers[0]["bias"],
                                   "experts": [_ref_layers(two, False)[0]["experts"][0]]}],
                     gating="as_coded")
    assert_allclose(two(x), single, rtol=1e-5, atol=1e-5)


def test_kernel_norm_starts_from_the_plain_kernels():
    x = _x(np.random.default_rng(3), 4)
    for dcn_type in ("vector", "matrix", "mixed"):
        normed = DCN(layer_num=2, dcn_type=dcn_type, allow_kernel_norm=True, num_experts=2,
                     low_rank=2)
        normed(x)
        names = {w.path.split("/")[-1] for w in normed.weights}
        assert all(f"{n}_trainable_norm" in names for n in names if not n.startswith("bias")
                   and not n.endswith("_trainable_norm"))
        assert not any(n.startswith("bias") and n.endswith("_trainable_norm") for n in names)
        plain = DCN(layer_num=2, dcn_type=dcn_type, num_experts=2, low_rank=2)
        plain(x)
        for w in plain.weights:
            w.assign(weight(normed, "/" + w.path.split("/")[-1]))
        assert_allclose(normed(x), plain(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dcn_type", ["vector", "matrix", "mixed"])
def test_original_call_shapes(dcn_type):
    x = np.ones((128, 10, 10), "float32")
    layer = DCN(layer_num=2, dcn_type=dcn_type, allow_kernel_norm=True, use_dropout=True,
                keep_prob=0.5, num_experts=2, low_rank=5)
    y = layer(x)
    assert tuple(y.shape) == (128, 10, 10)
    assert np.all(np.isfinite(ops.convert_to_numpy(y)))


def test_original_params_and_serde():
    layer = DCN(layer_num=8, dcn_type="matrix", use_dropout=True, keep_prob=0.5)
    clone = DCN.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.mode == "train" and clone.keep_prob == 0.5 and clone.layer_num == 8


def test_dropout_in_training_is_inverted_and_follows_training_over_mode():
    x = _x(np.random.default_rng(4), 64, d=8)
    layer = DCN(layer_num=1, dcn_type="matrix", use_dropout=True, keep_prob=0.5, seed=3)
    layer(x, training=False)
    randomize_weights(layer, scale=0.3)
    clean = ref.dcn(x, "matrix", _ref_layers(layer, False))
    assert_allclose(layer(x, training=False), clean, rtol=1e-5, atol=1e-5)
    for kwargs in ({"training": True}, {}):  # default mode='train' drops when training is None
        y = ops.convert_to_numpy(layer(x, **kwargs)).astype("float64")
        kept = y != 0
        assert 0.3 < kept.mean() < 0.7
        np.testing.assert_allclose(y[kept], clean[kept] / 0.5, rtol=1e-5, atol=1e-5)
    evaluating = DCN.from_config({**layer.get_config(), "mode": "eval"})
    evaluating(x)
    evaluating.set_weights(layer.get_weights())
    assert_allclose(evaluating(x), clean, rtol=1e-5, atol=1e-5)
    y = ops.convert_to_numpy(evaluating(x, training=True))
    assert (y == 0).mean() > 0.3


def test_dropout_after_every_layer_matches_reference_with_the_masks():
    x = np.abs(_x(np.random.default_rng(5), 32, d=4)) + 0.5
    layer = DCN(layer_num=2, dcn_type="vector", use_dropout=True, keep_prob=0.75, seed=1)
    layer(x, training=False)
    # Kernels and biases > 0 and x > 0 make every pre-dropout value positive, so zeros = drops.
    for w in layer.weights:
        if "float" in str(w.dtype):
            w.assign(np.full(tuple(w.shape), 0.2, "float32"))
    y = ops.convert_to_numpy(layer(x, training=True)).astype("float64")
    first = ref.dcn(x, "vector", _ref_layers(layer, False)[:1])
    assert np.all(first > 0)
    # The second layer's mask is where y != 0. The first layer's mask is not observable directly,
    # so every row must equal the reference under one of the 2**4 possible first-layer masks.
    mask2 = (y != 0).astype("float64")
    assert (mask2 == 0).any() and (mask2 == 1).any()
    layers = _ref_layers(layer, False)
    candidates = []
    for bits in range(16):
        m1 = np.tile([(bits >> k) & 1 for k in range(4)], (len(x), 1)).astype("float64")
        candidates.append(ref.dcn(x, "vector", layers, dropout_masks=[m1, mask2], keep_prob=0.75))
    matches = np.stack([np.isclose(y, c, rtol=1e-5, atol=1e-5).all(axis=1) for c in candidates])
    assert matches.any(axis=0).all(), "some row matches no dropout pattern"
    assert not matches[15].all(), "the first layer never dropped anything"


def test_regularizer_applies_to_kernels_only():
    layer = DCN(layer_num=2, dcn_type="matrix", regularizer=keras.regularizers.L2(0.1))
    layer(_x(np.random.default_rng(6), 3))
    assert len(layer.losses) == 2  # kernel_0 and kernel_1, not the biases


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dcn_type": "matrx"}, "DCN: dcn_type must be one of 'vector', 'matrix', 'mixed'; got 'matrx'"),
        ({"layer_num": 0}, "DCN: layer_num must be an integer >= 1; got 0"),
        ({"dcn_type": "mixed"}, "DCN: low_rank must be an integer >= 1 when dcn_type is 'mixed'; got 0"),
        ({"dcn_type": "mixed", "low_rank": 2, "num_experts": 0},
         "DCN: num_experts must be an integer >= 1; got 0"),
        ({"low_rank": -1}, "DCN: low_rank must be an integer >= 0; got -1"),
        ({"keep_prob": 0.0}, "DCN: keep_prob must be a number in (0.0, 1.0]; got 0.0"),
        ({"keep_prob": 1.5}, "DCN: keep_prob must be a number in (0.0, 1.0]; got 1.5"),
        ({"mode": "training"},
         "DCN: mode must be one of 'train', 'eval', 'infer', 'predict'; got 'training'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as err:
        DCN(**kwargs)
    assert message in str(err.value)


def test_bad_input_shapes():
    with pytest.raises(ValueError, match="DCN: inputs must be a tensor of rank >= 2"):
        DCN().build((5,))
    with pytest.raises(ValueError, match="DCN: inputs must have a known last dimension"):
        DCN().build((None, None))


class TestDCNContract(LayerContract):
    cases = [
        Case("vector", lambda **kw: DCN(layer_num=2, dcn_type="vector", **kw), _x),
        Case("matrix_norm_rank3", lambda **kw: DCN(layer_num=2, dcn_type="matrix",
                                                   allow_kernel_norm=True, **kw), _x3),
        Case("mixed", lambda **kw: DCN(layer_num=2, dcn_type="mixed", num_experts=2, low_rank=3,
                                       **kw), _x),
        Case("mixed_norm_dropout_eval",
             lambda **kw: DCN(layer_num=1, dcn_type="mixed", num_experts=2, low_rank=2,
                              allow_kernel_norm=True, use_dropout=True, keep_prob=0.5, **kw),
             _x, call_kwargs={"training": False}),
    ]


def test_kernels_draw_distinct_initial_values_even_with_a_seeded_initializer():
    for init in (None, keras.initializers.GlorotNormal(seed=5)):
        layer = DCN(layer_num=2, dcn_type="mixed", num_experts=2, low_rank=3, initializer=init)
        layer(_x(np.random.default_rng(0), 2))
        assert not np.allclose(weight(layer, "/U_0_0"), weight(layer, "/U_0_1"))
        assert not np.allclose(weight(layer, "/U_0_0"), weight(layer, "/U_1_0"))
    a = DCN(layer_num=2, initializer=keras.initializers.GlorotNormal(seed=5))
    b = DCN(layer_num=2, initializer=keras.initializers.GlorotNormal(seed=5))
    a(_x(np.random.default_rng(0), 2))
    b(_x(np.random.default_rng(0), 2))
    np.testing.assert_array_equal(weight(a, "/kernel_1"), weight(b, "/kernel_1"))


def test_fit_with_dropout_and_predict_without():
    rng = np.random.default_rng(8)
    x, target = _x(rng, 16), _x(rng, 16)
    layer = DCN(layer_num=2, dcn_type="mixed", num_experts=2, low_rank=2, use_dropout=True,
                keep_prob=0.8, seed=2)
    inputs = keras.Input(shape=(6,))
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(x, target, epochs=2, batch_size=8, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    # predict runs with training=False: deterministic and equal to the eager inference call.
    assert_allclose(model.predict(x, verbose=0), layer(x, training=False), rtol=1e-5, atol=1e-5)
