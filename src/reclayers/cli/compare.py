"""``reclayers compare`` (leaderboard) and ``reclayers export`` (SavedModel / ONNX)."""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np

from reclayers.cli.datasets import UsageError


def leaderboard_markdown(rows: list, bayes: float | None) -> str:
    head = "| rank | model | test AUC | test logloss | parameters | train s | examples/s |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        lines.append(
            f"| {i} | {r['model']} | {r['auc']:.4f} | {r['logloss']:.4f} | {r['parameters']} | "
            f"{r['train_seconds']:.1f} | {r['examples_per_second']:.0f} |"
        )
    if bayes is not None:
        lines.append(f"| — | Bayes-optimal (true probabilities) | {bayes:.4f} | | | | |")
    return "\n".join(lines)


def leaderboard_png(rows: list, bayes: float | None, path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(rows), 3.8))
    names = [r["model"] for r in rows]
    aucs = [r["auc"] for r in rows]
    ax.bar(names, aucs, color="tab:blue")
    lo = min(aucs + ([bayes] if bayes else [])) - 0.02
    hi = max(aucs + ([bayes] if bayes else [])) + 0.01
    if bayes is not None:
        ax.axhline(bayes, color="tab:red", linestyle="--", label=f"Bayes-optimal {bayes:.4f}")
        ax.legend(loc="lower right")
    ax.set_ylim(max(0.0, lo), min(1.0, hi))
    ax.set_ylabel("test AUC")
    ax.set_title(title)
    for i, a in enumerate(aucs):
        ax.text(i, a, f"{a:.3f}", ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def compare(args: argparse.Namespace) -> int:
    from reclayers import models
    from reclayers.cli.train import train_run

    names = [n for n in args.models.split(",") if n.strip()]
    if not names:
        raise UsageError(f"--models must list model names separated by commas; got {args.models!r}")
    try:
        specs = [models.MODELS[models.resolve_name(n)] for n in names]
    except ValueError as e:
        raise UsageError(f"--models: {e}") from e
    out = Path(args.run_dir) / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    rows, bayes = [], None
    for spec in specs:
        a = copy.copy(args)
        a.model, a.run_dir, a.resume = spec.name, str(out), None
        # one data set for all: add a history / second label when any compared model needs it
        a._sequence = any(s.needs_sequence for s in specs)
        a._multi_task = any(s.multi_task for s in specs)
        print(f"=== {spec.name}")
        code, m = train_run(a)
        if code != 0:
            return code
        first = next(iter(m["test"]))
        rows.append(
            {
                "model": spec.name,
                "auc": m["test"][first]["auc"],
                "logloss": m["test"][first]["logloss"],
                "parameters": m["parameters"],
                "train_seconds": m["train_seconds"],
                "examples_per_second": m["examples_per_second"],
                "epochs": m["epochs"],
                "run_dir": m["run_dir"],
            }
        )
        bayes = m.get("bayes_optimal_auc", {}).get(first, bayes)
    rows.sort(key=lambda r: -r["auc"] if r["auc"] == r["auc"] else 1.0)
    md = leaderboard_markdown(rows, bayes)
    import keras

    epochs = sorted({r["epochs"] for r in rows})
    # Each model's own epoch count (a --config may set it per run): one figure only when shared.
    epoch_text = f"{epochs[0]} epochs" if len(epochs) == 1 else "epochs " + "/".join(map(str, epochs))
    title = f"{args.data} · {keras.backend.backend()} · {epoch_text}"
    (out / "leaderboard.md").write_text(f"# Leaderboard: {title}\n\n{md}\n")
    (out / "leaderboard.json").write_text(json.dumps({"rows": rows, "bayes_optimal_auc": bayes}, indent=2))
    png = leaderboard_png(rows, bayes, out / "leaderboard.png", title)
    print()
    print(md)
    print(
        f"leaderboard: {out / 'leaderboard.md'}"
        + (f" and {out / 'leaderboard.png'}" if png else " (no PNG: matplotlib missing)")
    )
    return 0


# --- export ----------------------------------------------------------------------------------------
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


def export(args: argparse.Namespace) -> int:
    import keras

    from reclayers.cli.train import _load_model, load_run
    from reclayers.data import Schema

    run = Path(args.run_dir)
    load_run(run)
    path = run / "best.keras" if (run / "best.keras").exists() else run / "model.keras"
    if not path.exists():
        raise UsageError(f"RUN_DIR {run} has no trained model; got an unfinished run")
    model = _load_model(path)
    schema = Schema.load(run / "schema.json")
    batch = sample_batch(schema)
    expected = {k: np.asarray(v).reshape(-1) for k, v in model.predict(batch, verbose=0).items()}
    backend = keras.backend.backend()
    if args.format == "saved_model":
        target = Path(args.out or run / "saved_model")
        try:
            model.export(str(target), format="tf_saved_model", verbose=False)
        except Exception as e:  # noqa: BLE001 - report the backend limitation in one line
            print(
                f"reclayers export: saved_model is not supported for this model on backend {backend}: "
                f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            )
            return 1
        got = _run_saved_model(target, batch)
    else:
        target = Path(args.out or run / "model.onnx")
        try:
            model.export(str(target), format="onnx", verbose=False)
        except Exception as e:  # noqa: BLE001
            print(
                f"reclayers export: onnx is not supported for this model on backend {backend}: "
                f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            )
            return 1
        got = _run_onnx(target, batch, list(expected))
    worst = max(float(np.max(np.abs(expected[k] - got[k]))) for k in expected)
    ok = worst <= 1e-4
    print(
        f"exported {args.format} to {target} (backend {backend}); max |exported - keras| = {worst:.2e} "
        f"-> {'OK' if ok else 'MISMATCH'}"
    )
    return 0 if ok else 1


def _run_saved_model(path: Path, batch: dict) -> dict:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    out = loaded.serve({k: tf.constant(v) for k, v in batch.items()})
    if not isinstance(out, dict):
        out = {"output": out}
    return {k: np.asarray(v).reshape(-1) for k, v in out.items()}


def _run_onnx(path: Path, batch: dict, labels: list) -> dict:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {}
    for inp in sess.get_inputs():
        key = inp.name if inp.name in batch else next(k for k in batch if inp.name.startswith(k))
        feeds[inp.name] = batch[key]
    outs = sess.run(None, feeds)
    names = [o.name for o in sess.get_outputs()]
    result = {}
    for lab in labels:
        j = names.index(lab) if lab in names else labels.index(lab)
        result[lab] = np.asarray(outs[j]).reshape(-1)
    return result
