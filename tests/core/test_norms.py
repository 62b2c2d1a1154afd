"""LayerNorm, GradNorm (incl. a real two-task fit with GradNorm balancing), BatchNorm."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from reclayers.autodiff import gradient
from reclayers.layers import GradNorm, LayerNorm
from reclayers.layers.norms import BatchNorm
from tests.contract import Case, LayerContract, assert_allclose, randomize_weights, weight
from tests.reference import core as ref


def _x(rng, b, d=6):
    return rng.normal(size=(b, d)).astype("float32")


# ---------------------------------------------------------------- LayerNorm


@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 5)])
def test_layer_norm_matches_reference(shape):
    x = np.random.default_rng(0).normal(size=shape).astype("float32") * 3 + 1
    layer = LayerNorm(initializer=keras.initializers.HeUniform())
    layer(x)
    randomize_weights(layer)
    expected = ref.layer_norm(x.astype("float64"), weight(layer, "gamma"), weight(layer, "beta"))
    assert_allclose(layer(x), expected, rtol=1e-4, atol=1e-5)


def test_layer_norm_constant_rows_give_beta():
    y = LayerNorm(initializer=keras.initializers.HeUniform())(np.ones((100, 100), "float32"))
    assert float(ops.sum(y)) == 0.0


def test_layer_norm_bad_shape():
    with pytest.raises(ValueError, match="LayerNorm: inputs must have a known last dimension"):
        LayerNorm().build((None, None))


class TestLayerNormContract(LayerContract):
    cases = [Case("default", lambda **kw: LayerNorm(**kw), _x),
             Case("rank3", lambda **kw: LayerNorm(initializer="glorot_uniform", **kw),
                  lambda rng, b: rng.normal(size=(b, 2, 5)).astype("float32"))]


# ---------------------------------------------------------------- GradNorm


def test_grad_norm_spec_example():
    gn = GradNorm(loss_names=["a", "b"])
    gnorm, weighted = gn(([np.float32(1.0), np.float32(3.0)], np.array([1.0, 3.0], "float32")))
    assert float(gnorm) == pytest.approx(0.5, rel=1e-6)
    assert float(weighted) == pytest.approx(2.0, rel=1e-6)
    rel = GradNorm(loss_names=["a", "b"], relative_diff=True)
    gnorm, _ = rel(([np.float32(1.0), np.float32(3.0)], np.array([1.0, 3.0], "float32")))
    assert float(gnorm) == pytest.approx(0.5 / (1 + 1e-6), rel=1e-5)


@pytest.mark.parametrize("relative_diff", [False, True])
@pytest.mark.parametrize("loss_pow", [2.0, 1.0, 3.0])
def test_grad_norm_matches_reference_from_gradient_lists(relative_diff, loss_pow):
    rng = np.random.default_rng(3)
    grads = [[rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=(4, 2)).astype("float32")]
             for _ in range(3)]
    losses = [np.float32(v) for v in rng.uniform(0.5, 2.0, size=3)]
    gn = GradNorm(loss_names=["a", "b", "c"], scale=0.7, loss_pow=loss_pow,
                  relative_diff=relative_diff)
    gn.build()
    logits = np.array([0.3, -0.2, 0.5], "float32")
    gn.grad_norm_weights.assign(logits)
    norms = np.array([np.sqrt(sum((g.astype("float64") ** 2).sum() for g in task)) for task in grads])
    exp_g, exp_w = ref.grad_norm(norms, logits.astype("float64"), losses, 0.7, loss_pow,
                                 relative_diff)
    gnorm, weighted = gn((losses, grads))
    assert float(gnorm) == pytest.approx(exp_g, rel=1e-5)
    assert float(weighted) == pytest.approx(exp_w, rel=1e-5)
    assert_allclose(gn.task_weights(), np.exp(logits) / np.exp(logits).sum(), rtol=1e-5)


def test_grad_norm_weights_receive_gradient_only_from_gnorm_loss():
    from tests.contract import trainable_gradients

    gn = GradNorm(loss_names=["a", "b"])
    losses = [ops.convert_to_tensor(np.float32(1.0)), ops.convert_to_tensor(np.float32(2.0))]
    norms = ops.convert_to_tensor(np.array([1.0, 4.0], "float32"))
    gn((losses, norms))
    grads, _ = trainable_gradients(gn, ((losses, norms),), proj=[np.array(1.0), np.array(0.0)])
    assert np.any(grads[0] != 0)
    grads, _ = trainable_gradients(gn, ((losses, norms),), proj=[np.array(0.0), np.array(1.0)])
    assert np.all(grads[0] == 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"loss_names": ["only"]}, "GradNorm: loss_names must be a list of at least 2 task names"),
     ({"loss_names": ["a", "b"], "loss_pow": 0}, "GradNorm: loss_pow must be a number in (0.0, inf)"),
     ({"loss_names": ["a", "b"], "epsilon": -1.0}, "GradNorm: epsilon must be a number in [0.0, inf)")],
)
def test_grad_norm_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as err:
        GradNorm(**kwargs)
    assert message in str(err.value)


def test_grad_norm_bad_inputs():
    gn = GradNorm(loss_names=["a", "b"])
    with pytest.raises(ValueError, match="GradNorm: losses must be a list of 2 scalar losses; got 3"):
        gn(([np.float32(1.0)] * 3, np.ones(2, "float32")))
    with pytest.raises(ValueError, match="GradNorm: grads must hold one entry per task"):
        gn(([np.float32(1.0), np.float32(2.0)], [np.ones((2, 2), "float32")]))


class GradNormTwoTask(keras.Model):
    """A shared bottom, two heads, and GradNorm balancing inside ``compute_loss``."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.bottom = keras.layers.Dense(8, activation="tanh", name="bottom")
        self.head_a = keras.layers.Dense(1, name="head_a")
        self.head_b = keras.layers.Dense(1, name="head_b")
        self.grad_norm = GradNorm(loss_names=["a", "b"], name="grad_norm")
        self.grad_norm.build()  # used only in compute_loss: build before the optimizer sees variables

    def call(self, x):
        h = self.bottom(x)
        return ops.concatenate([self.head_a(h), self.head_b(h)], axis=-1)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        h = self.bottom(x)
        ya, yb = y[:, 0:1], y[:, 1:2]

        def loss_a(t):
            return ops.mean(ops.square(self.head_a(t) - ya))

        def loss_b(t):
            return ops.mean(ops.square(self.head_b(t) - yb))

        losses = [loss_a(h), loss_b(h)]
        grads = [gradient(loss_a, h), gradient(loss_b, h)]
        gnorm_loss, weighted = self.grad_norm((losses, grads))
        self._last_task_losses = losses
        return weighted + gnorm_loss


