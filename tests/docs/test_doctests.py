"""Every ``>>>`` example in the docstrings of ``src/reclayers`` runs, one test per module."""

from __future__ import annotations

import doctest
import importlib
import io
import os

import keras
import pytest

from tests.conftest import REPO_ROOT

# The layer tests already exercise every layer on every backend; the docstring examples are about
# the documentation staying true, and on JAX (eager op-by-op compilation) they take ~40 s, so they
# run under this backend only. To check them on another backend:
# RECLAYERS_DOCTEST_BACKEND=jax KERAS_BACKEND=jax pytest tests/docs/test_doctests.py
DOCTEST_BACKEND = os.environ.get("RECLAYERS_DOCTEST_BACKEND", "torch")

PACKAGE_DIR = REPO_ROOT / "src" / "reclayers"


def _modules() -> list[str]:
    """Dotted names of the modules whose source holds a ``>>>`` example."""
    names = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if ">>>" not in path.read_text(encoding="utf-8"):
            continue
        rel = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


MODULES = _modules()


def test_docstring_examples_exist():
    """The public layers document themselves with runnable examples."""
    if keras.backend.backend() != DOCTEST_BACKEND:
        pytest.skip(f"docstring examples run under {DOCTEST_BACKEND} only (slow elsewhere)")
    total = 0
    for name in MODULES:
        module = importlib.import_module(name)
        total += sum(len(t.examples) for t in doctest.DocTestFinder().find(module))
    assert total >= 20


@pytest.mark.parametrize("module_name", MODULES)
def test_doctests(module_name, tmp_path, monkeypatch):
    if keras.backend.backend() != DOCTEST_BACKEND:
        pytest.skip(f"docstring examples run under {DOCTEST_BACKEND} only (slow elsewhere)")
    monkeypatch.chdir(tmp_path)  # examples that save files write into a scratch folder
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runner = doctest.DocTestRunner(optionflags=flags)
    out = io.StringIO()
    tests = [t for t in finder.find(module) if t.examples]
    if not tests:
        pytest.skip(f"{module_name} has no docstring examples")
    for test in sorted(tests, key=lambda t: t.name):
        runner.run(test, out=out.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, out.getvalue()
