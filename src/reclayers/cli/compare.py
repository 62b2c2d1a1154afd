"""``reclayers compare``: train several zoo models on the same data and rank them.

``--config FILE`` holds the keys shared by every model (run keys such as ``epochs``, and model keys
every compared model has) and, under ``"models"``, one section per model::

    {"epochs": 3, "learning_rate": 0.003,
     "models": {"dcn_v2": {"cross_layers": 2}, "mlp": {"hidden_units": [256, 128]}}}

Every model's options are resolved and checked before the first one trains: a shared key or a
``--set KEY=VALUE`` that some compared model does not have is refused (it belongs in that model's
section). A model that fails while training is reported in the leaderboard with its error and the
others still run (exit code 1 when any failed).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import traceback
from pathlib import Path

from reclayers.cli.datasets import UsageError
from reclayers.cli.train import read_config

SECTIONS = "models"


def plan(args: argparse.Namespace, specs: list) -> dict:
    """``{model: flat config}`` for every compared model: shared keys, then its section, then
    ``--set``; refuses options that do not apply to a model. Raises ``UsageError``."""
    from reclayers import models

    config = read_config(getattr(args, "config", None))
    sections = config.pop(SECTIONS, {}) or {}
    if not isinstance(sections, dict) or not all(isinstance(v, dict) for v in sections.values()):
        raise UsageError(f"--config: {SECTIONS!r} must map model names to mappings of keys; got {sections!r}")
    names = {}
    for key in sections:
        try:
            names[key] = models.resolve_name(key)
        except ValueError as e:
            raise UsageError(f"--config: {SECTIONS!r} names a model that is not in the zoo: {e}") from e
    compared = [s.name for s in specs]
    keys = {s.name: set(models.default_config(s.name)) for s in specs}
    overrides = [item.partition("=")[0] for item in (getattr(args, "set", None) or [])]
    for what, candidates in (("--config key", config), ("--set", overrides)):
        for key in candidates:
            have = [m for m in compared if key in keys[m]]
            if have and len(have) < len(compared):
                lacking = [m for m in compared if key not in keys[m]]
                raise UsageError(
                    f"{what} {key!r} applies to {', '.join(have)} but not to {', '.join(lacking)}; "
                    f"got it for every model (put it in a per-model section of --config: "
                    f'{{"{SECTIONS}": {{"{have[0]}": {{"{key}": ...}}}}}})'
                )
    plans = {}
    for spec in specs:
        section = next((v for k, v in sections.items() if names[k] == spec.name), {})
        plans[spec.name] = {**config, **section}
    return plans


def _model_args(args: argparse.Namespace, spec, cfg: dict, folder: Path, specs: list) -> argparse.Namespace:
    """The ``train`` arguments of one compared model (its resolved config in a file of its own)."""
    path = folder / f"config-{spec.name}.json"
    path.write_text(json.dumps(cfg, indent=2))
    a = copy.copy(args)
    a.model, a.run_dir, a.resume, a.config = spec.name, str(folder), None, str(path)
    # one data set for all: add a history / second label when any compared model needs it
    a._sequence = any(s.needs_sequence for s in specs)
    a._multi_task = any(s.multi_task for s in specs)
    return a


def _defined(value) -> bool:
    """An AUC that exists (not ``None``, not ``NaN``: one class only in the test split)."""
    return value is not None and value == value


def _num(value, fmt: str = ".4f") -> str:
    return format(value, fmt) if _defined(value) else "undefined"


def leaderboard_markdown(rows: list, bayes: float | None, failed: list = ()) -> str:
    """The leaderboard as a Markdown table: ranked rows, then the Bayes-optimal AUC, then failures.

    Args:
        rows: one dict per trained model (``model``, ``auc``, ``logloss``, ``parameters``,
            ``train_seconds``, ``examples_per_second``), best first.
        bayes: the Bayes-optimal test AUC (synthetic data), or ``None``.
        failed: ``{"model", "error"}`` of the models that failed. Default none.

    Returns:
        The table text.

    Example:

    >>> print(leaderboard_markdown([], None, [{"model": "dcn", "error": "ValueError: boom"}]))
    | rank | model | test AUC | test logloss | parameters | train s | examples/s |
    |---|---|---|---|---|---|---|
    | — | dcn | failed: ValueError: boom | | | | |
    """
    head = "| rank | model | test AUC | test logloss | parameters | train s | examples/s |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        lines.append(
            f"| {i} | {r['model']} | {_num(r['auc'])} | {_num(r['logloss'])} | {r['parameters']} | "
            f"{r['train_seconds']:.1f} | {r['examples_per_second']:.0f} |"
        )
    if bayes is not None:
        lines.append(f"| — | Bayes-optimal (true probabilities) | {bayes:.4f} | | | | |")
    for f in failed:
        lines.append(f"| — | {f['model']} | failed: {f['error'].replace('|', '/')} | | | | |")
    return "\n".join(lines)


def leaderboard_png(rows: list, bayes: float | None, path: Path, title: str, failed: list = ()) -> bool:
    """A horizontal bar chart of test AUC, best on top, legible from 2 to 20 models.

    Bars are zoomed on the range of the AUCs (their differences are what matters), each labelled
    with its value; the Bayes-optimal AUC is a dashed line; failed models are listed under the
    chart. Returns ``False`` without matplotlib.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    shown = [r for r in rows if _defined(r["auc"])]
    names = [r["model"] for r in shown][::-1]  # barh draws bottom-up: best on top
    aucs = [r["auc"] for r in shown][::-1]
    height = 1.3 + 0.32 * max(len(shown), 3) + (0.25 if failed else 0)
    fig, ax = plt.subplots(figsize=(7.5, height))
    values = aucs + ([bayes] if bayes is not None else [])
    lo = min(values, default=0.5)
    hi = max(values, default=1.0)
    pad = max(0.01, 0.08 * (hi - lo))
    left = max(0.0, lo - 3 * pad)
    ax.barh(range(len(aucs)), [a - left for a in aucs], left=left, color="tab:blue", height=0.7)
    for i, a in enumerate(aucs):
        ax.text(a + pad * 0.15, i, f"{a:.4f}", va="center", fontsize=8)
    ax.set_yticks(range(len(aucs)), names, fontsize=9 if len(aucs) <= 12 else 8)
    ax.set_xlim(left, min(1.0, hi + 2 * pad) if hi + 2 * pad <= 1.0 else hi + 2 * pad)
    ax.set_ylim(-0.6, max(len(aucs), 1) - 0.4)
    if bayes is not None:
        ax.axvline(bayes, color="tab:red", linestyle="--", label=f"Bayes-optimal {bayes:.4f}")
        ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    ax.set_xlabel("test AUC")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    if failed:
        fig.text(0.01, 0.01, "failed: " + ", ".join(f["model"] for f in failed), fontsize=8, color="tab:red")
    fig.tight_layout(rect=(0, 0.04 if failed else 0, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def compare(args: argparse.Namespace) -> int:
    import tempfile

    from reclayers import models
    from reclayers.cli.train import run_config, train_run

    names = [n.strip() for n in args.models.split(",") if n.strip()]
    if not names:
        raise UsageError(f"--models must list model names separated by commas; got {args.models!r}")
    try:
        specs = [models.MODELS[models.resolve_name(n)] for n in names]
    except ValueError as e:
        raise UsageError(f"--models: {e}") from e
    if len({s.name for s in specs}) < len(specs):
        raise UsageError(f"--models must name each model once; got {args.models!r}")
    plans = plan(args, specs)
    with tempfile.TemporaryDirectory() as scratch:  # every model's options checked before any training
        for spec in specs:
            run_config(_model_args(args, spec, plans[spec.name], Path(scratch), specs), spec)
    out = Path(args.run_dir) / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    rows, failed, bayes = [], [], None
    for spec in specs:
        print(f"=== {spec.name}", flush=True)
        try:
            code, m = train_run(_model_args(args, spec, plans[spec.name], out, specs))
            if code != 0:
                raise RuntimeError(f"training stopped with exit code {code}")
        except Exception as e:  # noqa: BLE001 - one model's failure must not stop the others
            traceback.print_exc(file=sys.stderr)
            message = " ".join(str(e).split()) or type(e).__name__
            failed.append({"model": spec.name, "error": f"{type(e).__name__}: {message}"[:300]})
            print(f"=== {spec.name} failed: {failed[-1]['error']}", flush=True)
            continue
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
    rows.sort(key=lambda r: -r["auc"] if _defined(r["auc"]) else 1.0)
    import keras

    epochs = sorted({r["epochs"] for r in rows})
    # Each model's own epoch count (a --config may set it per run): one figure only when shared.
    epoch_text = (f"{epochs[0]} epochs" if len(epochs) == 1
                  else "epochs " + "/".join(map(str, epochs)) if epochs else "no model trained")
    title = f"{args.data} · {keras.backend.backend()} · {epoch_text}"
    md = leaderboard_markdown(rows, bayes, failed)
    (out / "leaderboard.md").write_text(f"# Leaderboard: {title}\n\n{md}\n")
    (out / "leaderboard.json").write_text(
        json.dumps({"rows": rows, "failed": failed, "bayes_optimal_auc": bayes}, indent=2)
    )
    png = leaderboard_png(rows, bayes, out / "leaderboard.png", title, failed)
    print()
    print(md)
    print(
        f"leaderboard: {out / 'leaderboard.md'}"
        + (f" and {out / 'leaderboard.png'}" if png else " (no PNG: matplotlib missing)")
    )
    if failed:
        print(f"{len(failed)} of {len(specs)} models failed: {', '.join(f['model'] for f in failed)}")
    return 1 if failed else 0
