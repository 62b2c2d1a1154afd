"""Warm start with growing tables and progressive validation (every backend: the variables a
model and its optimizer keep differ between backends)."""

import keras
import numpy as np
import pytest

from reclayers import models
from reclayers.data import CategoricalFeature, Label, Preprocessor, Schema, encode, make_synthetic
from reclayers.training import Trainer, TrainingOptions
from reclayers.training.warm_start import WarmStartError, parent_checkpoint, transfer

JIT = {"jit_compile": False} if keras.backend.backend() != "jax" else {}


def day(d):
    return make_synthetic(n_rows=2100, days=7, vocab_size=30, n_categorical=3, seed=3, day=d)


def trainer(model, pre, ds, run, **kw):
    schema = pre.output_schema()
    splits = ds.encode_with(pre)
    return Trainer(lambda: models.get_model(model, schema), schema, splits["train"], splits["valid"], run,
                   TrainingOptions(epochs=1, batch_size=64, **JIT), quiet=True, log=False, **kw)


def numpy(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A run on day 1 with a frozen (exact-size) vocabulary, trained one epoch."""
    d1 = day(1)
    run = tmp_path_factory.mktemp("parent")
    trainer("lr", d1.preprocessor, d1, run).fit()
    return d1.preprocessor, run


def test_warm_start_keeps_existing_rows_and_slots_and_gives_new_ids_fresh_rows(parent, tmp_path):
    pre1, run = parent
    d2 = day(2)
    pre2 = pre1.update([d2.raw_split("train")], min_count=1, oov_buckets=0)
    child = trainer("lr", pre2, d2, tmp_path / "child")
    child.model = child.strategy.build(child.make_model, child._compile)
    initial = numpy(child._variables())
    values, names = parent_checkpoint(run)
    report = transfer(values, names, child._variables())
    after = numpy(child._variables())
    assert report["grown"] and report["copied"] == len(values) - len(report["kept_new"])
    grown_paths = {g["variable"] for g in report["grown"]}
    tables = [v.path for v in child.model.variables if v.path in grown_paths]
    assert len(tables) == 3 and len(report["grown"]) >= 2 * len(tables)  # tables and their optimizer slots
    for v, old, init, new in zip(child._variables(), values, initial, after):
        if v.path in report["kept_new"]:
            continue
        rows = old.shape[0] if old.shape else 0
        np.testing.assert_array_equal(new[:rows] if old.shape else new, old)  # parent rows bit for bit
        if old.shape != new.shape:
            np.testing.assert_array_equal(new[rows:], init[rows:])  # new rows: fresh initial values
    # a value admitted on day 2 gets an id past the parent's table: a fresh row, zero slots
    new_value = next(v for v in pre2.vocabs["C1"] if v not in pre1.vocabs["C1"])
    new_id = int(pre2.vocab_ids("C1")[pre2.vocabs["C1"].index(new_value)])
    assert new_id >= pre1.num_buckets("C1")
    for v, init, new in zip(child._variables(), initial, after):
        if v.path in grown_paths and "C1" in v.path:
            np.testing.assert_array_equal(new[new_id], init[new_id])
    # and the run trains from there on every backend
    state = trainer("lr", pre2, d2, tmp_path / "run2", warm_start=(values, names)).fit()
    assert state["epoch"] == 1 and np.isfinite(state["history"][-1]["loss"])


def test_warm_start_within_capacity_copies_whole_tables(parent, tmp_path):
    pre1, run = parent
    d2 = day(2)
    roomy = pre1.update([d2.raw_split("train")], min_count=1, block=1024)  # roomy blocks
    first = trainer("lr", roomy, d2, tmp_path / "a")
    first.fit()
    d3 = day(3)
    pre3 = roomy.update([d3.raw_split("train")])
    assert pre3.num_buckets("C1") == roomy.num_buckets("C1") and pre3.report["C1"]["admitted"] > 0
    second = trainer("lr", pre3, d3, tmp_path / "b")
    second.model = second.strategy.build(second.make_model, second._compile)
    values, names = parent_checkpoint(tmp_path / "a")
    report = transfer(values, names, second._variables())
    assert report["grown"] == []
    for v, old, new in zip(second._variables(), values, numpy(second._variables())):
        if v.path not in report["kept_new"]:
            np.testing.assert_array_equal(new, old)


def test_another_model_is_refused_and_nothing_changes(parent, tmp_path):
    pre1, run = parent
    other = trainer("deepfm", pre1, day(1), tmp_path / "other")
    other.model = other.strategy.build(other.make_model, other._compile)
    before = numpy(other._variables())
    with pytest.raises(WarmStartError, match="another model"):
        transfer(*parent_checkpoint(run), other._variables())
    for a, b in zip(before, numpy(other._variables())):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(WarmStartError, match="not found"):
        parent_checkpoint(tmp_path / "missing")


def test_progressive_validation_scores_each_block_before_training_on_it(tmp_path):
    """Each row has its own id and a random label: a model can only know a row's label after
    training on it. Scored before training, the blocks are at chance; scored after, memorised."""
    n = 512
    rng = np.random.default_rng(0)
    raw = {"uid": np.array([f"u{i}" for i in range(n)]), "click": (rng.random(n) < 0.5).astype("float32")}
    schema = Schema(features=(CategoricalFeature("uid", embedding_dim=4),), labels=(Label("click"),))
    pre = Preprocessor(schema).fit([raw])
    data = encode(raw, pre)
    out = pre.output_schema()
    t = Trainer(lambda: models.get_model("lr", out), out, data, None, tmp_path,
                TrainingOptions(epochs=1, batch_size=32, learning_rate=0.5, **JIT), quiet=True, log=False,
                progressive=128)
    state = t.fit()
    blocks = state["progressive"]
    assert [b["rows"] for b in blocks] == [128] * 4 and state["train_examples"] == n
    before = np.mean([b["scores"]["click"]["auc"] for b in blocks])
    from reclayers.metrics import auc
    from reclayers.training import predict

    after = auc(data.labels["click"], predict(t.model, data)["click"])
    assert before < 0.7 < 0.95 < after  # a leak (training first) would score ~1 before too
    assert (tmp_path / "progressive.csv").read_text().count("\n") == 5


def test_warm_start_carries_a_row_wise_embedding_optimizer(tmp_path):
    """The transfer knows nothing of the optimizer: a sparse row-wise one's slots grow the same way."""
    d1, d2 = day(1), day(2)

    def sparse(pre, ds, run, **kw):
        schema, splits = pre.output_schema(), ds.encode_with(pre)
        return Trainer(lambda: models.get_model("lr", schema), schema, splits["train"], None, run,
                       TrainingOptions(epochs=1, batch_size=64, embedding_optimizer="lazy_adam", **JIT),
                       quiet=True, log=False, **kw)

    sparse(d1.preprocessor, d1, tmp_path / "p").fit()
    pre2 = d1.preprocessor.update([d2.raw_split("train")], min_count=1)
    child = sparse(pre2, d2, tmp_path / "c")
    child.model = child.strategy.build(child.make_model, child._compile)
    values, names = parent_checkpoint(tmp_path / "p")
    report = transfer(values, names, child._variables())
    assert len(report["grown"]) >= 3 * 3  # 3 tables, each with lazy Adam's two row slots
    from reclayers.training.warm_start import table_rows

    found = table_rows(child._variables(), {"C1": np.array([2])})  # recycled rows reach its slots too
    slots = [p for p in found if p not in {v.path for v in child.model.variables}]
    assert len(found) == 3 and len(slots) == 2, sorted(found)  # lr's C1 weights and lazy Adam's 2 slots
    for v, old, new in zip(child._variables(), values, numpy(child._variables())):
        if v.path not in report["kept_new"]:
            np.testing.assert_array_equal(new[:old.shape[0]] if old.shape else new, old)


def test_expiry_recycles_rows_fresh_with_reset_slots_and_keeps_the_others(tmp_path):
    """Ids unseen on the next day give their rows back: a recycled row (in the table and in each
    Adam slot of it) holds the new model's initial values; every other row is the parent's."""
    d1, d2 = day(1), day(2)
    pre1 = Preprocessor(d1.preprocessor.schema, expire_after=1, block=64).fit([d1.raw_split("train")])
    trainer("lr", pre1, d1, tmp_path / "p").fit()
    part = {k: v[:60] for k, v in d2.raw_split("train").items()}  # few rows: many ids go unseen
    pre2 = pre1.update([part])
    reset = pre2.recycled_ids()
    rep = pre2.report["C1"]
    assert rep["expired"] > 0 and rep["recycled"] > 0 and len(reset["C1"]) == rep["expired"]
    assert pre2.num_buckets("C1") == pre1.num_buckets("C1")  # recycled ids, no growth
    child = trainer("lr", pre2, d2, tmp_path / "c")
    child.model = child.strategy.build(child.make_model, child._compile)
    initial = numpy(child._variables())
    values, names = parent_checkpoint(tmp_path / "p")
    report = transfer(values, names, child._variables(), reset=reset)
    after = numpy(child._variables())
    tables = [v.path for v in child.model.variables if "C1" in v.path and v.path.endswith("embeddings")]
    slots = [v.path for v in child.model.optimizer.variables
             if any(t.replace("/", "_") in v.path for t in tables)]
    assert tables and len(slots) >= 2 * len(tables) and set(tables + slots) <= set(report["reset"])
    rows = reset["C1"]
    keep = np.setdiff1d(np.arange(pre1.num_buckets("C1")), rows)
    for v, old, init, new in zip(child._variables(), values, initial, after):
        if v.path in tables + slots:
            np.testing.assert_array_equal(new[rows], init[rows])  # fresh row, initial (zero) slots
            np.testing.assert_array_equal(new[keep], old[keep])
            if v.path in slots:
                assert not new[rows].any() and old[rows].any()  # the parent's moments were not zero
    state = trainer("lr", pre2, d2, tmp_path / "r", warm_start=(values, names, reset)).fit()
    assert state["epoch"] == 1


def test_warm_start_takes_the_best_epoch_by_default(tmp_path):
    """Validated on the training rows with flipped labels, the run gets worse every epoch: its best
    epoch is the first, its last the third."""
    from reclayers.data import Arrays

    d1 = day(1)
    schema, train = d1.schema, d1.splits["train"]
    flipped = Arrays(train.features, {k: 1.0 - v for k, v in train.labels.items()})
    t = Trainer(lambda: models.get_model("lr", schema), schema, train, flipped, tmp_path / "p",
                TrainingOptions(epochs=3, batch_size=64, **JIT), quiet=True, log=False)
    state = t.fit()
    assert state["best_epoch"] == 1
    best, last = parent_checkpoint(tmp_path / "p"), parent_checkpoint(tmp_path / "p", "last")
    from reclayers.training.runs import load_model

    kept = load_model(tmp_path / "p" / "best.keras")
    for w, value in zip(kept.weights, best[0]):  # the model variables come first
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(w), value)
    assert not all(np.array_equal(a, b) for a, b in zip(best[0], last[0]))
    step = [n.split("/")[-1] for n in best[1]].index("iteration")
    assert best[0][step] == t.steps_per_epoch and last[0][step] == 3 * t.steps_per_epoch
    with pytest.raises(WarmStartError, match="best"):
        parent_checkpoint(tmp_path / "p", "first")
