"""The documentation build's own tooling: the docstring adapter and the MkDocs hooks."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.conftest import REPO_ROOT


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def griffe_ext():
    pytest.importorskip("griffe")
    return _load("docs_griffe")


@pytest.fixture(scope="module")
def hooks():
    pytest.importorskip("mkdocs")
    return _load("docs_hooks")


def test_example_section_becomes_examples(griffe_ext):
    text = "Summary.\n\nExample:\n    >>> 1 + 1\n    2"
    assert griffe_ext.to_markdown(text) == "Summary.\n\nExamples:\n    >>> 1 + 1\n    2"


def test_code_block_directive_and_literal_block_become_fences(griffe_ext):
    text = "A:\n\n.. code-block:: text\n\n    y = f(x)\n    z = g(y)\n\nB::\n\n    q = 1\n\nEnd."
    out = griffe_ext.to_markdown(text)
    assert "```text\ny = f(x)\nz = g(y)\n```" in out
    assert "B:\n\n```text\nq = 1\n```" in out
    assert out.endswith("End.")


def test_roles_become_inline_code(griffe_ext):
    out = griffe_ext.to_markdown("See :class:`~reclayers.layers.mlp.MLP` and :func:`get`.")
    assert out == "See `reclayers.layers.mlp.MLP` and `get`."


def test_grouped_arguments_are_split(griffe_ext):
    text = ("Args:\n    units: width.\n    use_bias, bias_regularizer,\n    bias_initializer: as in"
            " Dense.\n        More text.\n\nReturns:\n    x")
    out = griffe_ext.to_markdown(text).splitlines()
    assert out[:8] == ["Args:", "    units: width.", "    use_bias: as in Dense.", "        More text.",
                       "    bias_regularizer: as in Dense.", "        More text.",
                       "    bias_initializer: as in Dense.", "        More text."]


def test_simple_rst_table_becomes_markdown(griffe_ext):
    text = ("=====  =====\nkey    value\n=====  =====\na      one\nb      two\n=====  =====\n")
    assert griffe_ext.to_markdown(text) == "| key | value |\n|---|---|\n| a | one |\n| b | two |"


def test_cli_help_is_generated_from_the_parser(hooks):
    text = hooks._cli_help()
    assert "### `reclayers --help`" in text and "### `reclayers train --help`" in text
