"""Day-after-day training on synthetic days: frozen vocabulary vs daily retraining vs warm start.

    python -m benchmarks.online --days 7 --rows-per-day 10000      # from the repository root

Seven synthetic days (``make_synthetic(days=7)``: every day brings new ids and shifts popularity
towards them). Each day every strategy trains on that day and is scored on the day's held-out
test rows:

* ``frozen``: the vocabulary fitted on day 1 and never grown (later ids fall into the OOV row),
  warm-started from the previous day;
* ``scratch``: a new preprocessor and a new model every day, trained on all days so far;
* ``warm``: warm start from the previous day with growing tables (new ids admitted at once);
* ``warm_min5``: the same with ``min_count=5`` and 16 hashed fallback buckets per table.

Every strategy runs the same epochs per training run. Prints and writes the per-day test AUC, the
day-7 AUC, the Bayes-optimal AUC, total training seconds and table rows in use
(``benchmarks/results/online.json`` and ``.md``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

STRATEGIES = ("frozen", "scratch", "warm", "warm_min5")


def _concat(parts: list):
    from reclayers.data import Arrays

    return Arrays({k: np.concatenate([p.features[k] for p in parts]) for k in parts[0].features},
                  {k: np.concatenate([p.labels[k] for p in parts]) for k in parts[0].labels})


def _rows_in_use(pre) -> int:
    return int(sum(r["used"] for r in pre.report.values())) if pre.report else \
        int(sum(pre.num_buckets(t) for t in pre.vocabs))


def run(strategy: str, days: list, model: str, options: dict, seed: int, work: Path) -> list:
    import keras

    from reclayers import models
    from reclayers.data import Preprocessor
    from reclayers.metrics import auc
    from reclayers.training import Trainer, TrainingOptions, predict
    from reclayers.training.warm_start import parent_checkpoint

    out, pre, prev = [], None, None
    schema_in = days[0].preprocessor.schema
    for d, ds in enumerate(days, 1):
        t0 = time.perf_counter()
        if strategy == "scratch":
            pre = Preprocessor(schema_in, seed).fit([x.raw_split("train") for x in days[:d]])
            train = _concat([x.encode_with(pre)["train"] for x in days[:d]])
        else:
            if d == 1:
                opts = {"frozen": {}, "warm": {"min_count": 1},
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
        warm = parent_checkpoint(prev) if strategy != "scratch" and prev is not None else None
        trainer = Trainer(lambda s=schema: models.get_model(model, s), schema, train, splits["valid"],
                          run_dir, TrainingOptions(seed=seed, **options), quiet=True, log=False,
                          warm_start=warm)
        state = trainer.fit()
        test = splits["test"]
        score = auc(test.labels["click"], predict(trainer.model, test)["click"])
        out.append({"day": d, "test_auc": round(float(score), 4),
                    "bayes_auc": round(ds.bayes["test"]["click"]["auc"], 4),
                    "train_rows": len(train), "train_seconds": round(state["train_seconds"], 2),
                    "prepare_seconds": round(prep_s, 2), "table_rows": _rows_in_use(pre),
                    "table_size": int(sum(pre.num_buckets(t) for t in pre.vocabs))})
        print(json.dumps({"strategy": strategy, **out[-1]}), flush=True)
        prev = run_dir
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--rows-per-day", type=int, default=10000)
    ap.add_argument("--vocab-size", type=int, default=200)
    ap.add_argument("--model", default="deepfm")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--learning-rate", type=float, default=0.005)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--out", default="benchmarks/results/online")
    args = ap.parse_args(argv)

    import keras

    from reclayers.data import make_synthetic

    days = [make_synthetic(n_rows=args.rows_per_day * args.days, days=args.days, day=d,
                           vocab_size=args.vocab_size, seed=args.seed) for d in range(1, args.days + 1)]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for s in args.strategies.split(","):
            opts = {"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate}
            results[s] = run(s, days, args.model, opts, args.seed, Path(tmp))
    report = {"backend": keras.backend.backend(), "model": args.model, "days": args.days,
              "rows_per_day": args.rows_per_day, "vocab_size": args.vocab_size, "epochs": args.epochs,
              "learning_rate": args.learning_rate,
              "results": results,
              "summary": {s: {"day7_test_auc": r[-1]["test_auc"], "bayes_auc": r[-1]["bayes_auc"],
                              "total_train_seconds": round(sum(x["train_seconds"] for x in r), 1),
                              "final_table_rows": r[-1]["table_rows"],
                              "final_table_size": r[-1]["table_size"]}
                          for s, r in results.items()}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    lines = [f"# Day-after-day training: {args.days} synthetic days, {args.rows_per_day} rows/day, "
             f"{args.model} on {report['backend']}, {args.epochs} epoch(s) per run", "",
             "| strategy | day-7 test AUC | Bayes AUC | total train s | table rows in use | table size |",
             "|---|---|---|---|---|---|"]
    for s, m in report["summary"].items():
        lines.append(f"| {s} | {m['day7_test_auc']:.4f} | {m['bayes_auc']:.4f} | "
                     f"{m['total_train_seconds']} | {m['final_table_rows']} | {m['final_table_size']} |")
    lines += ["", "Per-day test AUC:", "", "| day | " + " | ".join(results) + " |",
              "|---" * (len(results) + 1) + "|"]
    for i in range(args.days):
        lines.append(f"| {i + 1} | " + " | ".join(f"{r[i]['test_auc']:.4f}" for r in results.values()) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
