"""Draw the documentation's charts and tables from the committed benchmark and leaderboard results.

Usage (from the repository root; ``make docs`` runs the first form before building the site)::

    python scripts/make_charts.py                      # charts + tables from the committed JSON
    python scripts/make_charts.py --check              # exit 1 if a generated table is stale
    python scripts/make_charts.py --import-leaderboard runs/compare-<time>/leaderboard.json

Inputs (committed):

* ``benchmarks/results/results.json``: per-layer training-step times of every backend and peer,
  written by ``python -m benchmarks`` (see ``benchmarks/README.md``);
* ``benchmarks/results/leaderboard_synthetic.json``: the synthetic-data leaderboard, imported
  from the output folder of ``reclayers compare`` with ``--import-leaderboard``.

Outputs:

* ``docs/assets/benchmark.png``: ms per training step per layer, ours per backend vs the fastest
  peer (log scale);
* ``docs/assets/leaderboard.png``: test AUC per model with the Bayes-optimal AUC;
* the Markdown tables between ``<!-- generated:NAME:start -->`` / ``<!-- generated:NAME:end -->``
  markers in ``docs/guides/backends.md`` (``benchmark``) and ``docs/guides/cli.md``
  (``leaderboard``).

The PNGs need matplotlib (``pip install -e ".[plots]"``); without it the tables are still
written and the committed PNGs are left as they are (the docs build uses those).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "results.json"
LEADERBOARD = ROOT / "benchmarks" / "results" / "leaderboard_synthetic.json"
ASSETS = ROOT / "docs" / "assets"
BACKENDS_MD = ROOT / "docs" / "guides" / "backends.md"
CLI_MD = ROOT / "docs" / "guides" / "cli.md"

# Same order and peer labels as benchmarks/report.py.
LAYERS = ["MLP", "DCN-vector", "DCN-matrix", "DCN-mixed", "CIN", "AutoInt", "SeNet", "GroupInt",
          "AllInt", "CDot", "CAN", "DIN", "DIEN-AUGRU", "DMR", "MMoE", "SNR"]
PEER_LABELS = {"deepctr": "DeepCTR (TF)", "deepctr_torch": "DeepCTR-Torch", "fuxictr": "FuxiCTR",
               "torchrec": "TorchRec"}
SHORT = {"jax": "JAX", "tensorflow": "TensorFlow", "torch": "PyTorch"}


def _ms(cell: dict | None) -> float | None:
    return cell["median_s"] * 1e3 if cell and "median_s" in cell else None


def benchmark_rows(results: dict) -> list[dict]:
    """Per layer: our ms per backend, the fastest peer and its ms (peers include keras-rs)."""
    rows = []
    names = [n for n in LAYERS if any(n in b.get("rows", {}) for b in results["backends"].values())]
    for name in names:
        ours = {b: _ms(d.get("rows", {}).get(name, {}).get("reclayers"))
                for b, d in results["backends"].items()}
        peers = {}
        for backend, data in results["backends"].items():
            cell = data.get("rows", {}).get(name, {}).get("keras-rs")
            if _ms(cell) is not None:
                peers[f"keras-rs ({SHORT[backend]})"] = _ms(cell)
        for peer, data in results.get("peers", {}).items():
            cell = data.get("rows", {}).get(name)
            if _ms(cell) is not None:
                peers[PEER_LABELS.get(peer, peer)] = _ms(cell)
        best = min(peers, key=peers.get) if peers else None
        rows.append({"layer": name, "ours": ours, "peer": best, "peer_ms": peers.get(best)})
    return rows


def _f(v: float | None, nd: int = 1) -> str:
    return "—" if v is None else f"{v:.{nd}f}"


def benchmark_table(results: dict) -> str:
    backends = list(results["backends"])
    m, a = results["machine"], results["args"]
    lines = [
        f"Measured {m['date_utc']} UTC, batch {a['batch']}, median of up to {a['steps']} timed steps "
        f"after {a['warmup']} warm-up steps, on {m['cores']} shared {m['cpu']} cores (load average "
        f"{m['loadavg_start'][0]:.1f} at the start)"
        + (f", every framework on {a['threads']} CPU thread{'s' * (a['threads'] != 1)}"
           if a.get("threads") else "")
        + ". Milliseconds per training step (forward + backward "
        "+ Adam), lower is better; **bold** is our fastest backend; `×` is the fastest peer's time "
        "divided by the time of our fastest backend (above 1: we are faster).",
        "",
        "| layer | " + " | ".join(f"ours {SHORT[b]}" for b in backends)
        + " | fastest peer | peer ms | × (our best) |",
        "|---|" + "---:|" * len(backends) + "---|---:|---:|",
    ]
    for row in benchmark_rows(results):
        done = {b: v for b, v in row["ours"].items() if v is not None}
        fastest = min(done, key=done.get) if done else None
        cells = [(f"**{_f(row['ours'][b])}**" if b == fastest else _f(row["ours"][b])) for b in backends]
        ratio = row["peer_ms"] / done[fastest] if fastest and row["peer_ms"] else None
        lines.append(f"| {row['layer']} | " + " | ".join(cells) + f" | {row['peer'] or 'none has it'} | "
                     f"{_f(row['peer_ms'])} | {_f(ratio, 2)} |")
    wins = {b: 0 for b in backends}
    for row in benchmark_rows(results):
        done = {b: v for b, v in row["ours"].items() if v is not None}
        if done:
            wins[min(done, key=done.get)] += 1
    lines += ["", "Fastest backend per layer in this run: "
              + ", ".join(f"{SHORT[b]} {n}" for b, n in wins.items()) + f" (of {sum(wins.values())} layers)."]
    return "\n".join(lines)


def leaderboard_table(board: dict) -> str:
    lines = ["| rank | model | test AUC | test logloss | parameters | train s | examples/s |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(sorted(board["rows"], key=lambda r: -r["auc"]), 1):
        lines.append(f"| {i} | {r['model']} | {r['auc']:.4f} | {r['logloss']:.4f} | {r['parameters']} | "
                     f"{r['train_seconds']:.1f} | {r['examples_per_second']:.0f} |")
    if board.get("bayes_optimal_auc") is not None:
        lines.append(f"| — | Bayes-optimal (true probabilities) | {board['bayes_optimal_auc']:.4f} | | | | |")
    return "\n".join(lines)


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- generated:{name}:start -->", f"<!-- generated:{name}:end -->"


def replace_block(text: str, name: str, body: str) -> str:
    start, end = _markers(name)
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"markers {start} … {end} not found")
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text, count=1)


def current_block(text: str, name: str) -> str | None:
    start, end = _markers(name)
    m = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), text, re.S)
    return m.group(1) if m else None


def tables() -> dict[Path, dict[str, str]]:
    """Generated blocks per page: ``{page: {marker name: Markdown}}``."""
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    board = json.loads(LEADERBOARD.read_text(encoding="utf-8"))
    return {BACKENDS_MD: {"benchmark": benchmark_table(results)},
            CLI_MD: {"leaderboard": leaderboard_table(board)}}


def write_tables() -> list[Path]:
    changed = []
    for page, blocks in tables().items():
        text = page.read_text(encoding="utf-8")
        new = text
        for name, body in blocks.items():
            new = replace_block(new, name, body)
        if new != text:
            page.write_text(new, encoding="utf-8")
            changed.append(page)
    return changed


def stale_tables() -> list[str]:
    stale = []
    for page, blocks in tables().items():
        text = page.read_text(encoding="utf-8")
        for name, body in blocks.items():
            if current_block(text, name) != body:
                stale.append(f"{page.relative_to(ROOT)}: {name}")
    return stale


def draw_charts(out_dir: Path = ASSETS) -> list[Path]:
    """Write both PNGs; returns their paths, or ``[]`` when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    board = json.loads(LEADERBOARD.read_text(encoding="utf-8"))
    meta = {"Software": None}  # no version string: the files only change when the data does

    rows = benchmark_rows(results)
    backends = list(results["backends"])
    fig, ax = plt.subplots(figsize=(11, 4.6))
    width = 0.8 / (len(backends) + 1)
    xs = range(len(rows))
    for i, b in enumerate(backends):
        ax.bar([x + i * width for x in xs], [r["ours"][b] or 0 for r in rows], width,
               label=f"reclayers on {SHORT[b]}")
    ax.bar([x + len(backends) * width for x in xs], [r["peer_ms"] or 0 for r in rows], width,
           label="fastest peer library", color="0.35")
    ax.set_xticks([x + 0.4 - width / 2 for x in xs], [r["layer"] for r in rows], rotation=40, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("ms per training step (log scale)")
    m = results["machine"]
    ax.set_title(f"Training step per layer, batch {results['args']['batch']} "
                 f"({m['cores']} shared CPU cores, {m['date_utc'][:10]}; no bar: no peer has the layer)",
                 fontsize=10)
    ax.legend(fontsize=8, ncol=2)
    ax.grid(axis="y", which="major", alpha=0.3)
    fig.tight_layout()
    bench_png = out_dir / "benchmark.png"
    fig.savefig(bench_png, dpi=90, metadata=meta)
    plt.close(fig)

    ranked = sorted(board["rows"], key=lambda r: -r["auc"])
    names = [r["model"] for r in ranked]
    aucs = [r["auc"] for r in ranked]
    bayes = board.get("bayes_optimal_auc")
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.bar(names, aucs, color="tab:blue")
    for i, v in enumerate(aucs):
        ax.text(i, v + 0.002, f"{v:.4f}", ha="center", va="bottom", fontsize=8)
    if bayes is not None:
        ax.axhline(bayes, color="tab:red", linestyle="--", label=f"Bayes-optimal {bayes:.4f}")
        ax.legend(loc="lower right", fontsize=8)
    low = min(aucs + ([bayes] if bayes else [])) - 0.03
    ax.set_ylim(max(0.0, low), min(1.0, max(aucs + ([bayes] if bayes else [])) + 0.02))
    ax.set_ylabel("test AUC")
    cfg = board["config"]
    ax.set_title(f"Synthetic data, {board['data']['n_rows']:,} rows, {cfg['epochs']} epochs "
                 f"({board['backend']})", fontsize=10)
    fig.tight_layout()
    board_png = out_dir / "leaderboard.png"
    fig.savefig(board_png, dpi=90, metadata=meta)
    plt.close(fig)
    return [bench_png, board_png]


def import_leaderboard(path: Path, out: Path = LEADERBOARD) -> dict:
    """Convert ``reclayers compare``'s ``leaderboard.json`` (and its runs' configs) to ``out``."""
    lb = json.loads(path.read_text(encoding="utf-8"))
    rows, first = [], None
    for r in lb["rows"]:
        run = Path(r["run_dir"])
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        first = first or json.loads((run / "config.json").read_text(encoding="utf-8"))
        rows.append({k: r[k] for k in ("model", "auc", "logloss", "parameters", "train_seconds",
                                       "examples_per_second")}
                    | {"best_epoch": metrics.get("best_epoch"), "epochs": metrics.get("epochs")})
    data = next(iter(first.get("data_info", {}).values()), {})
    board = {
        "command": f"reclayers compare --models {','.join(r['model'] for r in lb['rows'])} "
                   f"--data {first['data']} --backend {first['backend']}",
        "date_utc": path.parent.name.removeprefix("compare-"),
        "backend": first["backend"],
        "data": data | {"split": first.get("split")},
        "config": {k: first.get(k) for k in ("epochs", "batch_size", "seed")}
        | {k: first["model_config"].get(k) for k in ("learning_rate", "embedding_dim")}
        # runs before the zoo's key was renamed recorded ``hidden``
        | {"hidden_units": first["model_config"].get("hidden_units",
                                                     first["model_config"].get("hidden"))},
        "metric": "test AUC / logloss of the best epoch by validation AUC",
        "bayes_optimal_auc": lb.get("bayes_optimal_auc"),
        "rows": rows,
    }
    out.write_text(json.dumps(board, indent=1) + "\n", encoding="utf-8")
    return board


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the tables are current")
    parser.add_argument("--import-leaderboard", metavar="LEADERBOARD_JSON",
                        help="first convert a `reclayers compare` leaderboard.json into "
                             + str(LEADERBOARD.relative_to(ROOT)))
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_tables()
        for item in stale:
            print(f"stale generated table: {item} (run python scripts/make_charts.py)", file=sys.stderr)
        return 1 if stale else 0
    if args.import_leaderboard:
        import_leaderboard(Path(args.import_leaderboard))
        print(f"wrote {LEADERBOARD.relative_to(ROOT)}")
    for page in write_tables():
        print(f"updated {page.relative_to(ROOT)}")
    pngs = draw_charts()
    if pngs:
        print("wrote " + ", ".join(str(p.relative_to(ROOT)) for p in pngs))
    else:
        print("matplotlib is not installed: kept the committed charts in docs/assets/ "
              "(pip install -e '.[plots]' to redraw them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
