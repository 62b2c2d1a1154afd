"""Memory-allocator settings for every backend on Linux (glibc).

PyTorch's CPU tensors and the buffers of XLA's CPU runtime (JAX, and TensorFlow's XLA-compiled
steps) come from the C library's ``malloc``. With glibc's defaults a training step lands on fresh
pages, paying a page fault (and the kernel's zeroing) per 4 KiB page, in two ways:

* blocks above a dynamic threshold (at most 32 MiB) are ``mmap``-ed and returned to the kernel on
  ``free``: PyTorch's activations. :data:`TORCH_TUNABLES` fixes the threshold at 32 MiB and trims
  the heap only above 1 GiB free, so they are reused. On the 2-core VM this project is developed
  on, ``reclayers train --model dcn_v2 --backend torch`` (synthetic data, batch 1024) ran at 49k
  examples/s with it against 42k without on an idle machine (1.2x), and at 14k against 1.7k while
  other jobs loaded both cores (8x).
* a thread other than the main one allocates from its own arena, whose heaps hold at most 64 MiB,
  and a larger block is ``mmap``-ed whatever the threshold. XLA's CPU runtime allocates each
  step's temporary buffer on its worker threads: 83 MiB for ``deepfm`` at batch 4096, about 21,000
  page faults per step. :data:`XLA_TUNABLES` gives every thread the one main arena
  (``arena_max=1``) and takes no block from ``mmap`` (``mmap_max=0``), so every block comes from
  the heap and freed ones are reused. ``reclayers train`` on a 2M-row Criteo-shaped file (batch
  4096, one epoch, one process per setting, two rounds): JAX ``dcn_v2`` 21.2–22.5k → 26.6–26.7k
  examples/s and ``deepfm`` (``lazy_adam`` tables) 51.7–57.2k → 64.3–72.5k, page faults per run
  from 8.5–12.5 million to 0.3 million; TensorFlow ``dcn_v2`` 25.4k → 26.5k (faults 1.6 → 0.2
  million), ``deepfm`` unchanged. The price: freed blocks stay in the process, up to 0.3 GiB more
  peak resident memory in those runs. On PyTorch it was no faster than :data:`TORCH_TUNABLES`
  (0.95–1.07x), so PyTorch keeps that one.

glibc reads ``GLIBC_TUNABLES`` only when a process starts, so the command re-executes itself once
with the setting when it can (see :func:`tuned_environment`). Set ``RECLAYERS_MALLOC_TUNING=0`` to
opt out, or set ``GLIBC_TUNABLES`` yourself (it is then left alone).
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping

__all__ = ["TORCH_TUNABLES", "TUNABLES", "XLA_TUNABLES", "reexec_with_tuned_malloc", "tuned_environment"]

#: PyTorch: a fixed 32 MiB mmap threshold (glibc's maximum); trim only above 1 GiB of free heap top.
TORCH_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"

#: JAX and TensorFlow: one arena for all threads, no ``mmap``-ed blocks, trim only above 1 GiB.
XLA_TUNABLES = "glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1073741824"

#: The ``GLIBC_TUNABLES`` value for each backend's processes.
TUNABLES = {"jax": XLA_TUNABLES, "tensorflow": XLA_TUNABLES, "torch": TORCH_TUNABLES}


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
    system = platform.system() if system is None else system
    libc = platform.libc_ver()[0] if libc is None else libc
    if backend not in TUNABLES or system != "Linux" or libc != "glibc":
        return None
    if "GLIBC_TUNABLES" in environ or environ.get("RECLAYERS_MALLOC_TUNING", "1") == "0":
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
