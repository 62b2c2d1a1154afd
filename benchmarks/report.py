"""Turn the raw per-process JSON into ``results.md`` (+ ``results.png`` when matplotlib exists)."""

from __future__ import annotations

from pathlib import Path

from benchmarks import common as C

PEER_LABELS = {"deepctr": "DeepCTR (TF)", "deepctr_torch": "DeepCTR-Torch", "fuxictr": "FuxiCTR",
               "torchrec": "TorchRec"}
SHORT = {"jax": "jax", "tensorflow": "tf", "torch": "torch"}


def _ms(cell: dict | None) -> float | None:
    return cell["median_s"] * 1e3 if cell and "median_s" in cell else None


def _fmt(v: float | None, nd: int = 1) -> str:
    return "—" if v is None else f"{v:.{nd}f}"


def collect(results: dict) -> dict:
    """layer -> {"ours": {backend: cell}, "peers": {label: cell}}"""
    table = {}
    for name in C.LAYER_NAMES:
        ours, peers = {}, {}
        for backend, data in results["backends"].items():
            row = data.get("rows", {}).get(name, {})
            if "reclayers" in row:
                ours[backend] = row["reclayers"]
            if "keras-rs" in row:
                peers[f"keras-rs/{SHORT[backend]}"] = row["keras-rs"]
        for peer, data in results["peers"].items():
            if name in data.get("rows", {}):
                peers[PEER_LABELS.get(peer, peer)] = data["rows"][name]
        table[name] = {"ours": ours, "peers": peers}
    return table


def _cell_note(cell: dict) -> str | None:
    if "error" in cell:
        return f"error: {cell['error']}"
    return None


