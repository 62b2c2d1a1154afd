"""``reclayers evaluate`` and ``reclayers predict``: score a run's checkpoint.

* ``evaluate RUN`` scores the run's own test split (from its data cache); ``evaluate RUN --data
  SPEC`` scores every row of that file and says so. Each result is recorded in
  ``RUN/evaluations.json`` under ``"CHECKPOINT DATA"`` (``best`` or ``final``, the split or the
  file), with the row count, so no checkpoint's entry overwrites another's.
* ``predict RUN --data SPEC --out FILE`` streams the file (with or without its label columns) and
  writes one probability column per label, named after the label, after the ``--keep-columns``
  copied from the input (and ``label_NAME`` when the file has the label); CSV, or Parquet when
  ``FILE`` ends in ``.parquet``. Memory does not grow with the file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from reclayers.cli.datasets import (
    SCHEMA_FORMATS,
    UsageError,
    encode_with,
    parse_spec,
    run_split,
    source_for,
)
from reclayers.cli.train import _load_model, load_run, metrics_table, predict, score

__all__ = ["evaluate", "predict_cmd"]

_PREDICT_ROWS = 1 << 20


def _run_model_and_data(args):
    """``(run config, schema, preprocessor, model, checkpoint name)`` of ``args.run_dir``."""
    from reclayers.data import Preprocessor, Schema

    run = Path(args.run_dir)
    cfg = load_run(run)
    which = getattr(args, "checkpoint", "best")
    path, used = (run / "best.keras", "best") if which == "best" else (run / "model.keras", "final")
    if not path.exists():
        path, used = run / "model.keras", "final"
    if not path.exists():
        raise UsageError(
            f"RUN_DIR {run} has no trained model (best.keras/model.keras); got an unfinished run"
        )
    pre = Preprocessor.load(run / "preprocessor.json")
    schema = Schema.load(run / "schema.json")
    return cfg, schema, pre, _load_model(path), used


def evaluate(args: argparse.Namespace) -> int:
    cfg, schema, pre, model, used = _run_model_and_data(args)
    if args.data:
        arrays, bayes = encode_with(args.data, pre, cfg, getattr(args, "cache_dir", None))
        synthetic = parse_spec(args.data)[0] == "synthetic"
        what = "the run's synthetic test split" if synthetic else f"every row of {args.data}"
        data_key = args.data
    else:
        arrays, bayes = run_split(cfg, "test", pre)
        what, data_key = f"the run's test split of {cfg['data']}", "test split"
    missing = [lab for lab in schema.label_names if lab not in arrays.labels]
    if missing:
        raise UsageError(f"--data {args.data}: has no label column {missing}; evaluate needs labels "
                         "(use reclayers predict for unlabeled data)")
    if not len(arrays):
        raise UsageError(f"no rows to score in {what}")
    metrics = score(schema, arrays, predict(model, arrays))
    print(metrics_table(metrics, bayes))
    first = schema.label_names[0]
    print(f"scored {what}: {len(arrays)} rows, checkpoint {used}")
    print(f"AUC on {args.data or cfg['data']}: {metrics[first]['auc']:.4f} (model {cfg['model']})")
    out = Path(args.run_dir) / "evaluations.json"
    done = json.loads(out.read_text()) if out.exists() else {}
    done[f"{used} {data_key}"] = {"checkpoint": used, "data": args.data or cfg["data"],
                                  "split": "all" if args.data else "test", "rows": len(arrays),
                                  "metrics": metrics, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(done, indent=2, default=str))
    tmp.replace(out)
    return 0


def _chunks_of_split(arrays):
    """``(kept columns, features, labels)`` pieces of an encoded split."""
    for a in range(0, len(arrays), _PREDICT_ROWS):
        feats, labs = arrays.read_ranges([(a, min(a + _PREDICT_ROWS, len(arrays)))])
        yield {}, feats, labs


def _chunks_of_file(fmt: str, path: str, pre, keep):
    from reclayers.data.cache import prefetch
    from reclayers.data.readers import KEEP_PREFIX

    schema = pre.schema if fmt in SCHEMA_FORMATS else None
    source = source_for(fmt, path, schema, labeled=None, keep=keep)
    for chunk in prefetch(source.chunks()):
        feats, labs = pre.transform(chunk)
        yield {c: chunk[KEEP_PREFIX + c] for c in keep}, feats, labs
    if source.errors.total:
        print(f"reclayers predict: {source.errors.report()}")


class _Writer:
    """CSV or Parquet output, by the file's suffix, written chunk by chunk."""

    def __init__(self, out: Path):
        self.out, self.rows, self.writer, self.columns = out, 0, None, []
        self.parquet = out.suffix in (".parquet", ".pq")

    def write(self, cols: dict) -> None:
        import pyarrow as pa

        table = pa.table({k: v if isinstance(v, pa.Array | pa.ChunkedArray) else pa.array(v)
                          for k, v in cols.items()})
        if self.writer is None:
            self.columns = list(cols)
            if self.parquet:
                import pyarrow.parquet as pq

                self.writer = pq.ParquetWriter(self.out, table.schema)
            else:
                import pyarrow.csv as pacsv

                self.writer = pacsv.CSVWriter(self.out, table.schema,
                                              write_options=pacsv.WriteOptions(quoting_style="needed"))
        self.writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def predict_cmd(args: argparse.Namespace) -> int:
    from reclayers.data import Arrays

    cfg, schema, pre, model, used = _run_model_and_data(args)
    keep = [c.strip() for c in (getattr(args, "keep_columns", None) or "").split(",") if c.strip()]
    clash = [c for c in keep if c in schema.label_names]
    if clash:
        raise UsageError(f"--keep-columns {','.join(keep)}: {clash} would clash with the probability "
                         "column named after the label")
    if args.data and parse_spec(args.data)[0] != "synthetic":
        fmt, path = parse_spec(args.data)
        pieces = _chunks_of_file(fmt, path, pre, keep)
        what = f"every row of {args.data}"
    else:
        if keep:
            raise UsageError("--keep-columns needs --data FORMAT:PATH (a file with those columns)")
        arrays = encode_with(args.data, pre, cfg)[0] if args.data else run_split(cfg, "test", pre)[0]
        pieces = _chunks_of_split(arrays)
        what = "the run's test split" if not args.data else "the run's synthetic test split"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = _Writer(out)
    try:
        for kept, feats, labs in pieces:
            chunk = Arrays(feats, labs)
            if not len(chunk):
                continue
            pred = predict(model, chunk)
            cols = dict(kept)
            cols.update({f"label_{k}": np.asarray(v, np.float32).ravel() for k, v in labs.items()})
            cols.update({k: np.asarray(v, np.float32) for k, v in pred.items()})
            writer.write(cols)
    finally:
        writer.close()
    if not writer.rows:
        raise UsageError(f"no rows to predict in {what}")
    print(f"wrote {writer.rows} predictions of {what} ({', '.join(writer.columns)}; checkpoint {used}) "
          f"to {out}")
    return 0
