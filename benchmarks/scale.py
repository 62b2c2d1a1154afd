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


class _Sampler(threading.Thread):
    def __init__(self, every: float = 0.1):
        super().__init__(daemon=True)
        self.every, self.samples, self.stop = every, [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.samples.append((time.time(), _rss_mib()))
            time.sleep(self.every)

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
        result["in_memory"] = _in_memory(run, report, batch, sampler)
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


def _in_memory(run: Path, report: dict, batch: int, sampler: _Sampler) -> dict:
    """The same model and training rows from NumPy arrays in memory: epoch 2 rows/s."""
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
        out[f"epoch {epoch + 1}"] = {"seconds": round(dt, 2), "rows_per_s": round(len(arrays) / dt)}
    return out


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
    ap.add_argument("--out", default=str(RESULTS / "scale"))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        print("RESULT " + json.dumps(child(**spec)), flush=True)
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
        env = {**os.environ, "KERAS_BACKEND": "jax",
               "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT),
                                              os.environ.get("PYTHONPATH", "")])}
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "benchmarks.scale", "--child", json.dumps(spec)],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"the {size} run failed")
        res = json.loads(line[len("RESULT "):])
        res.update({"file_bytes": path.stat().st_size, "write_seconds": write_s,
                    "process_seconds": round(time.perf_counter() - t0, 1),
                    "loadavg_start": load0, "loadavg_end": os.getloadavg(), "cores": os.cpu_count()})
        results.append(res)
        print(_table([res]), flush=True)
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
        "number here pessimistic and noisy).\n\n" + _table(results) + "\n\n" + _memory_line(results) + "\n")
    print(f"results: {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
