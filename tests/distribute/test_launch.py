"""Launch the multi-device checks, each in a fresh subprocess (device flags must precede imports).

Under each backend's test run, the checks of that backend's engine run:
JAX → ``jax_mesh_checks.py`` (8 virtual CPU devices: sharding, DataParallel, ModelParallel),
TensorFlow → ``tf_mirrored_checks.py`` (MirroredStrategy on 2 logical CPUs),
PyTorch → ``torch_ddp_checks.py`` (DDP with gloo over 2 local processes).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras

ROOT = Path(__file__).resolve().parents[2]
CHECKS = {
    "jax": ("jax_mesh_checks.py", {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}),
    "tensorflow": ("tf_mirrored_checks.py", {}),
    "torch": ("torch_ddp_checks.py", {}),
}


def test_multi_device_checks_of_this_backend():
    backend = keras.backend.backend()
    script, extra = CHECKS[backend]
    env = dict(os.environ, KERAS_BACKEND=backend, **extra)
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         str(Path("tests") / "distribute" / script)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
