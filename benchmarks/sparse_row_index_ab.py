"""Whole-step A/B of the JAX sparse step: duplicate search by binary searches vs the shared row index.

``reclayers.embedding_optimizers.combine_duplicates`` sums the gradients of a table's repeated ids
after sorting them. Each lookup then needs the entry of the sorted ids that stands for its row:
either two binary searches (``searchsorted`` of the ids and of the sorted ids), or one write of
positions into an ``int32`` index over table rows shared by every table of the step and two reads
(:class:`reclayers.embedding_optimizers.RowIndex`), used for tables of up to
``ROW_INDEX_MAX_ROWS`` rows. This script trains two copies of the same model on the same batches
of ``benchmarks/sparse_embeddings.py``'s Criteo-shaped data (lazy Adam, batch 4096), one compiled
with the index off (``ROW_INDEX_MAX_ROWS = 0``) and one with it on (the limit below), and times
them alternating, round by round, in one process (the process's CPU milliseconds per step of each
round's ``fit`` over ``--steps`` batches, after ``--warmup`` batches; the ratio of the two arms'
medians, and the median of the rounds' ratios: on this shared machine a round moves by 10-20 %,
so use many rounds). It also
checks that both copies hold the same weights after the warm-up (the two searches pick different
entries but sum the same gradients).

Run from the repository root, one CPU, with the allocator setting ``reclayers train`` gives JAX::

    GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1073741824 \\
        taskset -c 1 python -m benchmarks.sparse_row_index_ab --models deepfm,dcn_v2 \\
        --sizes 130000,1000000,3000000,10000000

Prints one JSON line per model and size and appends them to
``benchmarks/results/sparse_row_index_ab.json``. Results: ``benchmarks/README.md``, "JAX: one shared
row index instead of binary searches".
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

from benchmarks.sparse_embeddings import ROOT, make_data, new_model, sparse_tables, split_rows  # noqa: E402


def run(name: str, size: int, args) -> dict:
    import keras
    import numpy as np

    from reclayers import embedding_optimizers

    batch = args.batch
    schema, x, y = make_data(size, batch * (args.warmup + args.steps), seed=0)
    warm, timed = split_rows(x, y, batch * args.warmup)
    limit = embedding_optimizers.ROW_INDEX_MAX_ROWS
    arms = {}
    try:
        for arm, rows in (("search", 0), ("index", limit)):
            embedding_optimizers.ROW_INDEX_MAX_ROWS = rows  # read when the step is traced (first fit)
            model = new_model(name, schema, "lazy_adam")
            model.fit(*warm, batch_size=batch, epochs=1, shuffle=False, verbose=0)
            arms[arm] = model
    finally:
        embedding_optimizers.ROW_INDEX_MAX_ROWS = limit
    diff = max(float(np.max(np.abs(keras.ops.convert_to_numpy(a) - keras.ops.convert_to_numpy(b))))
               for a, b in zip(arms["search"].trainable_variables, arms["index"].trainable_variables))
    rounds = {arm: [] for arm in arms}
    for _ in range(args.rounds):
        for arm, model in arms.items():
            c0 = time.process_time()
            model.fit(*timed, batch_size=batch, epochs=1, shuffle=False, verbose=0)
            rounds[arm].append(1e3 * (time.process_time() - c0) / args.steps)
    tables = sparse_tables(arms["index"])
    median = {arm: float(np.median(v)) for arm, v in rounds.items()}
    keras.backend.clear_session()
    return {
        "model": name, "target_rows": size, "table_rows": sum(int(v.shape[0]) for v in tables),
        "rows_per_table": max(int(v.shape[0]) for v in tables), "row_index_max_rows": limit,
        "cpu_ms_per_step_median": median, "index_over_search": median["index"] / median["search"],
        "index_over_search_paired": float(np.median(np.divide(rounds["index"], rounds["search"]))),
        "cpu_ms_per_step_rounds": rounds, "max_weight_diff_after_warmup": diff,
        "load_avg": os.getloadavg()[0], "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="deepfm,dcn_v2")
    p.add_argument("--sizes", default="130000,1000000,3000000,10000000", help="total table rows")
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sparse_row_index_ab.json"))
    args = p.parse_args(argv)
    out = Path(args.out)
    rows = json.loads(out.read_text()) if out.exists() else []
    for size in (int(s) for s in args.sizes.split(",")):
        for name in args.models.split(","):
            row = run(name, size, args)
            print(json.dumps(row), flush=True)
            rows.append(row)
            out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
