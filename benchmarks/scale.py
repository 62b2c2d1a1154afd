"""``python -m benchmarks.scale`` (or ``python -m benchmarks --scale``): real-size data through
``reclayers train``.

For each size (``--sizes 1M,4M,16M``) a Criteo-shaped file is written (``write_criteo``: 13
counts, 26 Zipf-distributed categorical fields with ``--vocab`` ids each; kept in ``--work``
between runs) and ``reclayers train --model dcn_v2 --epochs 2 --batch-size 4096`` runs on JAX in a
fresh process with an empty cache folder. Inside that process a sampler reads the resident set
size every 0.1 s; the phases are the cache's two passes (``fit``: parse + split + fit the
preprocessing; ``encode``: parse + encode + write the cache, from ``data_report.json``'s timeline)
and the two ``model.fit`` epochs; ``other`` is the rest of the run (start, model build, validation,
test scoring, saving). For each phase: wall time, rows/s and peak RSS. With ``--baseline`` (sizes
up to ``--baseline-max-rows``) the same process then trains the same model on the same training
rows held in memory (NumPy arrays), so epoch 2 from the cache can be compared with the model's
in-memory speed measured in the same run.

With ``--fuxictr`` (sizes up to ``--fuxictr-max-rows``) FuxiCTR's own pipeline then runs on the
same rows in its venv (:func:`fuxictr_child`): the file is first cut into ``train``/``valid``/
``test`` CSVs with a header by the same seeded split (:func:`split_csv`, not timed), and its
phases (feature processing to Parquet, loading, each epoch, the rest) are tabled beside ours with
ours ÷ theirs; its memory is the peak PSS of its whole process tree (Ray runs other processes).

Results: ``benchmarks/results/scale.json`` and ``scale.md`` (one row per size and phase). The
machine may be shared: the load average at the start and end of each run is recorded with it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import malloc_env

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"


def _rows(text: str) -> int:
    text = text.strip().upper()
    mult = {"K": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("KM")) * mult)


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _tree_pss_mib() -> float:
    """Proportional set size of this process and every descendant (Ray's workers, its object
    store), MiB: shared pages counted once over the tree, unlike a sum of resident sizes."""
    children: dict = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    todo, total = [os.getpid()], 0
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total / 1024


class _Sampler(threading.Thread):
    """Samples this process's resident set size every ``every`` s and, with ``tree``, the PSS of
    the process tree every ``tree_every`` s."""

    def __init__(self, every: float = 0.1, tree: bool = False, tree_every: float = 0.5):
        super().__init__(daemon=True)
        self.every, self.samples, self.stop = every, [], threading.Event()
        self.tree, self.tree_every, self.tree_samples = tree, tree_every, []

    def run(self):
        last = 0.0
        while not self.stop.is_set():
            now = time.time()
            self.samples.append((now, _rss_mib()))
            if self.tree and now - last >= self.tree_every:
                self.tree_samples.append((now, _tree_pss_mib()))
                last = now
            time.sleep(self.every)

    def tree_peak(self, start: float = 0.0, end: float = float("inf")) -> float:
        inside = [r for t, r in self.tree_samples if start <= t <= end]
        return round(max(inside), 1) if inside else float("nan")

    def peak(self, start: float, end: float) -> float:
        inside = [r for t, r in self.samples if start <= t <= end]
        return round(max(inside), 1) if inside else float("nan")


def child(path: str, rows: int, work: str, baseline: bool, batch: int, epochs: int,
          prepare_only: bool = False, steps_per_epoch: int | None = None) -> dict:
    """One measured run (in its own process)."""
    sampler = _Sampler()
    sampler.start()
    t_start = time.time()
    if prepare_only:
        return _prepare_only(path, rows, work, batch, sampler, t_start)
    import keras

    fits: list = []
    original_fit = keras.Model.fit

    def timed_fit(self, *args, **kwargs):
        if steps_per_epoch:  # a reduced-epoch run: everything else in the run is unchanged
            kwargs["steps_per_epoch"] = steps_per_epoch
        t0 = time.time()
        out = original_fit(self, *args, **kwargs)
        fits.append([t0, time.time()])
        return out

    keras.Model.fit = timed_fit
    spent = {"predict": 0.0, "save": 0.0}  # where "other" goes: scoring and saving models

    def timer(name, fn):
        def timed(self, *args, **kwargs):
            t0 = time.time()
            try:
                return fn(self, *args, **kwargs)
            finally:
                spent[name] += time.time() - t0
        return timed

    keras.Model.predict = timer("predict", keras.Model.predict)
    keras.Model.predict_on_batch = timer("predict", keras.Model.predict_on_batch)  # evaluation.predict
    keras.Model.save = timer("save", keras.Model.save)
    from reclayers.cli import main

    runs = Path(work) / "runs"
    cache = Path(tempfile.mkdtemp(prefix="scale-cache-", dir=work))
    code = main(["train", "--model", "dcn_v2", "--data", f"criteo:{path}", "--epochs", str(epochs),
                 "--batch-size", str(batch), "--run-dir", str(runs), "--cache-dir", str(cache), "--quiet"])
    t_end = time.time()
    if code != 0:
        raise SystemExit(f"reclayers train exited {code}")
    run = max(runs.iterdir(), key=lambda p: p.stat().st_mtime)
    report = json.loads((run / "data_report.json").read_text())
    history = json.loads((run / "history.json").read_text())
    timeline = json.loads((Path(report["cache"]) / "cache.json").read_text())["timeline"]
    n_train = report["rows"]["train"]
    phases = {}
    for name in ("fit", "encode"):
        a, b = timeline[name]
        phases[name] = {"seconds": round(b - a, 2), "rows": rows, "rows_per_s": round(rows / (b - a)),
                        "peak_rss_mib": sampler.peak(a, b)}
    epoch_rows = min(n_train, steps_per_epoch * batch) if steps_per_epoch else n_train
    for i, (a, b) in enumerate(fits[:epochs]):
        phases[f"epoch {i + 1}"] = {"seconds": round(b - a, 2), "rows": epoch_rows,
                                    "rows_per_s": round(epoch_rows / (b - a)),
                                    "peak_rss_mib": sampler.peak(a, b),
                                    "train_seconds_logged": history[i]["train_seconds"]}
    in_epochs = sum(b - a for a, b in fits[:epochs])
    passes = sum(phases[name]["seconds"] for name in ("fit", "encode"))
    phases["other"] = {"seconds": round(t_end - t_start - in_epochs, 2), "rows": None, "rows_per_s": None,
                       "peak_rss_mib": sampler.peak(t_start, t_end),
                       "of_which": {"passes": round(passes, 2),
                                    "validation + test scoring (model.predict)": round(spent["predict"], 2),
                                    "saving models (model.save)": round(spent["save"], 2),
                                    "rest (imports, model build, checkpoints, metrics)": round(
                                        t_end - t_start - in_epochs - passes - spent["predict"]
                                        - spent["save"], 2)}}
    result = {"rows": rows, "train_rows": n_train, "phases": phases, "steps_per_epoch": steps_per_epoch,
              "peak_rss_mib": round(max(r for _, r in sampler.samples), 1),
              "test_auc": json.loads((run / "metrics.json").read_text())["test"]["label"]["auc"]}
    if baseline:
        result["in_memory"] = _in_memory(run, report, batch, epoch_rows)
    sampler.stop.set()
    import shutil

    shutil.rmtree(cache, ignore_errors=True)
    return result


def _prepare_only(path: str, rows: int, work: str, batch: int, sampler: _Sampler,
                  t_start: float) -> dict:
    """The data path alone: the cache's two passes, then one shuffled epoch read from the cache."""
    import shutil

    from reclayers.data import build_cache, criteo

    cache = Path(tempfile.mkdtemp(prefix="scale-cache-", dir=work))
    _, splits, info = build_cache(criteo(path), cache, ratios=(0.8, 0.1, 0.1), seed=0)
    phases = {}
    for name in ("fit", "encode"):
        a, b = info["timeline"][name]
        phases[name] = {"seconds": round(b - a, 2), "rows": rows, "rows_per_s": round(rows / (b - a)),
                        "peak_rss_mib": sampler.peak(a, b)}
    train = splits["train"]
    a = time.time()
    for _ in train.batches(batch, seed=0, epoch=1):
        pass
    b = time.time()
    phases["batches (epoch from cache, no model)"] = {
        "seconds": round(b - a, 2), "rows": len(train), "rows_per_s": round(len(train) / (b - a)),
        "peak_rss_mib": sampler.peak(a, b)}
    sampler.stop.set()
    shutil.rmtree(cache, ignore_errors=True)
    return {"rows": rows, "train_rows": len(train), "phases": phases, "prepare_only": True,
            "peak_rss_mib": round(max(r for _, r in sampler.samples), 1)}


