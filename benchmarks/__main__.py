"""``python -m benchmarks``: train-step throughput of reclayers' layers against the peer libraries.

Options: ``--setup-peers`` (create/refresh the peer virtualenvs first), ``--batch N`` (1024),
``--warmup N`` (3), ``--steps N`` (20), ``--only A,B`` (subset of layer names), ``--backends``
(jax,tensorflow,torch), ``--peers`` (deepctr,deepctr_torch,fuxictr,torchrec; keras-rs runs inside
each backend process), ``--timeout S`` per process (900), ``--repeats N`` (1: rounds of every
process, alternating; each cell is kept from its round with the lowest median step time, ours and
the peers' alike). Every measurement is one subprocess run one after another (never in
parallel) under ``nice -n 19``; results go to ``benchmarks/results/``.

``--e2e`` runs the end-to-end benchmark instead (``benchmarks/e2e.py``: ``reclayers train`` of
``--e2e-models`` against DeepCTR-Torch and FuxiCTR; ``--e2e-rows``, ``--e2e-epochs``, ``--e2e-batch``;
``--backends`` and ``--peers`` select as above) and writes ``e2e.md`` / ``e2e.json``.

``--scale`` runs ``benchmarks/scale.py`` instead (real-size Criteo-shaped files through
``reclayers train``; its own options follow, e.g. ``--sizes 1M,4M``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import e2e, peers_setup
from benchmarks.common import PEER_FRAMEWORK, malloc_argument, malloc_env, malloc_off, malloc_settings
from benchmarks.report import write_report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BACKENDS = ["jax", "tensorflow", "torch"]
PEERS = ["deepctr", "deepctr_torch", "fuxictr", "torchrec"]  # per-layer (keras-rs runs in our processes)


def machine_info() -> dict:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        mem = open("/proc/meminfo").readline().split(":", 1)[1].strip()
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "platform": platform.platform(),
            "python": platform.python_version(),
            "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "loadavg_start": os.getloadavg(), "glibc_tunables": malloc_settings()}


def run_one(label: str, cmd: list[str], env: dict, out_json: Path, timeout: int) -> dict:
    print(f"== {label}: {' '.join(cmd)}", flush=True)
    t = time.perf_counter()
    load = os.getloadavg()
    try:
        proc = subprocess.run(["nice", "-n", "19", *cmd], cwd=ROOT, env=env, timeout=timeout,
                              capture_output=True, text=True)
        rc, tail = proc.returncode, (proc.stdout + proc.stderr)[-2000:]
    except subprocess.TimeoutExpired as exc:
        rc, tail = "timeout", str(exc.stdout or "")[-2000:]
    data = json.loads(out_json.read_text()) if out_json.exists() else {"rows": {}}
    data.update({"rc": rc, "wall_s": round(time.perf_counter() - t, 1), "loadavg_before": load})
    if rc != 0:
        data["log_tail"] = tail
    print(f"   rc={rc} in {data['wall_s']}s, {len(data['rows'])} rows", flush=True)
    return data


def _fastest(cells: list) -> object:
    """One result cell from its rounds: the timed cell with the lowest median step time (its
    rounds' medians added as ``rounds_median_ms``), a nested ``{who: cell}`` row cell by cell,
    else the last round's (an error or an absent layer)."""
    timed = [c for c in cells if isinstance(c, dict) and "median_s" in c]
    if timed:
        best = min(timed, key=lambda c: c["median_s"])
        return dict(best, rounds_median_ms=[round(c["median_s"] * 1e3, 3) for c in timed])
    leaves = ("error", "absent", "median_s")
    if cells and all(isinstance(c, dict) and not any(k in c for k in leaves) for c in cells):
        keys = list(dict.fromkeys(k for c in cells for k in c))
        return {k: _fastest([c[k] for c in cells if k in c]) for k in keys}
    return cells[-1] if cells else {}


def fastest_rounds(rounds: list[dict]) -> dict:
    """One process's results over ``--repeats`` rounds (see :func:`_fastest`); the machine's
    matmul rate is its best round's, ``wall_s`` the rounds' sum and ``rc`` the first failure's.

    Example:
        >>> a = {"rows": {"MLP": {"median_s": 2.0}}, "rc": 0, "wall_s": 1.0}
        >>> b = {"rows": {"MLP": {"median_s": 1.0}}, "rc": 0, "wall_s": 1.0}
        >>> fastest_rounds([a, b])["rows"]["MLP"]
        {'median_s': 1.0, 'rounds_median_ms': [2000.0, 1000.0]}
    """
    merged = dict(rounds[-1])
    names = list(dict.fromkeys(n for r in rounds for n in r.get("rows", {})))
    merged["rows"] = {n: _fastest([r["rows"][n] for r in rounds if n in r.get("rows", {})]) for n in names}
    merged["rounds"] = len(rounds)
    merged["wall_s"] = round(sum(r.get("wall_s", 0) for r in rounds), 1)
    merged["rc"] = next((r["rc"] for r in rounds if r.get("rc") != 0), 0)
    rates = [r["matmul"] for r in rounds if isinstance(r.get("matmul"), dict) and "gflops" in r["matmul"]]
    if rates:
        merged["matmul"] = max(rates, key=lambda m: m["gflops"])
    return merged


def main() -> None:
    if "--scale" in sys.argv[1:]:  # real-size data through reclayers train: benchmarks/scale.py
        from benchmarks import scale

        sys.exit(scale.main([a for a in sys.argv[1:] if a != "--scale"]))
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    ap.add_argument("--setup-peers", action="store_true")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--only", default="")
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--peers", default="",
                    help="per-layer: default all of " + ",".join(PEERS) + "; --e2e: default the peers of the "
                         "selected backends' frameworks (deepctr_torch,fuxictr for torch, deepctr for "
                         "tensorflow, keras_rs for jax)")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--repeats", type=int, default=1,
                    help="per-layer: rounds of every process, alternating; each cell is kept from its "
                         "round with the lowest median step time (1)")
    ap.add_argument("--threads", type=int, default=0,
                    help="per-layer: CPU threads per framework process, ours and the peers' alike (0: the "
                         "defaults, all cores; 1 on a loaded machine, where PyTorch's threads wait for "
                         "each other at every op)")
    ap.add_argument("--out", default=str(HERE / "results"))
    malloc_argument(ap)
    ap.add_argument("--e2e", action="store_true",
                    help="run the end-to-end `reclayers train` benchmark (benchmarks/e2e.py) instead")
    ap.add_argument("--e2e-models", default=",".join(e2e.MODELS), help="zoo models (default dcn_v2,din)")
    ap.add_argument("--e2e-rows", type=int, default=200_000, help="synthetic rows, 80%% train (200000)")
    ap.add_argument("--e2e-epochs", type=int, default=3, help="epochs; the first is reported apart (3)")
    ap.add_argument("--e2e-batch", default="1024", help="batch size(s), comma-separated (1024)")
    ap.add_argument("--e2e-repeats", type=int, default=1,
                    help="rounds of every run (alternating); the median round is reported (1)")
    ap.add_argument("--e2e-plain", action="store_true",
                    help="also run ours with plain Dense towers and embedded numerics only "
                         "(--set weight_norm=false --set raw_numeric=false), the peers' architecture")
    ap.add_argument("--e2e-threads", type=int, default=0,
                    help="CPU threads per framework (0: the defaults, all cores; 1 on a loaded machine)")
    args = ap.parse_args()

    if args.setup_peers:
        peers_setup.setup_all()
    # Every process (ours on each backend and every peer) runs with the allocator setting that
    # `reclayers train` gives its framework: PyTorch's activations and XLA's per-step buffers
    # otherwise land on fresh pages, a page fault per 4 KiB page on this VM (reclayers.cli.allocator).
    if args.no_malloc_tuning:
        malloc_off()
    if args.e2e:
        if args.e2e_epochs < 1 or args.e2e_rows < 100 or args.e2e_repeats < 1:
            ap.error("--e2e-epochs and --e2e-repeats must be >= 1 and --e2e-rows >= 100")
        e2e.run(args, machine_info())
        return
    setup = {}
    if (peers_setup.VENVS / "setup.json").exists():
        setup = {r["peer"]: r for r in json.loads((peers_setup.VENVS / "setup.json").read_text())}

    out_dir = Path(args.out)
    raw_dir = out_dir / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    base_env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), RECLAYERS_BENCH_ONLY=args.only,
                    TF_CPP_MIN_LOG_LEVEL="2", **e2e.thread_env(args.threads))
    common_args = [str(args.batch), str(args.warmup), str(args.steps)]
    results = {"machine": machine_info(), "args": vars(args), "setup": setup, "backends": {}, "peers": {}}

    # keras-rs is multi-backend: when its venv exists, the backend processes run in it, so ours
    # and keras-rs's layers are timed in the same process.
    rs_python = peers_setup.venv_python("keras_rs")
    keras_python = str(rs_python) if rs_python.exists() else sys.executable
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    rounds: dict[tuple[str, str], list] = {}
    for r in range(args.repeats):
        suffix = f".r{r + 1}" if args.repeats > 1 else ""
        for backend in [b for b in args.backends.split(",") if b]:
            out_json = raw_dir / f"{backend}{suffix}.json"
            out_json.unlink(missing_ok=True)
            env = dict(base_env, KERAS_BACKEND=backend, **malloc_env(backend))
            rounds.setdefault(("backends", backend), []).append(run_one(
                backend, [keras_python, "-m", "benchmarks.run_keras", str(out_json), *common_args], env,
                out_json, args.timeout))
        for peer in [p for p in (args.peers or ",".join(PEERS)).split(",") if p]:
            if peer in ("keras_rs", "keras-rs"):
                continue  # timed inside each backend's process (run_keras), not as a process of its own
            py = peers_setup.venv_python(peer)
            if not py.exists():
                results["peers"][peer] = {"rows": {},
                                          "error": "not installed: run python -m benchmarks --setup-peers"}
                continue
            if peer in setup and not setup[peer].get("ok") and peer != "torchrec":
                results["peers"][peer] = {"rows": {}, "error": setup[peer].get("error", "setup failed")}
                continue
            out_json = raw_dir / f"{peer}{suffix}.json"
            out_json.unlink(missing_ok=True)
            if peer == "deepctr":
                cmd = [str(py), "-m", "benchmarks.run_deepctr", str(out_json), *common_args]
            else:
                cmd = [str(py), "-m", "benchmarks.run_torch_peers", peer, str(out_json), *common_args]
            env = dict(base_env, **malloc_env(PEER_FRAMEWORK[peer]))
            rounds.setdefault(("peers", peer), []).append(run_one(peer, cmd, env, out_json, args.timeout))
    for (kind, name), runs in rounds.items():
        results[kind][name] = fastest_rounds(runs)
    results["machine"]["loadavg_end"] = os.getloadavg()
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    write_report(results, out_dir)
    print(f"wrote {out_dir / 'results.md'}")


if __name__ == "__main__":
    main()
