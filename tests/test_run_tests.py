"""``scripts/run_tests.py``'s plan: the suite split over the workers by measured time per file."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.one_backend  # plain Python: no Keras in play


@pytest.fixture(scope="module")
def rt():
    spec = importlib.util.spec_from_file_location("run_tests", REPO_ROOT / "scripts" / "run_tests.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_tests"] = module
    spec.loader.exec_module(module)
    return module


def _estimate(rt, worker, durations):
    return sum(rt.PROCESS_SECONDS + sum(durations.get(b, {}).get(f, rt.UNKNOWN_FILE_SECONDS)
                                        for f in files) for _, b, files in worker)


def test_every_file_of_every_backend_runs_once_and_the_workers_end_together(rt):
    files = [f"tests/t{i}.py" for i in range(20)]
    durations = {"jax": {f: 30.0 + i for i, f in enumerate(files)},
                 "tensorflow": {f: 10.0 for f in files}, "torch": {f: 4.0 for f in files}}
    workers = rt.plan(["jax", "tensorflow", "torch"], 2, durations, files)
    runs = [(b, f) for w in workers for _, b, fs in w for f in fs]
    assert sorted(runs) == sorted((b, f) for b in durations for f in files)
    estimates = [_estimate(rt, w, durations) for w in workers]
    assert len(workers) == 2 and abs(estimates[0] - estimates[1]) <= 49 + rt.PROCESS_SECONDS
    # JAX (two thirds of the time) is split in two runs, each named after its piece.
    assert [job for w in workers for job, _, _ in w] == ["jax-1", "jax-2", "tensorflow", "torch"]


def test_a_file_without_a_measurement_still_runs(rt):
    workers = rt.plan(["torch"], 2, {}, ["tests/a.py", "tests/b.py"])
    assert [fs for w in workers for _, _, fs in w] == [["tests/a.py"], ["tests/b.py"]]
    assert rt.plan(["torch", "jax"], 1, {}, ["tests/a.py"]) == [
        [("torch", "torch", ["tests/a.py"]), ("jax", "jax", ["tests/a.py"])]]


def test_the_committed_estimates_plan_the_suite_in_balanced_pieces(rt):
    files = rt.test_files()
    assert "tests/test_run_tests.py" in files and "tests/seq/test_dien.py" in files
    durations = rt.load_durations()
    workers = rt.plan(list(rt.BACKENDS), 2, durations, files)
    estimates = [_estimate(rt, w, durations) for w in workers]
    biggest = max(max(v.values()) for v in durations.values())
    assert abs(estimates[0] - estimates[1]) <= biggest + rt.PROCESS_SECONDS


def test_junit_class_names_map_to_their_file(rt):
    known = {"tests/seq/test_dien.py", "tests/test_properties.py"}
    assert rt._module_path("tests.seq.test_dien.TestDIENContract", known) == "tests/seq/test_dien.py"
    assert rt._module_path("tests.seq.test_dien", known) == "tests/seq/test_dien.py"
    assert rt._module_path("tests.test_properties", known) == "tests/test_properties.py"
    assert rt._module_path("tests.gone.test_x", known) is None
