"""Which Keras backend a ``reclayers`` command will run on, decided without importing Keras.

Keras picks its backend once, when it is first imported: the ``KERAS_BACKEND`` environment
variable when it is set and not empty, otherwise the ``"backend"`` key of ``keras.json`` in the
Keras home folder (``KERAS_HOME``, else ``~/.keras``, else ``/tmp/.keras`` when the home folder is
not writable), otherwise ``"tensorflow"``. Keras writes that file with ``"tensorflow"`` the first
time it is imported on a machine, so a fresh machine runs on TensorFlow unless told otherwise.

The command line puts ``--backend`` in front of that order and then sets ``KERAS_BACKEND`` to the
answer, so every flag check and Keras itself see the same backend.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping

__all__ = ["keras_backend", "backend_origin"]

#: Keras's own default when neither ``KERAS_BACKEND`` nor ``keras.json`` names a backend.
KERAS_DEFAULT = "tensorflow"


def _keras_json(environ: Mapping[str, str]) -> str:
    """The path of the ``keras.json`` Keras reads (the same rule as ``keras.src.backend.config``)."""
    if "KERAS_HOME" in environ:
        home = environ["KERAS_HOME"]
    else:
        base = environ.get("HOME") or os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    return os.path.expanduser(os.path.join(home, "keras.json"))


def _resolve(requested: str | None, environ: Mapping[str, str] | None) -> tuple[str, str]:
    if requested:
        return requested, "--backend"
    if environ is None and "keras" in sys.modules and hasattr(sys.modules["keras"], "backend"):
        return sys.modules["keras"].backend.backend(), "Keras, already loaded in this process"
    environ = os.environ if environ is None else environ
    if environ.get("KERAS_BACKEND"):
        return environ["KERAS_BACKEND"], "KERAS_BACKEND"
    path = _keras_json(environ)
    try:
        with open(path) as fh:
            config = json.load(fh)
    except (OSError, ValueError):  # missing or unreadable: Keras ignores it the same way
        config = {}
    if isinstance(config, dict) and config.get("backend"):
        return str(config["backend"]), path
    return KERAS_DEFAULT, "Keras's default"


def keras_backend(requested: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The backend Keras will load: ``requested``, ``KERAS_BACKEND``, ``keras.json``, ``tensorflow``.

    Reads no more than Keras does and imports nothing. Without ``environ``, once Keras is loaded
    in this process, the backend it loaded (it cannot change any more) unless ``requested`` names
    one.

    Args:
        requested: a backend asked for explicitly (the ``--backend`` flag); wins when given.
            Default ``None``.
        environ: the environment of the process to answer for (``KERAS_BACKEND``,
            ``KERAS_HOME``, ``HOME``); default ``None``, this process.

    Returns:
        The backend name, e.g. ``"jax"``.

    Example:

    >>> keras_backend("torch")
    'torch'
    >>> keras_backend(environ={"KERAS_BACKEND": "jax"})
    'jax'
    >>> keras_backend(environ={"KERAS_HOME": "/no/such/folder"})   # no keras.json: Keras's default
    'tensorflow'
    """
    return _resolve(requested, environ)[0]


def backend_origin(requested: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Where :func:`keras_backend`'s answer comes from, for messages (``"--backend"``, a path, ...).

    Args:
        requested: as in :func:`keras_backend`. Default ``None``.
        environ: as in :func:`keras_backend`. Default ``None``.

    Returns:
        ``"--backend"``, ``"KERAS_BACKEND"``, the path of ``keras.json``, ``"Keras's default"``, or
        ``"Keras, already loaded in this process"``.

    Example:

    >>> backend_origin("jax")
    '--backend'
    """
    return _resolve(requested, environ)[1]
