"""The suite compiles with settings made for speed: XLA without LLVM's optimisation passes
(:data:`tests.conftest.TEST_XLA_FLAGS`, JAX) and TensorFlow graphs without Grappler's rewrites.
Users compile with the defaults. A short training run must end with the same weights both ways,
so the suite's results hold for the users' programs."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.conftest import REPO_ROOT, TEST_XLA_FLAGS

# deepfm with a row-wise embedding optimizer (sorted lookups, scatters: its tables have more rows
# than a batch has lookups) and dense Adam on the rest, two epochs, then the weights in order.
TRAIN = """
import numpy as np
import keras
from reclayers import models
from reclayers.data.schema import CategoricalFeature, DenseFeature, Label, Schema


def train(out):
    rng = np.random.default_rng(0)
    n, vocab = 256, 300
    features = (DenseFeature("I1"), DenseFeature("I2"),
                *[CategoricalFeature(f"C{i}", num_buckets=vocab) for i in (1, 2, 3)])
    schema = Schema(features=features, labels=(Label("click"),), name="tiny")
    x = {"I1": rng.normal(size=n).astype("float32"), "I2": rng.normal(size=n).astype("float32"),
         **{f"C{i}": rng.integers(0, vocab, n).astype("int32") for i in (1, 2, 3)}}
    y = {"click": (rng.random((n, 1)) < 0.3).astype("float32")}
    keras.utils.set_random_seed(0)
    model = models.get_model("deepfm", schema, embedding_dim=4, hidden_units=[16, 8])
    models.compile_model(model, schema, learning_rate=0.01, embedding_optimizer="lazy_adam")
    model.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0)
    np.savez(out, *[keras.ops.convert_to_numpy(w) for w in model.weights])
"""


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="PyTorch runs eagerly: nothing is compiled")
def test_training_under_the_suites_compiler_settings_matches_the_defaults(tmp_path):
    backend = keras.backend.backend()
    if backend == "jax":
        assert TEST_XLA_FLAGS in os.environ["XLA_FLAGS"]  # this process compiles with the suite's flags
    else:
        import tensorflow as tf

        assert tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer")
    env = dict(os.environ, KERAS_BACKEND=backend, XLA_FLAGS="",  # a fresh process: the defaults
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    script = TRAIN + "\nimport sys\ntrain(sys.argv[1])\n"
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "defaults.npz")], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    namespace: dict = {}
    exec(compile(TRAIN, "train", "exec"), namespace)
    namespace["train"](tmp_path / "suite.npz")  # in this process: the suite's settings
    with np.load(tmp_path / "defaults.npz") as d, np.load(tmp_path / "suite.npz") as s:
        defaults, suite = [d[k] for k in d.files], [s[k] for k in s.files]
    assert len(defaults) == len(suite) > 10
    for want, got in zip(defaults, suite):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(suite[0], 0.0)
