"""Sparse (row-wise) embedding updates against NumPy references, on the active backend.

A tiny model whose only trainable weight is one table, looked up by two single-id features and a
two-step sequence (repeated ids within and across features), with a frozen linear read-out: the
gradient of each looked-up row is known in closed form, so each rule is checked against its own
NumPy reference over several steps of ``fit`` (jitted on JAX, a graph on TensorFlow).
"""

from __future__ import annotations

import sys

import keras
import numpy as np
import pytest

from reclayers.embedding_optimizers import SparseEmbeddingOptimizer
from reclayers.models.sparse import TableEmbedding, ZooModel

D, B, STEPS, LR = 3, 8, 4, 0.1
V = 9  # rows of the table (parametrised: fewer and more rows than a batch's 32 lookups)
U = np.array([0.5, -1.0, 0.25], "float32")  # the frozen read-out


def _data(seed=0):
    rng = np.random.default_rng(seed)
    n = B * STEPS
    a = rng.integers(0, 4, n).astype("int32")  # few ids: duplicates in every batch
    b = rng.integers(0, V, n).astype("int32")
    h = rng.integers(0, 4, (n, 2)).astype("int32")
    y = rng.integers(0, 2, (n, 1)).astype("float32")
    return {"a": a, "b": b, "h": h}, y


def _model(table):
    inputs = {
        "a": keras.Input((), dtype="int32", name="a"),
        "b": keras.Input((), dtype="int32", name="b"),
        "h": keras.Input((2,), dtype="int32", name="h"),
    }
    emb = TableEmbedding(V, D, name="table")
    pooled = keras.layers.GlobalAveragePooling1D()(emb(inputs["h"]))
    x = keras.layers.Add()([emb(inputs["a"]), emb(inputs["b"]), pooled])
    readout = keras.layers.Dense(1, use_bias=False, trainable=False, name="readout")
    p = keras.layers.Activation("sigmoid")(readout(x))
    model = ZooModel(inputs=inputs, outputs=p)
    emb.embeddings.assign(table)
    readout.kernel.assign(U[:, None])
    return model


def _row_grads(table, x, y):
    """``(ids [N], grads [N, D])`` of the mean binary cross-entropy, per lookup."""
    a, b, h = x["a"], x["b"], x["h"]
    e = table[a] + table[b] + table[h].mean(axis=1)
    p = 1.0 / (1.0 + np.exp(-(e @ U)))
    dz = ((p - y[:, 0]) / len(a))[:, None] * U[None]  # dL/de per example
    ids = np.concatenate([a, b, h[:, 0], h[:, 1]])
    grads = np.concatenate([dz, dz, dz / 2, dz / 2])
    return ids, grads


def _reference(rule, table, x, y):
    """NumPy: ``STEPS`` updates of ``table`` by ``rule`` (dense where the rule equals dense)."""
    w = table.astype("float64").copy()
    acc = np.full_like(w, 0.1)
    racc = np.zeros((V, 1))  # row-wise Adagrad's accumulator starts at 0
    m, v = np.zeros_like(w), np.zeros_like(w)
    z = np.zeros_like(w)
    for step in range(1, STEPS + 1):
        sl = slice((step - 1) * B, step * B)
        ids, grads = _row_grads(w.astype("float32"), {k: x[k][sl] for k in x}, y[sl])
        g = np.zeros_like(w)
        np.add.at(g, ids, grads)  # the dense gradient of the table
        touched = np.unique(ids)
        if rule == "sgd":
            w -= LR * g
        elif rule == "adagrad":
            acc += g**2
            w -= LR * g / np.sqrt(acc + 1e-7)
        elif rule == "rowwise_adagrad":
            gt = g[touched]
            racc[touched] += (gt**2).mean(axis=1, keepdims=True)
            w[touched] -= LR * gt / np.sqrt(racc[touched] + 1e-7)
        elif rule == "adam":  # dense Adam (Keras' formula): every row, moments decayed
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g**2
            alpha = LR * np.sqrt(1 - 0.999**step) / (1 - 0.9**step)
            w -= alpha * m / (np.sqrt(v) + 1e-7)
        elif rule == "lazy_adam":
            gt = g[touched]
            m[touched] = 0.9 * m[touched] + 0.1 * gt
            v[touched] = 0.999 * v[touched] + 0.001 * gt**2
            alpha = LR * np.sqrt(1 - 0.999**step) / (1 - 0.9**step)
            w[touched] -= alpha * m[touched] / (np.sqrt(v[touched]) + 1e-7)
        elif rule == "ftrl":
            gt, n_old = g[touched], acc[touched]
            n_new = n_old + gt**2
            z[touched] += gt - (np.sqrt(n_new) - np.sqrt(n_old)) / LR * w[touched]
            w[touched] = -z[touched] / (np.sqrt(n_new) / LR)
            acc[touched] = n_new
    return w


