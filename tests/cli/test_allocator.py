"""The torch-on-glibc malloc tuning of the command line (decision logic and the re-exec)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from reclayers.cli.allocator import GLIBC_MALLOC_TUNABLES, tuned_environment

LINUX = {"system": "Linux", "libc": "glibc"}


def test_torch_on_glibc_gets_the_tunables_and_keeps_the_rest():
    env = tuned_environment({"PATH": "/bin"}, "torch", **LINUX)
    assert env == {"PATH": "/bin", "GLIBC_TUNABLES": GLIBC_MALLOC_TUNABLES}


@pytest.mark.parametrize("environ,backend,where", [
    ({}, "jax", LINUX),
    ({}, "tensorflow", LINUX),
    ({}, None, LINUX),
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "torch", LINUX),  # the user's own setting wins
    ({"RECLAYERS_MALLOC_TUNING": "0"}, "torch", LINUX),  # opted out
    ({}, "torch", {"system": "Darwin", "libc": ""}),
    ({}, "torch", {"system": "Linux", "libc": "musl"}),
])
def test_left_alone(environ, backend, where):
    assert tuned_environment(environ, backend, **where) is None


def test_in_process_main_never_reexecutes(monkeypatch):
    # main(argv) is the library/test entry: it must not replace the calling process.
    from reclayers import cli

    calls = []
    monkeypatch.setattr(os, "execve", lambda *a: calls.append(a))
    assert cli.main(["models"]) == 0
    assert calls == []


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="the tuning applies to Linux with glibc only")
@pytest.mark.parametrize("backend,expected", [("torch", GLIBC_MALLOC_TUNABLES), ("jax", None)])
def test_command_line_reexecutes_for_torch_only(backend, expected):
    # A fresh interpreter runs the console entry (argv from sys.argv) with os.execve recorded
    # instead of performed: the command must re-run itself as `python -m reclayers ...` with the
    # tunables for torch, and go on normally (no exec) for the other backends.
    code = (
        "import json, os, sys\n"
        "def fake_execve(path, args, env):\n"
        "    print(json.dumps([args[1:], env.get('GLIBC_TUNABLES')])); sys.exit(0)\n"
        "os.execve = fake_execve\n"
        "sys.argv = ['reclayers', 'models']\n"
        "from reclayers.cli import main\n"
        "rc = main()\n"
        "print(json.dumps(['no exec', rc]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "RECLAYERS_MALLOC_TUNING")}
    env["KERAS_BACKEND"] = backend
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    last = json.loads(out.stdout.strip().splitlines()[-1])
    if expected is None:
        assert last == ["no exec", 0]
    else:
        assert last == [["-m", "reclayers", "models"], expected]
