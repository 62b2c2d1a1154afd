"""The PyTorch training epoch (``reclayers.training.torch_loop``): the same weights, optimizer
state and epoch loss as Keras's ``fit``; used by the trainer only where it applies."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reclayers import data, models
from reclayers.data import keras_dataset
from reclayers.training import Trainer, TrainingOptions
from reclayers.training.torch_loop import train_epoch, uses_torch_loop

BACKEND = keras.backend.backend()
torch_only = pytest.mark.skipif(BACKEND != "torch", reason="the loop is PyTorch's")


@pytest.fixture(scope="module")
def ds():
    return data.make_synthetic(n_rows=400, seed=0)  # 320 training rows: 5 batches of 64


class _Logs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.begun, self.ended = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.begun.append(batch)

    def on_train_batch_end(self, batch, logs=None):
        self.ended.append(batch)
        self.logs = logs


def _pair(ds, **compile_kwargs):
    def make():
        keras.utils.set_random_seed(1)
        model = models.get_model("deepfm", ds.schema, embedding_dim=4, hidden_units=[8])
        return models.compile_model(model, ds.schema, 0.01, jit_compile=False, **compile_kwargs)

    a, b = make(), make()
    b.set_weights(a.get_weights())
    return a, b


@torch_only
def test_loop_gives_fits_weights_optimizer_state_and_loss(ds):
    fitted, looped = _pair(ds)
    batches = keras_dataset(ds.splits["train"], 64, shuffle=False, label_format="dict")
    via_fit, via_loop = _Logs(), _Logs()
    fitted.fit(batches, epochs=1, shuffle=False, verbose=0, callbacks=[via_fit])
    assert uses_torch_loop(looped)
    train_epoch(looped, batches, via_loop)
    assert via_loop.begun == via_loop.ended == list(range(5))
    for w_fit, w_loop in zip(fitted.get_weights(), looped.get_weights()):
        np.testing.assert_array_equal(w_fit, w_loop)
    for s_fit, s_loop in zip(fitted.optimizer.variables, looped.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(s_fit), keras.ops.convert_to_numpy(s_loop))
    loss_fit = float(keras.ops.convert_to_numpy(via_fit.logs["loss"]))
    assert float(keras.ops.convert_to_numpy(via_loop.logs["loss"])) == loss_fit


@torch_only
def test_loop_shows_a_progress_bar_when_verbose(ds, capsys):
    _, model = _pair(ds)
    train_epoch(model, keras_dataset(ds.splits["train"], 64, label_format="dict"), _Logs(), verbose=True)
    assert "5/5" in capsys.readouterr().out


def test_loop_only_where_it_is_keras_own_step(ds):
    """PyTorch, the dense optimizer, no ``torch.compile``: the loop; otherwise ``fit``."""
    _, dense = _pair(ds)
    _, sparse = _pair(ds, embedding_optimizer="rowwise_adagrad")
    assert uses_torch_loop(dense) is (BACKEND == "torch")
    assert not uses_torch_loop(sparse)
    keras.utils.set_random_seed(1)
    compiled = models.compile_model(models.get_model("lr", ds.schema), ds.schema, jit_compile=True)
    assert not uses_torch_loop(compiled)


def test_trainer_epoch_trains_every_row_once(ds, tmp_path):
    """Through the trainer (the loop on PyTorch, ``fit`` elsewhere): counters and a finite loss."""
    options = TrainingOptions(epochs=1, batch_size=64, jit_compile=False)
    trainer = Trainer(lambda: models.get_model("lr", ds.schema), ds.schema, ds.splits["train"], None,
                      tmp_path / "run", options, quiet=True)
    state = trainer.fit()
    assert state["train_examples"] == 320 and state["global_batches"] == 5
    assert np.isfinite(state["history"][0]["loss"])


@torch_only
@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_lean_forward_equals_the_models_call(name):
    """Every zoo model, dropout and batch normalisation on: the same outputs, random draws,
    added losses, batch-norm statistics and gradients as ``model(x, training=True)``."""
    import torch

    from reclayers.training.torch_loop import lean_forward

    spec = models.MODELS[name]
    ds = data.make_synthetic(96, n_dense=2, n_categorical=3, vocab_size=12, seed=0,
                             sequence_length=4 if spec.needs_sequence else 0, second_task=spec.multi_task)
    keras.utils.set_random_seed(2)
    model = models.get_model(name, ds.schema, embedding_dim=4, hidden_units=[8], dropout=0.3, batch_norm=True)
    x, _ = keras_dataset(ds.splits["train"], 32, shuffle=False, label_format="dict")[0]
    x = {k: keras.ops.convert_to_tensor(v) for k, v in x.items()}
    model(x)  # built

    def run(forward):
        start = [keras.ops.convert_to_numpy(v).copy() for v in model.variables]
        torch.manual_seed(5)
        out = forward()
        total = sum(keras.ops.sum(o) for o in keras.tree.flatten(out)) + sum(model.losses, 0.0)
        model.zero_grad()
        total.backward()
        grads = [None if v.value.grad is None else v.value.grad.numpy().copy()
                 for v in model.trainable_variables]
        after = [keras.ops.convert_to_numpy(v).copy() for v in model.variables]
        for v, s in zip(model.variables, start):
            v.assign(s)
        outputs = [keras.ops.convert_to_numpy(o) for o in keras.tree.flatten(out)]
        return outputs, float(total.detach()), grads, after

    ref, got = run(lambda: model(x, training=True)), run(lambda: lean_forward(model, x))
    assert model.__dict__["_reclayers_plan"].inputs(x) is not None  # the planned path ran
    for a, b in zip(ref[0], got[0]):
        np.testing.assert_array_equal(a, b)
    assert ref[1] == got[1]
    for a, b in zip(ref[2] + ref[3], got[2] + got[3]):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)


@torch_only
@pytest.mark.parametrize("name", ["snr", "deepfm"])
def test_loss_sources_are_the_models_losses(name):
    """``LossSources``: the added losses (SNR's L0 penalty) and the regularisation losses
    (``embedding_l2``) of ``model.losses``, the same values in the same order; ``clear`` drops the
    added ones as ``model._clear_losses`` does."""
    from reclayers.training.torch_loop import LossSources, lean_forward

    spec = models.MODELS[name]
    ds = data.make_synthetic(64, n_dense=2, n_categorical=3, vocab_size=12, seed=0,
                             second_task=spec.multi_task)
    keras.utils.set_random_seed(2)
    model = models.get_model(name, ds.schema, embedding_dim=4, hidden_units=[8], embedding_l2=1e-3)
    x, _ = keras_dataset(ds.splits["train"], 32, shuffle=False, label_format="dict")[0]
    x = {k: keras.ops.convert_to_tensor(v) for k, v in x.items()}
    model(x)
    sources = LossSources(model)
    lean_forward(model, x, sources)
    expected, got = model.losses, sources.losses()
    assert len(got) == len(expected) > 0 and len(sources.regularized) > 0
    added = len(expected) - len(sources.regularized)
    assert added == (1 if name == "snr" else 0)
    for a, b in zip(expected, got):
        assert float(keras.ops.convert_to_numpy(a)) == float(keras.ops.convert_to_numpy(b))
    sources.clear()
    assert len(model.losses) == len(sources.losses()) == len(sources.regularized)


@torch_only
def test_lean_forward_falls_back_to_the_models_call_for_other_inputs(ds):
    """Inputs the plan does not take (NumPy arrays, 64-bit ids: the model's call converts them)
    give the model's own outputs."""
    from reclayers.training.torch_loop import lean_forward

    _, model = _pair(ds)
    x, _ = keras_dataset(ds.splits["train"], 16, shuffle=False, label_format="dict")[0]
    x64 = {k: v.astype("int64") if v.dtype.kind == "i" else v for k, v in x.items()}
    expected = keras.ops.convert_to_numpy(model(x, training=True)["click"])
    for given in (x, x64):
        got = lean_forward(model, given)
        assert model.__dict__["_reclayers_plan"].inputs(given) is None
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got["click"]), expected)


