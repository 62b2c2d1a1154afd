"""Sparse vs dense embedding updates: training rows/s as the tables grow (issue 16's acceptance).

Criteo-shaped data held in memory: 26 categorical fields with Zipf-distributed ids and 13 dense
counts; the tables hold about 10k, 1M and 10M rows in total (split evenly over the 26 fields).
Labels come from a planted logistic model over the ids (one weight per id) and the counts, so
the test AUC after the timed steps means something. For each backend (one process each), model
(``dcn_v2``, ``deepfm``) and size, the zoo model trains with

- ``dense``: today's path, Adam(1e-3) on every weight, the tables included (dense gradients);
- ``sparse``: the tables row-wise with an embedding optimizer (default ``lazy_adam``, same
  learning rate), the other weights with Adam(1e-3).

rows/s = timed rows / seconds of ``fit`` over ``--steps`` batches, after a warm-up ``fit`` of
``--warmup`` batches (compilation); the same batches are timed ``--repeats`` times and the
fastest pass counts (one pass of 10 steps lasts 0.4-15 s, and on a shared 2-core machine another
process's burst halved single passes), with the CPU seconds per step of that pass in the JSON.
``ratio`` = rows/s at this size ÷ rows/s at the smallest size (same mode); the acceptance asks
for sparse ≥ 0.9 at 1M and ≥ 0.7 at 10M.

``--peers deepctr_torch,fuxictr`` trains the same models of those libraries on the same rows in
the same run (``benchmarks/sparse_peers.py``, each in its venv from ``benchmarks/peers_setup.py``):
dense ``nn.Embedding`` + Adam and sparse gradients + ``SparseAdam``; the peer table gives our
torch backend's rows/s (sparse, lazy Adam) ÷ theirs. ``--torch-ab`` adds a ``sparse_keras_ops``
mode on torch: the sparse step with ``keras.ops`` dedup and gathers instead of the torch-native ones.

Run from the repository root::

    python -m benchmarks.sparse_embeddings                       # jax, tensorflow, torch
    python -m benchmarks.sparse_embeddings --backends jax --sizes 10000,1000000 --steps 10
    python -m benchmarks.sparse_embeddings --peers deepctr_torch,fuxictr --torch-ab
    python -m benchmarks.sparse_embeddings --auc-epochs 2 --sizes 1000000 --models dcn_v2 \
        --test-rows 100000 --name sparse_embeddings_auc_epochs   # test AUC over full epochs

Writes ``benchmarks/results/sparse_embeddings.md`` and ``.json`` (rows appended per backend;
``--name`` changes the file name, ``--merge a.json,b.json`` combines runs made one backend at a time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import malloc_argument, malloc_env, malloc_off, malloc_settings, malloc_text

N_CAT, N_DENSE = 26, 13
ROOT = Path(__file__).resolve().parents[1]


# --- data ------------------------------------------------------------------------------------------
def make_data(total_rows: int, n: int, seed: int = 0, zipf: float = 1.1):
    """``(schema, x, y)``: ``n`` Criteo-shaped rows over tables of ``total_rows`` rows in all."""
    import numpy as np

    from reclayers.data.schema import CategoricalFeature, DenseFeature, Label, Schema

    vocab = max(2, total_rows // N_CAT)
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, vocab, dtype="float64")
    cdf = np.cumsum(ranks**-zipf)
    cdf /= cdf[-1]
    x, logit = {}, np.zeros(n)
    for i in range(N_DENSE):
        v = rng.lognormal(0.0, 1.0, n).astype("float32")
        x[f"I{i + 1}"] = np.log1p(v).astype("float32")
        logit += 0.1 * x[f"I{i + 1}"]
    for i in range(N_CAT):
        ids = 1 + np.searchsorted(cdf, rng.random(n))  # id 0 is the out-of-vocabulary row
        ids = (ids * 2654435761 + i) % (vocab - 1) + 1  # spread the frequent ids over the table
        weight = np.random.default_rng(seed + 100 + i).normal(0.0, 0.4, vocab)
        x[f"C{i + 1}"] = ids.astype("int32")
        logit += weight[ids]
    logit -= np.quantile(logit, 0.75)  # about 25 % clicks
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype("float32")[:, None]
    features = [DenseFeature(f"I{i + 1}") for i in range(N_DENSE)] + [
        CategoricalFeature(f"C{i + 1}", num_buckets=vocab) for i in range(N_CAT)
    ]
    return Schema(features=tuple(features), labels=(Label("click"),), name="criteo_shaped"), x, {"click": y}


def split_rows(x: dict, y: dict, cut: int) -> tuple:
    """``((x, y) of the first ``cut`` rows, (x, y) of the rest)`` of feature and label dicts."""
    return (({k: v[:cut] for k, v in x.items()}, {k: v[:cut] for k, v in y.items()}),
            ({k: v[cut:] for k, v in x.items()}, {k: v[cut:] for k, v in y.items()}))


def new_model(name: str, schema, embedding_optimizer: str | None):
    """The zoo model ``name``, seeded (0) and compiled as every cell trains it: Adam(1e-3), and
    ``embedding_optimizer`` row-wise on the tables (``None``: the dense path)."""
    import keras

    from reclayers import models

    keras.utils.set_random_seed(0)
    model = models.get_model(name, schema)
    models.compile_model(model, schema, learning_rate=1e-3, embedding_optimizer=embedding_optimizer)
    return model


def sparse_tables(model) -> list:
    """The embedding tables a model trains row-wise."""
    return [v for v in model.trainable_variables if getattr(v, "sparse_table", False)]


def auc(y, p) -> float:
    import numpy as np

    y, p = np.asarray(y).ravel(), np.asarray(p).ravel()
    order = np.argsort(p, kind="stable")
    ranks = np.empty(len(p))
    ranks[order] = np.arange(1, len(p) + 1)
    pos = y > 0.5
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# --- one backend (run in its own process) -----------------------------------------------------------
def run_backend(args) -> list:
    import keras

    out = []
    batch = args.batch
    n_train = batch * (args.warmup + args.steps)
    sizes = [int(s) for s in args.sizes.split(",")]
    # The first cell of a process ran up to 3× slower than the same cell later (allocator, thread
    # pools, lazily built kernels), which skewed every "÷ smallest" ratio: train one unrecorded
    # cell (first model, first mode, smallest size) first.
    schema, x, y = make_data(sizes[0], n_train, seed=0)
    first_mode = args.modes.split(",")[0]
    model = new_model(args.models.split(",")[0], schema,
                      None if first_mode == "dense" else args.embedding_optimizer)
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
    del model
    keras.backend.clear_session()
    for size in sizes:
        schema, x, y = make_data(size, n_train + args.test_rows, seed=0)
        train, (test_x, test_y) = split_rows(x, y, n_train)
        test = test_x, test_y["click"]
        warm, timed = split_rows(*train, batch * args.warmup)
        modes = args.modes.split(",")
        if args.torch_ab and keras.backend.backend() == "torch":
            modes.append("sparse_keras_ops")
        for name in args.models.split(","):
            for mode in modes:
                from reclayers import embedding_optimizers

                embedding_optimizers._TORCH_NATIVE = mode != "sparse_keras_ops"
                model = new_model(name, schema, None if mode == "dense" else args.embedding_optimizer)
                model.fit(*warm, batch_size=batch, epochs=1, shuffle=False, verbose=0)
                walls, cpus = [], []
                for repeat in range(args.repeats):
                    t0, c0 = time.perf_counter(), time.process_time()
                    model.fit(*timed, batch_size=batch, epochs=1, shuffle=False, verbose=0)
                    walls.append(time.perf_counter() - t0)
                    cpus.append(time.process_time() - c0)
                    if repeat == 0:  # the AUC after warm-up + --steps batches, as with one pass
                        pred = model.predict(test[0], batch_size=8192, verbose=0)
                        pred = pred["click"] if isinstance(pred, dict) else pred
                seconds = min(walls)
                rows = sum(int(v.shape[0]) for v in sparse_tables(model))
                row = {
                    "backend": keras.backend.backend(), "model": name, "mode": mode,
                    "embedding_optimizer": "adam (dense)" if mode == "dense" else args.embedding_optimizer,
                    "target_rows": size, "table_rows": rows, "params": int(model.count_params()),
                    "rows_per_s": args.steps * batch / seconds, "seconds": seconds,
                    "repeat_seconds": walls, "cpu_ms_per_step": 1e3 * cpus[walls.index(seconds)] / args.steps,
                    "test_auc": auc(test[1], pred), "load_avg": os.getloadavg()[0],
                }
                print(json.dumps(row), flush=True)
                out.append(row)
                del model
                keras.backend.clear_session()
    return out


def run_auc_epochs(args) -> list:
    """Test AUC after each of ``--auc-epochs`` full epochs over ``--train-rows`` rows (in order,
    batch ``--batch``), the next ``--test-rows`` rows as the test split; one row per model, size
    and mode with the AUC of every epoch and the epochs' rows/s."""
    import keras

    out = []
    batch, n_train = args.batch, args.train_rows
    for size in [int(s) for s in args.sizes.split(",")]:
        schema, x, y = make_data(size, n_train + args.test_rows, seed=0)
        train, (test_x, test_y) = split_rows(x, y, n_train)
        test = test_x, test_y["click"]
        for name in args.models.split(","):
            for mode in args.modes.split(","):
                model = new_model(name, schema, None if mode == "dense" else args.embedding_optimizer)
                aucs, speeds = [], []
                for _ in range(args.auc_epochs):
                    t0 = time.perf_counter()
                    model.fit(*train, batch_size=batch, epochs=1, shuffle=False, verbose=0)
                    speeds.append(n_train / (time.perf_counter() - t0))
                    pred = model.predict(test[0], batch_size=8192, verbose=0)
                    aucs.append(auc(test[1], pred["click"] if isinstance(pred, dict) else pred))
                row = {
                    "backend": keras.backend.backend(), "model": name, "mode": mode,
                    "embedding_optimizer": "adam (dense)" if mode == "dense" else args.embedding_optimizer,
                    "target_rows": size, "table_rows": sum(int(v.shape[0]) for v in sparse_tables(model)),
                    "train_rows": n_train, "test_rows": args.test_rows, "epoch_aucs": aucs,
                    "epoch_rows_per_s": speeds, "load_avg": os.getloadavg()[0],
                }
                print(json.dumps(row), flush=True)
                out.append(row)
                del model
                keras.backend.clear_session()
    return out