def write_report(results: dict, out_dir: Path) -> None:
    table = collect(results)
    backends = list(results["backends"])
    m = results["machine"]
    a = results["args"]
    lines = [
        "# reclayers training-step benchmark",
        "",
        f"Run {m['date_utc']} UTC on {m['cpu']} ({m['cores']} cores, {m['memory']}), {m['platform']}.",
        f"**Machine load**: load average {tuple(round(x, 2) for x in m['loadavg_start'])} at the start, "
        f"{tuple(round(x, 2) for x in m.get('loadavg_end', (0, 0, 0)))} at the end (1/5/15 min); "
        "the machine is shared, every process ran under `nice -n 19`, so absolute times are noisy "
        "and only ratios measured in the same run are meaningful.",
        (f"Every process ran {a['repeats']} times, in alternating rounds (ours on each backend, then "
         "each peer); each cell is its round with the lowest median step time, ours and the peers' "
         "alike (every round's median is in the raw JSON, `rounds_median_ms`). "
         if a.get("repeats", 1) > 1 else "")
        + f"Batch {a['batch']}, {a['warmup']} warm-up + up to {a['steps']} timed steps (median), "
        f"{C.F} fields, embedding {C.E}, sequence length {C.L}, {C.LAYERS} layers. "
        "Step = forward + backward (gradients of the weights and of the inputs) + Adam update, "
        "loss = mean of squared outputs.",
        "",
        "How each framework ran: " + "; ".join(
            f"reclayers/{b}: {_mode(results['backends'][b])}" for b in backends)
        + "; PyTorch peers: eager; DeepCTR: tf.function(jit_compile=True) (falls back to plain "
        "tf.function when XLA fails, see raw JSON). "
        + (f"Every framework limited to {a['threads']} CPU thread(s) (`--threads`: OMP/MKL/TF intra-op "
           "threads, XLA's Eigen pool, `torch.set_num_threads`). " if a.get("threads") else "")
        + C.malloc_text(m.get("glibc_tunables")),
        "",
        "## Milliseconds per training step (lower is better)",
        "",
        "`speed×<backend>` = fastest peer's time / our time on that backend (>1: we are faster).",
        "",
        "| layer | " + " | ".join(f"ours {SHORT[b]}" for b in backends) + " | peers (ms) | fastest peer | "
        + " | ".join(f"speed×{SHORT[b]}" for b in backends) + " |",
        "|---" * (3 + 2 * len(backends)) + "|",
    ]
    notes = []
    summary = []
    for name, row in table.items():
        if not row["ours"] and not row["peers"]:
            continue
        ours_ms = {b: _ms(row["ours"].get(b)) for b in backends}
        peer_ms = {p: _ms(c) for p, c in row["peers"].items()}
        valid = {p: v for p, v in peer_ms.items() if v is not None}
        best_peer = min(valid, key=valid.get) if valid else None
        peer_txt = ", ".join(f"{p} {_fmt(v)}" for p, v in valid.items()) or "none has it"
        ratios = {b: (valid[best_peer] / ours_ms[b]) if best_peer and ours_ms[b] else None for b in backends}
        lines.append(f"| {name} | " + " | ".join(_fmt(ours_ms[b]) for b in backends) + f" | {peer_txt} | "
                     + (best_peer or "—") + " | " + " | ".join(_fmt(ratios[b], 2) for b in backends) + " |")
        for who, cell in [*((f"ours/{b}", c) for b, c in row["ours"].items()), *row["peers"].items()]:
            note = _cell_note(cell)
            if "XLA failed" in str(cell.get("compiled", "")):
                note = f"timed as {cell['compiled']}"
            if note:
                notes.append(f"- {name}, {who}: {note}")
        done = {b: v for b, v in ours_ms.items() if v is not None}
        if done:
            fastest = min(done, key=done.get)
            mem_ours = row["ours"][fastest].get("peak_rss_mib")
            mem_peer = row["peers"][best_peer].get("peak_rss_mib") if best_peer else None
            summary.append((name, fastest, ratios[fastest], best_peer, mem_ours, mem_peer,
                            row["ours"][fastest].get("rss_growth_mib"),
                            row["peers"][best_peer].get("rss_growth_mib") if best_peer else None))
    lines += ["", "## Summary: our fastest backend per layer against the fastest peer", "",
              "Peak RSS is the whole process's resident memory during the timed steps (framework runtime "
              "included: a TensorFlow process starts several hundred MiB above a PyTorch one), so it is only "
              "a coarse per-step memory figure; `growth` is the rise during the timed steps.", "",
              "| layer | our fastest backend | speed× vs fastest peer | fastest peer "
              "| our peak RSS MiB (growth) | peer peak RSS MiB (growth) |", "|---|---|---|---|---|---|"]
    for name, fastest, ratio, peer, mo, mp, go, gp in summary:
        lines.append(f"| {name} | {fastest} | {_fmt(ratio, 2)} | {peer or 'none has it'} | {_fmt(mo, 0)} "
                     f"({_fmt(go, 0)}) | {_fmt(mp, 0)} ({_fmt(gp, 0)}) |")
    misses = [s for s in summary if s[2] is not None and s[2] < 1.0]
    lines += ["", f"Rows below 1.0 on our fastest backend: {', '.join(s[0] for s in misses) or 'none'}."]
    lines += _same_framework_speed(table, backends)
    lines += _same_runtime_memory(table, backends)

    lines += ["", "## The limit: matmul-bound layers", "",
              "Machine matmul rate: the best of 20 repeats of a 2048×2048 float32 matmul timed in each "
              "backend process (compiled where the backend compiles). On a loaded shared machine this "
              "rate and the layer's rate are disturbed differently, so fractions near or above 100% "
              "mean \"at the machine's rate\", not more: "
              + ", ".join(f"{SHORT[b]} {_fmt(results['backends'][b].get('matmul', {}).get('gflops'))} GFLOP/s"
                          for b in backends) + ".", "",
              "| layer | GFLOP per step (fwd+bwd ≈ 3× fwd matmuls) | "
              + " | ".join(f"{SHORT[b]} GFLOP/s (% of matmul rate)" for b in backends) + " |",
              "|---" * (2 + len(backends)) + "|"]
    for name in ("MLP", "DCN-matrix", "DCN-mixed", "MMoE"):
        flops = C.train_flops(name, a["batch"])
        cells = []
        for b in backends:
            ms = _ms(table[name]["ours"].get(b))
            rate = results["backends"][b].get("matmul", {}).get("gflops")
            if ms is None or not rate:
                cells.append("—")
                continue
            got = flops / (ms / 1e3) / 1e9
            cells.append(f"{got:.1f} ({100 * got / rate:.0f}%)")
        lines.append(f"| {name} | {flops / 1e9:.2f} | " + " | ".join(cells) + " |")

    lines += ["", "## Peers: install/import status", ""]
    for peer, res in results.get("setup", {}).items():
        lines.append(f"- {peer}: " + (f"ok ({_version(res)})" if res.get("ok")
                                       else f"FAILED: {res.get('error', '')[-300:]!r}"))
    lines.append("- keras-rs: " + ", ".join(f"{SHORT[b]}: {results['backends'][b].get('keras_rs', '?')}"
                                            for b in backends))
    lines.append("- TorchRec: `import torchrec` fails here (its fbgemm_gpu build cannot load against torch "
                 "2.13 CPU); its pure-PyTorch `torchrec.modules.crossnet`/`mlp` files are loaded directly "
                 "without the package `__init__`, so TorchRec rows exist for MLP and DCN.")
    for label, data in [*results["backends"].items(), *results["peers"].items()]:
        if data.get("rc") not in (0, None) or data.get("error"):
            notes.append(f"- process {label}: rc={data.get('rc')} {data.get('error', '')} "
                         f"{(data.get('log_tail') or '')[-300:]!r}")
    if notes:
        lines += ["", "## Errors recorded", "", *notes]
    lines += ["", "Raw numbers (per process, with load average before each): `results.json`.", ""]
    (out_dir / "results.md").write_text("\n".join(lines))
    _chart(table, backends, out_dir)


