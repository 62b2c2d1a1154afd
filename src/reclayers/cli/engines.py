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

TensorFlow, where a command uses it, is imported through the hook of
:func:`import_tensorflow_quietly`: from
2.19 on its import writes C++ log lines straight to the process's standard error (an INFO notice
about oneDNN, each time twice, with absl's "before InitializeLog" preamble) whatever
``TF_CPP_MIN_LOG_LEVEL`` says, so every command printed four lines of noise before its output.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Mapping, MutableMapping
from typing import Any

__all__ = [
    "UNUSED_ENGINES",
    "import_tensorflow_quietly",
    "keep_unused_engines_out",
    "tf_log_lines_kept",
    "unused_engines",
]

#: A C++ log line of absl/TensorFlow: severity letter, ``MMDD``, time, thread, ``file:line]``.
_CPP_LOG_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\]]+\] ")
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"

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


def tf_log_lines_kept(text: str, min_log_level: int) -> str:
    r"""``text`` (what an import wrote to standard error) without the C++ log lines that
    ``TF_CPP_MIN_LOG_LEVEL=min_log_level`` asks to hide (1: INFO, 2: and WARNING, 3: and ERROR)
    and without absl's "before InitializeLog" preamble once any line is hidden; anything else
    (Python warnings, tracebacks, FATAL lines) is kept as it was.

    Example:
        >>> noise = ("WARNING: All log messages before absl::InitializeLog() is called are "
        ...          "written to STDERR\n"
        ...          "I0000 00:00:1796594564.514673    9269 port.cc:153] oneDNN custom operations are on.\n"
        ...          "a Python warning\n")
        >>> tf_log_lines_kept(noise, 1)
        'a Python warning\n'
        >>> tf_log_lines_kept(noise, 0) == noise
        True
    """
    if min_log_level < 1:
        return text
    hidden = "IWE"[: min(min_log_level, 3)]
    kept = []
    for line in text.splitlines(keepends=True):
        match = _CPP_LOG_LINE.match(line)
        if (match and match.group(1) in hidden) or line.rstrip("\n") == _ABSL_PREAMBLE:
            continue
        kept.append(line)
    return "".join(kept)


def import_tensorflow_quietly(environ: Mapping[str, str]) -> None:
    """Makes the process's first ``import tensorflow`` (whenever Keras gets to it: at once on the
    TensorFlow backend, at the first seeding on JAX, never where it is kept out) filter the C++
    log lines that import writes to standard error by ``TF_CPP_MIN_LOG_LEVEL`` (see
    :func:`tf_log_lines_kept`); the rest of what the import writes is passed on.

    For the command line only: during that import the process's file descriptor 2 points at a
    temporary file (C++ code writes there, below Python's ``sys.stderr``). Nothing is imported
    here: a hook on ``sys.meta_path`` wraps TensorFlow's own loader and removes itself once used.

    Args:
        environ: the environment (``TF_CPP_MIN_LOG_LEVEL``; unset or not a number: 0, nothing hidden).
    """
    try:
        level = int(environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        level = 0
    hooked = any(isinstance(f, _QuietTensorFlow) for f in sys.meta_path)
    if level < 1 or "tensorflow" in sys.modules or hooked:
        return
    sys.meta_path.insert(0, _QuietTensorFlow(level))


class _QuietTensorFlow:
    """``sys.meta_path`` hook of :func:`import_tensorflow_quietly` (finder, then loader wrapper)."""

    def __init__(self, level: int) -> None:
        self.level = level
        self.loader = None

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "tensorflow" or self.loader is not None:
            return None
        sys.meta_path.remove(self)  # the real finders answer; this hook is used once
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        self.loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                self.loader.exec_module(module)
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                sys.stderr.write(tf_log_lines_kept(captured.read().decode(errors="replace"), self.level))
                sys.stderr.flush()
