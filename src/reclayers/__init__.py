"""reclayers: neural-network layers for recommendation and CTR models on Keras 3.

``from reclayers import layers`` gives every Keras layer plus reclayers' own (ours win on a name
clash, e.g. ``Dense``). Runs on ``KERAS_BACKEND=jax|tensorflow|torch``.
"""

from reclayers._version import __version__

__all__ = ["__version__", "layers", "optimizers"]


def __getattr__(name: str):
    if name in ("layers", "optimizers", "autodiff", "data", "models"):
        import importlib

        return importlib.import_module(f"reclayers.{name}")
    raise AttributeError(f"module 'reclayers' has no attribute {name!r}")
