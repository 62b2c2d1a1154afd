"""Run the whole test suite under every Keras backend and print a per-backend summary.

Usage: ``python scripts/run_tests.py [--backends jax,tensorflow,torch] [--jobs N] [pytest args]``

Steps: ``ruff check`` (lint is part of the test command), then one pytest run per backend
(``KERAS_BACKEND`` set before Keras is imported), up to ``--jobs`` at a time. Each run writes
JUnit XML to ``.test-reports/``; the summary names the backend of every failure. Exit status is
non-zero if lint fails or any backend has a failure or error, or collected no test.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / ".test-reports"
BACKENDS = ("jax", "tensorflow", "torch")


def lint() -> bool:
    print("== ruff check", flush=True)
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT)
    return result.returncode == 0


#: JAX runs eagerly op by op outside jit and is the slowest backend; its run is split in two
#: shards (the heavy end-to-end folders, and the rest) so the 2-core machine stays busy.
JAX_HEAVY = ["tests/models", "tests/cli", "tests/docs", "tests/distribute", "tests/seq"]


def jobs_for(backend: str, pytest_args: list[str]) -> list[tuple[str, list[str]]]:
    """(job name, pytest args) for one backend; JAX is sharded unless paths were given."""
    if backend != "jax" or any(not a.startswith("-") for a in pytest_args):
        return [(backend, pytest_args)]
    rest = [f"--ignore={d}" for d in JAX_HEAVY]
    return [("jax-1", [*JAX_HEAVY, *pytest_args]), ("jax-2", [*rest, *pytest_args])]


def start(job: str, backend: str, pytest_args: list[str]) -> tuple[subprocess.Popen, Path, float]:
    REPORTS.mkdir(exist_ok=True)
    xml = REPORTS / f"{job}.xml"
    log = REPORTS / f"{job}.log"
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONHASHSEED="0")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           f"--junitxml={xml}", "-o", f"junit_suite_name={backend}", *pytest_args]
    handle = open(log, "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    return proc, xml, time.monotonic()


def summarize(backend: str, xml: Path) -> dict:
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "failed": []}
    if not xml.exists():
        counts["errors"] = 1
        counts["failed"].append("(pytest produced no report)")
        return counts
    root = ET.parse(xml).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    for suite in suites:
        for key in ("tests", "failures", "errors", "skipped"):
            counts[key] += int(suite.get(key, 0))
        for case in suite.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                counts["failed"].append(f"{case.get('classname')}::{case.get('name')}")
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("RECLAYERS_TEST_JOBS", 2)))
    parser.add_argument("--no-lint", action="store_true")
    args, pytest_args = parser.parse_known_args()
    backends = [b for b in args.backends.split(",") if b]
    t0 = time.monotonic()
    lint_ok = True if args.no_lint else lint()

    results: dict[str, dict] = {}
    pending = [(job, b, a) for b in backends for job, a in jobs_for(b, pytest_args)]
    running: list[tuple[str, str, subprocess.Popen, Path, float]] = []
    while pending or running:
        while pending and len(running) < max(1, args.jobs):
            job, b, job_args = pending.pop(0)
            print(f"== pytest [{job}] started", flush=True)
            running.append((job, b, *start(job, b, job_args)))
        time.sleep(0.5)
        for item in list(running):
            job, b, proc, xml, t_start = item
            if proc.poll() is None:
                continue
            running.remove(item)
            counts = summarize(b, xml)
            counts["seconds"] = time.monotonic() - t_start
            # pytest exits 5 when a shard collects nothing; the backend's total is checked below.
            counts["returncode"] = 0 if proc.returncode == 5 else proc.returncode
            merged = results.setdefault(b, {"tests": 0, "failures": 0, "errors": 0, "skipped": 0,
                                            "failed": [], "seconds": 0.0, "returncode": 0})
            for key in ("tests", "failures", "errors", "skipped", "seconds"):
                merged[key] += counts[key]
            merged["failed"].extend(counts["failed"])
            merged["returncode"] = merged["returncode"] or counts["returncode"]
            log = REPORTS / f"{job}.log"
            tail = log.read_text(errors="replace").splitlines()
            bad = counts["failures"] or counts["errors"] or counts["returncode"] != 0
            print(f"== pytest [{job}] finished in {counts['seconds']:.0f}s", flush=True)
            if bad:
                print(f"---- [{job}] output (tail) ----")
                print("\n".join(tail[-200:]))

    print("\n== summary per backend")
    print(f"{'backend':<12}{'passed':>8}{'failed':>8}{'errors':>8}{'skipped':>9}{'seconds':>9}"
          "   (seconds: summed over the backend's shards)")
    total_pass = total_fail = total_skip = 0
    ok = lint_ok
    for b in backends:
        c = results[b]
        passed = c["tests"] - c["failures"] - c["errors"] - c["skipped"]
        failed = c["failures"] + c["errors"]
        total_pass += passed
        total_fail += failed
        total_skip += c["skipped"]
        print(f"{b:<12}{passed:>8}{c['failures']:>8}{c['errors']:>8}{c['skipped']:>9}"
              f"{c['seconds']:>9.0f}")
        if failed or c["returncode"] != 0 or c["tests"] == 0:
            ok = False
        for name in c["failed"]:
            print(f"  FAILED [{b}] {name}")
    if not lint_ok:
        print("  FAILED [lint] ruff check reported problems")
        total_fail += 1
    print(f"wall time: {time.monotonic() - t0:.0f}s")
    print(f"{total_pass} passed, {total_fail} failed, {total_skip} skipped")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
