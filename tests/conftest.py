"""Test configuration shared by every family.

The backend is chosen by ``KERAS_BACKEND`` before Keras is imported (``scripts/run_tests.py``
runs the suite once per backend).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: XLA's code generation for the test suite (JAX, and TensorFlow's ``jit_compile``): LLVM without
#: its optimisation passes. The tests check values, shapes and program structure, never speed (the
#: benchmarks measure speed, with XLA's defaults), and compiling small programs is most of a JAX
#: test's time: ``tests/seq/test_dien.py`` with ``tests/models/test_zoo_ctr.py`` took 106 s instead
#: of 148 s, five CLI, trainer and layer files 292 s instead of 369 s (one CPU each, side by side).
#: ``tests/core/test_compiler_settings.py`` checks that a training run ends with the same weights
#: under XLA's default flags. Set in the environment, so a test's subprocesses compile the same way.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def xla_flags(host_devices: int = 0) -> str:
    """``XLA_FLAGS`` for a test's subprocess: the suite's :data:`TEST_XLA_FLAGS`, and with
    ``host_devices`` that many virtual CPU devices for JAX."""
    devices = f" --xla_force_host_platform_device_count={host_devices}" if host_devices else ""
    return TEST_XLA_FLAGS + devices


if TEST_XLA_FLAGS not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

import keras  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RECLAYERS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def pytest_report_header(config: pytest.Config) -> str:
    return f"keras {keras.__version__}, backend: {keras.backend.backend()}"


@pytest.fixture(autouse=True)
def _seed_and_policy():
    """Every test starts from seed 0 and the float32 policy, and leaves the policy as it found it."""
    keras.utils.set_random_seed(0)
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: the real data samples. Absent → skip, except under CI where it fails."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"shared data folder {SHARED_DATA} is missing under CI")
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (a user's clone)")
    return SHARED_DATA


@pytest.fixture
def backend() -> str:
    return keras.backend.backend()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    from tests.contract import pytest_generate_tests_for_contract

    pytest_generate_tests_for_contract(metafunc)


# Tests whose behaviour does not depend on the backend run under one backend only: running them
# three times would only cost time. They are deselected (not skipped) under the other two. That
# is every test of the data pipeline (no Keras layer in play), and any test marked
# ``@pytest.mark.one_backend`` (say why where it is used, e.g. a file reader exercised end to end
# while the same model path runs on every backend in another test).
BACKEND_AGNOSTIC_DIRS = ("tests/data/",)
AGNOSTIC_BACKEND = "torch"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"one_backend: backend-independent behaviour, run under {AGNOSTIC_BACKEND} only",
    )
    _jax_compilation_cache(config)
    _tf_graph_optimizer_off()


def _tf_graph_optimizer_off() -> None:
    """Under TensorFlow, graphs run without Grappler's rewrites (``disable_meta_optimizer``).

    Grappler optimises every traced graph (constant folding, op fusions, layout) before it runs,
    which costs more than it saves on the suite's tiny graphs; like :data:`TEST_XLA_FLAGS` it
    changes speed, not values: five TensorFlow test files (trainer, sparse zoo steps, SENet, DCN,
    DIEN) took 114 s instead of 128 s side by side, and ``tests/core/test_compiler_settings.py``
    checks that a training run ends with the same weights with Grappler on. Subprocesses of a test
    keep TensorFlow's default."""
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})


def _jax_compilation_cache(config: pytest.Config) -> None:
    """Under JAX, a compilation cache private to this pytest process, emptied at its end.

    Every test builds its own model, so JAX compiles the same train, evaluate and predict steps
    again and again (a new model is a new function to ``jax.jit``); with the persistent cache on,
    a step whose program was compiled before in the session is loaded instead. The cache starts
    empty, so no result depends on an earlier run; it is set through ``jax.config`` (not the
    environment), so subprocesses of a test keep compiling on their own. Measured on
    ``tests/cli/test_cli.py``: 25 % less CPU time. ``JAX_COMPILATION_CACHE_DIR`` set by the
    user wins.
    """
    if keras.backend.backend() != "jax" or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    import shutil
    import tempfile

    import jax

    folder = tempfile.mkdtemp(prefix="reclayers-jax-cache-")
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    if keras.backend.backend() == AGNOSTIC_BACKEND:
        return
    keep, drop = [], []
    for item in items:
        rel = Path(str(item.fspath)).resolve().relative_to(REPO_ROOT).as_posix()
        agnostic = rel.startswith(BACKEND_AGNOSTIC_DIRS) or item.get_closest_marker("one_backend")
        (drop if agnostic else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True, scope="session")
def _data_cache_in_tmp(tmp_path_factory):
    """``reclayers train`` caches encoded files (default ``~/.cache/reclayers``): tests use a
    session temporary folder instead, unless ``RECLAYERS_CACHE_DIR`` is set."""
    if "RECLAYERS_CACHE_DIR" in os.environ:
        yield
        return
    os.environ["RECLAYERS_CACHE_DIR"] = str(tmp_path_factory.mktemp("reclayers-cache"))
    yield
    os.environ.pop("RECLAYERS_CACHE_DIR", None)