@pytest.fixture(params=[9, 50], ids=["small_table", "large_table"])
def rows(request, monkeypatch):
    """Table rows: 9 (updated whole, untouched rows masked) or 50 (sorted lookups, scatter)."""
    monkeypatch.setattr(sys.modules[__name__], "V", request.param)
    return request.param


@pytest.mark.parametrize("search", ["row_index", "binary_search"])
@pytest.mark.parametrize("rule", ["sgd", "adagrad", "rowwise_adagrad", "lazy_adam", "ftrl"])
def test_rule_matches_numpy_reference(rule, rows, search, monkeypatch):
    """``search``: how the JAX step finds each lookup's entry among the sorted ids (its tables up
    to ``ROW_INDEX_MAX_ROWS`` rows use the shared row index, larger ones binary searches)."""
    if search == "binary_search":
        if keras.backend.backend() != "jax" or rows <= 4 * B:  # 4 lookups per row: else masked
            pytest.skip("the row index or the binary searches: a JAX step on a sorted-path table")
        from reclayers import embedding_optimizers

        monkeypatch.setattr(embedding_optimizers, "ROW_INDEX_MAX_ROWS", 0)
    table = np.random.default_rng(1).normal(0, 0.3, (V, D)).astype("float32")
    x, y = _data()
    model = _model(table)
    model.compile(optimizer=SparseEmbeddingOptimizer("sgd", rule, embedding_learning_rate=LR),
                  loss="binary_crossentropy")
    model.fit(x, y, batch_size=B, epochs=1, shuffle=False, verbose=0)
    got = keras.ops.convert_to_numpy(model.get_layer("table").embeddings)
    want = _reference(rule, table, x, y)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    assert int(model.optimizer.iterations) == STEPS
    # rows no batch touched are untouched (id 8 is drawn only by "b", check whichever are absent)
    absent = sorted(set(range(V)) - set(np.concatenate([x["a"], x["b"], x["h"].ravel()]).tolist()))
    np.testing.assert_array_equal(got[absent], table[absent])


@pytest.mark.parametrize("jit", [False, True], ids=["eager_graph", "xla"])
@pytest.mark.parametrize("rule", ["adam", "adagrad"])
def test_dense_optimizer_on_a_table_matches_numpy_reference(rule, jit, rows):
    """The dense path (a Keras optimizer on the whole table) applies the optimizer to the table's
    gradient, whose repeated ids are summed: on TensorFlow that gradient is ``IndexedSlices`` with
    one entry per lookup, and without the zoo step's summing Keras squares each entry apart (Adam's
    second moment, Adagrad's accumulator get ``Σ g²`` instead of ``(Σ g)²``)."""
    if jit and keras.backend.backend() != "tensorflow":
        pytest.skip("XLA on/off matters for the TensorFlow step only")
    table = np.random.default_rng(1).normal(0, 0.3, (V, D)).astype("float32")
    x, y = _data()
    model = _model(table)
    opt = keras.optimizers.Adam(LR) if rule == "adam" else keras.optimizers.Adagrad(LR)
    model.compile(optimizer=opt, loss="binary_crossentropy", jit_compile=jit)
    model.fit(x, y, batch_size=B, epochs=1, shuffle=False, verbose=0)
    got = keras.ops.convert_to_numpy(model.get_layer("table").embeddings)
    np.testing.assert_allclose(got, _reference(rule, table, x, y), rtol=2e-5, atol=2e-6)


