"""MkDocs hooks for the reclayers documentation (registered in ``mkdocs.yml``).

* Guides written on other branches (data, CLI, embedding-size search) get a short stand-in page
  while they are absent from the checkout, so the navigation and the links to them stay valid.
* ``::: reclayers.<module>`` reference blocks whose module does not exist in ``src/`` yet are
  replaced by a note (a module that exists but fails to document still fails the build).
* ``<!-- cli-help -->`` is replaced by the ``--help`` text of the ``reclayers`` command and of
  each of its sub-commands, generated from the argument parser itself.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

_PENDING_GUIDES = {
    "guides/data.md": "Training on your own data",
    "guides/cli.md": "The reclayers command",
    "guides/embedding_size_search.md": "Embedding-size search",
}
_AUTODOC = re.compile(r"^::: (reclayers(?:\.\w+)*)\n(?:[ \t]+.*\n?)*", re.M)


def _module_exists(dotted: str) -> bool:
    path = SRC.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def on_files(files, config):
    for src_uri, title in _PENDING_GUIDES.items():
        if files.get_file_from_path(src_uri) is None:
            content = (
                f"# {title}\n\n!!! note \"Being written\"\n    This guide is not part of this "
                "build yet. Meanwhile see [Getting started](getting_started.md) and the "
                "[API reference](../api/index.md).\n"
            )
            files.append(File.generated(config, src_uri, content=content))
    return files


def _cli_help() -> str:
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))
    from reclayers import cli

    parser = cli._parser()
    blocks = [("reclayers --help", parser.format_help())]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                blocks.append((f"reclayers {name} --help", sub.format_help()))
    out = []
    for title, text in blocks:
        out.append(f"### `{title}`\n\n```text\n{text.rstrip()}\n```\n")
    return "\n".join(out)


def on_page_markdown(markdown, page, config, files):
    def replace(match: re.Match) -> str:
        module = match.group(1)
        if _module_exists(module):
            return match.group(0)
        return (f"!!! note \"Not in this build\"\n    `{module}` is not part of this checkout yet; "
                "its reference appears here once it is merged.\n")

    markdown = _AUTODOC.sub(replace, markdown)
    if "<!-- cli-help -->" in markdown:
        markdown = markdown.replace("<!-- cli-help -->", _cli_help())
    return markdown
