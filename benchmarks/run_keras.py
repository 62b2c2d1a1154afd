"""One backend's run: reclayers' layers (and keras-rs's, when importable), one training step each.

Run as ``KERAS_BACKEND=<b> python -m benchmarks.run_keras OUT.json BATCH WARMUP STEPS``; the
backend is fixed before Keras is imported. Step: forward, backward and Adam update of the layer,
written as each backend's custom training loop (``lean_step``), the same step the peers run;
Keras's ``train_on_batch`` of a functional model around the layer is timed too, for reference.
Loss: the sum over the layer's outputs of the mean of their squares (no head), as for every peer.

On JAX and TensorFlow the step runs the layer inside a Keras functional model (the compiler
removes the wrapper). On PyTorch, which runs eagerly, the step calls the layer itself, a
``torch.nn.Module`` there, as the peers' steps call their modules: the functional model's graph
walk costs host time every step (0.5 ms of SeNet's 5.8 ms at batch 1024, see
``benchmarks/torch_overhead.py``) that no PyTorch user of the layer pays. The PyTorch process also
keeps JAX and TensorFlow out, as ``reclayers train --backend torch`` does
(``reclayers.cli.engines``), so its peak memory is PyTorch's and Keras's alone, as the peers' is.
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
_THREADS = int(os.environ.get("RECLAYERS_BENCH_THREADS", "0") or 0)
if BACKEND == "jax" and _THREADS > 0 and hasattr(os, "sched_setaffinity"):
    # jaxlib 0.10's CPU client sizes its thread pool from the CPUs it may run on and ignores
    # ``--xla_cpu_multi_thread_eigen=false``: with that flag alone a 2048² matmul ran at 194
    # GFLOP/s (two cores) against 88 with one allowed CPU. Allow it ``--threads`` CPUs.
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:_THREADS]))

if BACKEND == "torch":
    from reclayers.cli.engines import keep_unused_engines_out

    keep_unused_engines_out(BACKEND, os.environ)

import keras  # noqa: E402

from reclayers import layers as R  # noqa: E402


def _flat(outputs):
    outs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    outs = [keras.layers.Flatten()(o) if len(o.shape) > 2 else o for o in outs]
    return outs[0] if len(outs) == 1 else keras.layers.Concatenate()(outs)


def ours(name: str, b: int):
    """``(symbolic inputs, symbolic output, data, call)``: ``call(xs)`` applies the same layer
    to a list of tensors shaped as ``data`` (the form the PyTorch step uses)."""
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
        "GroupInt": (lambda: R.GroupInt(), [(C.E,)] * C.F),
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
    layer = factory()
    half = C.F // 2
    # How the list of inputs becomes the layer's argument.
    arrange = {"GroupInt": lambda xs: [list(xs[:half]), list(xs[half:])], "CAN": list, "SNR": list,
               "DIN": tuple, "DIEN-AUGRU": tuple, "DMR": tuple}.get(name, lambda xs: xs[0])
    ins = [keras.Input(s) for s in shapes]

    def call(xs, training=None):
        return layer(arrange(xs), training=training)

    out = call(ins)
    data = [rng.standard_normal((b, *i.shape[1:])).astype("float32") for i in ins]
    return ins, out, data, call


def keras_rs_case(name: str, b: int):
    import keras_rs  # noqa: F401  (only present in the keras_rs venv)

    if name == "DCN-matrix":
        crosses = [keras_rs.layers.FeatureCross() for _ in range(C.LAYERS)]
    elif name == "DCN-mixed":  # keras-rs has low-rank crosses but no mixture of experts
        raise C.AbsentError("keras-rs FeatureCross has no mixture-of-experts variant")
    else:
        raise C.AbsentError(f"keras-rs has no {name}")

    def call(xs, training=None):
        h = xs[0]
        for cross in crosses:
            h = cross(xs[0], h, training=training)
        return h

    x = keras.Input((C.D,))
    data = [np.random.default_rng(0).standard_normal((b, C.D)).astype("float32")]
    return [x], call([x]), data, call


def _squared_mean(outputs, ops):
    outs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return sum(ops.mean(ops.square(ops.cast(o, "float32"))) for o in outs)


def lean_step(model, data, call=None):
    """The same training step the peers run, written the way each backend's custom loop is.

    Gradients flow to the weights and to the (float) inputs, as in a model where embeddings feed
    the layer; a weightless layer is timed on its forward and input gradients alone.

    JAX: ``model.stateless_call`` + ``jax.value_and_grad`` + ``optimizer.stateless_apply`` in one
    ``jax.jit`` (Keras's documented JAX loop). TensorFlow: ``GradientTape`` + Keras Adam inside
    ``tf.function(jit_compile=True)`` (plain ``tf.function`` when XLA refuses the layer). PyTorch:
    ``zero_grad`` / forward / ``backward`` / ``torch.optim.Adam.step`` on the layer's parameters,
    eager, the layer called directly (``call``; the functional ``model`` when ``call`` is None),
    as the peers call their modules (``torch.compile`` of the functional model with
    ``RECLAYERS_BENCH_TORCH_COMPILE=1``).
    Returns ``(step, mode)``; ``step()`` blocks until the update is done.
    """
    ops = keras.ops
    if BACKEND == "jax":
        import jax

        opt = keras.optimizers.Adam(1e-3)
        opt.build(model.trainable_variables)
        state = [[v.value for v in model.trainable_variables],
                 [v.value for v in model.non_trainable_variables],
                 [v.value for v in opt.variables]]

        def loss_fn(trainable, non_trainable, x):
            out, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
            return _squared_mean(out, ops), non_trainable

        @jax.jit
        def jit_step(trainable, non_trainable, opt_vars, x):
            (loss, non_trainable), (grads, x_grads) = jax.value_and_grad(
                loss_fn, argnums=(0, 2), has_aux=True)(trainable, non_trainable, x)
            trainable, opt_vars = opt.stateless_apply(opt_vars, grads, trainable)
            # Returned, so the input gradients are computed (a model's embeddings need them).
            x_grad_sum = sum(ops.sum(g) for g in x_grads)
            return loss, x_grad_sum, trainable, non_trainable, opt_vars

        x = [jax.numpy.asarray(d) for d in data]

        def step():
            loss, _, *state[:] = jit_step(*state, x)
            return float(loss)  # one XLA program: its outputs are ready together

        return step, "jax.jit"
    if BACKEND == "tensorflow":
        import tensorflow as tf

        opt = keras.optimizers.Adam(1e-3)
        opt.build(model.trainable_variables)
        x = [tf.constant(d) for d in data]

        def raw(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = _squared_mean(model(x, training=True), ops)
            weights = model.trainable_variables
            grads = tape.gradient(loss, [*weights, *x])
            if weights:
                opt.apply(grads[: len(weights)], weights)
            # Returned, so the input gradients are computed (a model's embeddings need them).
            return loss, tf.add_n([tf.reduce_sum(g) for g in grads[len(weights):]])

        try:
            compiled = tf.function(raw, jit_compile=True)
            compiled(x)
            mode = "tf.function(jit_compile=True)"
        except Exception as exc:  # noqa: BLE001
            # XLA refused the step: fall back to a plain tf.function and say so in the row.
            compiled = tf.function(raw)
            mode = f"tf.function without XLA (XLA failed: {C.error_text(exc)[:160]})"
        return (lambda: float(compiled(x)[0])), mode
    import torch

    params = [v.value for v in model.trainable_variables]
    opt = torch.optim.Adam(params, lr=1e-3) if params else None
    # Inputs require gradients: in a model the layer's inputs come from trainable embeddings.
    x = [torch.as_tensor(d).requires_grad_(True) for d in data]
    fwd, mode = ((model, "eager, inside a functional keras.Model") if call is None else
                 (call, "eager, the layer called directly as the peers' modules are; JAX and "
                        "TensorFlow not imported"))
    if os.environ.get("RECLAYERS_BENCH_TORCH_COMPILE") == "1":
        fwd, mode = torch.compile(model), "torch.compile"

    def step():
        if opt is not None:
            opt.zero_grad(set_to_none=True)
        for t in x:
            t.grad = None
        loss = _squared_mean(fwd(x, training=True), ops)
        loss.backward()
        if opt is not None:
            opt.step()
        return loss.item()

    return step, mode


def measure(builder, name, b, warmup, steps):
    keras.utils.clear_session()
    ins, out, data, call = builder(name, b)
    model = keras.Model(ins, _flat(out))
    step, mode = lean_step(model, data, call)
    res = C.time_steps(step, warmup, steps)
    res["compiled"] = mode
    res["params"] = int(model.count_params())
    # Keras's own loop for reference: train_on_batch on NumPy data (its per-call overhead included).
    compiled = BACKEND != "torch" or os.environ.get("RECLAYERS_BENCH_TORCH_COMPILE") == "1"
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse",
                  jit_compile=compiled and not mode.startswith("tf.function without"))
    y = np.zeros((b, model.output.shape[-1]), "float32")
    try:
        tob = C.time_steps(lambda: model.train_on_batch(data, y), 1, max(3, steps // 2), budget_s=10.0)
        res["train_on_batch_ms"] = round(tob["median_s"] * 1e3, 2)
    except Exception as exc:  # noqa: BLE001
        res["train_on_batch_ms"] = C.error_text(exc)
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
