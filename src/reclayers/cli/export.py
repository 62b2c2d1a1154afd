"""``reclayers export RUN_DIR --format saved_model|onnx [--with-preprocessing]``.

=================  ======================  =======================================================
format             backends                outputs
=================  ======================  =======================================================
``saved_model``    jax, tensorflow         ``serving_default`` returns ``{label: probability}``
``onnx``           torch                   one graph output per label, named after it
=================  ======================  =======================================================

A run's ``.keras`` model loads on any backend, so ``--backend`` picks the exporter whatever the run
was trained on. Every other pair, and ``--with-preprocessing`` with ONNX (string inputs and CRC32
hashing need TensorFlow ops), stops with one line (exit 2) before anything is loaded. After
writing, the export is run on a batch and compared with the Keras model (exit 1 on a mismatch);
with ``--with-preprocessing`` the batch is raw rows of the run's data, encoded by the run's
preprocessor for Keras and fed raw to the serving model.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np

from reclayers.cli.datasets import UsageError

#: The backends each format is exported from.
SUPPORTED = {"saved_model": ("jax", "tensorflow"), "onnx": ("torch",)}
_NEEDS = {"saved_model": ("tensorflow",), "onnx": ("onnx", "onnxruntime")}
TOLERANCE = 1e-4


def check_request(args: argparse.Namespace, backend: str) -> Path:
    """Everything that can be refused before Keras is loaded; returns the checkpoint path."""
    fmt = args.format
    if backend not in SUPPORTED[fmt]:
        other = next(f for f, b in SUPPORTED.items() if backend in b) if any(
            backend in b for b in SUPPORTED.values()) else None
        raise UsageError(
            f"--format {fmt} is exported from backend {' or '.join(SUPPORTED[fmt])}; got backend {backend}"
            f" (a run's model loads on any backend: add --backend {SUPPORTED[fmt][0]}"
            + (f", or use --format {other}" if other else "") + ")"
        )
    if getattr(args, "with_preprocessing", False) and fmt != "saved_model":
        raise UsageError(
            f"--with-preprocessing writes a TensorFlow SavedModel (string inputs, vocabulary tables and "
            f"CRC32 hashing in the graph); got --format {fmt} (use --format saved_model --backend jax "
            "or tensorflow)"
        )
    missing = [m for m in _NEEDS[fmt] if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"--format {fmt} needs the package(s) {', '.join(missing)}; got them not installed "
                         f"(pip install {' '.join(missing)})")
    run = Path(args.run_dir)
    if not (run / "config.json").exists():
        raise UsageError(f"RUN_DIR must be a reclayers run directory (with config.json); got {str(run)!r}")
    path = run / "best.keras" if (run / "best.keras").exists() else run / "model.keras"
    if not path.exists():
        raise UsageError(f"RUN_DIR {run} has no trained model (best.keras/model.keras); "
                         "got an unfinished run")
    if getattr(args, "with_preprocessing", False) and not (run / "preprocessor.json").exists():
        raise UsageError(f"--with-preprocessing needs RUN_DIR/preprocessor.json; got none in {run}")
    return path


def sample_batch(schema, n: int = 16, seed: int = 0) -> dict:
    """A random valid feature batch for ``schema`` (ids within each table, masks, floats)."""
    rng = np.random.default_rng(seed)
    out = {}
    for f in schema.features:
        if f.kind == "dense":
            out[f.name] = (
                rng.integers(1, f.num_bins + 1, n).astype("int32")
                if f.num_bins
                else rng.normal(size=n).astype("float32")
            )
        elif f.kind == "categorical":
            out[f.name] = rng.integers(1, f.num_buckets, n).astype("int32")
        else:
            lengths = rng.integers(0, f.max_len + 1, n)
            mask = np.arange(f.max_len)[None, :] < lengths[:, None]
            out[f.name] = np.where(mask, rng.integers(1, f.num_buckets, (n, f.max_len)), 0).astype("int32")
            out[f.name + "_mask"] = mask
    return out


def raw_rows(run: Path, cfg: dict, preprocessor, n: int = 256) -> dict:
    """Up to ``n`` raw rows of the run's data (the first chunk of its file, or its synthetic rows)."""
    from reclayers import data
    from reclayers.cli.datasets import parse_spec, source_for

    fmt, path = parse_spec(cfg["data"])
    if fmt == "synthetic":
        kw = dict(cfg.get("data_info", {}).get("synthetic") or {})
        chunk = data.make_synthetic(**{**kw, "n_rows": n}).raw
    else:
        chunk = next(iter(source_for(fmt, path).chunks()))
    rows = min(n, len(next(iter(chunk.values()))))
    return {k: v[:rows] for k, v in chunk.items()}


