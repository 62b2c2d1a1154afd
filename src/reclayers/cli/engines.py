"""Keep the engines a command does not use out of its process.

Keras 3 imports whatever engine happens to be installed, whatever its backend: importing Keras
runs ``import jax`` (its Orbax checkpoint callback does it at import time) and
``keras.utils.set_random_seed`` imports TensorFlow to seed it. A PyTorch run of ``reclayers``
therefore loaded JAX and TensorFlow, which costs start-up time and resident memory and is of no
use to it: on the development machine, under load, an import of Keras and ``reclayers`` plus a
small DCN-V2 fit on the torch backend took 8.8 s and peaked at 1,071 MiB with JAX importable
against 6.4 s and 963 MiB without (see ``benchmarks/README.md`` for the command-level A/B).

Before Keras is imported, the command marks the unused engines as absent in ``sys.modules``
(``sys.modules[name] = None``, Python's own way of saying "this module cannot be imported"):
Keras and the libraries below it already treat an engine that fails to import as not installed.

=========== ============================== =========================================
backend     kept out                       why the engine is not needed
=========== ============================== =========================================
torch       ``jax``, ``tensorflow``        training, evaluate, predict and ONNX export
                                           run on PyTorch alone
tensorflow  ``jax``                        SavedModel export is TensorFlow's own
jax         nothing                        SavedModel export (and its serving
                                           preprocessing) needs TensorFlow
=========== ============================== =========================================

Set ``RECLAYERS_ISOLATE_BACKEND=0`` to import every installed engine as Keras does by default.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, MutableMapping

__all__ = ["UNUSED_ENGINES", "keep_unused_engines_out", "unused_engines"]

#: The engines a backend's command never needs.
UNUSED_ENGINES: dict[str, tuple[str, ...]] = {
    "torch": ("jax", "tensorflow"),
    "tensorflow": ("jax",),
    "jax": (),
}


def unused_engines(backend: str | None, environ: Mapping[str, str]) -> tuple[str, ...]:
    """The engines to keep out of a process running ``backend``.

    Args:
        backend: the Keras backend the command will use (``None``: not decided, nothing is kept out).
        environ: the environment (``os.environ``); ``RECLAYERS_ISOLATE_BACKEND=0`` opts out.

    Returns:
        The top-level module names to mark absent (possibly empty).

    Example:
        >>> unused_engines("torch", {})
        ('jax', 'tensorflow')
        >>> unused_engines("torch", {"RECLAYERS_ISOLATE_BACKEND": "0"})
        ()
        >>> unused_engines("jax", {})
        ()
    """
    if backend is None or environ.get("RECLAYERS_ISOLATE_BACKEND", "1") == "0":
        return ()
    return UNUSED_ENGINES.get(backend, ())


def keep_unused_engines_out(backend: str | None, environ: Mapping[str, str],
                            modules: MutableMapping[str, object] | None = None) -> tuple[str, ...]:
    """Marks the engines ``backend`` does not use as not importable, before Keras is imported.

    Only for a command-line process (never call it from a library or a test process): the
    engines stay unimportable for the rest of the process. An engine that is already imported
    is left alone.

    Args:
        backend: the Keras backend the command will use.
        environ: the environment (``os.environ``); ``RECLAYERS_ISOLATE_BACKEND=0`` opts out.
        modules: the module table to edit (default ``sys.modules``; a dict in tests).

    Returns:
        The engines marked absent.

    Example:
        >>> table = {}
        >>> keep_unused_engines_out("torch", {}, table)
        ('jax', 'tensorflow')
        >>> table
        {'jax': None, 'tensorflow': None}
    """
    modules = sys.modules if modules is None else modules
    marked = tuple(name for name in unused_engines(backend, environ) if name not in modules)
    for name in marked:
        modules[name] = None
    return marked
