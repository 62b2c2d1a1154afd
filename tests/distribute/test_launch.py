"""Launch the multi-device checks, each in a fresh subprocess (device flags must precede imports).

Under each backend's test run, the checks of that backend's engine run:
JAX → ``jax_mesh_checks.py`` (8 virtual CPU devices: sharding, DataParallel, ModelParallel) and,
concurrently, 2 JAX processes on localhost (``jax_multiprocess_worker.py``: multi-process
initialisation and DataParallel over the devices of both, as far as one machine allows);
TensorFlow → ``tf_mirrored_checks.py`` (MirroredStrategy on 2 logical CPUs);
PyTorch → ``torch_ddp_checks.py`` (DDP with gloo over 2 local processes).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

from tests.conftest import xla_flags

ROOT = Path(__file__).resolve().parents[2]
CHECKS = {
    "jax": ("jax_mesh_checks.py", {"XLA_FLAGS": xla_flags(8)}),
    "tensorflow": ("tf_mirrored_checks.py", {}),
    "torch": ("torch_ddp_checks.py", {}),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_jax_workers(out_dir: Path) -> list:
    env = dict(os.environ, KERAS_BACKEND="jax", XLA_FLAGS=xla_flags(2))
    port = _free_port()
    script = str(ROOT / "tests" / "distribute" / "jax_multiprocess_worker.py")
    return [
        subprocess.Popen([sys.executable, script, str(rank), str(port), str(out_dir / f"{rank}.npz")],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in range(2)
    ]


def _check_jax_workers(procs: list, out_dir: Path) -> None:
    try:
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, text in zip(procs, outputs):
        assert p.returncode == 0, text[-6000:]
    for rank in range(2):
        with np.load(out_dir / f"{rank}.npz") as out:
            assert out["devices"].tolist() == [4, 2]  # 4 global devices over 2 processes
            np.testing.assert_allclose(out["losses"], out["expected"], rtol=1e-5)


def test_multi_device_checks_of_this_backend(tmp_path):
    backend = keras.backend.backend()
    script, extra = CHECKS[backend]
    workers = _start_jax_workers(tmp_path) if backend == "jax" else []
    try:
        env = dict(os.environ, KERAS_BACKEND=backend, **extra)
        env.pop("PYTEST_ADDOPTS", None)
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             str(Path("tests") / "distribute" / script)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )
    finally:
        if workers:
            _check_jax_workers(workers, tmp_path)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
