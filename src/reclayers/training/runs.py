"""Loading what a run directory holds."""

from __future__ import annotations

from pathlib import Path

__all__ = ["load_model"]


def load_model(path):
    """A saved ``.keras`` model of a run, with reclayers' layers registered.

    Args:
        path: the ``.keras`` file (``RUN/best.keras``, ``RUN/model.keras``).

    Example:
        >>> import tempfile, pathlib
        >>> from reclayers import data, models
        >>> ds = data.make_synthetic(n_rows=200, seed=0)
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.keras"
        >>> models.compile_model(models.get_model("lr", ds.schema), ds.schema).save(p)
        >>> load_model(p).name == models.get_model("lr", ds.schema).name
        True
    """
    import keras

    import reclayers.layers  # noqa: F401  (registers the layers before deserialising)
    import reclayers.models  # noqa: F401  (registers the zoo's helper layers)
    import reclayers.training.options  # noqa: F401  (registers the learning-rate schedules)

    return keras.saving.load_model(Path(path))
