"""Kill ``reclayers train`` with SIGKILL at random wall-clock moments, resume until it finishes,
and compare with the uninterrupted run (test AUC, logloss, example counters, best epoch).

    python -m benchmarks.hard_kill --backend jax --kills 5 -- --model deepfm \
        --data synthetic:200000 --epochs 2 --batch-size 256 --checkpoint-every 10

Everything after ``--`` is passed to ``reclayers train``. The kill moments are drawn uniformly
between ``--min-delay`` seconds and the reference run's duration, so they fall anywhere: during
start-up, mid-epoch, inside a checkpoint write, inside validation. Exit code 0 when the resumed
run's test AUC equals the reference's to ``--tolerance`` and the counters match.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env(backend: str) -> dict:
    return dict(os.environ, KERAS_BACKEND=backend,
                PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]))


def _run_dir(parent: Path) -> Path:
    (run,) = [p for p in parent.iterdir() if p.is_dir()]
    return run


def _train(argv: list[str], backend: str, kill_after: float | None = None) -> tuple[int, float]:
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "reclayers", "train", *argv], env=_env(backend),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return proc.returncode, time.time() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "jax"))
    p.add_argument("--kills", type=int, default=5, help="SIGKILLs before the run may finish")
    p.add_argument("--min-delay", type=float, default=8.0, help="earliest kill, seconds after start")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tolerance", type=float, default=1e-6)
    p.add_argument("--work", default=None, help="folder for the two runs (default: a temporary one)")
    p.add_argument("train_args", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    train = [a for a in args.train_args if a != "--"] + ["--quiet"]
    work = Path(args.work or tempfile.mkdtemp(prefix="hard-kill-"))
    rng = random.Random(args.seed)

    code, duration = _train([*train, "--run-dir", str(work / "reference")], args.backend)
    if code != 0:
        print(f"reference run failed with exit code {code}")
        return 1
    reference = json.loads((_run_dir(work / "reference") / "metrics.json").read_text())
    print(f"reference: {duration:.1f} s, test AUC {reference['test']}")

    killed = work / "killed"
    first = [*train, "--run-dir", str(killed)]
    kills = 0
    while True:
        resume = killed.exists() and any(killed.iterdir())
        cmd = ["--resume", str(_run_dir(killed))] if resume else first
        late = max(args.min_delay + 1, 0.6 * duration)  # a later run can go faster than the reference
        delay = rng.uniform(args.min_delay, late) if kills < args.kills else None
        code, took = _train(cmd, args.backend, delay)
        if code == -signal.SIGKILL:
            kills += 1
            print(f"kill {kills}: after {took:.1f} s")
            continue
        if code != 0:
            print(f"run failed with exit code {code}")
            return 1
        break
    resumed = json.loads((_run_dir(killed) / "metrics.json").read_text())
    ok = all(resumed[k] == reference[k] for k in ("train_examples", "train_steps", "best_epoch"))
    for label, m in reference["test"].items():
        diff = abs(resumed["test"][label]["auc"] - m["auc"])
        print(f"{label}: AUC {resumed['test'][label]['auc']:.6f} vs {m['auc']:.6f} (|diff| {diff:.2e}), "
              f"logloss {resumed['test'][label]['logloss']:.6f} vs {m['logloss']:.6f}")
        ok = ok and diff <= args.tolerance
    print(f"{kills} kills; examples {resumed['train_examples']} vs {reference['train_examples']}; "
          f"{'SAME' if ok else 'DIFFERENT'} result; runs in {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
