"""The glibc malloc tuning of the command line (decision logic and the re-exec)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from reclayers.cli.allocator import TORCH_TUNABLES, TUNABLES, XLA_TUNABLES, tuned_environment

LINUX = {"system": "Linux", "libc": "glibc"}


@pytest.mark.parametrize("backend", ["jax", "tensorflow", "torch"])
def test_every_backend_on_glibc_gets_the_tunables_and_keeps_the_rest(backend):
    env = tuned_environment({"PATH": "/bin"}, backend, **LINUX)
    assert env == {"PATH": "/bin", "GLIBC_TUNABLES": TUNABLES[backend]}
    assert TUNABLES[backend] == (TORCH_TUNABLES if backend == "torch" else XLA_TUNABLES)


def test_the_xla_tunables_take_no_block_from_mmap_in_any_thread():
    # XLA's per-step buffers are allocated on worker threads, whose arenas mmap any block above
    # 64 MiB whatever the threshold: only one arena and no mmap at all keep them in the heap.
    settings = dict(item.split("=") for item in XLA_TUNABLES.split(":"))
    assert settings == {"glibc.malloc.arena_max": "1", "glibc.malloc.mmap_max": "0",
                        "glibc.malloc.trim_threshold": str(2**30)}


@pytest.mark.parametrize("environ,backend,where", [
    ({}, None, LINUX),
    ({}, "numpy", LINUX),
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
@pytest.mark.parametrize("backend,expected", [
    ("torch", TORCH_TUNABLES), ("jax", XLA_TUNABLES), (None, None)])
def test_command_line_reexecutes_with_the_tunables(backend, expected):
    # A fresh interpreter runs the console entry (argv from sys.argv) with os.execve recorded
    # instead of performed: the command must re-run itself as `python -m reclayers ...` with the
    # tunables, and go on normally (no exec) when opted out.
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
    env["KERAS_BACKEND"] = backend or "jax"
    if backend is None:
        env["RECLAYERS_MALLOC_TUNING"] = "0"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    last = json.loads(out.stdout.strip().splitlines()[-1])
    if expected is None:
        assert last == ["no exec", 0]
    else:
        assert last == [["-m", "reclayers", "models"], expected]
