"""One backend's run: reclayers' layers (and keras-rs's, when importable) through a Keras model.

Run as ``KERAS_BACKEND=<b> python -m benchmarks.run_keras OUT.json BATCH WARMUP STEPS``; the
backend is fixed before Keras is imported. Step: ``model.train_on_batch`` (forward, backward,
Adam update) on a model compiled with ``jit_compile=True`` on JAX (``jax.jit``) and TensorFlow
(XLA); on PyTorch ``jit_compile=False`` (eager) unless ``RECLAYERS_BENCH_TORCH_COMPILE=1``.
Loss: mean of the squared outputs (no head), the same for every peer.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time

import numpy as np

from benchmarks import common as C

BACKEND = os.environ["KERAS_BACKEND"]

import keras  # noqa: E402

from reclayers import layers as R  # noqa: E402


def _flat(outputs):
    outs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    outs = [keras.layers.Flatten()(o) if len(o.shape) > 2 else o for o in outs]
    return outs[0] if len(outs) == 1 else keras.layers.Concatenate()(outs)


def ours(name: str, b: int):
    """(layer factory, list of input shapes without batch, how the layer is called)."""
    rng = np.random.default_rng(0)
    seq3 = [(C.E,), (C.L, C.E)]
    table = {
        "MLP": (lambda: R.MLP(C.MLP_UNITS, activations="relu"), [(C.D,)]),
        "DCN-vector": (lambda: R.DCN(layer_num=C.LAYERS, dcn_type="vector"), [(C.D,)]),
        "DCN-matrix": (lambda: R.DCN(layer_num=C.LAYERS, dcn_type="matrix"), [(C.D,)]),
        "DCN-mixed": (lambda: R.DCN(layer_num=C.LAYERS, dcn_type="mixed", num_experts=C.EXPERTS,
                                    low_rank=C.LOW_RANK), [(C.D,)]),
        "CIN": (lambda: R.CIN(hidden_uints=C.CIN_UNITS, activation="relu"), [(C.F, C.E)]),
        "AutoInt": (lambda: R.AutoInt(layer_num=C.LAYERS), [(C.F, C.E)]),
        "SeNet": (lambda: R.SeNet(num_feature=C.F, cmp_dim=4), [(C.F, C.E)]),
        "GroupInt": (lambda: R.GroupInt(), "groupint"),
        "AllInt": (lambda: R.AllInt(cmp_dim=8), [(C.F, C.E)]),
        "CDot": (lambda: R.CDot(project_dim=8, compress_units=[64]), [(C.F, C.E)]),
        "CAN": (lambda: R.CAN(layer_num=2), [(8, C.E), (2 * (C.E * C.E + C.E),)]),
        "DIN": (lambda: R.DIN(C.DIN_UNITS, activation="relu"), seq3),
        "DIEN-AUGRU": (lambda: R.DIEN(C.E, att_type="AUGRU"), seq3),
        "DMR": (lambda: R.DMR_U2I(32, activation="relu"), seq3),
        "MMoE": (lambda: R.MMoE(num_tasks=C.MMOE_TASKS, expert_output_dims=C.MMOE_UNITS,
                                expert_activations="relu", num_experts=C.EXPERTS), [(C.D,)]),
        "SNR": (lambda: R.SNR(num_out_subnet=3, out_subnet_dim=64, snr_type="trans"), [(128,)] * 4),
    }
    factory, shapes = table[name]
    if shapes == "groupint":
        half = C.F // 2
        ins = [keras.Input((C.E,)) for _ in range(C.F)]
        out = factory()([ins[:half], ins[half:]])
    else:
        ins = [keras.Input(s) for s in shapes]
        layer = factory()
        if name in ("DIN", "DIEN-AUGRU", "DMR", "CAN") or name == "SNR":
            out = layer(list(ins) if name in ("CAN", "SNR") else tuple(ins))
        else:
            out = layer(ins[0])
    data = [rng.standard_normal((b, *i.shape[1:])).astype("float32") for i in ins]
    return ins, out, data


def keras_rs_case(name: str, b: int):
    import keras_rs  # noqa: F401  (only present in the keras_rs venv)

    x = keras.Input((C.D,))
    h = x
    if name == "DCN-matrix":
        for _ in range(C.LAYERS):
            h = keras_rs.layers.FeatureCross()(x, h)
    elif name == "DCN-mixed":  # keras-rs has low-rank crosses but no mixture of experts
        raise C.AbsentError("keras-rs FeatureCross has no mixture-of-experts variant")
    else:
        raise C.AbsentError(f"keras-rs has no {name}")
    data = [np.random.default_rng(0).standard_normal((b, C.D)).astype("float32")]
    return [x], h, data


def measure(builder, name, b, warmup, steps):
    keras.utils.clear_session()
    ins, out, data = builder(name, b)
    model = keras.Model(ins, _flat(out))
    compiled = BACKEND != "torch" or os.environ.get("RECLAYERS_BENCH_TORCH_COMPILE") == "1"
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse", jit_compile=compiled)
    y = np.zeros((b, model.output.shape[-1]), "float32")
    mode = {"jax": "jax.jit", "tensorflow": "tf.function(jit_compile=True)",
            "torch": "torch.compile" if compiled else "eager"}[BACKEND]
    try:
        model.train_on_batch(data, y)
    except Exception as exc:  # noqa: BLE001
        if BACKEND != "tensorflow":
            raise
        # XLA refused the step: fall back to a plain tf.function and say so in the row.
        mode = f"tf.function without XLA (XLA failed: {C.error_text(exc)[:160]})"
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse", jit_compile=False)
    res = C.time_steps(lambda: model.train_on_batch(data, y), warmup, steps)
    res["compiled"] = mode
    res["params"] = int(model.count_params())
    return res


def matmul_rate(warmup: int, steps: int, n: int = 2048) -> dict:
    a = keras.ops.convert_to_tensor(np.random.default_rng(0).standard_normal((n, n)).astype("float32"))
    if BACKEND == "jax":
        import jax
        f = jax.jit(lambda x: x @ x)
        step = lambda: f(a).block_until_ready()  # noqa: E731
    elif BACKEND == "tensorflow":
        import tensorflow as tf
        f = tf.function(lambda x: tf.matmul(x, x), jit_compile=True)
        step = lambda: f(a).numpy()  # noqa: E731
    else:
        import torch
        step = lambda: torch.matmul(a, a)  # noqa: E731
    res = C.time_steps(step, warmup, steps)
    # The machine's rate is the best of the repeats (least disturbed by other load); the median too.
    res["gflops"] = 2 * n**3 / res["min_s"] / 1e9
    res["gflops_median"] = 2 * n**3 / res["median_s"] / 1e9
    res["n"] = n
    return res


def main() -> None:
    out_path, b, warmup, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    only = [s for s in os.environ.get("RECLAYERS_BENCH_ONLY", "").split(",") if s]
    info = {"backend": BACKEND, "keras": keras.__version__, "python": platform.python_version(),
            "batch": b, "rows": {}}
    try:
        import keras_rs
        info["keras_rs"] = keras_rs.__version__
        have_rs = True
    except Exception as exc:  # noqa: BLE001
        info["keras_rs"] = C.error_text(exc)
        have_rs = False
    info["matmul"] = matmul_rate(2, max(steps, 20))
    for name in C.LAYER_NAMES:
        if only and name not in only:
            continue
        row = {}
        for who, builder in (("reclayers", ours), ("keras-rs", keras_rs_case)):
            if who == "keras-rs" and not have_rs:
                continue
            t = time.perf_counter()
            try:
                row[who] = measure(builder, name, b, warmup, steps)
            except C.AbsentError as exc:
                row[who] = {"absent": str(exc)}
            except Exception as exc:  # noqa: BLE001
                row[who] = {"error": C.error_text(exc)}
            print(f"[{BACKEND}] {name} {who}: {row[who]} ({time.perf_counter() - t:.1f}s)", flush=True)
        info["rows"][name] = row
        with open(out_path, "w") as fh:
            json.dump(info, fh, indent=1)


if __name__ == "__main__":
    main()
