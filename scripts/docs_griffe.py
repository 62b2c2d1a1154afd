"""Griffe extension used by the documentation build (see ``mkdocs.yml``).

The docstrings of ``src/reclayers`` are written to read well in ``help()`` and to run as
doctests; this extension adapts the few reStructuredText habits they contain to the Markdown
that mkdocstrings renders:

* an ``Example:`` section becomes a Google ``Examples:`` section, so ``>>>`` lines are shown as
  a Python console block (instead of nested quotes);
* ``.. code-block:: lang`` directives become fenced code blocks;
* the roles ``:class:`x```, ``:func:`x```, ``:meth:`x```, ``:mod:`x```, ``:attr:`x``` become
  inline code.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

from griffe import Extension

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.M)
_DIRECTIVE = re.compile(r"^( *)\.\. code-block::[ \t]*(\w*)[ \t]*\n[ \t]*\n((?:\1[ \t]+\S.*\n|[ \t]*\n)+)", re.M)
_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|obj):`~?([^`]+)`")


def _fence(match: re.Match) -> str:
    indent, lang, body = match.group(1), match.group(2) or "text", match.group(3)
    body = textwrap.dedent(body.rstrip("\n") + "\n")
    lines = [indent + "```" + lang] + [indent + line if line else "" for line in body.splitlines()]
    return "\n".join(lines + [indent + "```", "", ""])


def to_markdown(text: str) -> str:
    """Rewrite the reStructuredText constructs listed in the module docstring as Markdown."""
    text = _EXAMPLE.sub(r"\1Examples:", text)
    if not text.endswith("\n"):
        text += "\n"
    text = _DIRECTIVE.sub(_fence, text)
    return _ROLE.sub(r"`\1`", text).rstrip("\n")


class RestToMarkdown(Extension):
    """Apply :func:`to_markdown` to every docstring as soon as griffe reads it."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
