"""Update-only microbenchmark of the row-wise embedding update: separate slot arrays vs one fused array.

The sparse step of ``lazy_adam`` keeps each table's two moments as two ``[V, D]`` variables, so
every touched row is gathered and scattered at three unrelated places (row, ``m``, ``v``). The
question measured here: does storing a table's slots side by side in one ``[V, 2D]`` array (one
gather and one scatter per row for both moments, split and concatenated around the rule's
arithmetic) make the update faster?

Setup: ``deepfm``'s 52 tables (26 embedding tables ``[V, 16]`` and 26 first-order tables
``[V, 1]``, ``V = total rows / 26`` as in ``benchmarks/sparse_embeddings.py``), ``lazy_adam``,
batch 4096 of that benchmark's Zipf ids (one field per table pair), random row gradients. Only
the table update runs: duplicate summing, gathers, the rule, scatters — on JAX in one jitted
function per arm with the state donated (as ``fit`` does), on PyTorch eagerly
(:func:`reclayers.embedding_optimizers._updated_rows_torch` and ``index_copy_``). The two arms
run in one process, alternating pass by pass over the same batches; the figure is the process's
CPU milliseconds per update (median over passes), wall milliseconds beside it. Both arms start
from the same tables, and after the warm-up update their tables are checked equal. ``--parts``
(JAX) also times pieces of the separate-slot update alone: the duplicate sum, the update without
it, the gathers and scatters without the rule. ``--torch-threads 1``: on a busy 2-core machine
PyTorch's two intra-op threads made single passes of both arms vary from 90 to 2,200 ms per update.

Result (2026-12-06, ``benchmarks/README.md``): no gain where it would matter (fused ÷ separate
1.00 on JAX and 0.97–1.02 on PyTorch at 1M table rows), so the optimizer keeps separate slots.

Run from the repository root (one backend per process; under the bench lock on a shared machine)::

    KERAS_BACKEND=jax python -m benchmarks.sparse_update_layout --sizes 130000,1000000,10000000 --parts
    KERAS_BACKEND=torch python -m benchmarks.sparse_update_layout --torch-threads 1

Appends one JSON row per size to ``benchmarks/results/sparse_update_layout.json`` and rewrites
the markdown table ``sparse_update_layout.md`` from all rows.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.sparse_embeddings import N_CAT, ROOT, make_data

DIMS = [16] * N_CAT + [1] * N_CAT  # deepfm: embedding tables, then first-order tables
#: ``--parts`` (JAX): pieces of the separate-slot update timed alone, to see where its time goes.
PARTS = ("no_dedup", "dedup_only", "gather_scatter_only")


def _fused_rows(rule, table, slot, ids, grads, lr, step):
    """``updated_rows`` with the rule's slots read from one ``[V, Σw]`` array (keras.ops)."""
    from keras import ops

    from reclayers.embedding_optimizers import _updated_small_table, combine_duplicates, gather_rows

    d = table.shape[1]
    if table.shape[0] <= ids.shape[0]:  # the masked whole-table path, as ``updated_rows`` takes it
        rows, new_rows, (m, v) = _updated_small_table(
            rule, table, [slot[:, :d], slot[:, d:]], ids, grads, lr, step, 0.0)
        return rows, new_rows, ops.concatenate([m, v], axis=1)
    rows, summed = combine_duplicates(ids, grads)
    current = gather_rows(table, rows)
    both = gather_rows(slot, rows)
    summed = ops.cast(summed, current.dtype)
    new_rows, (m, v) = rule.update(current, [both[:, :d], both[:, d:]], summed, lr, step)
    return rows, new_rows, ops.concatenate([m, v], axis=1)


def _fused_rows_torch(rule, table, slot, ids, grads, lr, step):
    """``_updated_rows_torch`` with the slots read from one ``[V, Σw]`` tensor."""
    import torch

    rows, inverse = torch.unique(ids.reshape(-1), sorted=True, return_inverse=True)
    summed = torch.zeros((rows.shape[0], grads.shape[-1]), dtype=grads.dtype)
    summed.index_add_(0, inverse, grads)
    current = torch.index_select(table, 0, rows)
    both = torch.index_select(slot, 0, rows)
    d = current.shape[1]
    new_rows, (m, v) = rule.update(current, [both[:, :d], both[:, d:]], summed, lr, step)
    return rows, new_rows, torch.cat([m, v], 1)


