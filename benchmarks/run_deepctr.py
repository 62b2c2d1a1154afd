"""DeepCTR (TensorFlow, tf-keras 2): ``python -m benchmarks.run_deepctr OUT.json BATCH WARMUP STEPS``
in the deepctr venv. Step: ``tf.function(jit_compile=True)`` around forward, ``loss =
mean(out**2)``, ``GradientTape`` and Adam; a layer XLA cannot compile falls back to
``tf.function`` without XLA, and the row says so.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # DeepCTR is written for tf.keras 2

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import common as C  # noqa: E402


def build(name, b):
    from deepctr.layers import core
    from deepctr.layers import interaction as I
    from deepctr.layers import sequence as S

    rng = np.random.default_rng(0)
    flat = [rng.standard_normal((b, C.D)).astype("float32")]
    fields = [rng.standard_normal((b, C.F, C.E)).astype("float32")]
    seq = [rng.standard_normal((b, 1, C.E)).astype("float32"),
           rng.standard_normal((b, C.L, C.E)).astype("float32"), np.full((b, 1), C.L, "int32")]
    if name == "AutoInt":
        stack = [I.InteractingLayer(C.E, head_num=1, use_res=False) for _ in range(C.LAYERS)]

        def fn(x):
            for layer in stack:
                x = layer(x)
            return x
        return fn, fields
    if name == "DIEN-AUGRU":
        gru = S.DynamicGRU(C.E, gru_type="AUGRU", return_sequence=False)
        score = rng.random((b, C.L, 1)).astype("float32")
        return (lambda k, n, s: gru([k, n, s])), [seq[1], seq[2], score]
    table = {
        "MLP": (lambda: core.DNN(C.MLP_UNITS, "relu"), flat),
        "DCN-vector": (lambda: I.CrossNet(C.LAYERS, "vector"), flat),
        "DCN-matrix": (lambda: I.CrossNet(C.LAYERS, "matrix"), flat),
        "DCN-mixed": (lambda: I.CrossNetMix(C.LOW_RANK, C.EXPERTS, C.LAYERS), flat),
        "CIN": (lambda: I.CIN(C.CIN_UNITS, "relu", split_half=False), fields),
        "SeNet": (lambda: I.SENETLayer(reduction_ratio=C.F // 4), fields),
        "DIN": (lambda: S.AttentionSequencePoolingLayer(C.DIN_UNITS[:-1], "relu"), seq),
    }
    if name not in table:
        raise C.AbsentError(f"DeepCTR has no {name} layer")
    factory, inputs = table[name]
    layer = factory()
    if name == "DIN":
        return (lambda q, k, n: layer([q, k, n])), inputs
    if name == "SeNet":
        return (lambda x: layer(tf.split(x, C.F, axis=1))), inputs
    return layer, inputs


def measure(name, b, warmup, steps):
    tf.keras.backend.clear_session()
    fn, inputs = build(name, b)
    inputs = [tf.constant(x) for x in inputs]
    tf.function(fn)(*inputs)  # build the weights (DynamicGRU cannot be called eagerly)
    opt = tf.keras.optimizers.Adam(1e-3)

    floats = [x for x in inputs if x.dtype.is_floating]

    def raw():
        with tf.GradientTape() as tape:
            tape.watch(floats)  # input gradients too, as when embeddings feed the layer
            out = fn(*inputs)
            outs = out if isinstance(out, (list, tuple)) else [out]
            loss = tf.add_n([tf.reduce_mean(tf.square(o)) for o in outs])
        vars_ = [v for v in tape.watched_variables() if isinstance(v, tf.Variable)]
        grads = tape.gradient(loss, [*vars_, *floats])
        if vars_:
            opt.apply_gradients(zip(grads[: len(vars_)], vars_))
        # Returned, so the input gradients are computed (a model's embeddings need them).
        return loss, tf.add_n([tf.reduce_sum(g) for g in grads[len(vars_):]])

    mode = "tf.function(jit_compile=True)"
    try:
        step = tf.function(raw, jit_compile=True)
        step()[0].numpy()
    except Exception:  # noqa: BLE001
        mode = "tf.function (XLA failed)"
        step = tf.function(raw)
    res = C.time_steps(lambda: step()[0].numpy(), warmup, steps)
    res["compiled"] = mode
    return res


def main():
    out_path, b, warmup, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    import deepctr
    info = {"peer": "deepctr", "deepctr": deepctr.__version__, "tensorflow": tf.__version__, "batch": b,
            "rows": {}}
    C.measure_rows("deepctr", info, out_path, lambda name: measure(name, b, warmup, steps))


if __name__ == "__main__":
    main()
