"""``reclayers compare`` (leaderboard) and ``reclayers export`` (SavedModel / ONNX)."""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

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
