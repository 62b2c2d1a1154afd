"""iRazor: reference math per out_type / keep_list, auxiliary loss, original case, bad input, contract."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from reclayers.layers import iRazor
from tests.contract import Case, LayerContract, assert_allclose, functional_model, weight
from tests.reference import feature_trans as ref

NAS = [0, 1, 3, 4]


def _x(rng, b, f=3):
    return rng.normal(size=(b, f, NAS[-1])).astype("float32")


def _randomize(layer, seed=0):
    w = layer.nas_weight
    w.assign(np.random.default_rng(seed).normal(scale=0.1, size=tuple(w.shape)).astype("float32"))


@pytest.mark.parametrize("keep_list", [False, True])
@pytest.mark.parametrize("out_type", ["concat", "stack", None])
def test_irazor_matches_reference(out_type, keep_list):
    x = _x(np.random.default_rng(0), 5)
    layer = iRazor(nas_space=NAS, t=0.2, out_type=out_type, keep_list=keep_list)
    layer(x)
    _randomize(layer)
    y_ref, _ = ref.irazor(x, weight(layer, "nas_weight"), NAS, 0.2)
    expected = ref.merge(y_ref, out_type, keep_list)
    y = layer(x)
    assert isinstance(y, list) == isinstance(expected, list)
    assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    assert layer.losses == []


def test_auxiliary_loss_matches_reference_and_reaches_the_model():
    fw = [1.0, 0.5, 2.0]
    x = _x(np.random.default_rng(1), 4)
    layer = iRazor(nas_space=NAS, t=0.3, feature_weight=np.asarray(fw, "float32"))
    layer(x)
    _randomize(layer, seed=2)
    y = layer(x)
    y_ref, loss_ref = ref.irazor(x, weight(layer, "nas_weight"), NAS, 0.3, feature_weight=fw)
    assert_allclose(y, ref.merge(y_ref, "concat"), rtol=1e-5, atol=1e-6)
    assert len(layer.losses) == 1
    assert float(ops.convert_to_numpy(layer.losses[0])) == pytest.approx(loss_ref, rel=1e-5)
    assert float(ops.convert_to_numpy(layer.layer_loss())) == pytest.approx(loss_ref, rel=1e-5)
    model = functional_model(layer, x)
    model.compile(optimizer="sgd", loss="mse")
    before = weight(layer, "nas_weight").copy()
    model.fit(x, np.asarray(ops.convert_to_numpy(y)), epochs=1, verbose=0)
    # The data loss is zero at the start, so only the auxiliary loss moves the logits.
    assert not np.allclose(weight(layer, "nas_weight"), before)


def test_original_case_and_ones_input():
    nas = [0, 2, 5, 7, 10]
    layer = iRazor(nas_space=nas, initializer=keras.initializers.GlorotNormal())
    config = layer.get_config()
    assert iRazor.from_config(config).get_config() == config
    layer = iRazor(nas_space=nas, t=0.08, initializer=keras.initializers.HeUniform())
    y = ops.convert_to_numpy(layer(np.ones((100, 10, 10), "float32")))
    assert y.shape == (100, 100)
    p, s = ref.irazor_mask(weight(layer, "nas_weight"), nas, 0.08)
    np.testing.assert_allclose(y, np.tile(s.reshape(1, 100), (100, 1)), rtol=1e-5, atol=1e-6)
    widths = np.diff(nas)
    np.testing.assert_allclose(y.reshape(100, 10, 10).sum(-1)[0], (p[:, 1:] * widths).sum(1),
                               rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(layer.selection_probs()), p, rtol=1e-5)


def test_feature_weight_is_stored_as_json_floats():
    layer = iRazor(nas_space=NAS, feature_weight=ops.convert_to_tensor([1.0, 2.0, 3.0]))
    config = layer.get_config()
    assert config["feature_weight"] == [1.0, 2.0, 3.0]
    assert all(type(v) is float for v in config["feature_weight"])
    keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"nas_space": [1, 3]}, "iRazor: nas_space must be a strictly increasing list of at least 2 "
                                "integers starting at 0; got [1, 3]"),
        ({"nas_space": [0, 3, 3]}, "iRazor: nas_space must be a strictly increasing list"),
        ({"nas_space": [0]}, "iRazor: nas_space must be a strictly increasing list"),
        ({"nas_space": "0,2"}, "iRazor: nas_space must be a strictly increasing list"),
        ({"nas_space": NAS, "t": 0}, "iRazor: t must be a number in (0.0, inf); got 0"),
        ({"nas_space": NAS, "feature_weight": []},
         "iRazor: feature_weight must be None or a non-empty list of finite numbers; got []"),
        ({"nas_space": NAS, "out_type": "flat"},
         "iRazor: out_type must be one of 'concat', 'stack', None; got 'flat'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as err:
        iRazor(**kwargs)
    assert message in str(err.value)


def test_bad_input_shapes():
    with pytest.raises(ValueError, match=r"iRazor: inputs must be a tensor of rank 3"):
        iRazor(nas_space=NAS).build((2, 4))
    with pytest.raises(ValueError, match=r"iRazor: inputs must have embedding size max\(nas_space\) = 4"):
        iRazor(nas_space=NAS).build((None, 3, 5))
    with pytest.raises(ValueError, match="iRazor: inputs must have a known size on axis 1"):
        iRazor(nas_space=NAS).build((None, None, 4))
    with pytest.raises(ValueError) as err:
        iRazor(nas_space=NAS, feature_weight=[1.0, 2.0]).build((None, 3, 4))
    assert "iRazor: feature_weight must be a list of 3 numbers (one per field); got [1.0, 2.0]" in str(
        err.value)


class TestIRazorContract(LayerContract):
    cases = [
        Case("concat", lambda **kw: iRazor(nas_space=NAS, t=0.5, **kw), _x),
        Case("stack_loss", lambda **kw: iRazor(nas_space=NAS, t=0.5, out_type="stack",
                                               feature_weight=[1.0, 2.0, 0.5], **kw), _x),
        Case("unstacked_keep_list", lambda **kw: iRazor(nas_space=NAS, out_type=None,
                                                        keep_list=True, **kw), _x),
    ]