def test_dense_gradient_of_a_table_is_refused():
    """The sparse optimizer never silently densifies: a plain step with table gradients fails."""
    emb = TableEmbedding(4, 2)
    emb.build(None)
    opt = SparseEmbeddingOptimizer("sgd", "adagrad")
    with pytest.raises(ValueError, match="row gradients"):
        opt.apply([keras.ops.ones((4, 2))], [emb.embeddings])


@pytest.mark.parametrize("indexed", [False, True], ids=["search", "row_index"])
@pytest.mark.parametrize("zero_padding", [False, True])
@pytest.mark.parametrize("width", [None, 3], ids=["vector", "rows"])
def test_combine_duplicates_sums_each_id(zero_padding, width, indexed):
    """Each id's entries carry its summed gradient (all of them, or only one with the others
    zero, for a consumer that adds duplicates up); ``[N]`` gradients (a gathered vector's
    ``IndexedSlices``) keep their shape. With a shared ``RowIndex`` the same, although another
    table's ids wrote into it first (its stale entries are never read), and although that table's
    gradients were not finite (its first sum orders the next table's write: it must add zero)."""
    from reclayers.embedding_optimizers import RowIndex, combine_duplicates

    rng = np.random.default_rng(0)
    ids = rng.integers(0, 5, 40).astype("int32")
    grads = rng.normal(size=(40,) if width is None else (40, width)).astype("float32")
    index = None
    if indexed:
        index = RowIndex(9)
        for fill in (np.inf, np.nan):  # two other tables of the step
            combine_duplicates(rng.integers(0, 9, 25).astype("int32"), np.full((25, 2), fill, "float32"),
                               index=index)
    rows, summed = combine_duplicates(ids, grads, zero_padding=zero_padding, index=index)
    rows, summed = keras.ops.convert_to_numpy(rows), keras.ops.convert_to_numpy(summed)
    assert summed.shape == grads.shape and np.all(np.diff(rows) >= 0)
    for i in np.unique(ids):
        want = grads[ids == i].sum(axis=0)
        got = summed[rows == i]
        if zero_padding:
            np.testing.assert_allclose(got.sum(axis=0), want, rtol=1e-5, atol=1e-6)
            assert np.count_nonzero(np.abs(got).reshape(len(got), -1).sum(axis=1)) == 1
        else:
            np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), rtol=1e-5, atol=1e-6)


def test_row_index_is_written_in_place_under_xla():
    """One ``RowIndex`` serves every table of a jitted step: each table's write must wait for the
    previous table's reads and happen in place, not after a copy of the whole index per table
    (what XLA does when it cannot order them; 51 copies for ``deepfm``'s 52 tables)."""
    if keras.backend.backend() != "jax":
        pytest.skip("the row index is used by the JAX step")
    import re

    import jax

    from reclayers.embedding_optimizers import RowIndex, combine_duplicates

    rng = np.random.default_rng(0)
    ids = [rng.integers(0, 1000, 64).astype("int32") for _ in range(4)]
    grads = [rng.normal(size=(64, 3)).astype("float32") for _ in range(4)]

    def step(ids, grads):
        index = RowIndex(1000)
        return [combine_duplicates(i, g, index=index)[1] for i, g in zip(ids, grads)]

    text = jax.jit(step).lower(ids, grads).compile().as_text()
    assert "s32[1000]" in text  # the index is there, written by scatters
    assert not re.findall(r"= s32\[1000\]\S* copy\(", text)


def test_torch_distinct_ids_by_index_match_unique():
    """PyTorch finds a batch's distinct ids through a scratch index (no sort): the same ids and
    the same lookup → distinct-id map as ``torch.unique``, whatever the scratch held before."""
    if keras.backend.backend() != "torch":
        pytest.skip("the scratch-index search is PyTorch's")
    import torch

    from reclayers.embedding_optimizers import _distinct_by_index

    ids = torch.from_numpy(np.random.default_rng(0).integers(0, 30, 200))
    index = torch.full((40,), 12345, dtype=torch.int32)  # stale values: never read
    for _ in range(2):  # reused without a reset
        rows, inverse = _distinct_by_index(ids, index)
        want_rows, want_inverse = torch.unique(ids, return_inverse=True)
        assert sorted(rows.tolist()) == want_rows.tolist() and len(set(rows.tolist())) == len(rows)
        assert torch.equal(rows[inverse], ids)  # each lookup maps to its own id
        ids = ids.flip(0)