def test_grad_norm_in_a_real_two_task_fit():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 5)).astype("float32")
    w = rng.normal(size=(5, 1))
    y = np.concatenate([x @ w, 10.0 * (x @ w) + 0.1 * rng.normal(size=(256, 1))], axis=1)
    y = y.astype("float32")
    model = GradNormTwoTask()
    model.compile(optimizer=keras.optimizers.Adam(0.03), jit_compile=False)
    model(x[:2])
    before = model.evaluate(x, y, verbose=0)
    w0 = ops.convert_to_numpy(model.grad_norm.task_weights())
    model.fit(x, y, epochs=20, batch_size=64, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    w1 = ops.convert_to_numpy(model.grad_norm.task_weights())
    assert after < before
    np.testing.assert_allclose(w0, [0.5, 0.5], rtol=1e-6)
    # Task b's gradients are ~10x larger, so GradNorm shifts weight towards task a.
    assert w1[0] > w1[1], w1


# ---------------------------------------------------------------- BatchNorm (unexported)


def test_batch_norm_train_and_inference():
    x = _x(np.random.default_rng(4), 32) * 2 + 1
    bn = BatchNorm(momentum=0.9)
    y = bn(x, training=True)
    expected = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-6)
    assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    assert_allclose(weight(bn, "moving_mean"), 0.1 * x.mean(0), rtol=1e-4, atol=1e-5)
    y_inf = bn(x, training=False)
    mm, mv = weight(bn, "moving_mean"), weight(bn, "moving_variance")
    assert_allclose(y_inf, (x - mm) / np.sqrt(mv + 1e-6), rtol=1e-4, atol=1e-4)
    assert all(not w.trainable for w in bn.weights if "moving" in w.path)
    with pytest.raises(ValueError, match="BatchNorm: mode must be one of 'train', 'eval', 'infer'"):
        BatchNorm(mode="predict")
