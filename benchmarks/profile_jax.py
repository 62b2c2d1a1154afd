"""Where a layer's JAX training step spends its time: XLA ops from a ``jax.profiler`` trace.

``python -m benchmarks.profile_jax LAYER [BATCH] [STEPS]`` (``PYTHONPATH=src:.``, e.g. ``DIN 1024``)
builds the per-layer benchmark's model (``benchmarks/run_keras.py``: same shapes, same lean
``jax.jit`` step with input gradients and Adam), runs a few warm-up steps, traces ``STEPS`` steps
(5) with ``jax.profiler.trace`` and prints every XLA op (a fusion, a dot, a YNNPACK fusion) with
its time per step summed over the runtime's threads, its output shape and what it computes (the
``op_name`` JAX recorded for it in the optimised HLO, read from an ``--xla_dump_to`` dump).

``LAYER`` = ``zoo:MODEL:ROWS`` (e.g. ``zoo:deepfm:1000000 4096``) profiles a zoo model's ``fit``
step instead, on the sparse embeddings benchmark's Criteo-shaped data with about ``ROWS`` table
rows and lazy Adam on the tables (``benchmarks/sparse_embeddings.py``); its ops are summed by
what they compute and their shape (52 tables make 52 of every update op).

The trace is read with the ``XSpace`` protobuf that TensorFlow ships
(``tensorflow.tsl.profiler.protobuf.xplane_pb2``), so no profiler UI is needed. Times under a
loaded machine are inflated; the shares between ops are what to read.
"""

from __future__ import annotations

import collections
import glob
import os
import re
import shutil
import sys
import tempfile
import time

DUMP = tempfile.mkdtemp(prefix="reclayers-hlo-")
os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" --xla_dump_to={DUMP} --xla_dump_hlo_as_text"
                           " --xla_dump_hlo_module_re=.*(jit_step|train_step).*").strip()

import jax  # noqa: E402
import keras  # noqa: E402

from benchmarks import run_keras as RK  # noqa: E402


def hlo_ops(dump: str) -> dict:
    """``{op name: (shape, op_name metadata)}`` from the optimised HLO of the jitted step."""
    files = sorted(glob.glob(f"{dump}/*jit_step*cpu_after_optimizations.txt")) or \
        sorted(glob.glob(f"{dump}/*train_step*cpu_after_optimizations.txt"))
    ops = {}
    if not files:
        return ops
    for line in open(files[-1]):
        m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (\S+) ", line)
        if m:
            meta = re.search(r'op_name="([^"]*)"', line)
            ops[m.group(1)] = (m.group(2), meta.group(1) if meta else "")
    return ops


def op_times(trace_dir: str, steps: int) -> collections.Counter:
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)[0]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as fh:
        space.ParseFromString(fh.read())
    total: collections.Counter = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_XLA"):  # the XLA runtime's threads, not Python
                continue
            for ev in line.events:
                name = plane.event_metadata[ev.metadata_id].name
                if "Thunk" not in name:
                    total[name] += ev.duration_ps / 1e9 / steps  # ms per step
    return total


def traced(step, steps: int) -> tuple:
    """``(wall ms, CPU ms per step, XLA op times, HLO ops)`` of ``steps`` calls of ``step`` (already
    compiled) under ``jax.profiler.trace``; removes the trace and the HLO dump afterwards."""
    trace = tempfile.mkdtemp(prefix="reclayers-trace-")
    t, c = time.perf_counter(), time.process_time()
    with jax.profiler.trace(trace):
        for _ in range(steps):
            step()
    wall, cpu = ((time.perf_counter() - t) / steps * 1e3, (time.process_time() - c) / steps * 1e3)
    times, ops = op_times(trace, steps), hlo_ops(DUMP)
    shutil.rmtree(trace, ignore_errors=True)
    shutil.rmtree(DUMP, ignore_errors=True)
    return wall, cpu, times, ops


def profile_zoo(spec: str, batch: int, steps: int) -> None:
    """A zoo model's ``fit`` step (``spec`` = ``zoo:MODEL:ROWS``), ops summed by kind and shape."""
    from benchmarks.sparse_embeddings import make_data, new_model

    _, name, rows = spec.split(":")
    schema, x, y = make_data(int(rows), batch * steps, seed=0)
    model = new_model(name, schema, "lazy_adam")
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)  # compiles
    # one fit over the `steps` batches, counted once per step
    _, cpu, times, ops = traced(
        lambda: model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0), 1)
    cpu, times = cpu / steps, collections.Counter({k: v / steps for k, v in times.items()})
    kinds: collections.Counter = collections.Counter()
    for op, ms in times.items():
        shape, what = ops.get(op, ("", ""))
        kinds[(what.split("/")[-1], shape.split("{")[0])] += ms
    print(f"{spec}, batch {batch}: {cpu:.1f} CPU ms per traced step, XLA ops "
          f"{sum(times.values()):.1f} ms per step summed over threads; load average {os.getloadavg()}")
    for (what, shape), ms in kinds.most_common(int(os.environ.get("TOP", "25"))):
        print(f"{ms:8.2f} ms  {what:32s} {shape}")


def main() -> None:
    layer = sys.argv[1]
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    if layer.startswith("zoo:"):
        profile_zoo(layer, batch, steps)
        return
    keras.utils.set_random_seed(0)
    ins, out, data, _ = RK.ours(layer, batch)
    model = keras.Model(ins, RK._flat(out))
    step, _ = RK.lean_step(model, data)
    for _ in range(3):
        step()
    wall, _, times, ops = traced(step, steps)
    print(f"{layer}, batch {batch}: {wall:.1f} ms per traced step (wall), XLA ops {sum(times.values()):.1f} "
          f"ms per step summed over threads; load average {os.getloadavg()}")
    for name, ms in times.most_common(int(os.environ.get("TOP", "25"))):
        shape, what = ops.get(name, ("", ""))
        print(f"{ms:8.2f} ms  {name:32s} {shape:24s} {what.replace('jit(jit_step)/', '')[:70]}")


if __name__ == "__main__":
    main()
