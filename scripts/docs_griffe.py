"""Griffe extension used by the documentation build (see ``mkdocs.yml``).

The docstrings of ``src/reclayers`` are written to read well in ``help()`` and to run as
doctests; this extension adapts the few reStructuredText habits they contain to the Markdown
that mkdocstrings renders:

* an ``Example:`` section becomes a Google ``Examples:`` section, so ``>>>`` lines are shown as
  a Python console block (instead of nested quotes);
* ``.. code-block:: lang`` directives and ``::`` literal blocks become fenced code blocks;
* reStructuredText simple tables become Markdown tables;
* grouped parameter entries (``a, b: shared description``) become one entry per name;
* the roles ``:class:`x```, ``:func:`x```, ``:meth:`x```, ``:mod:`x```, ``:attr:`x``` become
  inline code.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

from griffe import Extension

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.M)
_DIRECTIVE = re.compile(
    r"^( *)\.\. code-block::[ \t]*(\w*)[ \t]*\n[ \t]*\n((?:\1[ \t]+\S.*\n|[ \t]*\n)+)", re.M
)
_LITERAL = re.compile(r"^( *)(\S.*?)::[ \t]*\n[ \t]*\n((?:\1[ \t]+\S.*\n|[ \t]*\n)+)", re.M)
_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|obj):`~?([^`]+)`")


def _fenced(indent: str, lang: str, body: str) -> str:
    body = textwrap.dedent(body.rstrip("\n") + "\n")
    lines = [indent + "```" + lang] + [indent + line if line else "" for line in body.splitlines()]
    return "\n".join(lines + [indent + "```", "", ""])


def _directive(match: re.Match) -> str:
    return _fenced(match.group(1), match.group(2) or "text", match.group(3))


def _literal(match: re.Match) -> str:
    indent, lead, body = match.group(1), match.group(2), match.group(3)
    return indent + lead + ":\n\n" + _fenced(indent, "text", body)


_SECTION = re.compile(r"^(Args|Arguments|Parameters|Attributes|Other Parameters|Keyword Args):\s*$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _split_grouped(lines: list[str]) -> list[str]:
    """Expand ``a, b: text`` entries (possibly spread over lines ending in ``,``) of Google
    parameter sections into one ``a: text`` / ``b: text`` entry per name."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        out.append(lines[i])
        if not _SECTION.match(lines[i]):
            i += 1
            continue
        i += 1
        body_end = i
        while body_end < len(lines) and (not lines[body_end].strip() or _indent(lines[body_end]) > 0):
            body_end += 1
        body = lines[i:body_end]
        item_indent = min((_indent(b) for b in body if b.strip()), default=0)
        j = 0
        while j < len(body):
            line = body[j]
            if not line.strip() or _indent(line) != item_indent:
                out.append(line)
                j += 1
                continue
            head = line.strip()
            while ":" not in head and head.endswith(",") and j + 1 < len(body) \
                    and _indent(body[j + 1]) == item_indent:
                j += 1
                head += " " + body[j].strip()
            j += 1
            names, sep, desc = head.partition(":")
            if sep and "," in names and "(" not in names:
                cont = []
                while j < len(body) and (not body[j].strip() or _indent(body[j]) > item_indent):
                    cont.append(body[j])
                    j += 1
                while cont and not cont[-1].strip():
                    cont.pop()
                    j -= 1
                for name in (n.strip() for n in names.split(",") if n.strip()):
                    out.append(" " * item_indent + f"{name}:{desc}")
                    out.extend(cont)
            else:
                out.append(" " * item_indent + head)
        i = body_end
    return out


_BORDER = re.compile(r"^( *)=+(?: +=+)+ *$")


def _rst_tables(lines: list[str]) -> list[str]:
    """Rewrite reStructuredText *simple tables* (``====  ====`` borders) as Markdown tables."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _BORDER.match(lines[i])
        borders = [k for k in range(i, min(len(lines), i + 200)) if _BORDER.match(lines[k])
                   and lines[k].strip() == lines[i].strip()]
        if not m or len(borders) < 3:
            out.append(lines[i])
            i += 1
            continue
        indent = m.group(1)
        spans = [(c.start(), c.end()) for c in re.finditer(r"=+", lines[i])]

        bounds = [a for a, _ in spans] + [None]

        def rows(block: list[str], bounds: list = bounds) -> list[list[str]]:
            result: list[list[str]] = []
            for line in block:
                if not line.strip():
                    continue
                row = [line[bounds[k]: bounds[k + 1]].strip() for k in range(len(bounds) - 1)]
                if result and not row[0]:
                    result[-1] = [f"{a} {b}".strip() for a, b in zip(result[-1], row)]
                else:
                    result.append(row)
            return result

        header = rows(lines[borders[0] + 1: borders[1]])
        body = rows(lines[borders[1] + 1: borders[2]])
        for row in header[:1]:
            out.append(indent + "| " + " | ".join(row) + " |")
        out.append(indent + "|" + "---|" * len(spans))
        for row in header[1:] + body:
            out.append(indent + "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
        i = borders[2] + 1
    return out


def to_markdown(text: str) -> str:
    """Rewrite the reStructuredText constructs listed in the module docstring as Markdown."""
    text = _EXAMPLE.sub(r"\1Examples:", text)
    text = "\n".join(_rst_tables(_split_grouped(text.split("\n"))))
    if not text.endswith("\n"):
        text += "\n"
    text = _DIRECTIVE.sub(_directive, text)
    text = _LITERAL.sub(_literal, text)
    return _ROLE.sub(r"`\1`", text).rstrip("\n")


class RestToMarkdown(Extension):
    """Apply :func:`to_markdown` to every docstring as soon as griffe reads it."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
