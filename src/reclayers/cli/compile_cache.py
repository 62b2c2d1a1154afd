"""A persistent compilation cache for the command's JAX runs.

``jax.jit`` compiles the training, evaluation and prediction steps afresh in every process, and
a step is compiled once more for each new batch shape (an epoch's shorter last batch). For the
zoo's larger models that is most of a first epoch: ``reclayers train --model deepfm --backend jax
--embedding-optimizer lazy_adam`` on a 1M-row Criteo-shaped file (batch 4096, 4M table rows) spent
15 s compiling its first step and 19 s compiling the last, shorter one, in a 53 s epoch. JAX can
keep compiled programs on disk, keyed by the program, the compiler's flags and its version, and
load them instead of compiling; so a command that compiles the same steps again (the next day's
run with ``--warm-start``, a ``--resume``, a sweep over learning rates, ``reclayers evaluate``)
skips the compilation. The same run a second time: first epoch 53.5 s → 21.4 s; the cache
held 1.1 MB.

The command sets it through the environment (``JAX_COMPILATION_CACHE_DIR``, which every process it
starts inherits) to ``jax-compilation`` in the cache folder (``--cache-dir``, else
``RECLAYERS_CACHE_DIR``, else ``~/.cache/reclayers``), at most :data:`CACHE_BYTES` (the least
recently used programs are removed first). JAX keeps programs that took at least a second to
compile. A ``JAX_COMPILATION_CACHE_DIR`` of the user's is left alone; ``RECLAYERS_COMPILATION_CACHE=0``
turns the cache off.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["CACHE_BYTES", "compilation_cache_environment"]

#: The most the compilation cache may hold on disk.
CACHE_BYTES = 1 << 30


def compilation_cache_environment(backend: str, environ: Mapping[str, str], cache_root) -> dict[str, str]:
    """The environment variables that give ``backend``'s JAX a persistent compilation cache.

    Args:
        backend: the Keras backend of the command (only ``"jax"`` compiles with ``jax.jit``).
        environ: the command's environment.
        cache_root: the folder of the command's caches (``--cache-dir`` or its default).

    Returns:
        ``{"JAX_COMPILATION_CACHE_DIR": ..., "JAX_COMPILATION_CACHE_MAX_SIZE": ...}``, or ``{}``
        for another backend, when the user set ``JAX_COMPILATION_CACHE_DIR`` or when
        ``RECLAYERS_COMPILATION_CACHE=0``.

    Example:
        >>> compilation_cache_environment("jax", {}, "/data/cache")["JAX_COMPILATION_CACHE_DIR"]
        '/data/cache/jax-compilation'
        >>> compilation_cache_environment("torch", {}, "/data/cache")
        {}
    """
    if backend != "jax" or "JAX_COMPILATION_CACHE_DIR" in environ:
        return {}
    if environ.get("RECLAYERS_COMPILATION_CACHE", "1") == "0":
        return {}
    return {"JAX_COMPILATION_CACHE_DIR": str(Path(cache_root) / "jax-compilation"),
            "JAX_COMPILATION_CACHE_MAX_SIZE": str(CACHE_BYTES)}