def _arms_jax(rule, v, ids, grads, parts=()):
    """``run(arm, step_index)``, ``sync(arm)`` and the tables' difference of the two layouts, JAX:
    jitted updates with donated state; ``parts`` adds arms of :data:`PARTS`."""
    import jax
    import jax.numpy as jnp

    from reclayers.embedding_optimizers import combine_duplicates, updated_rows

    def separate(state, ids, grads, step):
        tables, ms, vs = (list(s) for s in state)
        for i in range(len(tables)):
            rows, new, (m, vv) = updated_rows(rule, tables[i], [ms[i], vs[i]], ids[i], grads[i], 1e-3, step)
            tables[i], ms[i], vs[i] = (tables[i].at[rows].set(new), ms[i].at[rows].set(m),
                                       vs[i].at[rows].set(vv))
        return tables, ms, vs

    def fused(state, ids, grads, step):
        tables, slots = (list(s) for s in state)
        for i in range(len(tables)):
            rows, new, both = _fused_rows(rule, tables[i], slots[i], ids[i], grads[i], 1e-3, step)
            tables[i], slots[i] = tables[i].at[rows].set(new), slots[i].at[rows].set(both)
        return tables, slots

    def part(kind):
        """A piece of ``separate`` alone (timing only; ``no_dedup`` is wrong for repeated ids)."""

        def update(state, ids, grads, step):
            tables, ms, vs = (list(s) for s in state)
            for i in range(len(tables)):
                rows = ids[i]
                if kind == "no_dedup":  # gathers, the rule, scatters on the raw lookups
                    slots = [ms[i][rows], vs[i][rows]]
                    new, (m, vv) = rule.update(tables[i][rows], slots, grads[i], 1e-3, step)
                else:  # gather_scatter_only: the row, m and v gathered and written back, no rule
                    new, m, vv = tables[i][rows] + grads[i], ms[i][rows], vs[i][rows]
                tables[i], ms[i], vs[i] = (tables[i].at[rows].set(new), ms[i].at[rows].set(m),
                                           vs[i].at[rows].set(vv))
            return tables, ms, vs

        return update

    def tables():
        return [jnp.asarray(np.random.default_rng(1).standard_normal((v, d), dtype=np.float32) * 0.01)
                for d in DIMS]

    def separate_state():
        return tables(), [jnp.zeros((v, d)) for d in DIMS], [jnp.zeros((v, d)) for d in DIMS]

    state = {"separate": separate_state(), "fused": (tables(), [jnp.zeros((v, 2 * d)) for d in DIMS])}
    fns = {"separate": jax.jit(separate, donate_argnums=0), "fused": jax.jit(fused, donate_argnums=0)}
    for kind in parts:
        if kind == "dedup_only":  # the duplicate sums alone, returned (no state: a kept-alive
            # write into the donated tables grew with their size, which the sums cannot)
            state[kind], fns[kind] = None, jax.jit(
                lambda state, ids, grads, step: [combine_duplicates(i, g) for i, g in zip(ids, grads)])
        else:
            state[kind], fns[kind] = separate_state(), jax.jit(part(kind), donate_argnums=0)
    ids = [[jnp.asarray(a) for a in s] for s in ids]
    grads = [[jnp.asarray(a) for a in s] for s in grads]
    step = jnp.float32(1.0)

    def run(arm, s):
        state[arm] = fns[arm](state[arm], ids[s], grads[s], step)

    def sync(arm):
        jax.block_until_ready(state[arm])

    def max_diff():
        return max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                   for a, b in zip(state["separate"][0], state["fused"][0]))

    return run, sync, max_diff


def _arms_torch(rule, v, ids, grads):
    """The same for PyTorch: eager updates written in place with ``index_copy_``."""
    import torch

    from reclayers.embedding_optimizers import _updated_rows_torch

    torch.set_grad_enabled(False)

    def tables():
        return [torch.as_tensor(np.random.default_rng(1).standard_normal((v, d), dtype=np.float32) * 0.01)
                for d in DIMS]

    sep_t, sep_m, sep_v = tables(), [torch.zeros((v, d)) for d in DIMS], [torch.zeros((v, d)) for d in DIMS]
    fus_t, fus_s = tables(), [torch.zeros((v, 2 * d)) for d in DIMS]
    ids = [[torch.as_tensor(a).long() for a in s] for s in ids]
    grads = [[torch.as_tensor(a) for a in s] for s in grads]
    step = torch.tensor(1.0)

    def run(arm, s):
        for i in range(len(DIMS)):
            if arm == "separate":
                rows, new, (m, vv) = _updated_rows_torch(
                    rule, sep_t[i], [sep_m[i], sep_v[i]], ids[s][i], grads[s][i], 1e-3, step, 0.0)
                sep_t[i].index_copy_(0, rows, new)
                sep_m[i].index_copy_(0, rows, m)
                sep_v[i].index_copy_(0, rows, vv)
            else:
                rows, new, both = _fused_rows_torch(
                    rule, fus_t[i], fus_s[i], ids[s][i], grads[s][i], 1e-3, step)
                fus_t[i].index_copy_(0, rows, new)
                fus_s[i].index_copy_(0, rows, both)

    def max_diff():
        return max(float((a - b).abs().max()) for a, b in zip(sep_t, fus_t))

    return run, (lambda arm: None), max_diff


