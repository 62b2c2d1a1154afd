"""SeNet: reference math for tensor and list inputs, every out_type, cmp_dim None, bad input, contract."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from reclayers.layers import SeNet
from tests.contract import Case, LayerContract, assert_allclose, randomize_weights, weight
from tests.dcn_trans._wrap import with_input_scale
from tests.reference import feature_trans as ref

F = 3


def _x(rng, b, e=4):
    return rng.normal(size=(b, F, e)).astype("float32")


def _xs(rng, b, dims=(2, 3, 5)):
    return [rng.normal(size=(b, d)).astype("float32") for d in dims]


def _tower(layer):
    if layer.cmp_dim is None:
        return None
    return tuple(
        weight(layer, f"dense_{i}/{n}") for i in (0, 1) for n in ("kernel", "trainable_kernel_norm", "bias")
    )


@pytest.mark.parametrize("cmp_dim", [2, None])
@pytest.mark.parametrize("keep_list", [False, True])
@pytest.mark.parametrize("out_type", ["concat", "stack", None])
def test_senet_tensor_input_matches_reference(out_type, keep_list, cmp_dim):
    x = _x(np.random.default_rng(0), 5)
    layer = SeNet(num_feature=F, cmp_dim=cmp_dim, out_type=out_type, keep_list=keep_list)
    layer(x)
    randomize_weights(layer)
    expected = ref.merge(ref.senet(x, _tower(layer)), out_type, keep_list)
    y = layer(x)
    assert isinstance(y, list) == isinstance(expected, list)
    assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("on_gpu", [False, True])
@pytest.mark.parametrize("out_type, keep_list", [("concat", False), ("concat", True), (None, False)])
def test_senet_list_input_matches_reference(out_type, keep_list, on_gpu):
    xs = _xs(np.random.default_rng(1), 4)
    layer = SeNet(num_feature=F, cmp_dim=2, out_type=out_type, keep_list=keep_list, on_gpu=on_gpu)
    layer(xs)
    randomize_weights(layer, seed=3)
    ys = ref.senet_list(xs, _tower(layer))
    expected = ys if out_type is None else np.concatenate(ys, axis=1)
    if keep_list and out_type is not None:
        expected = [expected]
    assert_allclose(layer(xs), expected, rtol=1e-5, atol=1e-6)


def test_senet_list_input_stack_with_equal_sizes():
    xs = _xs(np.random.default_rng(2), 3, dims=(4, 4, 4))
    layer = SeNet(num_feature=F, cmp_dim=None, out_type="stack")
    expected = np.stack(ref.senet_list(xs), axis=1)
    assert_allclose(layer(xs), expected, rtol=1e-5, atol=1e-6)
    # The same numbers as the tensor input.
    assert_allclose(SeNet(num_feature=F, cmp_dim=None, out_type="stack")(np.stack(xs, axis=1)),
                    expected, rtol=1e-5, atol=1e-6)


def test_functional_list_input_shapes():
    xs = _xs(np.random.default_rng(3), 2)
    for out_type, expected in (("concat", [(None, 10)]), (None, [(None, 2), (None, 3), (None, 5)])):
        inputs = [keras.Input(shape=(x.shape[1],)) for x in xs]
        outputs = SeNet(num_feature=F, cmp_dim=2, out_type=out_type)(inputs)
        flat = outputs if isinstance(outputs, list) else [outputs]
        assert [tuple(o.shape) for o in flat] == expected


def test_original_case_and_ones_input():
    layer = SeNet(num_feature=10, cmp_dim=4, initializer=keras.initializers.GlorotNormal())
    config = layer.get_config()
    assert SeNet.from_config(config).get_config() == config
    layer = SeNet(num_feature=10, cmp_dim=4, initializer=keras.initializers.HeUniform())
    y = ops.convert_to_numpy(layer(np.ones((100, 10, 10), "float32")))
    assert y.shape == (100, 100)
    s = ref.senet_scale(np.ones((1, 10)), _tower(layer))[0]
    np.testing.assert_allclose(y, np.tile(np.repeat(s, 10)[None], (100, 1)), rtol=1e-5, atol=1e-6)


def test_regularizer_on_kernels_only_and_alias():
    x = _x(np.random.default_rng(4), 2)
    for kwargs in ({"regularizer": "l2"}, {"kernel_regularizer": "l2"}):
        layer = SeNet(num_feature=F, cmp_dim=2, **kwargs)
        layer(x)
        assert len(layer.losses) == 2
        assert layer.get_config()["regularizer"] is not None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_feature": 0, "cmp_dim": 2}, "SeNet: num_feature must be an integer >= 1; got 0"),
        ({"num_feature": 3, "cmp_dim": 0}, "SeNet: cmp_dim must be an integer >= 1; got 0"),
        ({"num_feature": 3, "cmp_dim": 2, "out_type": "flat"},
         "SeNet: out_type must be one of 'concat', 'stack', None; got 'flat'"),
        ({"num_feature": 3, "cmp_dim": 2, "regularizer": "l2", "kernel_regularizer": "l1"},
         "SeNet: kernel_regularizer must be None when regularizer is given; got 'l1'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as err:
        SeNet(**kwargs)
    assert message in str(err.value)


def test_bad_input_shapes():
    with pytest.raises(ValueError, match=r"SeNet: inputs must have num_feature = 3 fields on axis 1"):
        SeNet(num_feature=3, cmp_dim=2).build((None, 4, 5))
    with pytest.raises(ValueError, match=r"SeNet: inputs must be a tensor of rank 3"):
        SeNet(num_feature=3, cmp_dim=2).build((None, 15))
    with pytest.raises(ValueError, match=r"SeNet: inputs must be a list of num_feature = 3 tensors; got 2"):
        SeNet(num_feature=3, cmp_dim=2).build([(None, 4), (None, 5)])
    with pytest.raises(ValueError, match=r"SeNet: inputs\[1\] must be a tensor of rank 2"):
        SeNet(num_feature=3, cmp_dim=2).build([(None, 4), (None, 5, 2), (None, 1)])
    with pytest.raises(ValueError, match=r"SeNet: inputs must have equal sizes for out_type='stack'"):
        SeNet(num_feature=3, cmp_dim=2, out_type="stack").build([(None, 4), (None, 5), (None, 4)])


class TestSeNetContract(LayerContract):
    cases = [
        Case("tensor_concat", lambda **kw: SeNet(num_feature=F, cmp_dim=2, **kw), _x),
        Case("tensor_unstacked", lambda **kw: SeNet(num_feature=F, cmp_dim=2, out_type=None, **kw),
             _x),
        Case("list_concat", lambda **kw: SeNet(num_feature=F, cmp_dim=2, **kw), _xs),
        Case("list_unstacked_keep", lambda **kw: SeNet(num_feature=F, cmp_dim=4, out_type=None,
                                                       keep_list=True, **kw), _xs),
    ]


class TestSeNetNoTowerContract(LayerContract):
    """cmp_dim=None has no weights: the gradient checks run on ``SeNet(x ⊙ w)``."""

    cases = [Case("no_tower_stack", lambda **kw: SeNet(num_feature=F, cmp_dim=None, out_type="stack",
                                                       **kw), _x)]

    def test_gradients_reach_every_weight(self, case):
        super().test_gradients_reach_every_weight(with_input_scale(case))

    def test_gradients_match_finite_differences(self, case):
        super().test_gradients_match_finite_differences(with_input_scale(case))