def _mode(data: dict) -> str:
    for row in data.get("rows", {}).values():
        cell = row.get("reclayers", {})
        if "compiled" in cell:
            return cell["compiled"]
    return "?"


def _chart(table: dict, backends: list[str], out_dir: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    names = list(table)
    fig, ax = plt.subplots(figsize=(12, 5))
    width = 0.8 / (len(backends) + 1)
    for i, b in enumerate(backends):
        ax.bar([k + i * width for k in range(len(names))],
               [_ms(table[n]["ours"].get(b)) or 0 for n in names], width, label=f"reclayers/{b}")
    best = []
    for n in names:
        vals = [v for v in (_ms(c) for c in table[n]["peers"].values()) if v is not None]
        best.append(min(vals) if vals else 0)
    ax.bar([k + len(backends) * width for k in range(len(names))], best, width, label="fastest peer")
    ax.set_xticks([k + 0.4 for k in range(len(names))], names, rotation=45, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("ms per training step (log)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "results.png", dpi=100)


def _version(res: dict) -> str:
    """The probe prints '<peer version> <torch version>'; some peers also print a nag line."""
    lines = [ln for ln in res.get("version", "").splitlines() if "+cpu" in ln or ln[:1].isdigit()]
    return lines[0] if lines else res.get("version", "?")


# Which peers run on the same framework runtime as each of our backends.
_RUNTIME_PEERS = {
    "jax": ("keras-rs/jax",),
    "tensorflow": ("keras-rs/tf", "DeepCTR (TF)"),
    "torch": ("keras-rs/torch", "DeepCTR-Torch", "FuxiCTR", "TorchRec"),
}


def _peak_rss(cell: dict | None) -> float | None:
    """A timed cell's peak RSS (``None`` for a cell without a time: the layer failed there)."""
    return cell.get("peak_rss_mib") if _ms(cell) is not None else None


def _same_runtime_best(row: dict, backends: list, value) -> list:
    """Per backend, ``(ours, peer, peer's value)`` for the peer on that backend's framework with the
    lowest ``value(cell)`` (time or memory), or ``None`` where ours or every such peer lacks one."""
    best = []
    for b in backends:
        ours = value(row["ours"].get(b))
        peers = {p: value(row["peers"].get(p)) for p in _RUNTIME_PEERS[b]}
        peers = {p: v for p, v in peers.items() if v is not None}
        peer = min(peers, key=peers.get) if peers else None
        best.append(None if ours is None or peer is None else (ours, peer, peers[peer]))
    return best


def _runtime_header(title: str, intro: str, column: str, backends: list) -> list:
    return ["", f"## {title}", "", intro, "",
            "| layer | " + " | ".join(f"{SHORT[b]}: {column}" for b in backends) + " |",
            "|---" * (1 + len(backends)) + "|"]


def _runtime_rows(table: dict, backends: list, value, ratio, text) -> tuple:
    """Markdown rows of ours against the best same-runtime peer per backend (``value``: time or
    memory of a cell; ``ratio(ours, peer)``; ``text(ours, peer)``), and ``[(ratio, layer, backend,
    peer)]`` in table order."""
    lines, ratios = [], []
    for name, row in table.items():
        cells = []
        for b, best in zip(backends, _same_runtime_best(row, backends, value)):
            if best is None:
                cells.append("—")
                continue
            ours, peer, peer_value = best
            r = ratio(ours, peer_value)
            ratios.append((r, name, b, peer))
            cells.append(f"{text(ours, peer_value)} ({peer}, {r:.2f})")
        if any(c != "—" for c in cells):
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines, ratios


def _same_framework_speed(table: dict, backends: list) -> list:
    """Ours on each backend against the fastest peer on that backend's framework (keras-rs for
    JAX; DeepCTR and keras-rs for TensorFlow; DeepCTR-Torch, FuxiCTR, TorchRec and keras-rs for
    PyTorch): a user who stays on one framework compares with these, not with the other engines."""
    lines = _runtime_header(
        "Each backend against its own framework's peers",
        "`speed×` = the fastest same-framework peer's time / ours on that backend (>1: we are "
        "faster); `—`: no peer on that framework has the layer.", "ours ms / peer ms (speed×)", backends)
    rows, ratios = _runtime_rows(table, backends, _ms, lambda ours, peer: peer / ours,
                                 lambda ours, peer: f"{_fmt(ours)} / {_fmt(peer)}")
    lines += rows
    below = [f"{n} ({SHORT[b]} vs {p}: {r:.2f})" for r, n, b, p in ratios if r < 1.0]
    lines += ["", "Below 1.0: " + (", ".join(below) if below else "none") + "."]
    return lines


def _same_runtime_memory(table: dict, backends: list) -> list:
    """Peak RSS of ours against the leanest peer on the same runtime (same framework baseline)."""
    lines = _runtime_header(
        "Peak memory against peers on the same runtime",
        "Whole-process peak RSS during the timed steps, ours on each backend against the peer with "
        "the lowest peak on the same framework (TensorFlow: DeepCTR and keras-rs; PyTorch: "
        "DeepCTR-Torch, FuxiCTR, TorchRec, keras-rs; JAX: keras-rs), so the framework runtime is in "
        "both figures. `mem×` = ours / peer (the target is at most 1.2).", "ours MiB / peer MiB (mem×)",
        backends)
    rows, worst = _runtime_rows(table, backends, _peak_rss, lambda ours, peer: ours / peer,
                                lambda ours, peer: f"{ours:.0f} / {peer:.0f}")
    lines += rows
    over = [f"{n} ({SHORT[b]} vs {p}: {r:.2f})" for r, n, b, p in sorted(worst, reverse=True) if r > 1.2]
    lines += ["", "Above 1.2: " + (", ".join(over) if over else "none") + "."]
    return lines
