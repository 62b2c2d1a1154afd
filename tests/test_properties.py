"""Property tests (hypothesis) for the feature-interaction layers: over random valid shapes the
output shape equals ``compute_output_shape`` and every value is finite."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keras import ops

from reclayers.layers.feature_cross import CAN, CIN, DCN, AllInt, CDot, GroupInt
from reclayers.layers.feature_trans import AutoInt, SeNet, iRazor

SETTINGS = settings(max_examples=6, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
OUT_TYPES = st.sampled_from(["concat", "stack", None])


def _shapes(result) -> list[tuple]:
    """``compute_output_shape`` results as a flat list of shape tuples."""
    if isinstance(result, tuple) and all(d is None or isinstance(d, int) for d in result):
        return [result]
    out = []
    for r in result:
        out.extend(_shapes(r))
    return out


def _check(layer, inputs, input_shapes):
    outputs = layer(inputs)
    flat = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    expected = _shapes(layer.compute_output_shape(input_shapes))
    assert [tuple(o.shape) for o in flat] == [tuple(s) for s in expected]
    for o in flat:
        assert np.all(np.isfinite(ops.convert_to_numpy(ops.cast(o, "float32"))))


def _normal(seed, shape):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@SETTINGS
@given(b=st.integers(1, 4), f=st.integers(1, 5), e=st.integers(1, 5), seed=st.integers(0, 99),
       out_type=OUT_TYPES, keep_list=st.booleans(), cmp_dim=st.integers(1, 4))
def test_all_int(b, f, e, seed, out_type, keep_list, cmp_dim):
    x = _normal(seed, (b, f, e))
    _check(AllInt(cmp_dim=cmp_dim, out_type=out_type, keep_list=keep_list), x, x.shape)


@SETTINGS
@given(b=st.integers(1, 4), f=st.integers(1, 5), e=st.integers(1, 4), seed=st.integers(0, 99),
       out_type=OUT_TYPES, keep_list=st.booleans(), layers=st.integers(1, 2))
def test_auto_int(b, f, e, seed, out_type, keep_list, layers):
    x = _normal(seed, (b, f, e))
    _check(AutoInt(layer_num=layers, out_type=out_type, keep_list=keep_list), x, x.shape)


@SETTINGS
@given(b=st.integers(1, 4), f=st.integers(2, 5), e=st.integers(1, 4), seed=st.integers(0, 99),
       out_type=OUT_TYPES, keep_list=st.booleans(), cmp_dim=st.integers(1, 3))
def test_senet(b, f, e, seed, out_type, keep_list, cmp_dim):
    x = _normal(seed, (b, f, e))
    _check(SeNet(num_feature=f, cmp_dim=cmp_dim, out_type=out_type, keep_list=keep_list), x, x.shape)


@SETTINGS
@given(b=st.integers(1, 4), f=st.integers(1, 4), seed=st.integers(0, 99), out_type=OUT_TYPES,
       steps=st.lists(st.integers(1, 2), min_size=1, max_size=3))
def test_irazor(b, f, seed, out_type, steps):
    nas_space = [0] + list(np.cumsum(steps))
    x = _normal(seed, (b, f, nas_space[-1]))
    _check(iRazor(nas_space=[int(v) for v in nas_space], out_type=out_type), x, x.shape)


@SETTINGS
@given(b=st.integers(1, 4), d=st.integers(1, 6), seed=st.integers(0, 99),
       dcn_type=st.sampled_from(["vector", "matrix", "mixed"]), layers=st.integers(1, 2),
       experts=st.integers(1, 3), rank=st.integers(1, 3))
def test_dcn(b, d, seed, dcn_type, layers, experts, rank):
    x = _normal(seed, (b, d))
    layer = DCN(layer_num=layers, dcn_type=dcn_type, num_experts=experts, low_rank=rank)
    _check(layer, x, x.shape)


@SETTINGS
@given(b=st.integers(1, 4), f=st.integers(1, 5), e=st.integers(1, 4), seed=st.integers(0, 99),
       units=st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_cin(b, f, e, seed, units):
    x = _normal(seed, (b, f, e))
    _check(CIN(hidden_uints=units), x, x.shape)


@SETTINGS
@given(b=st.integers(1, 4), f=st.integers(1, 5), e=st.integers(1, 4), seed=st.integers(0, 99),
       project_dim=st.integers(1, 3), compress=st.lists(st.integers(1, 4), min_size=0, max_size=2))
def test_cdot(b, f, e, seed, project_dim, compress):
    x = _normal(seed, (b, f, e))
    _check(CDot(project_dim=project_dim, compress_units=compress), x, x.shape)


@SETTINGS
@given(b=st.integers(1, 4), left=st.integers(1, 3), right=st.integers(1, 3), e=st.integers(1, 4),
       seed=st.integers(0, 99), interaction=st.sampled_from(["multiply", "dot"]),
       keep_list=st.booleans())
def test_group_int(b, left, right, e, seed, interaction, keep_list):
    xs = [[_normal(seed + i, (b, e)) for i in range(left)],
          [_normal(seed + 10 + i, (b, e)) for i in range(right)]]
    shapes = [[x.shape for x in side] for side in xs]
    _check(GroupInt(interaction_type=interaction, keep_list=keep_list), xs, shapes)


@SETTINGS
@given(b=st.integers(1, 3), u=st.integers(1, 3), f=st.integers(1, 3), s=st.integers(1, 4),
       layers=st.integers(1, 2), seed=st.integers(0, 99), is_seq=st.booleans(),
       is_stacked=st.booleans())
def test_can(b, u, f, s, layers, seed, is_seq, is_stacked):
    user_shape = (b,) + ((f,) if is_stacked else ()) + ((s,) if is_seq else ()) + (u,)
    user = _normal(seed, user_shape)
    item = _normal(seed + 1, (b, layers * (u * u + u))) * 0.5
    layer = CAN(layer_num=layers, is_seq=is_seq, is_stacked=is_stacked)
    _check(layer, [user, item], [user.shape, item.shape])
