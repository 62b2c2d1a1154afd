"""The README's Python code blocks run."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT


def _python_blocks() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_has_python_examples():
    assert len(_python_blocks()) >= 2


def test_readme_python_blocks_run():
    for block in _python_blocks():
        exec(compile(block, "README.md", "exec"), {})
