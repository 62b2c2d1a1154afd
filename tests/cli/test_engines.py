"""The command keeps the engines its backend does not use out of its process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from reclayers.cli.allocator import TUNABLES
from reclayers.cli.engines import UNUSED_ENGINES, keep_unused_engines_out

BACKEND = keras.backend.backend()


def test_opt_out_and_already_imported_engines_are_left_alone():
    assert keep_unused_engines_out("torch", {"RECLAYERS_ISOLATE_BACKEND": "0"}, {}) == ()
    table = {"jax": object()}
    assert keep_unused_engines_out("torch", {}, table) == ("tensorflow",)
    assert table["jax"] is not None and table["tensorflow"] is None


@pytest.mark.skipif(not UNUSED_ENGINES[BACKEND], reason=f"the {BACKEND} backend keeps every engine")
def test_training_process_never_imports_the_other_engines(tmp_path):
    # A fresh command-line process (console entry, argv from sys.argv) trains a small model on this
    # suite's backend; at exit none of the engines that backend does not use may be loaded.
    code = (
        "import json, sys\n"
        f"sys.argv = ['reclayers', 'train', '--model', 'lr', '--data', 'synthetic:300', '--epochs', '1',"
        f" '--quiet', '--backend', {BACKEND!r}, '--run-dir', {str(tmp_path)!r}]\n"
        "from reclayers.cli import main\n"
        "rc = main()\n"
        "print(json.dumps([rc, sorted(m for m in ('jax', 'jaxlib', 'tensorflow')\n"
        "                            if sys.modules.get(m) is not None)]))\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "RECLAYERS_ISOLATE_BACKEND"}
    # GLIBC_TUNABLES set: no re-exec, so this interpreter is the one checked.
    env.update(GLIBC_TUNABLES=TUNABLES[BACKEND],
               PYTHONPATH=os.pathsep.join([str(root / "src"), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rc, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert rc == 0
    assert not set(loaded) & set(UNUSED_ENGINES[BACKEND]), loaded


def test_tf_log_lines_are_hidden_by_level_and_the_rest_kept():
    from reclayers.cli.engines import tf_log_lines_kept

    preamble = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    info = "I0000 00:00:1796594564.514673    9269 port.cc:153] oneDNN custom operations are on.\n"
    warn = "W1206 21:58:13.123456    9269 cpu_feature_guard.cc:210] This binary is optimized...\n"
    error = "E0000 00:00:1758131045.203198 3722035 cuda_dnn.cc:8579] Unable to register cuDNN factory\n"
    other = "Traceback (most recent call last):\n  ...\nImportError: something real\n"
    text = preamble + info + warn + error + other
    assert tf_log_lines_kept(text, 0) == text
    assert tf_log_lines_kept(text, 1) == warn + error + other
    assert tf_log_lines_kept(text, 2) == error + other
    assert tf_log_lines_kept(text, 3) == tf_log_lines_kept(text, 9) == other


@pytest.mark.skipif(BACKEND != "tensorflow", reason="one backend is enough: the command picks its own")
def test_usage_error_on_tensorflow_is_one_line_without_import_noise():
    """TensorFlow 2.19+ writes C++ INFO lines to standard error on import whatever
    TF_CPP_MIN_LOG_LEVEL says; the command filters them, so a mistake gets its one line alone."""
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND")}
    env.update(GLIBC_TUNABLES=TUNABLES["tensorflow"],
               PYTHONPATH=os.pathsep.join([str(root / "src"), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-m", "reclayers", "train", "--backend", "tensorflow",
                          "--data", "csv:/nonexistent/rows.csv"],  # found missing after TF's import
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert out.stderr.splitlines() == [out.stderr.splitlines()[0]], out.stderr
    assert out.stderr.startswith("reclayers: error: --data csv: file not found")


@pytest.mark.skipif(BACKEND != "torch", reason="one backend is enough: no engine loads")
def test_unknown_model_fails_before_any_engine_loads():
    """A mistyped ``--model`` is refused before Keras or an engine is imported (it took seconds)."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), os.environ.get("PYTHONPATH", "")])}
    code = ("import sys\nfrom reclayers.cli import main\n"
            "rc = main(['train', '--model', 'dcn_v3', '--data', 'synthetic:100'])\n"
            "print(rc, sorted(m for m in ('keras', 'jax', 'tensorflow', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.stdout.split("\n")[0] == "2 []", out.stdout + out.stderr
    assert "--model must be one of lr, mlp," in out.stderr and "got 'dcn_v3'" in out.stderr