def export(args: argparse.Namespace) -> int:
    from reclayers.cli.backend import keras_backend

    backend = keras_backend(args.backend)
    path = check_request(args, backend)  # refusals come before Keras and the engines load
    import keras

    from reclayers.cli.train import _load_model, load_run
    from reclayers.data import Preprocessor, Schema

    assert keras.backend.backend() == backend, (keras.backend.backend(), backend)
    run = Path(args.run_dir)
    model = _load_model(path)
    labels = [lab.name for lab in Schema.load(run / "schema.json").labels]
    if args.with_preprocessing:
        from reclayers.models.serving import export_serving, load_serving, serving_inputs

        pre = Preprocessor.load(run / "preprocessor.json")
        chunk = raw_rows(run, load_run(run), pre)
        features, _ = pre.transform(chunk)
        expected = _keras(model, features)
        target = export_serving(model, pre, args.out or run / "serving")
        got = load_serving(target)(**serving_inputs(pre, chunk))
        what = f"raw rows of {load_run(run)['data']}"
    else:
        batch = sample_batch(Schema.load(run / "schema.json"))
        expected = _keras(model, batch)
        what = "a sample batch"
        if args.format == "saved_model":
            target = Path(args.out or run / "saved_model")
            model.export(str(target), format="tf_saved_model", verbose=False)
            got = _run_saved_model(target, batch)
        else:
            target = Path(args.out or run / "model.onnx")
            model.export(str(target), format="onnx", verbose=False)
            got = _name_onnx_outputs(target, batch, expected)
    worst = max(float(np.max(np.abs(expected[k] - np.asarray(got[k]).reshape(-1)))) for k in labels)
    ok = worst <= TOLERANCE
    print(
        f"exported {args.format}{' with preprocessing' if args.with_preprocessing else ''} to {target} "
        f"(backend {backend}; outputs {', '.join(labels)}); on {what} max |exported - keras| = {worst:.2e} "
        f"-> {'OK' if ok else 'MISMATCH'}"
    )
    return 0 if ok else 1


def _keras(model, batch: dict) -> dict:
    return {k: np.asarray(v).reshape(-1) for k, v in model.predict(batch, verbose=0).items()}


def _run_saved_model(path: Path, batch: dict) -> dict:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    out = loaded.serve({k: tf.constant(v) for k, v in batch.items()})
    if not isinstance(out, dict):
        out = {"output": out}
    return {k: np.asarray(v).reshape(-1) for k, v in out.items()}


def _name_onnx_outputs(path: Path, batch: dict, expected: dict) -> dict:
    """Renames the ONNX graph outputs after the labels (matched on ``batch``); returns their values."""
    import onnx
    import onnxruntime as ort

    def run():
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds = {}
        for inp in sess.get_inputs():
            key = inp.name if inp.name in batch else next(k for k in batch if inp.name.startswith(k))
            feeds[inp.name] = batch[key]
        names = [o.name for o in sess.get_outputs()]
        return dict(zip(names, (np.asarray(o).reshape(-1) for o in sess.run(None, feeds))))

    outs = run()
    labels = sorted(expected)  # Keras flattens a dict of outputs in key order
    if len(outs) != len(labels):
        raise RuntimeError(f"ONNX export of {path}: expected {len(labels)} outputs; got {len(outs)}")
    # each output goes to the label it reproduces (the key order when predictions cannot tell them apart)
    closest = {o: min(labels, key=lambda lab: float(np.max(np.abs(v - expected[lab]))))
               for o, v in outs.items()}
    rename = closest if len(set(closest.values())) == len(labels) else dict(zip(outs, labels))
    graph = onnx.load(str(path))
    for node in graph.graph.node:
        node.output[:] = [rename.get(o, o) for o in node.output]
        node.input[:] = [rename.get(i, i) for i in node.input]
    for out in graph.graph.output:
        out.name = rename.get(out.name, out.name)
    onnx.save(graph, str(path))
    return run()
