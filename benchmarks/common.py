"""Shapes, timing and memory helpers shared by every runner (no framework imports here)."""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Callable

# The shapes: batch 1024 (4096 with --batch 4096), Criteo's 26 sparse fields, embedding 16,
# behaviour sequences of 50, 3 cross/MLP layers.
F = 26          # fields
E = 16          # embedding size
D = F * E       # flat width fed to DCN / MLP / MMoE (416)
L = 50          # sequence length
LAYERS = 3
MLP_UNITS = [400, 400, 400]
CIN_UNITS = [64, 64]
LOW_RANK = 32
EXPERTS = 4
MMOE_UNITS = [256, 128]
MMOE_TASKS = 2
DIN_UNITS = [80, 40, 1]

# Every layer of the issue, in table order.
LAYER_NAMES = ["MLP", "DCN-vector", "DCN-matrix", "DCN-mixed", "CIN", "AutoInt", "SeNet", "GroupInt",
               "AllInt", "CDot", "CAN", "DIN", "DIEN-AUGRU", "DMR", "MMoE", "SNR"]


def train_flops(name: str, batch: int) -> float | None:
    """Matmul FLOPs of one training step (forward x3 for forward+backward) for matmul-bound layers."""
    b = batch
    if name == "MLP":
        dims = [D, *MLP_UNITS]
        fwd = sum(2 * b * i * o for i, o in zip(dims[:-1], dims[1:]))
    elif name == "DCN-matrix":
        fwd = LAYERS * 2 * b * D * D
    elif name == "DCN-mixed":
        per_expert = 2 * b * (D * LOW_RANK + LOW_RANK * LOW_RANK + LOW_RANK * D)
        fwd = LAYERS * (EXPERTS * per_expert + 2 * b * D * EXPERTS)
    elif name == "MMoE":
        dims = [D, *MMOE_UNITS]
        expert = sum(2 * b * i * o for i, o in zip(dims[:-1], dims[1:]))
        fwd = EXPERTS * expert + MMOE_TASKS * 2 * b * D * EXPERTS
    else:
        return None
    return 3.0 * fwd


#: The framework each peer library runs on (for its allocator setting).
PEER_FRAMEWORK = {"deepctr": "tensorflow", "keras_rs": "jax", "deepctr_torch": "torch", "fuxictr": "torch",
                  "torchrec": "torch"}


def malloc_argument(parser) -> None:
    """The ``--no-malloc-tuning`` flag of a benchmark command (act on it with :func:`malloc_off`)."""
    parser.add_argument("--no-malloc-tuning", action="store_true",
                        help="do not give the processes their framework's GLIBC_TUNABLES (Linux/glibc; "
                             "see reclayers.cli.allocator)")


def malloc_off() -> None:
    """``--no-malloc-tuning``: no process of the run gets an allocator setting, ``reclayers train``
    included (it reads ``RECLAYERS_MALLOC_TUNING``)."""
    os.environ["RECLAYERS_MALLOC_TUNING"] = "0"


def malloc_env(framework: str) -> dict:
    """``{"GLIBC_TUNABLES": ...}`` for a child process on ``framework`` (``jax``, ``tensorflow``,
    ``torch``): the setting ``reclayers train`` gives that backend (``reclayers.cli.allocator``),
    so ours and the peers of a framework run alike. Empty when the caller set ``GLIBC_TUNABLES``
    (inherited by every process), after :func:`malloc_off`, or off Linux/glibc."""
    from reclayers.cli import allocator

    env = allocator.tuned_environment(os.environ, framework)
    return {} if env is None else {"GLIBC_TUNABLES": env["GLIBC_TUNABLES"]}


def malloc_settings() -> dict | None:
    """What :func:`malloc_env` gives each framework's processes (``None``: glibc's defaults), or the
    caller's own ``GLIBC_TUNABLES`` for all of them; for the results' machine section."""
    frameworks = ("jax", "tensorflow", "torch")
    if "GLIBC_TUNABLES" in os.environ:
        return dict.fromkeys(frameworks, os.environ["GLIBC_TUNABLES"])
    settings = {f: malloc_env(f).get("GLIBC_TUNABLES") for f in frameworks}
    return settings if any(settings.values()) else None


def malloc_text(settings: dict | list | str | None) -> str:
    """One sentence on the allocator settings of a run (``malloc_settings()``, an older run's single
    ``GLIBC_TUNABLES`` string, or a list of those for runs merged from processes set differently)."""
    if isinstance(settings, list):
        return " ".join(f"Merged run {i + 1}: {malloc_text(v)}" for i, v in enumerate(settings))
    if not settings:
        return "Default glibc malloc settings."
    if isinstance(settings, str):
        return (f"Every process ran with `GLIBC_TUNABLES={settings}` (freed memory kept in the process; "
                "`--no-malloc-tuning` turns it off).")
    by_value: dict = {}
    for framework, value in settings.items():
        by_value.setdefault(value, []).append(framework)
    parts = [f"{' and '.join(names)} processes `GLIBC_TUNABLES={value}`" if value else
             f"{' and '.join(names)} processes glibc's defaults" for value, names in by_value.items()]
    return ("Allocator (ours and the peers alike, as `reclayers train` sets it; `--no-malloc-tuning` "
            "turns it off): " + "; ".join(parts) + ".")


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRSS:
    """Samples the process's resident memory every few ms while active; ``peak`` in MiB."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()

    def __enter__(self) -> PeakRSS:
        self.start = rss_mib()
        self.peak = self.start
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib())
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib())


def time_steps(step: Callable[[], object], warmup: int, steps: int, budget_s: float = 20.0) -> dict:
    """Run ``step`` (which must block until done) ``warmup`` then up to ``steps`` times."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    compile_s = time.perf_counter() - t0
    times = []
    with PeakRSS() as mem:
        start = time.perf_counter()
        for _ in range(steps):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
            if time.perf_counter() - start > budget_s and len(times) >= 3:
                break
    return {"median_s": statistics.median(times), "min_s": min(times), "steps": len(times),
            "warmup_s": compile_s, "peak_rss_mib": round(mem.peak, 1),
            "rss_growth_mib": round(mem.peak - mem.start, 1)}


def error_text(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0][:200] if lines else ""
    if len(lines) > 1:
        text += " ... " + lines[-1][:200]
    return f"{type(exc).__name__}: {text}"


class AbsentError(Exception):
    """The peer library has no equivalent of this layer (not an error)."""


def measure_rows(label: str, info: dict, out_path: str, measure: Callable[[str], dict]) -> None:
    """Fill ``info["rows"]`` with ``measure(name)`` for every selected layer, saving after each.

    The layers come from ``LAYER_NAMES`` filtered by ``RECLAYERS_BENCH_ONLY``; an absent layer
    or an error is recorded in its row instead of stopping the run.
    """
    only = [s for s in os.environ.get("RECLAYERS_BENCH_ONLY", "").split(",") if s]
    for name in LAYER_NAMES:
        if only and name not in only:
            continue
        try:
            info["rows"][name] = measure(name)
        except AbsentError as exc:
            info["rows"][name] = {"absent": str(exc)}
        except Exception as exc:  # noqa: BLE001
            info["rows"][name] = {"error": error_text(exc)}
        print(f"[{label}] {name}: {info['rows'][name]}", flush=True)
        with open(out_path, "w") as fh:
            json.dump(info, fh, indent=1)
