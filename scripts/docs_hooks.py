"""MkDocs hooks for the reclayers documentation (registered in ``mkdocs.yml``).

* Guides written on other branches (data, CLI, embedding-size search) get a short stand-in page
  while they are absent from the checkout, so the navigation and the links to them stay valid.
* ``::: reclayers.<module>`` reference blocks whose module does not exist in ``src/`` yet are
  replaced by a note (a module that exists but fails to document still fails the build).
* Every ``examples/*.py`` script of the repository gets a page under "Examples" (its source),
  and Markdown links that point out of ``docs/`` to such a script are redirected to that page.
* ``<!-- cli-help -->`` is replaced by the ``--help`` text of the ``reclayers`` command and of
  each of its sub-commands, generated from the argument parser itself.
"""

from __future__ import annotations

import argparse
import posixpath
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
EXAMPLES = ROOT / "examples"
_LINK = re.compile(r"\]\(([^)\s]+\.py)\)")
_AUTODOC = re.compile(r"^::: (reclayers(?:\.\w+)*)\n(?:[ \t]+.*\n?)*", re.M)


def _module_exists(dotted: str) -> bool:
    path = SRC.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _example_scripts() -> list[Path]:
    return sorted(EXAMPLES.glob("*.py")) if EXAMPLES.is_dir() else []


def on_config(config):
    scripts = _example_scripts()
    if scripts and config.get("nav") is not None:
        config["nav"].append({"Examples": [{p.stem: f"examples/{p.stem}.md"} for p in scripts]})
    return config


def on_files(files, config):
    for script in _example_scripts():
        doc = script.read_text(encoding="utf-8")
        content = (f"# `examples/{script.name}`\n\nRun it from the repository root with "
                   f"`python examples/{script.name}`.\n\n```python\n{doc.rstrip()}\n```\n")
        files.append(File.generated(config, f"examples/{script.stem}.md", content=content))
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

    page_dir = posixpath.dirname(page.file.src_uri)

    def relink(match: re.Match) -> str:
        target = posixpath.normpath(posixpath.join("docs", page_dir, match.group(1)))
        if target.startswith("examples/") and (ROOT / target).is_file():
            stem = posixpath.splitext(posixpath.basename(target))[0]
            return "](" + posixpath.relpath(f"examples/{stem}.md", page_dir or ".") + ")"
        return match.group(0)

    markdown = _LINK.sub(relink, markdown)
    if "<!-- cli-help -->" in markdown:
        markdown = markdown.replace("<!-- cli-help -->", _cli_help())
    return markdown
