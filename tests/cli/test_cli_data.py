"""``reclayers`` on files through the data cache: reuse across runs, batch-exact resume from the
cache, evaluate's default split, unlabeled predict with kept columns, csv + --schema with separate
valid/test files, schema infer, and one-line errors for bad data options."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from reclayers import data as rd
from reclayers.cli import main

NO_JIT = [] if keras.backend.backend() == "jax" else ["--no-jit"]
TINY = [*NO_JIT, "--batch-size", "64", "--quiet", "--set", "embedding_dim=4", "--seed", "1"]


def _run_dir(parent: Path) -> Path:
    runs = sorted(p for p in parent.iterdir() if p.is_dir() and "-lr-" in p.name)
    assert runs, f"no run directory in {parent}"
    return runs[-1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("files")
    rd.write_criteo(root / "train.txt", 900, vocab_size=30, seed=2)
    lines = (root / "train.txt").read_text().splitlines()
    bad = ["1\t2\tshort row", "x" + lines[0]]  # a wrong field count and a bad label: skipped, reported
    with_bad = lines[:10] + bad[:1] + lines[10:20] + bad[1:] + lines[20:]
    (root / "train.txt").write_text("\n".join(with_bad) + "\n")
    lines = [ln.split("\t", 1)[1] for ln in lines[:50]]
    (root / "test_unlabeled.txt").write_text("\n".join(lines) + "\n")  # Kaggle test layout: 39 fields
    return root


@pytest.fixture(scope="module")
def trained(files, tmp_path_factory):
    parent = tmp_path_factory.mktemp("runs")
    code = main(["train", "--model", "lr", "--data", f"criteo:{files / 'train.txt'}", "--epochs", "2",
                 "--run-dir", str(parent), "--cache-dir", str(files / "cache"), *TINY])
    assert code == 0
    return _run_dir(parent)


def test_train_writes_report_and_resume_is_batch_exact_from_the_cache(trained, files, tmp_path):
    report = json.loads((trained / "data_report.json").read_text())
    assert not report["cache_reused"] and sum(report["rows"].values()) == 900
    assert not (trained / "data_report.txt").exists()  # one report: the JSON file
    for phase in ("fit", "encode"):  # every pass counts the 2 malformed rows, with their lines
        counts = report["data_report"][phase]
        assert (counts["rows_read"], counts["skipped"]) == (902, 2)
        assert counts["reasons"] == {"field count": 1, "bad number": 1}
        assert sorted(e["line"] for e in counts["examples"]) == [11, 22]
    code = main(["train", "--model", "lr", "--data", f"criteo:{files / 'train.txt'}", "--epochs", "2",
                 "--run-dir", str(tmp_path), "--cache-dir", str(files / "cache"), "--interrupt-after", "15",
                 "--checkpoint-every", "3", *TINY])
    assert code == 130
    run = _run_dir(tmp_path)
    assert json.loads((run / "data_report.json").read_text())["cache_reused"]  # nothing re-parsed
    latest = (run / "checkpoint" / "LATEST").read_text().strip()
    state = json.loads((run / "checkpoint" / latest / "state.json").read_text())
    assert (state["epoch"], state["batch"]) == (1, 3)  # 12 batches per epoch, checkpoint every 3
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    resumed = json.loads((run / "metrics.json").read_text())["test"]["label"]
    reference = json.loads((trained / "metrics.json").read_text())["test"]["label"]
    assert resumed["n"] == reference["n"]
    assert resumed["logloss"] == pytest.approx(reference["logloss"], abs=1e-6)  # batch-exact resume


def test_evaluate_scores_the_test_split_and_keeps_every_checkpoint(trained, files, capsys):
    rows = json.loads((trained / "data_report.json").read_text())["rows"]
    metrics = json.loads((trained / "metrics.json").read_text())["test"]["label"]
    assert main(["evaluate", str(trained)]) == 0
    out = capsys.readouterr().out
    assert f"test split of criteo:{files / 'train.txt'}: {rows['test']} rows, checkpoint best" in out
    assert f"{metrics['auc']:.4f}" in out
    whole = f"criteo:{files / 'train.txt'}"
    assert main(["evaluate", str(trained), "--checkpoint", "final", "--data", whole]) == 0
    assert "every row of" in capsys.readouterr().out
    done = json.loads((trained / "evaluations.json").read_text())
    assert {(v["checkpoint"], v["split"], v["rows"]) for v in done.values()} == {
        ("best", "test", rows["test"]), ("final", "all", 900)}


def test_predict_unlabeled_with_kept_columns(trained, files, tmp_path, capsys):
    out = tmp_path / "preds.csv"
    assert main(["predict", str(trained), "--data", f"criteo:{files / 'test_unlabeled.txt'}",
                 "--out", str(out), "--keep-columns", "C1,I2"]) == 0
    rows = list(csv.reader(out.open()))
    source = [ln.split("\t") for ln in (files / "test_unlabeled.txt").read_text().splitlines()]
    assert rows[0] == ["C1", "I2", "label"] and len(rows) == 51
    assert [r[0] for r in rows[1:]] == [s[13] for s in source]  # C1 is the 14th field
    p = np.array([float(r[2]) for r in rows[1:]])
    assert ((p > 0) & (p < 1)).all()
    pq_out = tmp_path / "preds.parquet"
    assert main(["predict", str(trained), "--data", f"criteo:{files / 'test_unlabeled.txt'}",
                 "--out", str(pq_out)]) == 0
    import pyarrow.parquet as pq

    np.testing.assert_allclose(pq.read_table(pq_out)["label"].to_numpy(), p, rtol=1e-5)


def test_csv_with_schema_and_separate_files(files, tmp_path, capsys):
    def write(path, n, seed):
        rng = np.random.default_rng(seed)
        lines = ["id,user,price,click"] + [
            f"r{i},u{rng.integers(20)},{rng.random() * 10:.3f},{rng.integers(2)}" for i in range(n)]
        path.write_text("\n".join(lines) + "\n")

    for name, n in (("train", 400), ("valid", 100), ("test", 100)):
        write(tmp_path / f"{name}.csv", n, len(name))
    assert main(["schema", "infer", f"csv:{tmp_path / 'train.csv'}", "--out", str(tmp_path / "s.yaml")]) == 0
    schema = rd.Schema.load(tmp_path / "s.yaml")
    assert schema.label_names == ("click",)
    schema = rd.Schema(features=tuple(f for f in schema.features if f.name != "id"), labels=schema.labels)
    schema.save(tmp_path / "s.json")
    code = main(["train", "--model", "lr", "--data", f"csv:{tmp_path / 'train.csv'}", "--schema",
                 str(tmp_path / "s.json"), "--valid", f"csv:{tmp_path / 'valid.csv'}", "--test",
                 f"csv:{tmp_path / 'test.csv'}", "--epochs", "1", "--run-dir", str(tmp_path / "runs"),
                 "--cache-dir", str(tmp_path / "cache"), *TINY])
    assert code == 0
    run = _run_dir(tmp_path / "runs")
    assert json.loads((run / "data_report.json").read_text())["rows"] == {"train": 400, "valid": 100,
                                                                          "test": 100}
    assert json.loads((run / "metrics.json").read_text())["test"]["click"]["n"] == 100
    out = tmp_path / "p.csv"
    assert main(["predict", str(run), "--data", f"csv:{tmp_path / 'test.csv'}", "--out", str(out),
                 "--keep-columns", "id"]) == 0
    assert out.read_text().splitlines()[0] == '"id","label_click","click"'


@pytest.mark.parametrize("case, message", [
    ("schema_mismatch", "--schema does not match the columns"),
    ("schema_builtin", "--schema only applies to csv:"),
    ("keep_missing", "--keep-columns"),
    ("cache_unwritable", "cannot be written"),
    ("csv_without_schema", "needs --schema FILE"),
    ("infer_builtin", "schema infer reads csv:PATH"),
])
def test_bad_data_options_one_line_exit_2(case, message, files, trained, tmp_path, capsys):
    (tmp_path / "s.json").write_text(rd.Schema(features=(rd.CategoricalFeature("nope"),),
                                               labels=(rd.Label("click"),)).to_json())
    (tmp_path / "blocker").write_text("")
    criteo = f"criteo:{files / 'train.txt'}"
    train = ["train", "--model", "lr", "--run-dir", str(tmp_path), *TINY]
    argv = {
        "schema_mismatch": train + ["--data", f"csv:{files / 'train.txt'}", "--schema",
                                    str(tmp_path / "s.json")],
        "schema_builtin": train + ["--data", criteo, "--schema", str(tmp_path / "s.json")],
        "keep_missing": ["predict", str(trained), "--data", criteo, "--out", str(tmp_path / "p.csv"),
                         "--keep-columns", "user_id"],
        "cache_unwritable": train + ["--data", criteo, "--cache-dir", str(tmp_path / "blocker" / "c")],
        "csv_without_schema": train + ["--data", f"csv:{files / 'train.txt'}"],
        "infer_builtin": ["schema", "infer", criteo],
    }[case]
    code = main(argv)
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
