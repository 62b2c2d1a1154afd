"""Memory-allocator settings for the PyTorch backend on Linux (glibc).

PyTorch's CPU tensors come from the C library's ``malloc``. With glibc's defaults, blocks above a
dynamic threshold are ``mmap``-ed and returned to the kernel on ``free``, so nearly every
activation of a training step lands on fresh pages and pays a page fault per 4 KiB page on first
touch. In a virtual machine those faults are expensive, the more so when its CPUs are busy: on
the 2-core VM this project is developed on, ``reclayers train --model dcn_v2 --backend torch``
(synthetic data, batch 1024) ran at 49k examples/s with the setting below against 42k without
on an idle machine (1.2x), and at 14k against 1.7k while other jobs loaded both cores (8x).
Keeping freed memory in the process (a high ``mmap_threshold`` and ``trim_threshold``) removes
those faults; JAX and TensorFlow have their own allocators and are unaffected.

glibc reads ``GLIBC_TUNABLES`` only when a process starts, so the command re-executes itself once
with the setting when it can (see :func:`tuned_environment`). Set ``RECLAYERS_MALLOC_TUNING=0`` to
opt out, or set ``GLIBC_TUNABLES`` yourself (it is then left alone).
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping

__all__ = ["GLIBC_MALLOC_TUNABLES", "reexec_with_tuned_malloc", "tuned_environment"]

#: 32 MiB (glibc's maximum) for the mmap threshold; trim only above 1 GiB of free heap top.
GLIBC_MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"


def tuned_environment(environ: Mapping[str, str], backend: str | None,
                      system: str | None = None, libc: str | None = None) -> dict[str, str] | None:
    """The environment to re-execute with, or ``None`` when nothing should change.

    Changes it only for the ``torch`` backend on Linux with glibc, when the user has not set
    ``GLIBC_TUNABLES`` and has not opted out with ``RECLAYERS_MALLOC_TUNING=0``.

    Args:
        environ: the current environment (``os.environ``).
        backend: the Keras backend the command will use (``None``: not decided, left alone).
        system: ``platform.system()`` (for tests).
        libc: ``platform.libc_ver()[0]`` (for tests).

    Returns:
        A copy of ``environ`` with ``GLIBC_TUNABLES`` set, or ``None``.

    Example:
        >>> env = tuned_environment({}, "torch", system="Linux", libc="glibc")
        >>> env["GLIBC_TUNABLES"].startswith("glibc.malloc.mmap_threshold=")
        True
        >>> tuned_environment({}, "jax", system="Linux", libc="glibc") is None
        True
    """
    system = platform.system() if system is None else system
    libc = platform.libc_ver()[0] if libc is None else libc
    if backend != "torch" or system != "Linux" or libc != "glibc":
        return None
    if "GLIBC_TUNABLES" in environ or environ.get("RECLAYERS_MALLOC_TUNING", "1") == "0":
        return None
    return dict(environ, GLIBC_TUNABLES=GLIBC_MALLOC_TUNABLES)


def reexec_with_tuned_malloc(argv: list[str], backend: str | None) -> None:
    """Replace this process by ``python -m reclayers *argv`` with tuned malloc, when useful.

    Only for a command-line invocation (never call it from a library or a test process): the
    process image is replaced, so nothing after the call runs. Returns when nothing changes.

    Args:
        argv: the command's arguments (without the program name).
        backend: the Keras backend the command will use.
    """
    env = tuned_environment(os.environ, backend)
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "reclayers", *argv], env)
