"""MLP: reference math (activations, weight norm, batch norm, renorm), structure, contract."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reclayers.layers import MLP, advanced_activations
from tests.contract import Case, LayerContract, assert_allclose, randomize_weights, weight
from tests.reference import core as ref


def _x(rng, b, d=6):
    return rng.normal(size=(b, d)).astype("float32")


def _dense_params(mlp, n, weight_norm, learnable):
    out = []
    for i in range(n):
        g = weight(mlp, f"dense_{i}/trainable_kernel_norm") if weight_norm and learnable else None
        out.append((weight(mlp, f"dense_{i}/kernel"), g, weight(mlp, f"dense_{i}/bias")))
    return out


def _bn_params(mlp, n):
    stats = {}
    for key, name in [("in", "batch_norm_in")] + [(i, f"batch_norm_{i}") for i in range(n - 1)]:
        stats[key] = tuple(weight(mlp, f"{name}/{w}") for w in
                           ("gamma", "beta", "moving_mean", "moving_variance"))
    return stats


@pytest.mark.parametrize("weight_norm, learnable", [(True, True), (True, False), (False, False)])
@pytest.mark.parametrize("activations", [None, "tanh", ["relu", "sigmoid2", "sigmoid"]])
def test_mlp_matches_reference(weight_norm, learnable, activations):
    x = _x(np.random.default_rng(0), 5)
    mlp = MLP([7, 4, 3], activations=activations, use_weight_norm=weight_norm,
              use_learnable_weight_norm=learnable)
    mlp(x)
    randomize_weights(mlp)
    if activations is None:
        acts = [ref.relu, ref.relu, None]
    elif isinstance(activations, str):
        acts = [ref.ACTIVATIONS[activations]] * 2 + [None]
    else:
        acts = [ref.ACTIVATIONS[a] for a in activations]
    expected = ref.mlp(x, _dense_params(mlp, 3, weight_norm, learnable), acts, weight_norm)
    assert_allclose(mlp(x), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("training", [False, True])
def test_batch_norm_inference_and_training(training):
    x = _x(np.random.default_rng(1), 16)
    mlp = MLP([5, 3], enable_batch_normalization=True)
    mlp(x)
    randomize_weights(mlp)
    for w in mlp.non_trainable_weights:  # keep variances positive
        if w.path.endswith("moving_variance"):
            w.assign(np.abs(keras.ops.convert_to_numpy(w)) + 0.5)
    expected = ref.mlp(x, _dense_params(mlp, 2, True, True), [ref.relu, None], True,
                       bn=_bn_params(mlp, 2), training=training)
    assert_allclose(mlp(x, training=training), expected, rtol=1e-4, atol=1e-4)


def test_batch_renorm_with_clipping_matches_reference():
    x = _x(np.random.default_rng(2), 32) * 3 + 1
    clip = {"rmax": 1.5, "rmin": 0.8, "dmax": 0.3}
    mlp = MLP([4], enable_batch_normalization=True, batch_normalization_renorm=True,
              batch_normalization_renorm_clipping=clip, batch_normalization_renorm_momentum=0.9)
    mlp(x)
    bn = mlp.get_layer(0)
    assert bn.renorm and bn.renorm_momentum == 0.9
    gamma, beta = weight(mlp, "batch_norm_in/gamma"), weight(mlp, "batch_norm_in/beta")
    h = ref.batch_renorm_train(x.astype("float64"), gamma, beta, weight(mlp, "renorm_mean"),
                               weight(mlp, "renorm_stddev"), rmax=1.5, rmin=0.8, dmax=0.3)
    (kernel, g, bias), = _dense_params(mlp, 1, True, True)
    expected = ref.dense(h, kernel, bias, kernel_norm=True, norm_scale=g)
    before = weight(mlp, "renorm_mean").copy()
    assert_allclose(mlp(x, training=True), expected, rtol=1e-4, atol=1e-4)
    assert not np.allclose(weight(mlp, "renorm_mean"), before), "renorm statistics must update"


def test_reference_structure_eleven_entries():
    mlp = MLP([100, 50, 10, 1], enable_batch_normalization=True,
              activations=["relu", keras.activations.tanh, keras.layers.PReLU, None],
              initializers=keras.initializers.GlorotNormal())
    y = mlp(np.ones((100, 100), "float32"))
    assert tuple(y.shape) == (100, 1)
    assert len(mlp._layer_stack) == 11
    assert isinstance(mlp.get_layer(0), keras.layers.BatchNormalization)
    with pytest.raises(ValueError, match="MLP: index must be an integer in"):
        mlp.get_layer(11)


def test_single_prelu_instance_is_cloned_per_layer():
    mlp = MLP([5, 3, 1], activations=keras.layers.PReLU())
    mlp(np.ones((2, 4), "float32"))
    prelus = [a for a in mlp.activations if isinstance(a, keras.layers.PReLU)]
    assert len(prelus) == 2 and prelus[0] is not prelus[1]


def test_single_initializer_replicated_and_list_padded():
    mlp = MLP([3, 2, 1], initializers=[keras.initializers.Zeros()])
    mlp(np.ones((2, 4), "float32"))
    np.testing.assert_array_equal(weight(mlp, "dense_0/kernel"), np.zeros((4, 3)))
    assert np.any(weight(mlp, "dense_1/kernel") != 0)


def test_config_keeps_sigmoid2_and_per_layer_activations():
    mlp = MLP([4, 2], activations=["sigmoid2", "sigmoid"])
    clone = MLP.from_config(mlp.get_config())
    assert isinstance(clone.activations[0], advanced_activations.Sigmoid2)
    assert isinstance(clone.activations[1], advanced_activations.Sigmoid)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"output_dims": []}, "MLP: output_dims must be a non-empty list of integers >= 1; got []"),
        ({"output_dims": [3, 0]}, "MLP: output_dims must be a non-empty list of integers >= 1"),
        ({"output_dims": [3, 2], "activations": ["relu"]},
         "MLP: activations must be a list of length 2 (one per layer); got ['relu']"),
        ({"output_dims": [3], "batch_normalization_momentum": 1.5},
         "MLP: batch_normalization_momentum must be a number in [0.0, 1.0]; got 1.5"),
        ({"output_dims": [3], "batch_normalization_renorm_clipping": {"rmaxx": 2}},
         "MLP: batch_normalization_renorm_clipping must be None or a dict with keys among"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as err:
        MLP(**kwargs)
    assert message in str(err.value)


def test_bad_input_shape():
    with pytest.raises(ValueError, match=r"MLP: inputs must have a known last dimension; got shape \(None,"):
        MLP([2]).build((None, None))
    with pytest.raises(ValueError, match=r"MLP: inputs must be a tensor of rank >= 2; got shape \(3,\)"):
        MLP([2]).build((3,))


class TestMLPContract(LayerContract):
    cases = [
        Case("default", lambda **kw: MLP([8, 4, 1], **kw), _x),
        Case("no_weight_norm", lambda **kw: MLP([5, 2], activations="tanh", use_weight_norm=False,
                                                 **kw), _x),
        Case("batch_norm", lambda **kw: MLP([6, 3], enable_batch_normalization=True, **kw), _x,
             grad_kwargs={"training": True}),
        Case("renorm", lambda **kw: MLP([6, 3], enable_batch_normalization=True,
                                        batch_normalization_renorm=True,
                                        batch_normalization_renorm_clipping={"rmax": 2.0, "dmax": 1.0},
                                        **kw), _x, grad_kwargs={"training": True}, fd_check=False),
        Case("rank3", lambda **kw: MLP([4, 2], activations=["prelu", None], **kw),
             lambda rng, b: rng.normal(size=(b, 3, 5)).astype("float32"), zero_grad_ok=("p_re_lu",)),
    ]


def test_dtype_reaches_sub_layers():
    mlp = MLP([3, 2], enable_batch_normalization=True, dtype="bfloat16")
    y = mlp(np.ones((4, 5), "float32"))
    assert "bfloat16" in str(y.dtype)
    assert all("bfloat16" in str(w.dtype) for w in mlp.weights)


def test_call_after_first_dense_continues_the_tower():
    mlp = MLP([6, 5, 3], activations=["relu", "tanh", None])
    x = np.random.default_rng(3).standard_normal((4, 7)).astype("float32")
    mlp.build(x.shape)
    randomize_weights(mlp, seed=1)
    full = mlp(x)
    first = mlp.dense_layers[0](x)
    assert_allclose(mlp.call_after_first_dense(first), full, rtol=1e-6, atol=1e-6)


def test_call_after_first_dense_refuses_input_batch_norm():
    mlp = MLP([4, 2], enable_batch_normalization=True)
    mlp.build((None, 3))
    with pytest.raises(ValueError, match="MLP: call_after_first_dense needs enable_batch"):
        mlp.call_after_first_dense(np.zeros((2, 4), "float32"))
