"""``reclayers train --distribute data|model --devices N`` end to end, on the backend under test.

The distributed run happens in a fresh process (device flags act before the engines start), the
single-device reference in this one; both train DeepFM on the same small synthetic data (640
training rows, global batch 64, so no batch is dropped) and must give the same loss per epoch.
JAX: ``--distribute model --devices 8`` (8 virtual CPU devices, embedding tables sharded), and 2
processes on localhost with ``--coordinator`` (data parallel over 2 x 2 devices); TensorFlow:
``--distribute data --devices 2`` (MirroredStrategy over 2 logical CPUs); PyTorch: ``--distribute
data --devices 2`` (2 local processes, gloo).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from reclayers.cli import main
from tests.conftest import xla_flags

ROOT = Path(__file__).resolve().parents[2]
BACKEND = keras.backend.backend()
TINY = ["--model", "deepfm", "--data", "synthetic", "--examples", "800", "--batch-size", "64",
        "--epochs", "2", "--set", "embedding_dim=8", "--set", "hidden_units=[16]", "--quiet"]
# the distributed run of each backend (the acceptance command on JAX)
DISTRIBUTED = {
    "jax": ["--distribute", "model", "--devices", "8", "--model-shards", "2", "--min-embedding-rows", "8"],
    "tensorflow": ["--distribute", "data", "--devices", "2"],
    "torch": ["--distribute", "data", "--devices", "2"],
}


def _env() -> dict:
    env = dict(os.environ, KERAS_BACKEND=BACKEND,
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    env["XLA_FLAGS"] = xla_flags()  # no device count: the CLI sets its own
    env.pop("PYTEST_ADDOPTS", None)
    return env


def _cli(argv: list) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "reclayers", "train", *argv], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, timeout: int = 600) -> str:
    try:
        out = proc.communicate(timeout=timeout)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-5000:]
    return out


def _only_run(parent: Path) -> Path:
    runs = [p for p in parent.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs  # one run directory: only process 0 writes
    return runs[0]


def _losses(run: Path) -> list:
    return [row["loss"] for row in json.loads((run / "history.json").read_text())]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def launched(tmp_path_factory) -> dict:
    """The distributed runs of this backend, started at once (they overlap with each other and
    with the in-process reference): ``{name: ([processes], run parent)}``."""
    runs = {}

    def start(name, argvs):
        parent = tmp_path_factory.mktemp(name)
        runs[name] = ([_cli([*argv, "--run-dir", str(parent)]) for argv in argvs], parent)

    start("main", [[*TINY, *DISTRIBUTED[BACKEND]]])
    if BACKEND == "jax":
        start("padded", [[*TINY[:-1], "--epochs", "1", "--distribute", "model", "--devices", "8",
                          "--min-embedding-rows", "8"]])
        port = _free_port()
        start("two_hosts", [[*TINY, "--distribute", "data", "--devices", "2", "--coordinator",
                             f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)]
                            for i in range(2)])
    yield runs
    for procs, _ in runs.values():
        for p in procs:
            if p.poll() is None:
                p.kill()


@pytest.fixture(scope="module")
def reference(launched, tmp_path_factory) -> Path:
    """The same run on one device, in this process."""
    parent = tmp_path_factory.mktemp("single")
    assert main(["train", *TINY, "--run-dir", str(parent)]) == 0
    return _only_run(parent)


def test_distributed_train_matches_single_device(launched, reference):
    (proc,), parent = launched["main"]
    _finish(proc)
    run = _only_run(parent)
    # TensorFlow: the all-reduced sum of two half-batch gradients differs from the one-device
    # gradient by float rounding, and Adam's first steps move every weight by about +-lr whatever
    # the size of its gradient, so entries whose gradient is ~0 differ; 0.07 % on the losses seen.
    rtol = 3e-3 if BACKEND == "tensorflow" else 1e-4
    np.testing.assert_allclose(_losses(run), _losses(reference), rtol=rtol)
    info = json.loads((run / "distribution.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["distribute"]["global_batch"] == 64 and metrics["backend"] == BACKEND
    assert json.loads((run / "config.json").read_text())["distribute"]["mode"] == info["mode"]
    np.testing.assert_allclose(metrics["test"]["click"]["auc"],
                               json.loads((reference / "metrics.json").read_text())["test"]["click"]["auc"],
                               atol=2e-2 if BACKEND == "tensorflow" else 2e-3)
    if BACKEND == "jax":  # mesh (4 batch, 2 model): every table row-sharded over the model axis
        assert info["mesh"] == {"batch": 4, "model": 2} and info["batch_per_replica"] == 16
        sharded = {w["weight"]: w["axes"] for w in info["sharded_weights"]}
        assert sharded["emb_C1/embeddings"] == ["model", None]
        assert len([w for w in sharded if w.startswith("emb_")]) == 8
    elif BACKEND == "tensorflow":
        assert info["replicas"] == 2 and info["batch_per_replica"] == 32
    else:
        assert info["processes"] == 2 and info["process_group"] == "gloo"


def test_model_parallel_reports_sharded_weights_and_pads_tables(launched):
    """``--distribute model --devices 8`` (all 8 devices on the model axis): tables of 22 rows are
    padded to 24 and sharded; the log names them. JAX only; other backends refuse (next test)."""
    if BACKEND != "jax":
        assert main(["train", *TINY, "--distribute", "model", "--devices", "8"]) == 2
        return
    (proc,), parent = launched["padded"]
    out = _finish(proc)
    assert "distributed: model parallel on jax, 1 process(es) x 8 device(s)" in out
    assert "table C1: 22 rows padded to 24" in out
    assert "sharded emb_C1/embeddings (24, 8) over ('model', None)" in out
    info = json.loads((_only_run(parent) / "distribution.json").read_text())
    assert info["mesh"] == {"batch": 1, "model": 8} and info["padded_tables"]["C1"] == [22, 24]


def test_jax_two_processes_on_localhost_match_single_device(launched, reference):
    """The multi-host command, both hosts on this machine: ``--coordinator 127.0.0.1:PORT
    --num-processes 2 --process-id I``, 2 virtual devices each, data parallel over the 4."""
    if BACKEND != "jax":
        assert main(["train", *TINY, "--distribute", "data", "--coordinator", "127.0.0.1:1234",
                     "--num-processes", "2", "--process-id", "0"]) == 2
        return
    procs, parent = launched["two_hosts"]
    outs = [_finish(p) for p in procs]
    assert "AUC on held-out data" in outs[0] and "AUC on held-out data" not in outs[1]
    run = _only_run(parent)
    np.testing.assert_allclose(_losses(run), _losses(reference), rtol=1e-4)
    info = json.loads((run / "distribution.json").read_text())
    assert (info["processes"], info["devices_per_process"], info["batch_per_replica"]) == (2, 2, 16)


BAD = [
    (["--devices", "2"], "--devices needs --distribute data|model; got --devices 2 alone"),
    (["--distribute", "data", "--devices", "0"], "--devices must be >= 1; got 0"),
    (["--distribute", "data", "--devices", "3"],
     "--batch-size (the global batch) must be divisible by the 3 data-parallel replicas; got 64"),
    (["--distribute", "data", "--model-shards", "2"], "--model-shards needs --distribute model"),
    (["--distribute", "data", "--coordinator", "h:1", "--num-processes", "2"],
     "go together" if BACKEND == "jax" else "is for the JAX backend"),
]
if BACKEND == "tensorflow":  # row-wise embedding updates are not merged across mirrored replicas
    BAD += [(["--distribute", "data", "--embedding-optimizer", "lazy_adam"],
             "row-wise embedding optimizers do not run under a TensorFlow tf.distribute strategy")]
if BACKEND == "jax":
    BAD += [
        (["--distribute", "model", "--devices", "4", "--model-shards", "3"],
         "--model-shards must divide --devices (4); got 3"),
        (["--distribute", "data", "--coordinator", "h:1", "--num-processes", "2", "--process-id", "2"],
         "--process-id must be in [0, --num-processes=2); got 2"),
        # this process already started JAX with its devices: more cannot be made now
        (["--distribute", "data", "--devices", "64"], "--devices must be at most the"),
    ]
else:
    BAD += [(["--distribute", "model"],
             f"--distribute model: model parallel is supported on the JAX backend; got backend {BACKEND}")]


@pytest.mark.parametrize("extra, message", BAD)
def test_bad_distribution_flags_one_line_exit_2(extra, message, tmp_path, capsys):
    assert main(["train", *TINY, "--run-dir", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reclayers: error: ") and message in err and err.count("\n") == 1, err
    assert not any(tmp_path.iterdir())  # nothing written


def test_tf_config_only_matters_on_tensorflow(monkeypatch, tmp_path, capsys):
    """Several TensorFlow workers are refused (one line); other backends ignore ``TF_CONFIG``."""
    import argparse

    from reclayers.cli import distributed

    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker"}}')
    args = argparse.Namespace(distribute="data", devices=None, model_shards=None, coordinator=None,
                              num_processes=None, process_id=None, batch_size=64, backend=None)
    if BACKEND == "tensorflow":
        assert main(["train", *TINY, "--run-dir", str(tmp_path), "--distribute", "data"]) == 2
        assert "several TensorFlow workers are not supported" in capsys.readouterr().err
    else:
        distributed.validate(args)  # no error
        args.backend = "tensorflow"
        with pytest.raises(distributed.UsageError, match="TF_CONFIG"):
            distributed.validate(args)