@pytest.mark.parametrize("lr_kind", ["float", "tensor"])
def test_torch_fused_lazy_adam_matches_the_rule(lr_kind, monkeypatch):
    """PyTorch runs ``lazy_adam`` on all tables of a step in one fused multi-tensor kernel: the
    rows and moments equal the rule's ``keras.ops`` arithmetic (Keras's ``ε`` placement) over
    several steps, for tables of different widths and rows, with a float or a tensor rate, and
    the fused kernel is really the one that ran."""
    if keras.backend.backend() != "torch":
        pytest.skip("the fused kernel is PyTorch's")
    import torch

    from reclayers import embedding_optimizers as eo

    calls = []
    real = torch._fused_adam_
    monkeypatch.setattr(torch, "_fused_adam_", lambda *a, **k: calls.append(len(a[0])) or real(*a, **k))
    rule = eo.get_rule("lazy_adam", beta_1=0.8, epsilon=1e-3)  # a large ε: its placement shows
    rng = np.random.default_rng(0)
    shapes = [(7, 4), (3, 4), (5, 1)]
    state = [[rng.standard_normal(s).astype("float32"), np.zeros(s, "float32"), np.zeros(s, "float32")]
             for s in shapes]
    fused_state = [[torch.tensor(a) for a in t] for t in state]
    for step in range(1, 5):
        grads = [rng.standard_normal(s).astype("float32") * 0.1 for s in shapes]
        lr = 0.05 if lr_kind == "float" else torch.tensor(0.05)
        want = [rule.update(torch.tensor(w), [torch.tensor(m), torch.tensor(v)], torch.tensor(g), lr,
                            torch.tensor(float(step))) for (w, m, v), g in zip(state, grads)]
        gathered = [(w.clone(), [m.clone(), v.clone()], torch.tensor(g))
                    for (w, m, v), g in zip(fused_state, grads)]
        got = eo._rule_on_tables_torch(rule, gathered, lr, torch.tensor(float(step)))
        for i, ((w, (m, v)), (gw, (gm, gv))) in enumerate(zip(want, got)):
            for a, b in ((w, gw), (m, gm), (v, gv)):
                np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)
            state[i] = [w.numpy(), m.numpy(), v.numpy()]
            fused_state[i] = [gw, gm, gv]
    assert calls == [3] * 4  # one call per step, all three tables in it
    monkeypatch.setattr(eo, "_TORCH_FUSED_ADAM", False)
    calls.clear()
    eo._rule_on_tables_torch(rule, gathered, lr, torch.tensor(5.0))
    assert calls == []


@pytest.mark.parametrize("jit", [False, True], ids=["graph_unique", "xla_sorted"])
def test_tensorflow_sparse_step_paths_match_numpy_reference(jit, monkeypatch):
    """TensorFlow without XLA reads and writes only the distinct rows (``tf.unique``: shapes that
    depend on the data); under XLA the ids are sorted in static shapes. Both match NumPy."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the two TensorFlow graph kinds")
    from reclayers import embedding_optimizers

    monkeypatch.setattr(sys.modules[__name__], "V", 50)  # more rows than a batch's 32 lookups
    calls = []
    unique = embedding_optimizers._updated_rows_tf
    monkeypatch.setattr(embedding_optimizers, "_updated_rows_tf", lambda *a: calls.append(1) or unique(*a))
    table = np.random.default_rng(1).normal(0, 0.3, (V, D)).astype("float32")
    x, y = _data()
    model = _model(table)
    model.compile(optimizer=SparseEmbeddingOptimizer("sgd", "lazy_adam", embedding_learning_rate=LR),
                  loss="binary_crossentropy", jit_compile=jit)
    model.fit(x, y, batch_size=B, epochs=1, shuffle=False, verbose=0)
    got = keras.ops.convert_to_numpy(model.get_layer("table").embeddings)
    np.testing.assert_allclose(got, _reference("lazy_adam", table, x, y), rtol=2e-5, atol=2e-6)
    assert bool(calls) is not jit  # traced into the graph without XLA, never under XLA
