"""Day-after-day training on synthetic days: frozen vocabulary vs daily retraining vs warm start.

    python -m benchmarks.online                       # main: 7 days, the strategies side by side
    python -m benchmarks.online --scenario expiry     # 14 days: growing tables with and without expiry
    python -m benchmarks.online --scenario tail       # 7 days with a long tail of rare ids: min_count 1 vs 5

Synthetic days (``make_synthetic(days=D)``): every day brings new ids and shifts popularity
towards them. Each day every strategy trains on that day and is scored on the day's held-out
test rows:

* ``frozen``: the vocabulary fitted on day 1 and never grown (later ids fall into the OOV row),
  warm-started from the previous day;
* ``scratch``: a new preprocessor and a new model every day, trained on all days so far;
* ``warm``: warm start from the previous day with growing tables (new ids admitted at once);
* ``warm_nocache``: the same without JAX's persistent compilation cache (below);
* ``warm_expire``: ``warm`` with ``expire_after`` days (ids unseen that long give their rows back);
* ``warm_min5``: ``warm`` with ``min_count=5`` and 16 hashed fallback buckets per table.

Compilation: a training run's first epoch includes compiling its step (JAX: XLA), a fixed cost
per run that dominates small days. A daily pipeline keeps JAX's persistent compilation cache
(``JAX_COMPILATION_CACHE_DIR``) between its runs, so a day whose table shapes did not change
loads yesterday's compiled step instead of compiling it again. Each strategy here gets its own
cache, empty at its start (``--no-compile-cache``: none at all); ``warm_nocache`` shows what the
cache saves. Growing tables grow in blocks, so their shapes (and compiled steps) stay the same
for days; a model retrained from scratch on an exact vocabulary changes shape every day.

Every strategy runs the same epochs per training run. Writes the per-day test AUC, train
seconds (and the first epoch's, compile included), table rows in use and allocated, the
Bayes-optimal AUC and the load average (``benchmarks/results/online[_SCENARIO].json`` and
``.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

SCENARIOS = {
    "main": {"days": 7, "strategies": ("frozen", "scratch", "warm", "warm_nocache"), "tail": 0.0,
             "drift": 0.3},
    # a fast-moving catalogue (popularity halves in about a day): ids stop appearing within days
    "expiry": {"days": 14, "strategies": ("warm", "warm_expire"), "tail": 0.0, "drift": 0.6},
    "tail": {"days": 7, "strategies": ("warm", "warm_min5"), "tail": 0.3, "drift": 0.3},
}


def _concat(parts: list):
    from reclayers.data import Arrays

    return Arrays({k: np.concatenate([p.features[k] for p in parts]) for k in parts[0].features},
                  {k: np.concatenate([p.labels[k] for p in parts]) for k in parts[0].labels})


def _rows_in_use(pre) -> int:
    return int(sum(r["used"] for r in pre.report.values())) if pre.report else \
        int(sum(pre.num_buckets(t) for t in pre.vocabs))


def compile_cache(folder: Path | None) -> None:
    """Points JAX's persistent compilation cache at ``folder`` (``None``: off), from now on."""
    import keras

    if keras.backend.backend() != "jax":
        return
    import jax
    from jax._src import compilation_cache

    jax.config.update("jax_enable_compilation_cache", folder is not None)
    if folder is not None:
        jax.config.update("jax_compilation_cache_dir", str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    compilation_cache.reset_cache()  # the cache is opened once per process: open the new one


def run(strategy: str, days: list, model: str, options: dict, seed: int, work: Path, expire_after: int,
        cache: bool) -> list:
    import keras

    from reclayers import models
    from reclayers.data import Preprocessor
    from reclayers.metrics import auc
    from reclayers.training import Trainer, TrainingOptions, predict
    from reclayers.training.warm_start import parent_checkpoint

    compile_cache(work / f"jax-cache-{strategy}" if cache and strategy != "warm_nocache" else None)
    out, pre, prev = [], None, None
    schema_in = days[0].preprocessor.schema
    for d, ds in enumerate(days, 1):
        t0 = time.perf_counter()
        if strategy == "scratch":
            pre = Preprocessor(schema_in, seed).fit([x.raw_split("train") for x in days[:d]])
            train = _concat([x.encode_with(pre)["train"] for x in days[:d]])
        else:
            if d == 1:
                opts = {"frozen": {}, "warm": {"min_count": 1}, "warm_nocache": {"min_count": 1},
                        "warm_expire": {"min_count": 1, "expire_after": expire_after, "expire_by": "time",
                                        "time_unit": 86400.0},
                        "warm_min5": {"min_count": 5, "oov_buckets": 16}}
                pre = Preprocessor(schema_in, seed, **opts[strategy]).fit([ds.raw_split("train")])
            elif strategy != "frozen":
                pre = pre.update([ds.raw_split("train")])
            train = ds.encode_with(pre)["train"]
        splits = ds.encode_with(pre)
        prep_s = time.perf_counter() - t0
        schema = pre.output_schema()
        keras.utils.set_random_seed(seed)
        run_dir = work / f"{strategy}-day{d}"
        t1 = time.perf_counter()
        warm = (*parent_checkpoint(prev), pre.recycled_ids()) \
            if strategy != "scratch" and prev is not None else None
        trainer = Trainer(lambda s=schema: models.get_model(model, s), schema, train, splits["valid"],
                          run_dir, TrainingOptions(seed=seed, **options), quiet=True, log=False,
                          warm_start=warm)
        state = trainer.fit()
        run_s = time.perf_counter() - t1
        test = splits["test"]
        score = auc(test.labels["click"], predict(trainer.model, test)["click"])
        epochs = [h["train_seconds"] for h in state["history"]]
        rep = pre.report or {}
        out.append({"day": d, "test_auc": round(float(score), 4),
                    "bayes_auc": round(ds.bayes["test"]["click"]["auc"], 4),
                    "train_rows": len(train), "train_seconds": round(state["train_seconds"], 2),
                    "first_epoch_seconds": round(epochs[0], 2),
                    "later_epochs_seconds": round(sum(epochs[1:]), 2),
                    "run_seconds": round(run_s, 2), "prepare_seconds": round(prep_s, 2),
                    "table_rows": _rows_in_use(pre),
                    "table_size": int(sum(pre.num_buckets(t) for t in pre.vocabs)),
                    "admitted": int(sum(r.get("admitted", 0) for r in rep.values())),
                    "expired": int(sum(r.get("expired", 0) for r in rep.values())),
                    "recycled": int(sum(r.get("recycled", 0) for r in rep.values()))})
        print(json.dumps({"strategy": strategy, **out[-1]}), flush=True)
        prev = run_dir
    return out


def _markdown(report: dict) -> str:
    results, days = report["results"], report["days"]
    tail = f" ({report['tail']:.0%} rare-id tail)" if report["tail"] else ""
    cache = "per strategy" if report["compile_cache"] else "off"
    lines = [f"# Day-after-day training ({report['scenario']}): {days} synthetic days, "
             f"{report['rows_per_day']} rows/day{tail}, {report['model']} on {report['backend']}, "
             f"{report['epochs']} epoch(s) per run, popularity drift {report['drift']}/day"
             + (f", expiry after {report['expire_after']} days" if "warm_expire" in results else ""), "",
             f"Load average (1/5/15 min) at start {report['loadavg_start']}, at end "
             f"{report['loadavg_end']}; compilation cache: {cache}.", "",
             f"| strategy | day-{days} test AUC | Bayes AUC | total train s | first epochs s "
             "| later epochs s | table rows in use | table rows allocated |",
             "|---|---|---|---|---|---|---|---|"]
    for s, m in report["summary"].items():
        lines.append(f"| {s} | {m['last_test_auc']:.4f} | {m['bayes_auc']:.4f} | "
                     f"{m['total_train_seconds']} | {m['first_epoch_seconds']} | "
                     f"{m['later_epochs_seconds']} | {m['final_table_rows']} | {m['final_table_size']} |")
    lines += ["", "Per-day test AUC (table rows allocated):", "", "| day | " + " | ".join(results) + " |",
              "|---" * (len(results) + 1) + "|"]
    for i in range(days):
        lines.append(f"| {i + 1} | " + " | ".join(f"{r[i]['test_auc']:.4f} ({r[i]['table_size']})"
                                                   for r in results.values()) + " |")
    lines += ["", "Per-day train seconds (first epoch, compile included):", "",
              "| day | " + " | ".join(results) + " |", "|---" * (len(results) + 1) + "|"]
    for i in range(days):
        lines.append(f"| {i + 1} | " + " | ".join(f"{r[i]['train_seconds']} ({r[i]['first_epoch_seconds']})"
                                                   for r in results.values()) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), default="main")
    ap.add_argument("--days", type=int, default=None, help="default: the scenario's")
    ap.add_argument("--rows-per-day", type=int, default=80000)
    ap.add_argument("--vocab-size", type=int, default=500)
    ap.add_argument("--model", default="deepfm")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--learning-rate", type=float, default=0.005)
    ap.add_argument("--drift", type=float, default=None, help="popularity decay per day of an id's age "
                    "(make_synthetic's drift; default: the scenario's)")
    ap.add_argument("--expire-after", type=int, default=3, help="warm_expire: days an id may go unseen")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strategies", default=None, help="default: the scenario's")
    ap.add_argument("--no-compile-cache", dest="compile_cache", action="store_false")
    ap.add_argument("--out", default=None, help="default: benchmarks/results/online[_SCENARIO]")
    args = ap.parse_args(argv)
    sc = SCENARIOS[args.scenario]
    n_days = args.days or sc["days"]
    drift = sc["drift"] if args.drift is None else args.drift
    strategies = args.strategies.split(",") if args.strategies else list(sc["strategies"])

    import keras

    from reclayers.data import make_synthetic

    load_start = [round(x, 2) for x in os.getloadavg()]
    days = [make_synthetic(n_rows=args.rows_per_day * n_days, days=n_days, day=d, vocab_size=args.vocab_size,
                           seed=args.seed, tail=sc["tail"], drift=drift) for d in range(1, n_days + 1)]
    results = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("RECLAYERS_BENCH_TMP")) as tmp:
        for s in strategies:
            opts = {"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate}
            results[s] = run(s, days, args.model, opts, args.seed, Path(tmp), args.expire_after,
                             args.compile_cache)
    report = {"scenario": args.scenario, "backend": keras.backend.backend(), "model": args.model,
              "days": n_days,
              "rows_per_day": args.rows_per_day, "vocab_size": args.vocab_size, "epochs": args.epochs,
              "learning_rate": args.learning_rate, "tail": sc["tail"], "drift": drift,
              "expire_after": args.expire_after,
              "compile_cache": args.compile_cache, "loadavg_start": load_start,
              "loadavg_end": [round(x, 2) for x in os.getloadavg()], "results": results,
              "summary": {s: {"last_test_auc": r[-1]["test_auc"], "bayes_auc": r[-1]["bayes_auc"],
                              "mean_test_auc": round(float(np.mean([x["test_auc"] for x in r])), 4),
                              "total_train_seconds": round(sum(x["train_seconds"] for x in r), 1),
                              "first_epoch_seconds": round(sum(x["first_epoch_seconds"] for x in r), 1),
                              "later_epochs_seconds": round(sum(x["later_epochs_seconds"] for x in r), 1),
                              "total_run_seconds": round(sum(x["run_seconds"] for x in r), 1),
                              "final_table_rows": r[-1]["table_rows"],
                              "final_table_size": r[-1]["table_size"],
                              "max_table_size": max(x["table_size"] for x in r)}
                          for s, r in results.items()}}
    suffix = "" if args.scenario == "main" else f"_{args.scenario}"
    out = Path(args.out or f"benchmarks/results/online{suffix}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    text = _markdown(report)
    out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
