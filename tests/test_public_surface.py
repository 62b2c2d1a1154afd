"""Public surface: reclayers.layers exposes Keras layers plus ours; reference module paths exist."""

from __future__ import annotations

import importlib

import keras
import pytest

from reclayers import layers

MODULES = ["utils", "advanced_activations", "add_bias", "dense", "mlp", "norms", "pooling",
           "logit_correction", "feature_cross", "feature_trans", "feature_seq", "agru",
           "multi_task", "lhuc", "sparse_nas"]


def test_acceptance_names():
    for name in ["Dense", "MLP", "AddBias", "LayerNorm", "GradNorm", "SumPooling", "AvgPooling",
                 "MaxPooling", "LogitCorrection", "Conv2D"]:
        assert hasattr(layers, name), name


def test_ours_win_on_clash_and_keras_layers_are_there():
    from reclayers.layers.dense import Dense

    assert layers.Dense is Dense and layers.Dense is not keras.layers.Dense
    assert layers.Embedding is keras.layers.Embedding
    assert layers.keras_layers["Dense"] is keras.layers.Dense


@pytest.mark.parametrize("module", MODULES)
def test_reference_module_paths(module):
    assert importlib.import_module(f"reclayers.layers.{module}") is getattr(layers, module)


def test_version_in_one_place():
    import reclayers
    from reclayers._version import __version__

    assert reclayers.__version__ == __version__


@pytest.mark.parametrize("module", MODULES)
def test_namespace_is_built_from_each_module_export_list(module):
    """One export list per module: every name of its ``__all__`` is in ``reclayers.layers``."""
    mod = importlib.import_module(f"reclayers.layers.{module}")
    for name in mod.__all__:
        assert getattr(layers, name) is getattr(mod, name), f"{module}.{name}"
    assert layers.BatchNorm.__module__ == "reclayers.layers.norms"
