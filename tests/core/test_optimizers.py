"""MultiOptimizer: per-layer optimizers in model.fit on every backend."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from reclayers import layers
from reclayers.optimizers import MultiOptimizer, assign_optimizer


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 1))).astype("float32")
    return x, y


def _model(first, second):
    return keras.Sequential([keras.Input((4,)), layers.Dense(3, optimizer=first, name="frozen"),
                             layers.Dense(1, optimizer=second, name="moving")])


def _values(layer):
    return [ops.convert_to_numpy(w).copy() for w in layer.trainable_weights]


def test_lr_zero_layer_stays_and_lr_one_layer_moves_in_fit():
    x, y = _data()
    model = _model(keras.optimizers.SGD(0.0), keras.optimizers.SGD(0.1))
    model.compile(optimizer=MultiOptimizer("adam"), loss="mse")
    frozen0, moving0 = _values(model.get_layer("frozen")), _values(model.get_layer("moving"))
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    for a, b in zip(frozen0, _values(model.get_layer("frozen"))):
        np.testing.assert_array_equal(a, b)
    assert any(not np.allclose(a, b) for a, b in zip(moving0, _values(model.get_layer("moving"))))
    assert int(ops.convert_to_numpy(model.optimizer.iterations)) == 8


def test_untagged_variables_use_the_default_optimizer():
    x, y = _data()
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3, name="a"), layers.Dense(1, name="b")])
    assign_optimizer(model.get_layer("a"), keras.optimizers.SGD(0.0))
    model.compile(optimizer=MultiOptimizer(keras.optimizers.SGD(0.05)), loss="mse")
    a0, b0 = _values(model.get_layer("a")), _values(model.get_layer("b"))
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    for a, b in zip(a0, _values(model.get_layer("a"))):
        np.testing.assert_array_equal(a, b)
    assert any(not np.allclose(a, b) for a, b in zip(b0, _values(model.get_layer("b"))))
    assert len(model.optimizer.sub_optimizers) == 2


def test_stateful_sub_optimizer_state_is_tracked_and_config_round_trips(tmp_path):
    x, y = _data()
    model = _model(keras.optimizers.Adam(0.01), None)
    model.compile(optimizer=MultiOptimizer(keras.optimizers.SGD(0.01)), loss="mse")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    names = [v.path for v in model.optimizer.variables]
    assert any("adam" in n for n in names), names
    config = model.optimizer.get_config()
    clone = MultiOptimizer.from_config(config)
    assert isinstance(clone.default_optimizer, keras.optimizers.SGD)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert isinstance(loaded.get_layer("frozen").optimizer, keras.optimizers.Adam)


def test_dense_rejects_bad_optimizer():
    with pytest.raises(ValueError, match="Dense: optimizer must be None, a keras Optimizer"):
        layers.Dense(2, optimizer=object())


@pytest.mark.parametrize("options", [{}, {"global_clipnorm": 0.5, "weight_decay": 0.01},
                                     {"amsgrad": True}], ids=["plain", "clipped_decayed", "amsgrad"])
def test_fused_kernel_keeps_kerass_adam_update(options, monkeypatch):
    """PyTorch: ``use_fused_kernel`` runs Adam's innermost update through ``torch._fused_adam_``
    (``amsgrad`` stays Keras's); over several steps of a decaying rate the variables and moments
    equal plain Keras ``Adam``'s to float rounding, and clipping and weight decay still apply."""
    from reclayers.optimizers import use_fused_kernel

    if keras.backend.backend() != "torch":
        assert use_fused_kernel(keras.optimizers.Adam()).__class__.__name__ == "Adam"  # untouched
        pytest.skip("the fused kernel is PyTorch's")
    import torch

    calls = []
    real = torch._fused_adam_
    monkeypatch.setattr(torch, "_fused_adam_", lambda *a, **k: calls.append(len(a[0])) or real(*a, **k))
    rng = np.random.default_rng(0)
    shapes = [(5, 3), (3,), (7, 1)]
    start = [rng.normal(size=s).astype("float32") for s in shapes]
    rate = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=1, decay_rate=0.7)
    arms = []
    for fused in (False, True):
        variables = [keras.Variable(a) for a in start]
        opt = keras.optimizers.Adam(rate, epsilon=1e-3, **options)  # a large ε: its placement shows
        arms.append((variables, use_fused_kernel(opt) if fused else opt))
    for _ in range(4):
        grads = [rng.normal(size=s).astype("float32") for s in shapes]
        for variables, opt in arms:
            opt.apply([torch.tensor(g) for g in grads], variables)
    (want, keras_opt), (got, fused_opt) = arms
    for a, b in zip(want + list(keras_opt.variables), got + list(fused_opt.variables)):
        np.testing.assert_allclose(ops.convert_to_numpy(b), ops.convert_to_numpy(a), rtol=1e-5, atol=1e-6)
    assert calls == ([] if options.get("amsgrad") else [3] * 4)
    def config(o):
        return {k: v for k, v in o.get_config().items() if k != "name"}

    assert type(fused_opt) is type(keras_opt) and config(fused_opt) == config(keras_opt)


def test_fused_kernel_follows_a_rebuilt_optimizer():
    """PyTorch: the fused step keeps the tensors of its variables and slots between steps; after
    the optimizer is rebuilt with new slot variables it updates those, as Keras's step does."""
    from reclayers.optimizers import use_fused_kernel

    if keras.backend.backend() != "torch":
        pytest.skip("the fused kernel is PyTorch's")
    import torch

    variables = [keras.Variable(np.ones((3, 2), "float32"))]
    grads = [torch.ones((3, 2))]
    fused, plain = use_fused_kernel(keras.optimizers.Adam(0.1)), keras.optimizers.Adam(0.1)
    twins = [keras.Variable(np.ones((3, 2), "float32"))]
    for opt, vs in ((fused, variables), (plain, twins)):
        opt.apply(grads, vs)
        opt._momentums, opt._velocities = [], []  # what a fresh build starts from
        opt.built = False
        opt.build(vs)
        opt.apply(grads, vs)
    moments = [ops.convert_to_numpy(o._momentums[0]) for o in (fused, plain)]
    np.testing.assert_allclose(*moments)
    np.testing.assert_allclose(ops.convert_to_numpy(variables[0]), ops.convert_to_numpy(twins[0]), atol=1e-5)
    assert float(ops.convert_to_numpy(fused._momentums[0])[0, 0]) != 0.0
