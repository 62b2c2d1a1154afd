"""Build the documentation site with warnings as errors (broken links and references fail).

Usage: ``python scripts/build_docs.py [--site-dir DIR] [--serve]``

Equivalent to ``mkdocs build --strict`` run from the repository root; needs the ``dev`` extra
(``pip install -e ".[dev]"``: mkdocs, mkdocs-material, mkdocstrings[python]). ``--serve``
starts a live-reloading preview on http://127.0.0.1:8000 instead.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site-dir", default=str(ROOT / "site"), help="output folder")
    parser.add_argument("--serve", action="store_true", help="live preview instead of a build")
    args = parser.parse_args()
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        print("mkdocs is not installed: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    if args.serve:
        cmd = [sys.executable, "-m", "mkdocs", "serve", "--strict"]
    else:
        cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", args.site_dir]
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
