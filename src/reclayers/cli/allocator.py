"""The command line's allocator setting: re-execute once with ``GLIBC_TUNABLES`` (Linux/glibc).

Why the setting matters, and what it is per backend, is in :mod:`reclayers.allocator`. The command
sets it through the environment rather than in-process (:func:`reclayers.allocator.tune_malloc`)
so that every process it starts (distributed workers, for one) inherits it. Measured on
``reclayers train`` with a 2M-row Criteo-shaped file (batch 4096, one epoch, one process per
setting, two rounds): JAX ``dcn_v2`` 21.2–22.5k → 26.6–26.7k examples/s and ``deepfm``
(``lazy_adam`` tables) 51.7–57.2k → 64.3–72.5k, page faults per run from 8.5–12.5 million to 0.3
million; TensorFlow ``dcn_v2`` 25.4k → 26.5k, ``deepfm`` unchanged; PyTorch ``dcn_v2`` (synthetic
data, batch 1024) 42k → 49k on an idle machine, 1.7k → 14k with both cores loaded. The price:
freed blocks stay in the process, up to 0.3 GiB more peak resident memory in those runs. On
PyTorch the XLA setting was no faster than PyTorch's own (0.95–1.07x), so PyTorch keeps its own.

glibc reads ``GLIBC_TUNABLES`` only when a process starts, hence the re-execution (see
:func:`tuned_environment`). Set ``RECLAYERS_MALLOC_TUNING=0`` to opt out, or set
``GLIBC_TUNABLES`` yourself (it is then left alone).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from reclayers.allocator import SETTINGS, glibc_tunables, tuning_applies

__all__ = ["TORCH_TUNABLES", "TUNABLES", "XLA_TUNABLES", "reexec_with_tuned_malloc", "tuned_environment"]

#: PyTorch: a fixed 32 MiB mmap threshold (glibc's maximum); trim only above 1 GiB of free heap top.
TORCH_TUNABLES = glibc_tunables("torch")

#: JAX and TensorFlow: one arena for all threads, no ``mmap``-ed blocks, trim only above 1 GiB.
XLA_TUNABLES = glibc_tunables("jax")

#: The ``GLIBC_TUNABLES`` value for each backend's processes.
TUNABLES = {backend: glibc_tunables(backend) for backend in SETTINGS}


def tuned_environment(environ: Mapping[str, str], backend: str | None,
                      system: str | None = None, libc: str | None = None) -> dict[str, str] | None:
    """The environment to re-execute with, or ``None`` when nothing should change.

    Sets the backend's :data:`TUNABLES` on Linux with glibc, when the user has not set
    ``GLIBC_TUNABLES`` and has not opted out with ``RECLAYERS_MALLOC_TUNING=0``.

    Args:
        environ: the current environment (``os.environ``).
        backend: the Keras backend the command will use (``None``: not decided, left alone).
        system: ``platform.system()`` (for tests).
        libc: ``platform.libc_ver()[0]`` (for tests).

    Returns:
        A copy of ``environ`` with ``GLIBC_TUNABLES`` set, or ``None``.

    Example:
        >>> env = tuned_environment({}, "jax", system="Linux", libc="glibc")
        >>> env["GLIBC_TUNABLES"] == XLA_TUNABLES
        True
        >>> tuned_environment({}, "torch", system="Darwin", libc="") is None
        True
    """
    if backend not in TUNABLES or not tuning_applies(environ, system, libc):
        return None
    return dict(environ, GLIBC_TUNABLES=TUNABLES[backend])


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