def _in_memory(run: Path, report: dict, batch: int, epoch_rows: int) -> dict:
    """The same model and training rows from NumPy arrays in memory: epoch 2 rows/s (epochs of
    ``epoch_rows`` rows: ``model.fit`` is patched in a reduced-epoch run)."""
    import numpy as np

    from reclayers import models
    from reclayers.data import CachedSplit, Schema, keras_dataset

    cfg = json.loads((run / "config.json").read_text())
    schema = Schema.load(run / "schema.json")
    split = CachedSplit(Path(report["cache"]) / "train")
    arrays = split.take(np.arange(len(split)))
    model = models.get_model(cfg["model"], schema, **cfg["model_config"])
    model = models.compile_model(model, schema, cfg["model_config"]["learning_rate"])
    out = {}
    for epoch in range(2):
        ds = keras_dataset(arrays, batch, seed=0, start_epoch=epoch, label_format="dict")
        t0 = time.time()
        model.fit(ds, epochs=1, shuffle=False, verbose=0)
        dt = time.time() - t0
        out[f"epoch {epoch + 1}"] = {"seconds": round(dt, 2), "rows_per_s": round(epoch_rows / dt)}
    # the data path alone, A/B interleaved on the same (compiled) model: epochs from the cache and
    # from memory alternate, so that a change of the machine's load hits both alike
    ab: dict = {"cache": [], "memory": []}
    for r in range(3):
        for name, data in (("cache", split), ("memory", arrays)):
            ds = keras_dataset(data, batch, seed=0, start_epoch=2 + r, label_format="dict")
            t0 = time.time()
            model.fit(ds, epochs=1, shuffle=False, verbose=0)
            ab[name].append(round(epoch_rows / (time.time() - t0)))
    out["interleaved"] = ab
    return out


