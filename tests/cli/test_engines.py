"""The command keeps the engines its backend does not use out of its process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from reclayers.cli.allocator import GLIBC_MALLOC_TUNABLES
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
    env.update(GLIBC_TUNABLES=GLIBC_MALLOC_TUNABLES,
               PYTHONPATH=os.pathsep.join([str(root / "src"), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rc, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert rc == 0
    assert not set(loaded) & set(UNUSED_ENGINES[BACKEND]), loaded
