"""``mkdocs build --strict`` succeeds: warnings (broken links, unresolved references) fail."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import pytest

from tests.conftest import REPO_ROOT

# The build reads the sources statically (griffe) and never imports Keras, so its result does not
# depend on the backend; it runs once, under this one.
BUILD_BACKEND = "torch"


def test_docs_build_strict(tmp_path):
    if keras.backend.backend() != BUILD_BACKEND:
        pytest.skip(f"backend-independent; the docs build runs under {BUILD_BACKEND} only")
    try:
        import mkdocs  # noqa: F401
        import mkdocstrings  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("mkdocs / mkdocstrings are not installed under CI (pip install -e '.[dev]')")
        pytest.skip("mkdocs / mkdocstrings are not installed (pip install -e '.[dev]')")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "scripts/build_docs.py", "--site-dir", str(tmp_path / "site")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    site = tmp_path / "site"
    for page in ("index.html", "migration/index.html", "api/layers/dcn/index.html",
                 "guides/feature_cross/index.html", "api/cli/index.html"):
        assert (site / page).is_file(), page
    assert "reclayers train" in (site / "api/cli/index.html").read_text(encoding="utf-8")
