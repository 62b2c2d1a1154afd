"""AutoInt: reference math per layer_num / out_type / keep_list, original case, bad input, contract."""

from __future__ import annotations

import numpy as np
import pytest
from keras import ops

from reclayers.layers import AutoInt
from tests.contract import Case, LayerContract, assert_allclose
from tests.dcn_trans._wrap import with_input_scale
from tests.reference import feature_trans as ref


def _x(rng, b, f=4, e=3):
    return rng.normal(size=(b, f, e)).astype("float32")


@pytest.mark.parametrize("keep_list", [False, True])
@pytest.mark.parametrize("out_type", ["concat", "stack", None])
@pytest.mark.parametrize("layer_num", [1, 3])
def test_autoint_matches_reference(layer_num, out_type, keep_list):
    x = _x(np.random.default_rng(0), 5)
    layer = AutoInt(layer_num=layer_num, out_type=out_type, keep_list=keep_list)
    y = layer(x)
    expected = ref.merge(ref.autoint(x, layer_num), out_type, keep_list)
    assert isinstance(y, list) == isinstance(expected, list)
    assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    shape = layer.compute_output_shape((None, 4, 3))
    expected_shapes = [(None,) + np.shape(e)[1:] for e in (expected if isinstance(expected, list)
                                                          else [expected])]
    got_shapes = shape if isinstance(shape, list) else [shape]
    assert [tuple(s) for s in got_shapes] == expected_shapes


def test_large_scores_stay_finite():
    x = np.full((2, 3, 4), 30.0, "float32")
    x[:, 0] = -30.0
    y = ops.convert_to_numpy(AutoInt(layer_num=2)(x))
    assert np.all(np.isfinite(y))
    assert_allclose(y, ref.merge(ref.autoint(x, 2), "concat"), rtol=1e-5, atol=1e-4)


def test_has_no_weights():
    layer = AutoInt()
    layer(_x(np.random.default_rng(1), 2))
    assert layer.weights == []


def test_original_case():
    layer = AutoInt(layer_num=1)
    assert AutoInt.from_config(layer.get_config()).get_config() == layer.get_config()
    y = AutoInt(layer_num=2, name="test_dense0")(np.ones((100, 10, 10), "float32"))
    assert tuple(y.shape) == (100, 100)
    np.testing.assert_allclose(ops.convert_to_numpy(y), np.ones((100, 100)), rtol=1e-6)
    assert float(np.sum(ops.convert_to_numpy(y))) == pytest.approx(10000.0, rel=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"layer_num": 0}, "AutoInt: layer_num must be an integer >= 1; got 0"),
        ({"out_type": "cat"}, "AutoInt: out_type must be one of 'concat', 'stack', None; got 'cat'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as err:
        AutoInt(**kwargs)
    assert message in str(err.value)


def test_bad_input_shapes():
    with pytest.raises(ValueError, match=r"AutoInt: inputs must be a tensor of rank 3; got shape \(2, 4\)"):
        AutoInt().build((2, 4))
    with pytest.raises(ValueError, match="AutoInt: inputs must have a known size on axis 1"):
        AutoInt().build((None, None, 4))


class TestAutoIntContract(LayerContract):
    """AutoInt has no weights: the gradient checks run on ``AutoInt(x ⊙ w)`` (input gradients)."""

    cases = [
        Case("concat", lambda **kw: AutoInt(layer_num=2, **kw), _x),
        Case("stack_keep_list", lambda **kw: AutoInt(out_type="stack", keep_list=True, **kw), _x),
        Case("unstacked", lambda **kw: AutoInt(layer_num=1, out_type=None, **kw), _x),
    ]

    def test_gradients_reach_every_weight(self, case):
        super().test_gradients_reach_every_weight(with_input_scale(case))

    def test_gradients_match_finite_differences(self, case):
        super().test_gradients_match_finite_differences(with_input_scale(case))