def auc_report(rows: list) -> str:
    """Per backend, model and size: the test AUC of each epoch, dense and sparse side by side."""
    epochs = max(len(r["epoch_aucs"]) for r in rows)
    head = " | ".join(f"AUC epoch {e + 1}" for e in range(epochs))
    lines = [f"| backend | model | table rows | tables' optimizer | {head} | best | best − dense best |",
             "|---|---|---:|---|" + "---:|" * (epochs + 2)]
    best_dense = {(r["backend"], r["model"], r["target_rows"]): max(r["epoch_aucs"])
                  for r in rows if r["mode"] == "dense"}
    for r in sorted(rows, key=lambda r: (r["backend"], r["model"], r["target_rows"], r["mode"] != "dense")):
        best = max(r["epoch_aucs"])
        ref = best_dense.get((r["backend"], r["model"], r["target_rows"]))
        diff = f"{best - ref:+.4f}" if ref is not None and r["mode"] != "dense" else "—"
        cells = " | ".join(f"{a:.4f}" for a in r["epoch_aucs"])
        lines.append(f"| {r['backend']} | {r['model']} | {r['table_rows']:,} | {r['embedding_optimizer']} | "
                     f"{cells} | {best:.4f} | {diff} |")
    return "\n".join(lines)


# --- driver -------------------------------------------------------------------------------------
def report(rows: list) -> str:
    """The markdown table: per backend, model and size, dense and sparse side by side."""
    smallest, smallest_cpu = {}, {}
    for r in sorted(rows, key=lambda r: r["target_rows"]):
        smallest.setdefault((r["backend"], r["model"], r["mode"]), r["rows_per_s"])
        smallest_cpu.setdefault((r["backend"], r["model"], r["mode"]), r.get("cpu_ms_per_step"))

    def cell(r, key, fmt):
        return fmt.format(r[key]) if r else "—"

    def to_smallest(r):
        return f"{r['rows_per_s'] / smallest[(r['backend'], r['model'], r['mode'])]:.2f}" if r else "—"

    def cpu_to_smallest(r):  # rows per CPU second, ÷ the smallest size's
        first = smallest_cpu.get((r["backend"], r["model"], r["mode"])) if r else None
        return f"{first / r['cpu_ms_per_step']:.2f}" if first and r.get("cpu_ms_per_step") else "—"

    lines = [
        "| backend | model | table rows | params | dense rows/s | sparse rows/s | sparse ÷ dense | "
        "dense ÷ smallest | sparse ÷ smallest | sparse ÷ smallest, CPU time | sparse CPU ms/step | "
        "dense test AUC | sparse test AUC |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b, m, size in sorted({(r["backend"], r["model"], r["target_rows"]) for r in rows}):
        pick = {r["mode"]: r for r in rows if (r["backend"], r["model"], r["target_rows"]) == (b, m, size)}
        d, s = pick.get("dense"), pick.get("sparse")
        any_row = d or s
        both = f"{s['rows_per_s'] / d['rows_per_s']:.2f}" if d and s else "—"
        lines.append(
            f"| {b} | {m} | {any_row['table_rows']:,} | {any_row['params']:,} | "
            f"{cell(d, 'rows_per_s', '{:,.0f}')} | {cell(s, 'rows_per_s', '{:,.0f}')} | {both} | "
            f"{to_smallest(d)} | {to_smallest(s)} | {cpu_to_smallest(s)} | "
            f"{cell(s, 'cpu_ms_per_step', '{:.0f}') if s and 'cpu_ms_per_step' in s else '—'} | "
            f"{cell(d, 'test_auc', '{:.4f}')} | "
            f"{cell(s, 'test_auc', '{:.4f}')} |"
        )
    return "\n".join(lines)


def ab_report(rows: list) -> str:
    """Torch: the sparse step with torch-native dedup and gathers ÷ the same step with ``keras.ops``."""
    pick = {(r["model"], r["target_rows"], r["mode"]): r for r in rows if r["backend"] == "torch"}
    lines = ["| torch model | table rows | native rows/s | keras.ops rows/s | native ÷ keras.ops |",
             "|---|---:|---:|---:|---:|"]
    for m, size in sorted({(k[0], k[1]) for k in pick}):
        a, b = pick.get((m, size, "sparse")), pick.get((m, size, "sparse_keras_ops"))
        if a and b:
            lines.append(f"| {m} | {a['table_rows']:,} | {a['rows_per_s']:,.0f} | {b['rows_per_s']:,.0f} | "
                         f"{a['rows_per_s'] / b['rows_per_s']:.2f} |")
    return "\n".join(lines)


def peer_report(rows: list) -> str:
    """Our torch backend (sparse and dense) ÷ each peer's dense and sparse, per model and size."""
    ours = {(r["model"], r["target_rows"], r["mode"]): r for r in rows if r["backend"] == "torch"}
    lines = [
        "| peer | model | table rows | peer dense rows/s | peer sparse rows/s | ours sparse ÷ peer dense | "
        "ours sparse ÷ peer sparse | ours dense ÷ peer dense | peer dense AUC | peer sparse AUC |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    peers = sorted({(r["backend"], r["model"], r["target_rows"]) for r in rows
                    if r["backend"].startswith("peer:")})
    for b, m, size in peers:
        pick = {r["mode"]: r for r in rows if (r["backend"], r["model"], r["target_rows"]) == (b, m, size)}
        d, s = pick.get("dense"), pick.get("sparse")
        our_s, our_d = ours.get((m, size, "sparse")), ours.get((m, size, "dense"))

        def ratio(a, z):
            return f"{a['rows_per_s'] / z['rows_per_s']:.2f}" if a and z else "—"

        def val(r, key, fmt):
            return fmt.format(r[key]) if r else "—"

        lines.append(
            f"| {b[5:]} | {m} | {(d or s)['table_rows']:,} | {val(d, 'rows_per_s', '{:,.0f}')} | "
            f"{val(s, 'rows_per_s', '{:,.0f}')} | {ratio(our_s, d)} | {ratio(our_s, s)} | "
            f"{ratio(our_d, d)} | "
            f"{val(d, 'test_auc', '{:.4f}')} | {val(s, 'test_auc', '{:.4f}')} |"
        )
    return "\n".join(lines)