@torch_only
@pytest.mark.parametrize("tasks", [1, 2])
def test_direct_loss_is_keras_compiled_loss_bit_for_bit(tasks):
    """The loop's loss (the zoo's binary cross-entropy computed directly) against
    ``model._compute_loss``: the same value, gradients and per-output loss trackers, with a
    regularisation loss added."""
    from reclayers.training.torch_loop import _bce_terms, compute_loss, lean_forward

    ds = data.make_synthetic(n_rows=200, seed=3, second_task=tasks == 2)
    keras.utils.set_random_seed(4)
    model = models.get_model("deepfm", ds.schema, embedding_dim=4, hidden_units=[8], embedding_l2=1e-3)
    model = models.compile_model(model, ds.schema, 0.01, jit_compile=False)
    x, y = keras_dataset(ds.splits["train"], 32, shuffle=False, label_format="dict")[0]
    x = {k: keras.ops.convert_to_tensor(v) for k, v in x.items()}
    y = {k: keras.ops.convert_to_tensor(v) for k, v in y.items()}
    model._compute_loss(x=x, y=y, y_pred=model(x), sample_weight=None)  # builds the compiled loss

    def run(loss_fn):
        for m in model._compile_loss.metrics:
            m.reset_state()
        y_pred = lean_forward(model, x)
        model.zero_grad()
        loss = loss_fn(y_pred)
        loss.backward()
        grads = [v.value.grad.numpy().copy() for v in model.trainable_variables]
        trackers = [float(m.result()) for m in model._compile_loss.metrics]
        return float(loss.detach()), grads, trackers, y_pred

    ref = run(lambda p: model._compute_loss(x=x, y=y, y_pred=p, sample_weight=None, training=True))
    got = run(lambda p: compute_loss(model, x, y, p))
    assert _bce_terms(model, y, got[3]) is not None and len(got[2]) == (tasks if tasks > 1 else 0)
    assert model.losses  # the regularisation losses are added as Keras adds them
    assert got[0] == ref[0] and got[2] == ref[2]
    for a, b in zip(ref[1], got[1]):
        np.testing.assert_array_equal(a, b)
    labels_2d = {k: keras.ops.expand_dims(v, -1) for k, v in y.items()}
    p = lean_forward(model, x)
    direct, keras_loss = compute_loss(model, x, labels_2d, p), model._compute_loss(x=x, y=labels_2d, y_pred=p)
    assert float(direct.detach()) == float(keras_loss.detach())


@torch_only
def test_lean_forward_follows_a_layer_quantized_after_its_first_call():
    """A layer quantized after the plan was built runs its quantized call, as in ``model(x)``."""
    from reclayers.training.torch_loop import lean_forward

    keras.utils.set_random_seed(0)
    inputs = {"a": keras.Input((3,), name="a")}
    model = keras.Model(inputs, {"y": keras.layers.Dense(2, name="d")(inputs["a"])})
    x = {"a": keras.ops.convert_to_tensor(np.random.default_rng(0).normal(size=(4, 3)).astype("float32"))}
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(lean_forward(model, x)["y"]),
                                  keras.ops.convert_to_numpy(model(x, training=True)["y"]))
    model.get_layer("d").quantize("int8")
    expected = keras.ops.convert_to_numpy(model(x, training=True)["y"])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(lean_forward(model, x)["y"]), expected)
