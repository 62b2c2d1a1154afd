"""Every ```python block of ``docs/**/*.md`` runs (one test per page).

The blocks of a page run in order in one namespace, like a notebook, in a scratch working
directory. A block is skipped only when the line right before it is ``<!-- no-test -->`` (for
examples that need data or network access that the test machine does not have, or that must be
the first lines a process runs).
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO_ROOT

DOCS = REPO_ROOT / "docs"
_BLOCK = re.compile(r"(?P<marker><!-- no-test -->[ \t]*\n)?^```python[^\n]*\n(?P<code>.*?)^```",
                    re.M | re.S)


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """``(line, code, skipped)`` for every fenced Python block of a Markdown text."""
    blocks = []
    for m in _BLOCK.finditer(text):
        line = text.count("\n", 0, m.start("code")) + 1
        blocks.append((line, m.group("code"), m.group("marker") is not None))
    return blocks


PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")
               if python_blocks(p.read_text(encoding="utf-8")))

# Pages written on other branches whose examples do not run yet, with what is missing. The marks
# are strict: the test fails as soon as a page is fixed, so that its entry gets removed.
KNOWN_BROKEN: dict[str, str] = {}


# Pages whose examples compute nothing that depends on the backend run under one backend only
# (``one_backend`` in tests/conftest.py), with the reason.
ONE_BACKEND_PAGES: dict[str, str] = {
    "guides/scaling.md": "memory accounting: counts of table rows, weights and optimizer slots of "
                         "built (never trained) models, the same numbers on every backend",
}


def _page_params() -> list:
    params = []
    for page in PAGES:
        marks = []
        if page in KNOWN_BROKEN:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_BROKEN[page]))
        if page in ONE_BACKEND_PAGES:
            marks.append(pytest.mark.one_backend)
        params.append(pytest.param(page, marks=marks))
    return params


def test_one_backend_pages_exist():
    assert set(ONE_BACKEND_PAGES) <= set(PAGES)


def test_block_extraction():
    text = "a\n```python\nx = 1\n```\n<!-- no-test -->\n```python\nraise SystemExit\n```\n"
    assert python_blocks(text) == [(3, "x = 1\n", False), (7, "raise SystemExit\n", True)]


def test_guides_have_examples():
    assert {"index.md", "guides/getting_started.md", "guides/feature_cross.md"} <= set(PAGES)


@pytest.mark.parametrize("page", _page_params())
def test_page_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = DOCS / page
    namespace: dict = {"__name__": "__docs__"}
    ran = 0
    for line, code, skipped in python_blocks(path.read_text(encoding="utf-8")):
        if skipped:
            continue
        # Pad so tracebacks point at the Markdown line of the failing statement.
        exec(compile("\n" * (line - 1) + code, str(path), "exec"), namespace)
        ran += 1
    if not ran:
        pytest.skip(f"every example of {page} is marked <!-- no-test -->")
