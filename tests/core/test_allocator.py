"""reclayers.allocator: the glibc malloc settings applied in-process (``tune_malloc``)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from reclayers.allocator import SETTINGS, glibc_tunables, tune_malloc, tuning_applies

pytestmark = pytest.mark.one_backend  # glibc's allocator; no Keras in play

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def test_tunables_string_lists_every_setting():
    assert glibc_tunables("jax") == (
        "glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1073741824")
    assert glibc_tunables("tensorflow") == glibc_tunables("jax")
    assert set(SETTINGS) == {"jax", "tensorflow", "torch"}


def test_unknown_backend_is_refused():
    expected = "tune_malloc: backend must be one of jax, tensorflow, torch; got 'numpy'"
    with pytest.raises(ValueError, match=expected):
        tune_malloc("numpy")


@pytest.mark.parametrize("environ,where,expected", [
    ({}, ("Linux", "glibc"), True),
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, ("Linux", "glibc"), False),
    ({"RECLAYERS_MALLOC_TUNING": "0"}, ("Linux", "glibc"), False),
    ({}, ("Linux", "musl"), False),
    ({}, ("Darwin", ""), False),
])
def test_when_tuning_applies(environ, where, expected):
    assert tuning_applies(environ, *where) is expected


# A fresh interpreter allocates 100 MiB blocks on a second thread and reports how many more blocks
# glibc holds mmap-ed while each is live (mallinfo2's hblks). With glibc's defaults a thread's
# block of that size is always mmap-ed (its arena's heaps hold at most 64 MiB); after
# tune_malloc("jax") every block comes from the main heap.
_PROBE = """
import ctypes, json, sys, threading, warnings
from reclayers.allocator import tune_malloc
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
mode = sys.argv[1]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    if mode == "late":  # a thread that stays alive, as an engine's worker pool does
        hold = threading.Event()
        threading.Thread(target=hold.wait, daemon=True).start()
    applied = tune_malloc("jax") if mode != "default" else None
mapped = []
def step():
    for _ in range(3):
        before = libc.mallinfo2().hblks
        block = libc.malloc(100 << 20)
        mapped.append(libc.mallinfo2().hblks - before)
        libc.free(block)
t = threading.Thread(target=step)
t.start(); t.join()
print(json.dumps({"applied": applied, "mapped": mapped, "warned": [str(w.message) for w in caught]}))
"""


def _probe(mode: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("GLIBC_TUNABLES", "RECLAYERS_MALLOC_TUNING")}
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], env={**environ, **env},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="the settings apply to Linux with glibc only")
def test_tune_malloc_keeps_a_threads_large_blocks_off_mmap():
    default = _probe("default")
    assert default["mapped"] == [1, 1, 1]  # the control: each 100 MiB block mmap-ed afresh
    tuned = _probe("tune")
    assert tuned["applied"] == SETTINGS["jax"]
    assert tuned["mapped"] == [0, 0, 0] and tuned["warned"] == []


@pytest.mark.skipif(not GLIBC, reason="the settings apply to Linux with glibc only")
def test_tune_malloc_left_alone_by_the_users_choice_and_warns_when_late():
    assert _probe("tune", RECLAYERS_MALLOC_TUNING="0")["applied"] is None
    assert _probe("tune", GLIBC_TUNABLES="glibc.malloc.arena_max=2")["applied"] is None
    late = _probe("late")
    assert late["applied"] == SETTINGS["jax"]
    assert len(late["warned"]) == 1 and "call tune_malloc before importing keras" in late["warned"][0]
