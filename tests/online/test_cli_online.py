"""``reclayers train --warm-start / --min-count / --oov-buckets / --progressive``."""

import json

import keras
import pytest

from reclayers.cli import main
from tests.conftest import xla_flags

NO_JIT = [] if keras.backend.backend() == "jax" else ["--no-jit"]
FAST = [*NO_JIT, "--epochs", "1", "--batch-size", "64", "--quiet", "--no-tensorboard"]
DAY = "synthetic:2100,days=7,day={}"


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", "--model", "lr", "--data", DAY.format(1), "--run-dir", str(runs), *FAST]) == 0
    return next(runs.iterdir())


def test_warm_start_run_records_its_parent_and_grown_tables(parent, tmp_path, capsys):
    argv = ["train", "--warm-start", str(parent), "--data", DAY.format(2), "--min-count", "2",
            "--oov-buckets", "3", "--progressive", "100", "--run-dir", str(tmp_path), *FAST]
    assert main(argv) == 0
    run = next(tmp_path.iterdir())
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["parent"] == str(parent.resolve()) and cfg["model"] == "lr" and cfg["status"] == "complete"
    tables = json.loads((run / "tables.json").read_text())
    c1 = tables["C1"]
    assert c1["admitted"] > 0 and c1["oov_buckets"] == 3 and c1["min_count"] == 2
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["warm_start"]["grown"] and len(metrics["progressive"]) == 3  # 240 train rows
    assert (run / "progressive.csv").exists()
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0  # the run's test split, encoded with its grown vocabulary
    assert f"{metrics['test']['click']['auc']:.4f}" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--model", "mlp"], "trained lr"),
    (["--min-count", "0"], "--min-count must be >= 1"),
    (["--data", "synthetic:2100,days=7,day=9"], "day=9"),
    (["--progressive", "soon"], "--progressive"),
    (["--expire-after", "0"], "--expire-after must be >= 1"),
])
def test_bad_warm_starts_are_one_line_exit_2(parent, tmp_path, capsys, extra, message):
    argv = ["train", "--warm-start", str(parent), "--data", DAY.format(2), "--run-dir", str(tmp_path), *FAST]
    assert main(argv + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not list(tmp_path.iterdir())


def test_missing_unfinished_or_other_schema_parent_is_refused(parent, tmp_path, capsys):
    import shutil

    from reclayers.data import write_criteo

    base = ["train", "--run-dir", str(tmp_path / "runs"), *FAST, "--warm-start"]
    assert main(base + [str(tmp_path / "nope"), "--data", DAY.format(2)]) == 2
    unfinished = tmp_path / "unfinished"
    shutil.copytree(parent, unfinished)
    cfg = json.loads((unfinished / "config.json").read_text())
    (unfinished / "config.json").write_text(json.dumps({**cfg, "status": "running"}))
    assert main(base + [str(unfinished), "--data", DAY.format(2)]) == 2
    write_criteo(tmp_path / "c.txt", n_rows=50, vocab_size=10)
    assert main(base + [str(parent), "--data", f"criteo:{tmp_path / 'c.txt'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "run directory" in err[0]
    assert "not a finished run" in err[1] and "schema" in err[2]


def test_expiry_on_the_command_line_and_its_bad_uses(parent, tmp_path, capsys):
    """Synthetic days carry a day column: --expire-after counts days; ids of day 1 unseen on
    day 3 (the parent's last day here) are dropped and their rows recycled for day 3's new ids."""
    first = tmp_path / "one"
    assert main(["train", "--model", "lr", "--data", DAY.format(1), "--expire-after", "1",
                 "--run-dir", str(first), *FAST]) == 0
    p = next(first.iterdir())
    assert main(["train", "--warm-start", str(p), "--warm-from", "last", "--data", DAY.format(3),
                 "--run-dir", str(tmp_path / "two"), *FAST]) == 0
    run = next((tmp_path / "two").iterdir())
    c1 = json.loads((run / "tables.json").read_text())["C1"]
    assert c1["expired"] > 0 and c1["recycled"] > 0
    assert json.loads((run / "config.json").read_text())["warm_from"] == "last"
    assert json.loads((run / "metrics.json").read_text())["warm_start"]["reset"]
    capsys.readouterr()
    for argv, message in (
            (["--data", "synthetic:300", "--expire-after", "2"], "--expire-after needs --warm-start"),
            (["--data", "synthetic:300", "--warm-from", "last"], "--warm-from last chooses"),
    ):
        assert main(["train", "--model", "lr", "--run-dir", str(tmp_path / "bad"), *FAST, *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="--distribute model (row-sharded tables): JAX")
def test_warm_start_of_a_distribute_model_run_keeps_the_grown_tables_sharded(tmp_path):
    """A parent trained with its tables row-sharded over 2 of 4 virtual devices; the child's tables
    grew (day 2's ids) and are sharded the same way. Both runs in one fresh process (the device
    count is set before JAX starts)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    dist = ["--distribute", "model", "--devices", "4", "--model-shards", "2", "--min-embedding-rows", "8"]
    common = ["--model", "deepfm", "--epochs", "1", "--batch-size", "64", "--quiet", "--no-tensorboard",
              *dist]
    script = (
        "import sys; from pathlib import Path; from reclayers.cli import main\n"
        f"d = Path({str(tmp_path)!r}); common = {common!r}\n"
        f"assert main(['train', '--data', {DAY.format(1)!r}, '--run-dir', str(d / 'p'), *common]) == 0\n"
        "p = next((d / 'p').iterdir())\n"
        f"assert main(['train', '--warm-start', str(p), '--data', {DAY.format(2)!r}, '--min-count', '1', "
        "'--run-dir', str(d / 'c'), *common[2:]]) == 0\n"
    )
    env = dict(os.environ, KERAS_BACKEND="jax", XLA_FLAGS=xla_flags(4),
               PYTHONPATH=os.pathsep.join([str(root / "src"), str(root), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    child = next((tmp_path / "c").iterdir())
    metrics = json.loads((child / "metrics.json").read_text())
    grown = {g["variable"]: g for g in metrics["warm_start"]["grown"]}
    layout = json.loads((child / "distribution.json").read_text())
    sharded = {w["weight"]: w for w in layout["sharded_weights"]}
    assert "emb_C1/embeddings" in grown and "emb_C1/embeddings" in sharded
    assert sharded["emb_C1/embeddings"]["axes"][0] == "model"
    assert sharded["emb_C1/embeddings"]["shape"][0] == grown["emb_C1/embeddings"]["new_rows"] > \
        grown["emb_C1/embeddings"]["rows"]


@pytest.mark.skipif(keras.backend.backend() != "torch",
                    reason="the time-ordered data path is backend-independent: one backend runs it")
def test_amazon_logs_day_by_day_time_split_progressive_days_and_expiry(shared_data, tmp_path, capsys):
    """The shared Amazon behaviour log (Unix-second timestamps) cut at a time into two files: a
    run on the first, a warm start on the second with expiry after 90 days and progressive
    validation over 30-day blocks (the time split's rows are put in time order)."""
    lines = (shared_data / "amazon" / "amazon_electronics_sample.csv").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    times = sorted(int(r.split(",")[2]) for r in rows)
    cut = times[len(times) // 2]
    for name, keep in (("early", lambda t: t < cut), ("late", lambda t: t >= cut)):
        kept = [r for r in rows if keep(int(r.split(",")[2]))]
        (tmp_path / f"{name}.csv").write_text("\n".join([header, *kept]))
    fast = [*NO_JIT, "--batch-size", "8", "--quiet", "--no-tensorboard", "--cache-dir",
            str(tmp_path / "cache"), "--split-by", "time"]
    assert main(["train", "--model", "lr", "--data", f"amazon:{tmp_path / 'early.csv'}", "--min-count", "1",
                 "--expire-after", "90", "--epochs", "1", "--run-dir", str(tmp_path / "a"), *fast]) == 0
    parent = next((tmp_path / "a").iterdir())
    assert main(["train", "--warm-start", str(parent), "--data", f"amazon:{tmp_path / 'late.csv'}",
                 "--progressive", "30d", "--run-dir", str(tmp_path / "b"), *fast]) == 0
    run = next((tmp_path / "b").iterdir())
    blocks = (run / "progressive.csv").read_text().splitlines()[1:]
    assert len(blocks) >= 2
    items = json.loads((run / "tables.json").read_text())["item"]
    assert items["admitted"] > 0 and items["expired"] > 0  # the early half's items unseen for 90 days
