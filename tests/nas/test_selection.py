"""NASSelectionLayer / MixedNASLayer: masks, soft weights, sampling, gradient rule, readout, contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
from keras import ops

from reclayers.layers import MixedNASLayer, NASSelectionLayer
from tests.contract import Case, LayerContract
from tests.nas.helpers import built, close, grad_and_output, out_np, set_alpha
from tests.reference import sparse_nas as ref

DOC_SELECTION = {
    "left": [[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]],
    "diff": [[1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1]],
    "none": [[1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0],
             [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]],
}
DOC_SELECTION_RANDOM = [[0, 0, 0, 1, 0, 1], [1, 1, 0, 1, 0, 0], [1, 1, 1, 1, 1, 1]]
DOC_MIXED = {
    "left": [[0] * 6] + DOC_SELECTION["left"],
    "diff": [[0] * 6] + DOC_SELECTION["diff"],
    "none": [[0] * 12] + DOC_SELECTION["none"],
}
DOC_MIXED_RANDOM = [[0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 1, 0], [1, 1, 0, 1, 0, 0], [1, 1, 1, 1, 1, 1]]


# ------------------------------------------------------------------------------- masks ----


@pytest.mark.parametrize("mode", ["left", "diff", "none"])
def test_selection_doc_masks(mode):
    layer = NASSelectionLayer([[2, 4, 6]], embedding_share_mode=mode)
    (mask,) = layer.get_masks()
    np.testing.assert_array_equal(mask, DOC_SELECTION[mode])
    np.testing.assert_array_equal(mask, ref.MASKS[mode]([2, 4, 6]))
    assert layer.total_width == {"left": 6, "diff": 6, "none": 12}[mode]


@pytest.mark.parametrize("mode", ["left", "diff", "none"])
def test_mixed_doc_masks(mode):
    layer = MixedNASLayer([[2, 4, 6]], embedding_share_mode=mode)
    (mask,) = layer.get_masks()
    np.testing.assert_array_equal(mask, DOC_MIXED[mode])
    np.testing.assert_array_equal(mask, ref.MASKS[mode]([0, 2, 4, 6]))
    assert layer.choices == [[0, 2, 4, 6]]


def test_mixed_keeps_an_existing_zero_choice():
    layer = MixedNASLayer([[0, 2, 4], [3]], embedding_share_mode="left")
    assert layer.choices == [[0, 2, 4], [0, 3]]
    np.testing.assert_array_equal(layer.get_masks()[0], [[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
    assert layer.total_width == 7


@pytest.mark.parametrize("mode,width,second", [("left", 12, 6), ("diff", 12, 6), ("random", 12, 6),
                                                ("none", 21, 12)])
def test_multi_feature_layout(mode, width, second):
    layer = NASSelectionLayer([[2, 4, 6], [3, 6]], embedding_share_mode=mode, random_seed=3)
    assert layer.total_width == width
    built(layer, width)
    arch = layer.get_architecture()
    assert [a["block_start"] for a in arch] == [0, second]
    assert layer.feature_widths == [6, 6] if mode != "none" else [12, 9]


def test_random_masks_follow_the_seeded_rule():
    sizes = [[2, 4, 6], [1, 3, 5, 8]]
    layer = NASSelectionLayer(sizes, embedding_share_mode="random", random_seed=11)
    masks = layer.get_masks()
    for got, want in zip(masks, ref.masks_random(sizes, 11)):
        np.testing.assert_array_equal(got, want)
    for choices, m in zip(sizes, masks):
        w = max(choices)
        for s, row in zip(choices, m):
            ones = int(row.sum())
            assert (ones == w) if s == w else (1 <= ones <= s)
    clone = NASSelectionLayer.from_config(layer.get_config())
    for a, b in zip(clone.get_masks(), masks):
        np.testing.assert_array_equal(a, b)


def test_random_seed_none_is_drawn_and_stored():
    layer = NASSelectionLayer([[2, 4, 6]], embedding_share_mode="random")
    assert isinstance(layer.get_config()["random_seed"], int)
    clone = NASSelectionLayer.from_config(layer.get_config())
    np.testing.assert_array_equal(clone.get_masks()[0], layer.get_masks()[0])


def test_doc_random_example_through_masks_argument():
    layer = NASSelectionLayer([[2, 4, 6]], embedding_share_mode="random", masks=[DOC_SELECTION_RANDOM],
                              weight_grad_mode="none")
    np.testing.assert_array_equal(layer.get_masks()[0], DOC_SELECTION_RANDOM)
    built(layer, 6)
    set_alpha(layer, np.zeros(3))
    close(out_np(layer, np.ones((1, 6), "float32"))[0], [2 / 3, 2 / 3, 1 / 3, 1, 1 / 3, 2 / 3])
    mixed = MixedNASLayer([[2, 4, 6]], embedding_share_mode="random", masks=[DOC_MIXED_RANDOM],
                          weight_grad_mode="none")
    built(mixed, 6)
    set_alpha(mixed, np.zeros(4))
    close(out_np(mixed, np.ones((1, 6), "float32"))[0], [.5, .75, .25, .5, .5, .25])
    assert mixed.get_config()["masks"] == [DOC_MIXED_RANDOM]


# -------------------------------------------------------------------------- soft weights ----


@pytest.mark.parametrize("mode,expected", [
    ("left", [1, 1, 2 / 3, 2 / 3, 1 / 3, 1 / 3]),
    ("diff", [1 / 3] * 6),
    ("none", [1 / 3] * 12),
])
def test_selection_soft_weights(mode, expected):
    layer = built(NASSelectionLayer([[2, 4, 6]], embedding_share_mode=mode, weight_grad_mode="none"),
                  len(expected))
    set_alpha(layer, np.zeros(3))
    for training in (False, True):
        close(out_np(layer, np.ones((2, len(expected)), "float32"), training=training),
                        np.tile(expected, (2, 1)))


@pytest.mark.parametrize("mode,expected", [
    ("left", [.75, .75, .5, .5, .25, .25]),
    ("diff", [.25] * 6),
    ("none", [.25] * 12),
])
def test_mixed_soft_weights(mode, expected):
    layer = built(MixedNASLayer([[2, 4, 6]], embedding_share_mode=mode, weight_grad_mode="none"),
                  len(expected))
    set_alpha(layer, np.zeros(4))
    close(out_np(layer, np.ones((1, len(expected)), "float32"))[0], expected)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.5])
def test_temperature(temperature):
    layer = built(NASSelectionLayer([[2, 4, 6]], embedding_share_mode="diff", weight_grad_mode="none",
                                    temperature=temperature), 6)
    set_alpha(layer, [0.0, 0.0, math.log(2) * temperature])
    close(out_np(layer, np.ones((1, 6), "float32"))[0], [.25, .25, .25, .25, .5, .5], rtol=1e-5)


@pytest.mark.parametrize("cls", [NASSelectionLayer, MixedNASLayer])
@pytest.mark.parametrize("mode", ["left", "diff", "none", "random"])
def test_soft_mixture_matches_reference_on_random_data(cls, mode):
    sizes = [[2, 4, 6], [1, 3]]
    layer = cls(sizes, embedding_share_mode=mode, weight_grad_mode="none", temperature=0.7, random_seed=5)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, layer.total_width)).astype("float32")
    layer(x)
    alpha = rng.normal(size=layer.arch_weights.shape).astype("float32")
    set_alpha(layer, alpha)
    choices = [([0] + c if cls is MixedNASLayer else c) for c in sizes]
    masks = (ref.masks_random(choices, 5) if mode == "random" else [ref.MASKS[mode](c) for c in choices])
    split = np.split(alpha, np.cumsum([len(c) for c in choices])[:-1])
    expected = x * ref.soft_selection(split, masks, 0.7)
    close(layer(x), expected, rtol=1e-5)


def test_list_input_matches_tensor_input():
    layer = NASSelectionLayer([[2, 4], [3]], embedding_share_mode="left", weight_grad_mode="none")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 7)).astype("float32")
    whole = layer(x)
    parts = layer([x[:, :4], x[:, 4:]])
    assert isinstance(parts, list) and len(parts) == 2
    close(np.concatenate([ops.convert_to_numpy(p) for p in parts], axis=-1), ops.convert_to_numpy(whole))


# ----------------------------------------------------------------------- sampled modes ----


def _chosen_rows(out_over_in, masks, offsets):
    """For each feature, the index of the mask row the block equals on every example."""
    rows = []
    for f, m in enumerate(masks):
        block = out_over_in[..., offsets[f]:offsets[f + 1]].reshape(-1, m.shape[1])
        matches = [c for c in range(m.shape[0]) if np.all(block == m[c][None, :])]
        assert len(matches) >= 1, f"feature {f}: block {block[0]} is not a mask row"
        rows.append(matches[0])
    return rows


@pytest.mark.parametrize("grad_mode", ["discrete", "gumbel"])
def test_sampling_is_one_hot_shared_by_batch_and_follows_probabilities(grad_mode):
    # 200 identical features with probabilities [0.1, 0.2, 0.7] ('diff' masks: every row is
    # distinct); each feature samples independently, so 10 seeded calls give 2000 draws per choice
    # list (eager calls are slow on JAX, features are cheap).
    features, calls = 200, 10
    layer = NASSelectionLayer([[1, 2, 3]] * features, embedding_share_mode="diff",
                              weight_grad_mode=grad_mode, seed=42)
    x = np.ones((3, 3 * features), "float32")
    layer(x)
    set_alpha(layer, np.tile(np.log([0.1, 0.2, 0.7]), features))
    mask = layer.get_masks()[0]
    counts = np.zeros(3)
    for _ in range(calls):
        blocks = out_np(layer, x, training=True).reshape(3, features, 3)
        chosen = np.argmax(blocks, axis=-1)  # the 'diff' rows of [1, 2, 3] are the unit vectors
        np.testing.assert_array_equal(blocks, mask[chosen])  # exactly one mask row per feature
        np.testing.assert_array_equal(chosen, np.broadcast_to(chosen[:1], chosen.shape))  # batch-shared
        counts += np.bincount(chosen[0], minlength=3)
    np.testing.assert_allclose(counts / (features * calls), [0.1, 0.2, 0.7], atol=0.03)


@pytest.mark.parametrize("grad_mode", ["discrete", "gumbel"])
def test_inference_is_deterministic_argmax(grad_mode):
    layer = NASSelectionLayer([[2, 4, 6], [3, 6]], embedding_share_mode="left", weight_grad_mode=grad_mode,
                              seed=3)
    x = np.random.default_rng(0).normal(size=(3, 12)).astype("float32")
    layer(x)
    alpha = [0.1, 0.9, 0.3, 0.5, -0.2]
    set_alpha(layer, alpha)
    expected = x * ref.argmax_selection([alpha[:3], alpha[3:]], layer.get_masks())
    first = out_np(layer, x, training=False)
    close(first, expected)
    close(out_np(layer, x), first)
    close(out_np(layer, x, training=False), first)


def test_argmax_ties_pick_lowest_index():
    layer = built(NASSelectionLayer([[2, 4, 6]], embedding_share_mode="left"), 6)
    set_alpha(layer, [0.5, 0.5, 0.5])
    close(out_np(layer, np.ones((1, 6), "float32"))[0], [1, 1, 0, 0, 0, 0])
    assert layer.get_architecture()[0]["index"] == 0


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_discrete_gradient_rule(temperature):
    sizes = [[2, 4, 6], [1, 3]]
    layer = NASSelectionLayer(sizes, embedding_share_mode="left", temperature=temperature, seed=7)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 2, 9)).astype("float32")
    layer(x)
    alpha = rng.normal(size=5).astype("float32")
    set_alpha(layer, alpha)
    masks = layer.get_masks()
    for _ in range(2):  # several draws
        R = rng.normal(size=x.shape)
        grad, out = grad_and_output(layer, x, R, training=True)
        ratio = np.divide(out, x, out=np.zeros_like(out), where=x != 0)
        chosen = _chosen_rows(np.round(ratio, 6), masks, [0, 6, 9])
        expected = []
        for f, (lo, hi, a) in enumerate([(0, 6, alpha[:3]), (6, 9, alpha[3:])]):
            upstream = float(np.sum((R * x)[..., lo:hi] * masks[f][chosen[f]]))
            expected.append(ref.discrete_grad(a, chosen[f], upstream, temperature))
        close(grad, np.concatenate(expected), rtol=1e-4, atol=1e-5)


def test_gumbel_gradient_has_the_chosen_probability_form():
    layer = NASSelectionLayer([[2, 4, 6]], embedding_share_mode="diff", weight_grad_mode="gumbel", seed=1)
    rng = np.random.default_rng(5)
    x = np.abs(rng.normal(size=(3, 6))).astype("float32") + 0.1
    layer(x)
    set_alpha(layer, [0.2, -0.1, 0.4])
    R = np.abs(rng.normal(size=x.shape)) + 0.1  # positive upstream: signs are predictable
    grad, out = grad_and_output(layer, x, R, training=True)
    chosen = _chosen_rows(np.round(out / x, 6), layer.get_masks(), [0, 6])[0]
    assert abs(grad.sum()) < 1e-5
    assert grad[chosen] >= 0 and all(grad[j] <= 0 for j in range(3) if j != chosen)


def test_arch_lr_multiplier_scales_the_gradient_only():
    kw = dict(segment_sizes=[[2, 4, 6]], embedding_share_mode="left", weight_grad_mode="none")
    a, b = NASSelectionLayer(**kw), NASSelectionLayer(arch_lr_multiplier=0.25, **kw)
    x = np.random.default_rng(0).normal(size=(2, 6)).astype("float32")
    a(x), b(x)
    set_alpha(a, [0.3, -0.2, 0.1]), set_alpha(b, [0.3, -0.2, 0.1])
    close(a(x), ops.convert_to_numpy(b(x)))
    R = np.random.default_rng(1).normal(size=x.shape)
    ga, _ = grad_and_output(a, x, R)
    gb, _ = grad_and_output(b, x, R)
    close(gb, 0.25 * ga, rtol=1e-5)


# ------------------------------------------------------------------------------ readout ----


def test_readout_and_static_helper():
    layer = NASSelectionLayer([[2, 4, 6], [1, 3]], segment_names=["user", "item"],
                              embedding_share_mode="diff", temperature=2.0)
    built(layer, 9)
    alpha = [0.0, 2.0, 1.0, 0.5, -0.5]
    set_alpha(layer, alpha)
    arch = layer.get_architecture()
    assert [a["name"] for a in arch] == ["user", "item"]
    assert [a["index"] for a in arch] == [1, 0]
    assert [a["size"] for a in arch] == [4, 1]
    assert arch[0]["columns"] == [2, 3] and arch[0]["effective_size"] == 2
    assert arch[1]["columns"] == [0]
    p0 = ref.softmax(alpha[:3], 2.0)
    np.testing.assert_allclose(arch[0]["probabilities"], p0, rtol=1e-6)
    np.testing.assert_allclose(arch[0]["expected_size"], p0 @ [2, 4, 6], rtol=1e-6)
    np.testing.assert_allclose(arch[0]["entropy"], -(p0 * np.log(p0)).sum(), rtol=1e-6)
    from_flat = NASSelectionLayer.architecture_from_weights([str(v) for v in alpha], layer.get_config())
    assert from_flat == arch
    per = ops.convert_to_numpy(layer.expected_size(per_feature=True))
    np.testing.assert_allclose(per, [a["expected_size"] for a in arch], rtol=1e-5)
    np.testing.assert_allclose(float(ops.convert_to_numpy(layer.expected_size())), per.sum(), rtol=1e-5)
    entropy = float(ops.convert_to_numpy(layer.choice_entropy()))
    np.testing.assert_allclose(entropy, sum(a["entropy"] for a in arch), rtol=1e-5)
    meta = layer.get_summary_metadata()
    assert meta == {"tag_type": "selecting", "segment_names": ["user", "item"],
                    "segment_sizes": [[2, 4, 6], [1, 3]]}
    with pytest.raises(ValueError, match=r"NASSelectionLayer: flat_values must be a flat list of 5 values"):
        NASSelectionLayer.architecture_from_weights([0.0] * 4, layer.get_config())


def test_mixed_zero_choice_drops_the_feature():
    layer = MixedNASLayer([[2, 4], [3]], embedding_share_mode="left")
    x = np.random.default_rng(0).normal(size=(2, 7)).astype("float32")
    layer(x)
    set_alpha(layer, [2.0, 0.1, 0.3, -1.0, 1.0])  # feature 0 → zero choice, feature 1 → size 3
    out = out_np(layer, x, training=False)
    np.testing.assert_array_equal(out[:, :4], 0.0)
    close(out[:, 4:], x[:, 4:])
    arch = layer.get_architecture()
    assert arch[0]["size"] == 0 and arch[0]["columns"] == [] and arch[0]["index"] == 0
    assert arch[1]["size"] == 3
    assert layer.chosen_sizes() == [0, 3]
    assert layer.get_summary_metadata()["tag_type"] == "mixed"


def test_readout_requires_a_built_layer():
    with pytest.raises(ValueError, match="NASSelectionLayer: the layer must be built"):
        NASSelectionLayer([[2, 4]]).get_architecture()


# ---------------------------------------------------------------------------- bad input ----


@pytest.mark.parametrize("kwargs,match", [
    (dict(segment_sizes=[]), "segment_sizes must be a non-empty list of non-empty lists"),
    (dict(segment_sizes=[[]]), "segment_sizes must be a non-empty list"),
    (dict(segment_sizes=[[4, 2]]), r"segment_sizes must be .*strictly increasing.*got \[\[4, 2\]\]"),
    (dict(segment_sizes=[[2, 2]]), "segment_sizes must be .*strictly increasing"),
    (dict(segment_sizes=[[-1, 2]]), "segment_sizes must be .*strictly increasing"),
    (dict(segment_sizes=[[2, 0]]), "segment_sizes must be .*strictly increasing"),
    (dict(segment_sizes=[[0]]), "segment_sizes must be .*strictly increasing"),
    (dict(segment_sizes=[[2.0, 4]]), "segment_sizes must be .*strictly increasing"),
    (dict(segment_sizes=[2, 4]), "segment_sizes must be"),
    (dict(segment_sizes=[[2, 4]], segment_names=["a", "b"]),
     "segment_names must be None or a list of 1 strings"),
    (dict(segment_sizes=[[2, 4]], temperature=0.0), r"temperature must be a number in \(0.0, inf\)"),
    (dict(segment_sizes=[[2, 4]], embedding_share_mode="right"),
     "embedding_share_mode must be one of 'left', 'diff', 'random', 'none'; got 'right'"),
    (dict(segment_sizes=[[2, 4]], weight_grad_mode="soft"),
     "weight_grad_mode must be one of 'discrete', 'gumbel', 'none'; got 'soft'"),
    (dict(segment_sizes=[[2, 4]], random_seed=-1), "random_seed must be an integer >= 0"),
    (dict(segment_sizes=[[2, 4]], seed="x"), "seed must be an integer >= 0"),
    (dict(segment_sizes=[[2, 4]], embedding_share_mode="left", masks=[[[1, 1, 0]]]),
     r"masks must be None or one 0/1 matrix per feature with shapes \[\(\d, 4\)\]"),
    (dict(segment_sizes=[[2, 4]], embedding_share_mode="left", masks=[[[1, 2, 0, 0], [1, 1, 1, 1]]]),
     "masks must be None or one 0/1 matrix"),
    (dict(segment_sizes=[[2, 4]], arch_lr_multiplier=-1.0), "arch_lr_multiplier must be a number"),
])
@pytest.mark.parametrize("cls", [NASSelectionLayer, MixedNASLayer])
def test_bad_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=f"{cls.__name__}: {match}"):
        cls(**kwargs)


def test_mixed_masks_must_describe_the_augmented_list():
    with pytest.raises(ValueError, match=r"MixedNASLayer: masks must be .* shapes \[\(3, 4\)\]"):
        MixedNASLayer([[2, 4]], embedding_share_mode="left", masks=[[[1, 1, 0, 0], [1, 1, 1, 1]]])


def test_width_mismatch():
    layer = NASSelectionLayer([[2, 4, 6], [3, 6]], embedding_share_mode="left")
    with pytest.raises(ValueError, match=r"NASSelectionLayer: inputs must be a tensor of rank >= 2 with last "
                                         r"dimension 12 \(feature widths \[6, 6\]\); got shape \(2, 11\)"):
        layer(np.ones((2, 11), "float32"))
    with pytest.raises(ValueError, match="NASSelectionLayer: inputs must be a tensor of rank >= 2"):
        NASSelectionLayer([[2]])(np.ones((2,), "float32"))


def test_list_input_errors():
    layer = NASSelectionLayer([[2, 4, 6], [3, 6]], embedding_share_mode="none")
    with pytest.raises(ValueError, match=r"inputs must be a list of 2 tensors .*widths \[12, 9\]\); got 3"):
        layer([np.ones((2, 12), "float32"), np.ones((2, 9), "float32"), np.ones((2, 1), "float32")])
    with pytest.raises(ValueError, match=r"inputs\[1\] must be a tensor of rank >= 2 with last dimension 9; "
                                         r"got shape \(2, 6\)"):
        layer([np.ones((2, 12), "float32"), np.ones((2, 6), "float32")])


# ----------------------------------------------------------------------------- contract ----


def _x(width, rank3=False):
    def make(rng, b):
        shape = (b, 2, width) if rank3 else (b, width)
        return rng.normal(size=shape).astype("float32")
    return make


class TestSelectionContract(LayerContract):
    cases = [
        Case("selection-left-discrete",
             lambda **kw: NASSelectionLayer([[2, 4, 6], [3, 6]], embedding_share_mode="left", seed=1, **kw),
             _x(12), grad_kwargs={"training": True}, fd_check=False),
        Case("selection-none-soft-list",
             lambda **kw: NASSelectionLayer([[1, 2], [2, 3]], embedding_share_mode="none",
                                            weight_grad_mode="none", temperature=0.8, **kw),
             lambda rng, b: [rng.normal(size=(b, 2, 3)).astype("float32"),
                             rng.normal(size=(b, 2, 5)).astype("float32")]),
        Case("mixed-random-gumbel",
             lambda **kw: MixedNASLayer([[2, 4], [1, 3], [1, 2], [2, 3]], embedding_share_mode="random",
                                        random_seed=4, weight_grad_mode="gumbel", seed=5, **kw),
             _x(12, rank3=True), grad_kwargs={"training": True}, fd_check=False),
        Case("mixed-diff-soft",
             lambda **kw: MixedNASLayer([[2, 4], [3]], embedding_share_mode="diff", weight_grad_mode="none",
                                        **kw),
             _x(7)),
    ]


def test_keras_mask_passes_through():
    layer = NASSelectionLayer([[2, 4]], embedding_share_mode="left")
    x = np.ones((2, 3, 4), "float32")
    mask = np.array([[True, True, False], [True, False, False]])
    assert layer.supports_masking
    assert layer.compute_mask(x, mask) is mask