def measure(total_rows: int, args) -> dict:
    import keras

    from reclayers.embedding_optimizers import get_rule

    batch, steps = args.batch, args.steps
    _, x, _ = make_data(total_rows, batch * steps, seed=0)
    v = max(2, total_rows // N_CAT)
    ids = [[x[f"C{t % N_CAT + 1}"][s * batch:(s + 1) * batch] for t in range(len(DIMS))]
           for s in range(steps)]
    rng = np.random.default_rng(0)
    grads = [[(rng.standard_normal((batch, d)) * 1e-3).astype("float32") for d in DIMS] for _ in range(steps)]
    rule = get_rule("lazy_adam")
    backend = keras.backend.backend()
    arms = ["separate", "fused"]
    if backend == "jax":
        parts = PARTS if args.parts else ()
        run, sync, max_diff = _arms_jax(rule, v, ids, grads, parts)
        arms += parts
    else:
        run, sync, max_diff = _arms_torch(rule, v, ids, grads)
    for arm in arms:  # compile / warm up, same first update on both layouts
        run(arm, 0)
        sync(arm)
    diff = max_diff()
    cpu: dict = {arm: [] for arm in arms}
    wall: dict = {arm: [] for arm in arms}
    for _ in range(args.passes):
        for arm in arms:
            c0, w0 = time.process_time(), time.perf_counter()
            for s in range(steps):
                run(arm, s)
            sync(arm)
            cpu[arm].append(1e3 * (time.process_time() - c0) / steps)
            wall[arm].append(1e3 * (time.perf_counter() - w0) / steps)
    row = {"backend": backend, "total_rows": total_rows, "rows_per_table": v, "batch": batch,
           "steps": steps, "passes": args.passes, "warmup_max_table_diff": diff,
           "cpu_ms": cpu, "wall_ms": wall, "load_avg": os.getloadavg()[0]}
    if backend == "torch":
        import torch

        row["torch_threads"] = torch.get_num_threads()
    return row


def report(rows: list) -> str:
    def med(values):
        return sorted(values)[len(values) // 2]

    lines = ["| backend | table rows (26 + 26 tables) | rows per table | separate m, v: CPU ms/update | "
             "fused [V, 2D]: CPU ms/update | fused ÷ separate (CPU) | wall ms separate / fused | load |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        s, f = med(r["cpu_ms"]["separate"]), med(r["cpu_ms"]["fused"])
        name = r["backend"] + (f" ({r['torch_threads']} thread{'s' * (r['torch_threads'] != 1)})"
                               if "torch_threads" in r else "")
        lines.append(f"| {name} | {2 * r['total_rows']:,} | {r['rows_per_table']:,} | {s:.1f} | {f:.1f} | "
                     f"{f / s:.3f} | {med(r['wall_ms']['separate']):.1f} / "
                     f"{med(r['wall_ms']['fused']):.1f} | "
                     f"{r['load_avg']:.1f} |")
    parted = [r for r in rows if PARTS[0] in r["cpu_ms"]]
    if parted:
        lines += ["", "Pieces of the separate-slot update timed alone (JAX, `--parts`; CPU ms per update):",
                  "",
                  "| table rows | rows per table | whole update | " + " | ".join(PARTS) + " | load |",
                  "|---:|---:|---:|" + "---:|" * len(PARTS) + "---:|"]
        for r in parted:
            cells = " | ".join(f"{med(r['cpu_ms'][k]):.1f}" for k in PARTS)
            lines.append(f"| {2 * r['total_rows']:,} | {r['rows_per_table']:,} | "
                         f"{med(r['cpu_ms']['separate']):.1f} | {cells} | {r['load_avg']:.1f} |")
    return "\n".join(lines) + "\n\nMedians over the passes; each pass runs one arm over the same batches.\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1000000", help="embedding-table rows in all (comma-separated)")
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--steps", type=int, default=10, help="updates per pass (distinct batches)")
    p.add_argument("--passes", type=int, default=10, help="timed passes per arm, alternating")
    p.add_argument("--parts", action="store_true", help="JAX: also time pieces of the update alone "
                   "(no duplicate summing; the duplicate summing only; gathers and scatters only)")
    p.add_argument("--torch-threads", type=int, default=0, help="torch.set_num_threads (0: default)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--name", default="sparse_update_layout")
    args = p.parse_args(argv)
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = Path(args.out) / f"{args.name}.json"
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    for size in [int(s) for s in args.sizes.split(",")]:
        row = measure(size, args)
        print(json.dumps(row), flush=True)
        rows.append(row)
        path.write_text(json.dumps({"rows": rows}, indent=1))
        (Path(args.out) / f"{args.name}.md").write_text(report(rows))
    print(report(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
