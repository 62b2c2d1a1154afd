"""Run the whole test suite under every Keras backend and print a per-backend summary.

Usage: ``python scripts/run_tests.py [--backends jax,tensorflow,torch] [--jobs N]
[--record-durations] [--plan] [pytest args]``

Steps: ``ruff check`` (lint is part of the test command), then the pytest runs: ``KERAS_BACKEND``
is set before Keras is imported, so each run is one backend. The whole suite is split over
``--jobs`` workers (default 2, one per core) by the seconds each test file took last time
(``tests/durations.json``; a new file counts 5 s): the backends are laid end to end and cut into
``--jobs`` pieces of equal estimated time, so a worker may run part of one backend and then part
of the next, and the workers end together (``--plan`` prints the split). ``--record-durations``
rewrites the estimates from a whole-suite run that passed. With test paths among the pytest
arguments there is no split: one run per backend, ``--jobs`` at a time. Each run writes JUnit XML
to ``.test-reports/``; the summary names the backend of every failure. Exit status is non-zero if
lint fails or any backend has a failure or error, or collected no test.
"""

from __future__ import annotations

import argparse
import json
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


#: Measured seconds per test file and backend (``--record-durations`` refreshes it): the plan
#: that splits the suite over ``--jobs`` workers is built from it.
DURATIONS = ROOT / "tests" / "durations.json"
#: Cost assumed for a test file that has no measurement yet, and the start-up of one pytest
#: process (imports of Keras and its backend, collection).
UNKNOWN_FILE_SECONDS = 5.0
PROCESS_SECONDS = 10.0


def test_files() -> list[str]:
    """Every test module pytest collects under ``tests/`` (``test_*.py``), as repository paths."""
    return sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("test_*.py"))


def load_durations() -> dict[str, dict[str, float]]:
    if not DURATIONS.exists():
        return {}
    return json.loads(DURATIONS.read_text())


def plan(backends: list[str], jobs: int, durations: dict[str, dict[str, float]],
         files: list[str]) -> list[list[tuple[str, str, list[str]]]]:
    """Split the whole suite over ``jobs`` workers: per worker, its ``(job, backend, files)``.

    Every backend's files are laid end to end (backend after backend) and the line is cut into
    ``jobs`` pieces of about equal estimated time (McNaughton's wrap-around rule), cuts falling
    between files. A worker runs its piece as one pytest process per backend it holds, so a
    backend is split into at most ``jobs`` processes and the workers finish close together
    however unequal the backends are (JAX, which runs small models slowest, is about 60 % of the
    suite on a CPU).
    """
    items = [(b, f, durations.get(b, {}).get(f, UNKNOWN_FILE_SECONDS)) for b in backends
             for f in files]
    total = sum(cost for *_, cost in items) + PROCESS_SECONDS * (len(backends) + jobs - 1)
    target = total / jobs
    workers: list[list[tuple[str, list[str]]]] = [[] for _ in range(jobs)]
    w, load = 0, 0.0
    for backend, path, cost in items:
        # Move on to the next worker when this file would end nearer to the target past it.
        if w < jobs - 1 and load + cost / 2 > target:
            w, load = w + 1, 0.0
        if not workers[w] or workers[w][-1][0] != backend:
            workers[w].append((backend, []))
            load += PROCESS_SECONDS
        workers[w][-1][1].append(path)
        load += cost
    pieces: dict[str, int] = {}
    for worker in workers:
        for backend, _ in worker:
            pieces[backend] = pieces.get(backend, 0) + 1
    seen: dict[str, int] = {}
    out = []
    for worker in workers:
        named = []
        for backend, paths in worker:
            seen[backend] = seen.get(backend, 0) + 1
            job = backend if pieces[backend] == 1 else f"{backend}-{seen[backend]}"
            named.append((job, backend, paths))
        out.append(named)
    return [w for w in out if w]


def record_durations(results_xml: dict[str, list[Path]], files: list[str]) -> None:
    """Write the measured seconds per test file and backend into :data:`DURATIONS`."""
    known = set(files)
    durations = load_durations()
    for backend, xmls in results_xml.items():
        per_file: dict[str, float] = {}
        for xml in xmls:
            if not xml.exists():
                continue
            for case in ET.parse(xml).getroot().iter("testcase"):
                path = _module_path(case.get("classname") or "", known)
                if path is not None:
                    per_file[path] = per_file.get(path, 0.0) + float(case.get("time") or 0.0)
        durations[backend] = {f: round(per_file.get(f, 0.0), 1) for f in files}
    DURATIONS.write_text(json.dumps(durations, indent=1, sort_keys=True) + "\n")
    print(f"== durations per test file written to {DURATIONS.relative_to(ROOT)}")


def _module_path(classname: str, known: set[str]) -> str | None:
    """``tests.seq.test_dien.TestDIENContract`` → ``tests/seq/test_dien.py`` (if it exists)."""
    parts = classname.split(".")
    for n in range(len(parts), 0, -1):
        path = "/".join(parts[:n]) + ".py"
        if path in known:
            return path
    return None


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
    parser.add_argument("--record-durations", action="store_true",
                        help=f"after a whole-suite run, write the measured seconds per test file "
                             f"into {DURATIONS.relative_to(ROOT)} (the plan's estimates)")
    parser.add_argument("--plan", action="store_true", help="print the plan and exit")
    args, pytest_args = parser.parse_known_args()
    backends = [b for b in args.backends.split(",") if b]
    jobs = max(1, args.jobs)
    whole_suite = not any(not a.startswith("-") for a in pytest_args)
    files = test_files()
    if whole_suite:
        # One queue per worker: the plan splits the suite by measured time per test file.
        queues = [[(job, b, [*paths, *pytest_args]) for job, b, paths in worker]
                  for worker in plan(backends, jobs, load_durations(), files)]
    else:
        # Paths given: one pytest run per backend, taken by whichever worker is free.
        shared = [(b, b, pytest_args) for b in backends]
        queues = [shared] * jobs
    if args.plan:
        estimates = load_durations()
        for i, worker in enumerate(queues if whole_suite else queues[:1]):
            for job, b, job_args in worker:
                est = sum(estimates.get(b, {}).get(a, UNKNOWN_FILE_SECONDS) for a in job_args
                          if a in files)
                print(f"worker {i + 1}: [{job}] {len([a for a in job_args if a in files])} files, "
                      f"about {est + PROCESS_SECONDS:.0f}s")
        return 0
    t0 = time.monotonic()
    lint_ok = True if args.no_lint else lint()

    results: dict[str, dict] = {}
    xmls: dict[str, list[Path]] = {}
    running: list[tuple[int, str, str, subprocess.Popen, Path, float]] = []
    while any(queues) or running:
        busy = {item[0] for item in running}
        for w, queue in enumerate(queues):
            if queue and w not in busy:
                job, b, job_args = queue.pop(0)
                print(f"== pytest [{job}] started", flush=True)
                running.append((w, job, b, *start(job, b, job_args)))
                xmls.setdefault(b, []).append(running[-1][4])
        time.sleep(0.5)
        for item in list(running):
            _, job, b, proc, xml, t_start = item
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
    if args.record_durations:
        if whole_suite and ok:
            record_durations(xmls, files)
        else:
            print("== durations not recorded: they need a whole-suite run that passed")
    print(f"{total_pass} passed, {total_fail} failed, {total_skip} skipped")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
