"""Zoo models with sparse embedding optimizers: equal to the dense update, saved and resumed."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reclayers import data, models, optimizers


@pytest.fixture(scope="module")
def tiny():
    """Two dense, three categorical fields (few ids: repeats in every batch), a 4-step history."""
    ds = data.make_synthetic(96, n_dense=2, n_categorical=3, vocab_size=12, sequence_length=4, seed=0)
    x, y = next(iter(data.keras_dataset(ds.splits["train"], 64, label_format="dict")))
    x = {k: keras.ops.convert_to_numpy(v) for k, v in x.items()}
    y = {k: keras.ops.convert_to_numpy(v) for k, v in y.items()}
    return ds.schema, x, y


def _build(schema, name="mlp"):
    keras.utils.set_random_seed(0)
    return models.get_model(name, schema, embedding_dim=4, hidden_units=[8])


def _weights(model):
    return [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]


def test_sparse_sgd_equals_the_dense_step(tiny):
    """An MLP over a table shared by an id and its history (mean-pooled): sparse SGD on the tables
    gives the weights of the dense step with SGD on the tables, over several steps."""
    schema, x, y = tiny
    sparse, dense = _build(schema), _build(schema)
    models.compile_model(sparse, schema, optimizer=keras.optimizers.SGD(0.1),
                         embedding_optimizer="sgd", embedding_learning_rate=0.5)
    dense.compile(optimizer=optimizers.MultiOptimizer(keras.optimizers.SGD(0.1)),
                  loss={k: "binary_crossentropy" for k in schema.label_names})
    tables = [v for v in dense.trainable_variables if getattr(v, "sparse_table", False)]
    assert len(tables) == 3
    optimizers.assign_optimizer(tables, keras.optimizers.SGD(0.5))
    for model in (sparse, dense):
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for got, want in zip(_weights(sparse), _weights(dense)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_embedding_rate_follows_the_dense_schedule_and_its_cuts(tiny):
    """Without its own rate the row rule takes the dense optimizer's rate step by step: sparse SGD
    under an exponentially decaying SGD equals dense SGD under the same schedule; then a plateau
    cut (the trainer assigns a lower rate) reaches the tables too. A constant rate does not move."""
    schema, x, y = tiny

    def pair(lr):
        sparse, dense = _build(schema), _build(schema)
        models.compile_model(sparse, schema, optimizer=keras.optimizers.SGD(lr()), embedding_optimizer="sgd")
        models.compile_model(dense, schema, optimizer=keras.optimizers.SGD(lr()))
        return sparse, dense

    def decay():
        return keras.optimizers.schedules.ExponentialDecay(0.5, decay_steps=1, decay_rate=0.5)

    for models_ in (pair(decay), pair(lambda: 0.5)):
        for model in models_:
            model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        for got, want in zip(_weights(models_[0]), _weights(models_[1])):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    sparse, dense = models_  # constant 0.5, now cut to 0.05 as the trainer's plateau rule does
    for model in (sparse, dense):
        model.optimizer.learning_rate = 0.05
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for got, want in zip(_weights(sparse), _weights(dense)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # the schedule really moved the tables' rate: 0.5 · 0.5⁴ after the four steps of one fit
    follows = pair(decay)[0]
    follows.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    rate = float(keras.ops.convert_to_numpy(follows.optimizer.current_embedding_learning_rate()))
    assert rate == pytest.approx(0.5 * 0.5**4)
    fixed = models.compile_model(_build(schema), schema, optimizer=keras.optimizers.SGD(decay()),
                                 embedding_optimizer="sgd", embedding_learning_rate=0.3)
    fixed.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert fixed.optimizer.current_embedding_learning_rate() == 0.3


def test_checkpoint_round_trip_keeps_the_optimizer_rows(tiny, tmp_path):
    """``model.save`` → ``load_model`` restores every slot row; resuming trains exactly like the
    model that never stopped."""
    schema, x, y = tiny
    model = models.compile_model(_build(schema, "deepfm"), schema, embedding_optimizer="lazy_adam",
                                 embedding_learning_rate=0.05)
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.optimizer.rule.name == "lazy_adam" and loaded.optimizer.embedding_learning_rate == 0.05
    before = [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]
    after = [keras.ops.convert_to_numpy(v) for v in loaded.optimizer.variables]
    assert len(after) == len(before)
    slots = [v for v in model.optimizer.variables if "momentum" in v.path]
    assert slots and np.abs(keras.ops.convert_to_numpy(slots[0])).sum() > 0
    for got, want in zip(after, before):
        np.testing.assert_array_equal(got, want)
    for m in (model, loaded):
        m.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for got, want in zip(_weights(loaded), _weights(model)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_compile_model_choices(tiny):
    schema, _, _ = tiny
    m = _build(schema, "mlp")
    assert isinstance(models.compile_model(m, schema).optimizer, keras.optimizers.Adam)
    assert isinstance(models.compile_model(m, schema, embedding_optimizer="adam").optimizer,
                      keras.optimizers.Adam)
    multi = models.compile_model(m, schema, embedding_optimizer="adam", embedding_learning_rate=0.1)
    assert isinstance(multi.optimizer, optimizers.MultiOptimizer)
    opt = models.compile_model(m, schema, optimizer="sgd", embedding_optimizer="FTRL").optimizer
    assert opt.rule.name == "ftrl" and isinstance(opt.dense_optimizer, keras.optimizers.SGD)
    assert opt.embedding_learning_rate is None  # follows the dense rate
    assert float(keras.ops.convert_to_numpy(opt.current_embedding_learning_rate())) == pytest.approx(1e-2)
    with pytest.raises(ValueError, match="embedding_optimizer must be one of"):
        models.compile_model(m, schema, embedding_optimizer="sparse_adam")


def test_optimizer_memory_counts_rows_times_slots(tiny):
    schema, _, _ = tiny
    m = _build(schema, "mlp")
    rows = sum(int(v.shape[0]) for v in m.trainable_variables if getattr(v, "sparse_table", False))
    dense = models.optimizer_memory(models.compile_model(m, schema))
    assert dense.table_state_bytes == 4 * rows * 4 * 2  # Adam: two slots of width 4 per row
    row = models.optimizer_memory(models.compile_model(m, schema, embedding_optimizer="rowwise_adagrad"))
    assert row.table_state_bytes == 4 * rows  # one float per row
    assert "rowwise_adagrad" in row.summary() and f"{rows:,} table rows" in row.summary()


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's train function")
def test_tensorflow_step_is_traced_on_the_batch_shapes(tiny, monkeypatch):
    """On TensorFlow ``fit`` runs the zoo step on graphs traced on each batch's static shape (the
    full batch, the last one; later sizes share a relaxed graph), and trains exactly as Keras's
    train function, whose graph sees the iterator's unknown batch size; XLA keeps Keras's."""
    from reclayers.models import sparse

    schema, x, y = tiny  # 64 rows
    traced = []
    step = sparse.ZooModel.train_step

    def spy(self, data):
        traced.append(keras.tree.flatten(data)[0].shape[0])
        return step(self, data)

    monkeypatch.setattr(sparse.ZooModel, "train_step", spy)
    shaped, plain = _build(schema, "din"), _build(schema, "din")
    for model in (shaped, plain):
        models.compile_model(model, schema, learning_rate=0.01)
    shaped.fit(x, y, batch_size=24, epochs=2, shuffle=False, verbose=0)  # 24, 24, 16 rows
    assert shaped.train_function.batch_shaped and traced == [24, 16]
    monkeypatch.setattr(sparse, "_TF_BATCH_SHAPED_STEP", False)
    traced.clear()
    plain.fit(x, y, batch_size=24, epochs=2, shuffle=False, verbose=0)
    assert not hasattr(plain.train_function, "batch_shaped") and set(traced) == {None}
    for got, want in zip(_weights(shaped), _weights(plain)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(sparse, "_TF_BATCH_SHAPED_STEP", True)
    traced.clear()
    for n in (8, 4, 2, 8):  # new sizes: one trace at the first, then one relaxed graph
        shaped.train_on_batch({k: v[:n] for k, v in x.items()}, {k: v[:n] for k, v in y.items()})
    assert traced == [8, None]
    xla = _build(schema, "din")
    models.compile_model(xla, schema, jit_compile=True)
    xla.make_train_function()
    assert not hasattr(xla.train_function, "batch_shaped")


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_table_lookup_equals_kerass_embedding(dtype):
    """``TableEmbedding`` outside a sparse step: the rows and the table's gradient of
    ``keras.layers.Embedding`` for 1-D and 2-D ids (on PyTorch it looks the rows up directly, and
    a negative id is refused instead of wrapping around)."""
    from reclayers.models.sparse import TableEmbedding

    table = TableEmbedding(7, 3)
    table.build()
    ids = [np.array([0, 6, 2, 2], dtype), np.array([[1, 5], [5, 0]], dtype)]
    for x in ids:
        got = table(x)
        want = keras.layers.Embedding.call(table, keras.ops.convert_to_tensor(x))
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want))
    if keras.backend.backend() != "torch":
        return
    import torch

    grads = []
    for call in (lambda x: table(x), lambda x: keras.layers.Embedding.call(table, torch.as_tensor(x))):
        table.embeddings.value.grad = None
        (call(ids[1]) * torch.arange(12.0).reshape(2, 2, 3)).sum().backward()
        grads.append(table.embeddings.value.grad.numpy().copy())
    np.testing.assert_array_equal(grads[0], grads[1])
    with pytest.raises(IndexError):
        table(np.array([-1], dtype))
