"""utils: merge_tensor_list (one test per branch of the spec's table), check_dim, Gumbel helpers."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reclayers.layers.utils import (
    DCNType,
    MergeType,
    check_dim,
    continuous_topk,
    dim_size,
    gumbel_keys,
    merge_tensor_list,
    sample_subset,
)
from tests.contract import assert_allclose

RNG = np.random.default_rng(0)
X3 = RNG.normal(size=(2, 3, 4)).astype("float32")
X2 = RNG.normal(size=(2, 12)).astype("float32")


def test_constants():
    assert (MergeType.CONCAT, MergeType.STACK, MergeType.NONE) == ("concat", "stack", None)
    assert (DCNType.Vector, DCNType.Matrix, DCNType.Mixed) == ("vector", "matrix", "mixed")


@pytest.mark.parametrize("keep_list", [False, True])
def test_rank3_stack_concat_none(keep_list):
    out = merge_tensor_list(X3, "stack", keep_list=keep_list)
    assert_allclose(out, [X3] if keep_list else X3)
    out = merge_tensor_list([X3], "concat", keep_list=keep_list)
    assert_allclose(out, [X3.reshape(2, 12)] if keep_list else X3.reshape(2, 12))
    parts = merge_tensor_list(X3, None, keep_list=keep_list)
    assert isinstance(parts, list) and len(parts) == 3
    assert_allclose(parts, [X3[:, i] for i in range(3)])


def test_rank2_with_num_feature():
    assert_allclose(merge_tensor_list(X2, "stack", num_feature=3), X2.reshape(2, 3, 4))
    assert_allclose(merge_tensor_list(X2, "concat", num_feature=3), X2)
    parts = merge_tensor_list(X2, None, num_feature=3)
    assert_allclose(parts, [X2.reshape(2, 3, 4)[:, i] for i in range(3)])
    assert_allclose(merge_tensor_list(X2, "stack", num_feature=3, keep_list=True),
                    [X2.reshape(2, 3, 4)])


@pytest.mark.parametrize("merge_type", ["stack", "concat", None])
@pytest.mark.parametrize("num_feature", [None, 1])
def test_rank2_without_num_feature_is_unchanged(merge_type, num_feature):
    assert_allclose(merge_tensor_list(X2, merge_type, num_feature=num_feature), X2)


def test_many_tensors():
    parts = [X2[:, :4], X2[:, 4:8], X2[:, 8:]]
    assert_allclose(merge_tensor_list(parts, "stack"), np.stack(parts, axis=1))
    assert_allclose(merge_tensor_list(parts, "concat"), X2)
    assert_allclose(merge_tensor_list(parts, "concat", keep_list=True), [X2])
    assert merge_tensor_list(parts, None) == parts


def test_caller_list_not_mutated():
    parts = [X3]
    merge_tensor_list(parts, "concat")
    assert parts[0] is X3


def test_errors():
    with pytest.raises(ValueError, match="merge_tensor_list: merge_type must be one of 'stack', "
                                         "'concat', None; got 'add'"):
        merge_tensor_list(X2, "add")
    with pytest.raises(ValueError, match="merge_tensor_list: tensor_list must hold a tensor of rank 2 or 3"):
        merge_tensor_list(np.zeros((2, 3, 4, 5), "float32"), "stack")
    with pytest.raises(ValueError, match="num_feature must be a divisor of the last dimension 12; got 5"):
        merge_tensor_list(X2, "stack", num_feature=5)


def test_symbolic_unknown_batch():
    inp = keras.Input((3, 4))
    out = merge_tensor_list(inp, "concat")
    assert tuple(out.shape) == (None, 12)


def test_check_dim_and_dim_size():
    assert check_dim(None) == -1 and check_dim(5) == 5
    with pytest.raises(ValueError):
        check_dim("5")
    assert dim_size(X3, 1) == 3


def test_gumbel_helpers():
    w = keras.ops.convert_to_tensor(np.zeros((4, 5), "float32"))
    keys = keras.ops.convert_to_numpy(gumbel_keys(w, seed=1))
    assert keys.shape == (4, 5) and np.all(np.isfinite(keys))
    probs = keras.ops.convert_to_numpy(continuous_topk(w, 2, 0.1))
    np.testing.assert_allclose(probs.sum(-1), 2.0, rtol=1e-5)
    sep = continuous_topk(w, 3, 0.5, separate=True)
    assert len(sep) == 3
    sub = keras.ops.convert_to_numpy(sample_subset(w, 2, 0.1, seed=2))
    np.testing.assert_allclose(sub.sum(-1), 2.0, rtol=1e-4)


def test_unstack_gives_the_parts_and_their_gradient():
    """``unstack`` (one ``split`` on JAX): the parts ``x[:, i]`` and, for ``Σ_i c_i · sum(part_i)``,
    the gradient ``c_i`` on every element of part ``i``, on the active backend."""
    from reclayers.autodiff import gradient
    from reclayers.layers.utils import unstack

    x = np.random.default_rng(0).normal(size=(4, 3, 5)).astype("float32")
    parts = unstack(x, axis=1)
    assert len(parts) == 3
    for i, p in enumerate(parts):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(p), x[:, i])
    coef = np.array([1.0, -2.0, 0.5], "float32")

    def weighted(t):
        return sum(float(c) * keras.ops.sum(p) for c, p in zip(coef, unstack(t, axis=1)))

    got = keras.ops.convert_to_numpy(gradient(weighted, keras.ops.convert_to_tensor(x)))
    np.testing.assert_array_equal(got, np.broadcast_to(coef[None, :, None], x.shape))
    if keras.backend.backend() == "jax":  # one concatenation, not one zero-padded tensor per part
        import jax

        jaxpr = str(jax.make_jaxpr(jax.grad(weighted))(x))
        assert "concatenate" in jaxpr and " pad[" not in jaxpr