CRITEO_COLUMNS = ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]


def split_csv(tsv: Path, out_dir: Path, ratios=(0.8, 0.1, 0.1), seed: int = 0) -> dict:
    """The Criteo TSV as ``train.csv``/``valid.csv``/``test.csv`` with a header (the layout of the
    public benchmark splits, e.g. BARS ``Criteo_x1``, that FuxiCTR's feature processor reads), rows
    assigned by the split ``reclayers train`` makes of the same file (same ratios and seed), so
    both libraries train and score the same rows. Streaming; not timed."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from reclayers.data.cache import split_names
    from reclayers.data.splits import RandomSplit

    out_dir.mkdir(parents=True, exist_ok=True)
    names = split_names(len(ratios))
    done = out_dir / "split.json"
    if done.exists():
        return json.loads(done.read_text())
    reader = pacsv.open_csv(tsv, read_options=pacsv.ReadOptions(column_names=CRITEO_COLUMNS,
                                                                 block_size=1 << 24),
                            parse_options=pacsv.ParseOptions(delimiter="\t"),
                            convert_options=pacsv.ConvertOptions(
                                column_types={c: pa.string() for c in CRITEO_COLUMNS}))
    assign = RandomSplit(ratios, seed).start_pass()
    writers, rows = {}, dict.fromkeys(names, 0)
    try:
        for batch in reader:
            which = assign({"label": np.zeros(batch.num_rows)})
            for k, name in enumerate(names):
                part = batch.filter(pa.array(which == k))
                if name not in writers:
                    writers[name] = pacsv.CSVWriter(out_dir / f"{name}.csv", part.schema)
                writers[name].write_batch(part)
                rows[name] += part.num_rows
    finally:
        for w in writers.values():
            w.close()
    done.write_text(json.dumps(rows))
    return rows


def fuxictr_child(csv_dir: str, work: str, batch: int, epochs: int,
                  steps_per_epoch: int | None = None) -> dict:
    """FuxiCTR's own pipeline on the split files, timed per phase (run in FuxiCTR's venv):
    ``FeatureProcessor`` + ``build_dataset`` (read the CSVs with polars, fit the vocabularies and
    the numeric scalers on the training rows, transform every split to Parquet with Ray),
    ``RankDataLoader`` over the Parquet files, then its ``fit`` (DCNv2 with our zoo's shapes,
    validation at the end of every epoch) and ``evaluate`` on the test split."""
    import logging
    import shutil

    sampler = _Sampler(tree=True)
    sampler.start()
    t_start = time.time()
    import torch
    from fuxictr.features import FeatureMap
    from fuxictr.preprocess import FeatureProcessor, build_dataset
    from fuxictr.pytorch.dataloaders import RankDataLoader

    from benchmarks.e2e import EMB, LR, fuxictr_dcn_v2

    logging.basicConfig(level=logging.WARNING)
    torch.manual_seed(0)
    import polars as pl

    if "dtypes" not in pl.scan_csv.__code__.co_varnames:  # polars >= 2 renamed the argument that
        scan_csv = pl.scan_csv                           # FuxiCTR 2.3 passes: a shim, nothing else

        def scan_with_dtypes(*args, dtypes=None, **kwargs):
            return scan_csv(*args, schema_overrides=dtypes, **kwargs)

        pl.scan_csv = scan_with_dtypes
    root = Path(tempfile.mkdtemp(prefix="fuxictr-", dir=work))
    csv_dir = Path(csv_dir)
    feature_cols = [
        {"name": [f"I{i}" for i in range(1, 14)], "active": True, "dtype": "float", "type": "numeric",
         "fill_na": 0, "normalizer": "StandardScaler"},
        {"name": [f"C{i}" for i in range(1, 27)], "active": True, "dtype": "str", "type": "categorical",
         "fill_na": ""},
    ]
    fe = FeatureProcessor(feature_cols=feature_cols, label_col={"name": "label", "dtype": "float"},
                          dataset_id="scale", data_root=str(root))
    marks = {"start": t_start, "process": time.time()}
    train, valid, test = build_dataset(fe, train_data=str(csv_dir / "train.csv"),
                                       valid_data=str(csv_dir / "valid.csv"),
                                       test_data=str(csv_dir / "test.csv"))
    marks["loader"] = time.time()
    fmap = FeatureMap("scale", fe.data_dir)
    fmap.load(str(Path(fe.data_dir) / "feature_map.json"), {"embedding_dim": EMB})
    train_gen, valid_gen = RankDataLoader(fmap, stage="train", train_data=train, valid_data=valid,
                                          batch_size=batch, shuffle=True, data_format="parquet")
    test_gen = RankDataLoader(fmap, stage="test", test_data=test, batch_size=batch, shuffle=False,
                              data_format="parquet")
    marks["model"] = time.time()
    (root / "model" / "scale").mkdir(parents=True)  # where its fit saves the best checkpoint
    net = fuxictr_dcn_v2(fmap, gpu=-1, learning_rate=LR, embedding_dim=EMB, net_dropout=0,
                         batch_norm=False, embedding_regularizer=None, net_regularizer=None,
                         optimizer="adam", loss="binary_crossentropy", verbose=0,
                         model_root=str(root / "model"), metrics=["AUC", "logloss"])
    epochs_at, evals = [], []
    train_epoch, eval_step = net.train_epoch, net.eval_step

    def timed_epoch(gen):
        t0 = time.time()
        train_epoch(gen)
        epochs_at.append([t0, time.time()])

    def timed_eval():
        t0 = time.time()
        eval_step()
        evals.append([t0, time.time()])

    net.train_epoch, net.eval_step = timed_epoch, timed_eval

    class Batches:
        """The loader's batches as the pip package's (LongCTR) DCNv2 takes them, ``(batch, {}, empty
        mask)`` (the sequence part unused); with ``n``, only the first ``n`` batches of each epoch
        (a reduced-epoch run)."""

        def __init__(self, gen, n=None):
            self.gen, self.n = gen, min(n, len(gen)) if n else len(gen)

        def __len__(self):
            return self.n

        def __iter__(self):
            for i, b in enumerate(self.gen):
                if i >= self.n:
                    return
                yield b, {}, torch.zeros(len(b["label"]), 0)

    gen = Batches(train_gen, steps_per_epoch)
    valid_gen, test_gen = Batches(valid_gen), Batches(test_gen)
    marks["fit"] = time.time()
    net.fit(gen, epochs=epochs, validation_data=valid_gen)
    marks["test"] = time.time()
    test_logs = net.evaluate(test_gen)
    t_end = time.time()
    sampler.stop.set()
    n_rows = json.loads((csv_dir / "split.json").read_text())
    total = sum(n_rows.values())
    n_train = n_rows["train"]
    epoch_rows = min(n_train, steps_per_epoch * batch) if steps_per_epoch else n_train
    phases = {"feature processing": {
        "seconds": round(marks["loader"] - marks["process"], 2), "rows": total,
        "rows_per_s": round(total / (marks["loader"] - marks["process"])),
        "peak_rss_mib": sampler.tree_peak(marks["process"], marks["loader"])}}
    phases["load parquet"] = {"seconds": round(marks["model"] - marks["loader"], 2), "rows": total,
                              "rows_per_s": round(total / (marks["model"] - marks["loader"])),
                              "peak_rss_mib": sampler.tree_peak(marks["loader"], marks["model"])}
    for i, (a, b) in enumerate(epochs_at):
        ev = sum(d - c for c, d in evals if a <= c <= b)  # the validation at the epoch's end
        phases[f"epoch {i + 1}"] = {"seconds": round(b - a - ev, 2), "rows": epoch_rows,
                                    "rows_per_s": round(epoch_rows / (b - a - ev)),
                                    "peak_rss_mib": sampler.tree_peak(a, b)}
    in_epochs = sum(phases[f"epoch {i + 1}"]["seconds"] for i in range(len(epochs_at)))
    phases["other"] = {"seconds": round(t_end - t_start - in_epochs, 2), "rows": None, "rows_per_s": None,
                       "peak_rss_mib": sampler.tree_peak(),
                       "of_which": {"feature processing + loading": round(
                                        marks["model"] - marks["process"], 2),
                                    "validation + test scoring": round(
                                        sum(d - c for c, d in evals) + t_end - marks["test"], 2)}}
    shutil.rmtree(root, ignore_errors=True)
    return {"rows": total, "train_rows": n_train, "phases": phases, "steps_per_epoch": steps_per_epoch,
            "peak_rss_mib": sampler.tree_peak(), "memory": "PSS of the process tree (driver + Ray)",
            "test_auc": float(test_logs.get("AUC", float("nan")))}


def _table(results: list) -> str:
    head = ("| rows | phase | wall s | rows/s | peak RSS MiB | note |\n"
            "|---:|---|---:|---:|---:|---|")
    lines = [head]
    for r in results:
        for name, p in r["phases"].items():
            note = ""
            if name == "epoch 2" and "in_memory" in r:
                mem = r["in_memory"]["epoch 2"]["rows_per_s"]
                note = f"in-memory epoch 2: {mem} rows/s (cache ÷ memory = {p['rows_per_s'] / mem:.2f})"
                ab = r["in_memory"].get("interleaved")
                if ab:
                    med = {k: sorted(v)[len(v) // 2] for k, v in ab.items()}
                    note += (f"; same model, cache and memory epochs interleaved ×{len(ab['cache'])}: "
                             f"{med['cache']:,} vs {med['memory']:,} rows/s (median; cache ÷ memory = "
                             f"{med['cache'] / med['memory']:.2f})")
            if name == "other":
                note = "everything but the epochs (start, passes, build, validation, test, saving)"
                if "of_which" in p:
                    note += ": " + ", ".join(f"{k} {v} s" for k, v in p["of_which"].items())
            if name.startswith("epoch") and r.get("steps_per_epoch"):
                note = (note + "; " if note else "") + f"reduced epoch: {r['steps_per_epoch']} batches"
            speed = "" if p["rows_per_s"] is None else f"{p['rows_per_s']:,}"
            lines.append(f"| {r['rows']:,} | {name} | {p['seconds']} | {speed} | {p['peak_rss_mib']} "
                         f"| {note} |")
    return "\n".join(lines)


def _memory_line(results: list) -> str:
    """Peak RSS of the two passes at the smallest and the largest size, and their ratio."""
    def passes_peak(r):
        return max(r["phases"][k]["peak_rss_mib"] for k in ("fit", "encode"))

    lo, hi = min(results, key=lambda r: r["rows"]), max(results, key=lambda r: r["rows"])
    return (f"Peak RSS of the passes: {passes_peak(lo)} MiB at {lo['rows']:,} rows, {passes_peak(hi)} MiB "
            f"at {hi['rows']:,} rows ({passes_peak(hi) / passes_peak(lo):.2f}×).")


def _run_child(python: str, flag: str, spec: dict, what: str) -> dict:
    """One measured run in a fresh process; its result with the load average around it."""
    # the allocator setting `reclayers train` gives its backend: ours runs on JAX, FuxiCTR on PyTorch
    env = {**os.environ, "KERAS_BACKEND": "jax",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
           **malloc_env("torch" if flag == "--fuxictr-child" else "jax")}
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run([python, "-m", "benchmarks.scale", flag, json.dumps(spec)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{what} failed")
    res = json.loads(line[len("RESULT "):])
    res.update({"process_seconds": round(time.perf_counter() - t0, 1), "loadavg_start": load0,
                "loadavg_end": os.getloadavg(), "cores": os.cpu_count()})
    return res


_PEER_NOTE = (
    "\n## Side by side: FuxiCTR on the same rows\n\n"
    "FuxiCTR 2.3.x in its own venv, its own pipeline: `FeatureProcessor` + `build_dataset` (polars reads "
    "the CSV splits, fits vocabularies and StandardScaler statistics on the training rows, Ray "
    "transforms every split to Parquet), `RankDataLoader` over the Parquet files, then `fit` (its DCNv2 "
    "with our shapes: embedding 16, 2 CrossNetV2 layers, MLP 128-64, Adam 1e-3, validation after each "
    "epoch) and `evaluate` on the test split. Its input is the same file cut into train/valid/test CSVs "
    "with a header (the public benchmark layout) by the same seeded split as ours (not timed). Speed: "
    "rows/s ours ÷ theirs (> 1: we are faster); `(time)`: their seconds ÷ ours. Memory: our process's "
    "peak RSS; theirs the peak PSS of the whole process tree (the driver and Ray's processes).\n\n")


#: our phase ↔ FuxiCTR's phase, compared in rows/s (``None``: compared in seconds)
_PAIRS = [("passes (fit + encode)", "feature processing + load parquet"), ("epoch 1", "epoch 1"),
          ("epoch 2", "epoch 2"), ("other", "other")]


def _peer_table(results: list) -> str:
    """Ours and FuxiCTR's side by side per phase: seconds, rows/s, peak memory, ours ÷ theirs."""
    lines = ["| rows | phase (ours / FuxiCTR) | ours s | FuxiCTR s | ours rows/s | FuxiCTR rows/s | "
             "speed ours ÷ FuxiCTR | ours peak MiB | FuxiCTR peak MiB | memory ours ÷ FuxiCTR |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        peer = r.get("fuxictr")
        if not peer:
            continue
        ours, theirs = dict(r["phases"]), dict(peer["phases"])
        ours["passes (fit + encode)"] = {
            "seconds": round(ours["fit"]["seconds"] + ours["encode"]["seconds"], 2),
            "rows_per_s": round(r["rows"] / (ours["fit"]["seconds"] + ours["encode"]["seconds"])),
            "peak_rss_mib": max(ours["fit"]["peak_rss_mib"], ours["encode"]["peak_rss_mib"])}
        a, b = theirs["feature processing"], theirs["load parquet"]
        theirs["feature processing + load parquet"] = {
            "seconds": round(a["seconds"] + b["seconds"], 2),
            "rows_per_s": round(peer["rows"] / (a["seconds"] + b["seconds"])),
            "peak_rss_mib": max(a["peak_rss_mib"], b["peak_rss_mib"])}
        for mine, their in _PAIRS:
            if mine not in ours or their not in theirs:
                continue
            o, t = ours[mine], theirs[their]
            speed = (f"{o['rows_per_s'] / t['rows_per_s']:.2f}" if o.get("rows_per_s") and t.get("rows_per_s")
                     else f"{t['seconds'] / o['seconds']:.2f} (time)")
            lines.append(
                f"| {r['rows']:,} | {mine} / {their} | {o['seconds']} | {t['seconds']} | "
                f"{'' if not o.get('rows_per_s') else format(o['rows_per_s'], ',')} | "
                f"{'' if not t.get('rows_per_s') else format(t['rows_per_s'], ',')} | {speed} | "
                f"{o['peak_rss_mib']} | {t['peak_rss_mib']} | {o['peak_rss_mib'] / t['peak_rss_mib']:.2f} |")
        whole = peer["process_seconds"] / r["process_seconds"]
        lines.append(f"| {r['rows']:,} | whole run (peak) | {r['process_seconds']} | "
                     f"{peer['process_seconds']} |  |  | {whole:.2f} (time) | {r['peak_rss_mib']} | "
                     f"{peer['peak_rss_mib']} | {r['peak_rss_mib'] / peer['peak_rss_mib']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1M,4M,16M")
    ap.add_argument("--vocab", type=int, default=10_000,
                    help="ids per categorical field (fixed, so that the sizes differ only in rows)")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "reclayers-scale"))
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--baseline", action="store_true", help="also time the in-memory epochs")
    ap.add_argument("--baseline-max-rows", type=int, default=4_000_000)
    ap.add_argument("--prepare-only", action="store_true",
                    help="no model: the two cache passes, then one shuffled epoch of batches from the cache")
    ap.add_argument("--steps-per-epoch", type=int, default=None,
                    help="a reduced-epoch run: each epoch stops after N batches (validation, test "
                         "scoring and saving unchanged), to measure everything but the epochs")
    ap.add_argument("--fuxictr", action="store_true",
                    help="also run FuxiCTR's pipeline (feature processor to Parquet, its fit) on the "
                         "same rows, in its own venv, after ours at each size")
    ap.add_argument("--fuxictr-max-rows", type=int, default=16_000_000)
    ap.add_argument("--out", default=str(RESULTS / "scale"))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--fuxictr-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child or args.fuxictr_child:
        spec = json.loads(args.child or args.fuxictr_child)
        res = child(**spec) if args.child else fuxictr_child(**spec)
        print("RESULT " + json.dumps(res), flush=True)
        return 0
    from reclayers.data import write_criteo

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for size in args.sizes.split(","):
        rows = _rows(size)
        path = work / f"criteo_{rows}_v{args.vocab}.tsv"
        write_s = None
        if not path.exists():
            t0 = time.perf_counter()
            write_criteo(path, rows, vocab_size=args.vocab, seed=0)
            write_s = round(time.perf_counter() - t0, 1)
            print(f"wrote {path} ({rows:,} rows) in {write_s} s ({rows / write_s:,.0f} rows/s)",
                  flush=True)
        spec = {"path": str(path), "rows": rows, "work": str(work), "batch": args.batch,
                "epochs": args.epochs, "prepare_only": args.prepare_only,
                "steps_per_epoch": args.steps_per_epoch,
                "baseline": args.baseline and rows <= args.baseline_max_rows}
        res = _run_child(sys.executable, "--child", spec, f"the {size} run")
        res.update({"file_bytes": path.stat().st_size, "write_seconds": write_s})
        print(_table([res]), flush=True)
        if args.fuxictr and not args.prepare_only and rows <= args.fuxictr_max_rows:
            from benchmarks.peers_setup import venv_python

            csv_dir = work / f"csv_{rows}_v{args.vocab}"
            split_csv(path, csv_dir)
            peer = _run_child(str(venv_python("fuxictr")), "--fuxictr-child",
                              {"csv_dir": str(csv_dir), "work": str(work), "batch": args.batch,
                               "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch},
                              f"the FuxiCTR {size} run")
            res["fuxictr"] = peer
            print(_peer_table([res]), flush=True)
        results.append(res)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    title = ("the data path alone (`--prepare-only`: two cache passes, one epoch of batches)"
             if args.prepare_only else
             f"`reclayers train` (dcn_v2, JAX, batch {args.batch}, {args.epochs} epochs"
             + (f" of {args.steps_per_epoch} batches" if args.steps_per_epoch else "") + ")")
    loads = "; ".join(f"{r['rows']:,} rows: {r['loadavg_start'][0]:.1f} → {r['loadavg_end'][0]:.1f}"
                      for r in results)
    out.with_suffix(".md").write_text(
        f"# Real-size data: {title}\n\n"
        f"Criteo-shaped files, {args.vocab:,} ids per field; {len(results)} sizes, {os.cpu_count()} cores. "
        f"Load average (1 min) at start → end of each run: {loads} (a shared machine makes every "
        "number here pessimistic and noisy).\n\n" + _table(results) + "\n\n" + _memory_line(results) + "\n"
        + (_PEER_NOTE + _peer_table(results) + "\n" if any("fuxictr" in r for r in results) else ""))
    print(f"results: {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
