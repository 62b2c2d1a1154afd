"""The command's persistent JAX compilation cache (reclayers.cli.compile_cache)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reclayers.cli.compile_cache import CACHE_BYTES, compilation_cache_environment

ROOT = Path(__file__).resolve().parents[2]


def test_jax_gets_a_bounded_cache_in_the_cache_folder():
    env = compilation_cache_environment("jax", {"PATH": "/bin"}, "/data/cache")
    assert env == {"JAX_COMPILATION_CACHE_DIR": "/data/cache/jax-compilation",
                   "JAX_COMPILATION_CACHE_MAX_SIZE": str(CACHE_BYTES)}


@pytest.mark.parametrize("backend,environ", [
    ("torch", {}),
    ("tensorflow", {}),
    ("jax", {"JAX_COMPILATION_CACHE_DIR": "/mine"}),  # the user's own cache wins
    ("jax", {"RECLAYERS_COMPILATION_CACHE": "0"}),  # opted out
])
def test_left_alone(backend, environ):
    assert compilation_cache_environment(backend, environ, "/data/cache") == {}


@pytest.mark.one_backend  # the command runs on JAX whatever the suite's backend
def test_second_command_loads_the_compiled_steps(tmp_path):
    # Two identical `reclayers train` commands on JAX with one --cache-dir: the first writes the
    # compiled train step into <cache-dir>/jax-compilation (every program is kept here, however
    # fast its compilation), the second loads it from there (JAX_LOG_COMPILES makes JAX log each
    # hit of its persistent cache as a warning).
    env = {k: v for k, v in os.environ.items()
           if k not in ("JAX_COMPILATION_CACHE_DIR", "RECLAYERS_COMPILATION_CACHE")}
    env.update(PYTHONPATH=str(ROOT / "src"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               KERAS_BACKEND="jax", JAX_LOG_COMPILES="1")
    cache = tmp_path / "cache"
    listings, hits = [], []
    for i in range(2):
        cmd = [sys.executable, "-m", "reclayers", "train", "--model", "deepfm", "--backend", "jax",
               "--data", "synthetic", "--examples", "600", "--epochs", "1", "--batch-size", "128",
               "--quiet", "--set", "embedding_dim=4", "--set", "hidden_units=[8]",
               "--cache-dir", str(cache), "--run-dir", str(tmp_path / f"runs{i}")]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        listings.append(sorted(p.name for p in (cache / "jax-compilation").iterdir()))
        hits.append(out.stderr.count("Persistent compilation cache hit for 'jit_train_step'"))
    assert any(name.startswith("jit_train_step") for name in listings[0]), listings[0]
    assert hits[0] == 0 and hits[1] >= 1, hits  # the second command compiled no train step
    assert listings[1] == listings[0]
