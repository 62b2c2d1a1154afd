"""glibc ``malloc`` settings that keep a training step's freed memory in the process (Linux).

PyTorch's CPU tensors and the buffers of XLA's CPU runtime (JAX, and TensorFlow's XLA-compiled
steps) come from the C library's ``malloc``. With glibc's defaults a training step lands on fresh
pages, paying a page fault (and the kernel's zeroing) per 4 KiB page, in two ways:

* blocks above a dynamic threshold (at most 32 MiB) are ``mmap``-ed and returned to the kernel on
  ``free``: PyTorch's activations. The PyTorch setting fixes the threshold at 32 MiB and trims
  the heap only above 1 GiB free, so they are reused.
* a thread other than the main one allocates from its own arena, whose heaps hold at most 64 MiB,
  and a larger block is ``mmap``-ed whatever the threshold. XLA's CPU runtime allocates each
  step's temporary buffer on its worker threads (83 MiB for the ``deepfm`` zoo model at batch
  4096). The JAX / TensorFlow setting gives every thread the one main arena (``arena_max=1``) and
  takes no block from ``mmap`` (``mmap_max=0``), so every block comes from the heap and freed
  ones are reused.

The ``reclayers`` command applies these settings itself (it re-executes with ``GLIBC_TUNABLES``,
which its child processes inherit). A Python program that trains with the library calls
:func:`tune_malloc` first thing, before importing Keras or an engine::

    from reclayers.allocator import tune_malloc
    tune_malloc("jax")
    import keras

or exports ``GLIBC_TUNABLES`` (:func:`glibc_tunables` gives the value) before Python starts.
Measured effects and their cost are in the backends guide (``docs/backends.md``).
"""

from __future__ import annotations

import ctypes
import os
import platform
import warnings
from collections.abc import Mapping

__all__ = ["SETTINGS", "glibc_tunables", "tuning_applies", "tune_malloc"]

_MIB = 1 << 20

#: Per backend, glibc's malloc parameters (``glibc.malloc.<name>`` tunables, ``mallopt`` options).
SETTINGS: dict[str, dict[str, int]] = {
    # JAX and TensorFlow (XLA): one arena for all threads, no mmap-ed blocks, trim above 1 GiB only.
    "jax": {"arena_max": 1, "mmap_max": 0, "trim_threshold": 1024 * _MIB},
    "tensorflow": {"arena_max": 1, "mmap_max": 0, "trim_threshold": 1024 * _MIB},
    # PyTorch: a fixed 32 MiB mmap threshold (glibc's largest); trim above 1 GiB only.
    "torch": {"mmap_threshold": 32 * _MIB, "trim_threshold": 1024 * _MIB},
}

#: ``mallopt`` option numbers (glibc's ``malloc.h``).
_MALLOPT = {"trim_threshold": -1, "mmap_threshold": -3, "mmap_max": -4, "arena_max": -8}


def glibc_tunables(backend: str) -> str:
    """The ``GLIBC_TUNABLES`` value of ``backend``'s :data:`SETTINGS`.

    Args:
        backend: ``"jax"``, ``"tensorflow"`` or ``"torch"``.

    Returns:
        ``"glibc.malloc.<name>=<value>:..."``, to export before a process starts.

    Raises:
        ValueError: an unknown ``backend``.

    Example:
        >>> glibc_tunables("torch")
        'glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824'
    """
    return ":".join(f"glibc.malloc.{name}={value}" for name, value in _settings(backend).items())


def _settings(backend: str) -> dict[str, int]:
    if backend not in SETTINGS:
        raise ValueError(
            f"tune_malloc: backend must be one of {', '.join(SETTINGS)}; got {backend!r}"
        )
    return SETTINGS[backend]


def tuning_applies(environ: Mapping[str, str], system: str | None = None, libc: str | None = None) -> bool:
    """Whether to tune: on Linux with glibc, unless ``GLIBC_TUNABLES`` is set (the user's own
    choice, left alone) or ``RECLAYERS_MALLOC_TUNING=0`` (opted out).

    Args:
        environ: the environment (``os.environ``).
        system: ``platform.system()`` (for tests).
        libc: ``platform.libc_ver()[0]`` (for tests).

    Example:
        >>> tuning_applies({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "Linux", "glibc")
        False
    """
    system = platform.system() if system is None else system
    libc = platform.libc_ver()[0] if libc is None else libc
    if system != "Linux" or libc != "glibc":
        return False
    return "GLIBC_TUNABLES" not in environ and environ.get("RECLAYERS_MALLOC_TUNING", "1") != "0"


def _threads() -> int:
    """OS threads of this process (native ones included), 1 where ``/proc`` cannot tell."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def tune_malloc(backend: str, environ: Mapping[str, str] | None = None) -> dict[str, int] | None:
    """Applies ``backend``'s :data:`SETTINGS` to this process with glibc's ``mallopt``.

    Call it before importing Keras, JAX, TensorFlow or PyTorch: glibc fixes its number of arenas
    when the process's threads first allocate, so ``arena_max`` set later may leave threads on
    arenas of their own (a ``RuntimeWarning`` says so; the other parameters still apply). Unlike
    ``GLIBC_TUNABLES``, the setting is not inherited by child processes.

    Left alone (returns ``None``) where :func:`tuning_applies` says so: off Linux or glibc, when
    ``GLIBC_TUNABLES`` is set (the user's own choice), and when ``RECLAYERS_MALLOC_TUNING=0``.

    Args:
        backend: ``"jax"``, ``"tensorflow"`` or ``"torch"``.
        environ: the environment to read the two variables from; default ``os.environ``.

    Returns:
        The parameters applied, e.g. ``{"arena_max": 1, "mmap_max": 0, ...}``, or ``None``.

    Raises:
        ValueError: an unknown ``backend``.

    Example:
        >>> tune_malloc("jax", environ={"RECLAYERS_MALLOC_TUNING": "0"}) is None
        True
    """
    settings = _settings(backend)
    if not tuning_applies(os.environ if environ is None else environ):
        return None
    if "arena_max" in settings and _threads() > 1:
        warnings.warn(
            f"tune_malloc: this process already runs {_threads()} threads, which may keep arenas of "
            "their own (arena_max applies to threads that allocate later); call tune_malloc "
            "before importing keras or an engine, or export "
            f"GLIBC_TUNABLES={glibc_tunables(backend)}",
            RuntimeWarning,
            stacklevel=2,
        )
    libc = ctypes.CDLL(None)
    for name, value in settings.items():
        if libc.mallopt(_MALLOPT[name], value) != 1:
            raise OSError(f"tune_malloc: glibc's mallopt refused {name}={value}")
    return dict(settings)