def write_peer_data(args, size: int, path: Path) -> None:
    """The rows our children train on (same seed and count), for a peer process to load."""
    import numpy as np

    n = args.batch * (args.warmup + args.steps)
    schema, x, y = make_data(size, n + args.test_rows, seed=0)
    vocab = schema.features[-1].num_buckets
    np.savez(path, **x, click=y["click"], vocab=vocab, n_test=args.test_rows, target_rows=size)


def run_peers(args, rows: list, save) -> None:
    import tempfile

    from benchmarks.peers_setup import venv_python

    with tempfile.TemporaryDirectory(prefix="sparse_peers_") as tmp:
        for size in [int(s) for s in args.sizes.split(",")]:
            path = Path(tmp) / f"rows_{size}.npz"
            write_peer_data(args, size, path)
            for peer in args.peers.split(","):
                python = venv_python(peer)
                if not python.exists():
                    print(f"peer {peer}: no venv at {python}", file=sys.stderr)
                    continue
                cmd = [str(python), "-m", "benchmarks.sparse_peers", peer, str(path), args.models,
                       str(args.batch), str(args.warmup), str(args.steps), str(args.repeats)]
                env = {**os.environ, "PYTHONPATH": str(ROOT), **malloc_env("torch")}
                proc = subprocess.run(cmd, cwd=ROOT, env=env,
                                      capture_output=True, text=True)
                for line in proc.stdout.splitlines():
                    if line.startswith("{"):
                        rows.append(json.loads(line))
                        print(line, flush=True)
                save(quiet=True)
                if proc.returncode:
                    print(f"peer {peer}: exit {proc.returncode}\n{proc.stderr[-2000:]}", file=sys.stderr)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backends", default="jax,tensorflow,torch")
    p.add_argument("--models", default="dcn_v2,deepfm")
    p.add_argument("--modes", default="sparse,dense")
    p.add_argument("--sizes", default="10000,1000000,10000000")
    p.add_argument("--embedding-optimizer", default="lazy_adam")
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3, help="timed passes over the same --steps "
                   "batches; rows/s is the fastest pass's (the least disturbed on a shared machine)")
    p.add_argument("--test-rows", type=int, default=40000)
    p.add_argument("--auc-epochs", type=int, default=0, help="instead of the speed cells: test AUC "
                   "after each of this many full epochs over --train-rows rows")
    p.add_argument("--train-rows", type=int, default=600000, help="training rows of --auc-epochs")
    p.add_argument("--peers", default="", help="e.g. deepctr_torch,fuxictr (their venvs)")
    p.add_argument("--torch-ab", action="store_true", help="also the keras.ops sparse step on torch")
    p.add_argument("--name", default="sparse_embeddings", help="file name of the results")
    p.add_argument("--merge", default="", help="JSON results of earlier runs (comma-separated): "
                   "write their combined report under --name, running nothing")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    malloc_argument(p)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        (run_auc_epochs if args.auc_epochs else run_backend)(args)
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    if args.no_malloc_tuning:
        malloc_off()
    setting = {"tunables": None if args.merge else malloc_settings()}

    def save(quiet: bool = False) -> None:
        (out / f"{args.name}.json").write_text(json.dumps(
            {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                         "glibc_tunables": setting["tunables"]}, "args": vars(args), "rows": rows}, indent=1))
        if args.auc_epochs:
            text = auc_report(rows)
        else:
            text = report([r for r in rows if not r["backend"].startswith("peer:")])
        if any(r["mode"] == "sparse_keras_ops" for r in rows):
            text += "\n\n" + ab_report(rows)
        if any(r["backend"].startswith("peer:") for r in rows):
            text += "\n\n" + peer_report(rows)
        loads = [r["load_avg"] for r in rows]
        text += f"\n\n1-minute load average during the run: {min(loads):.1f}–{max(loads):.1f}\n"
        text += "\n" + malloc_text(setting["tunables"]) + "\n"
        (out / f"{args.name}.md").write_text(text)
        if not quiet:
            print(text, flush=True)

    if args.merge:
        seen = []
        for f in args.merge.split(","):
            merged = json.loads(Path(f).read_text())
            rows.extend(merged["rows"])
            seen.append(merged["machine"].get("glibc_tunables"))
        setting["tunables"] = seen[0] if all(v == seen[0] for v in seen) else seen
        save()
        return 0
    for backend in [b for b in args.backends.split(",") if b]:
        cmd = [sys.executable, "-m", "benchmarks.sparse_embeddings", "--child", *(argv or sys.argv[1:])]
        env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
               **malloc_env(backend)}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in proc.stdout:  # one JSON line per measurement, shown as it comes
            if line.startswith("{"):
                rows.append(json.loads(line))
                print(line.rstrip(), flush=True)
                save(quiet=True)  # a run cut short keeps what it measured
        if proc.wait():
            print(f"{backend}: exit {proc.returncode}", file=sys.stderr)
        save()
    if args.peers:
        run_peers(args, rows, save)
        save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
