"""The command's surface: which backend it runs on, ``--version``, the error policy, ``export``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from reclayers import cli
from reclayers.cli import main
from reclayers.cli.backend import backend_origin, keras_backend
from reclayers.cli.datasets import UsageError
from tests.cli.test_cli import TINY, _run_dir
from tests.conftest import AGNOSTIC_BACKEND

ROOT = Path(__file__).resolve().parents[2]
BACKEND = keras.backend.backend()
agnostic = pytest.mark.skipif(BACKEND != AGNOSTIC_BACKEND,
                              reason=f"no Keras in play: runs under {AGNOSTIC_BACKEND} only")


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "KERAS_HOME")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return {**env, **extra}


def _keras_home(tmp_path: Path, content: str | None) -> Path:
    home = tmp_path / "keras-home"
    home.mkdir(exist_ok=True)
    if content is not None:
        (home / "keras.json").write_text(content)
    return home


# --- the backend -----------------------------------------------------------------------------------
@agnostic
def test_backend_is_decided_as_keras_decides(tmp_path):
    home = str(_keras_home(tmp_path, json.dumps({"backend": "torch", "floatx": "float32"})))
    assert keras_backend(environ={"KERAS_HOME": home}) == "torch"
    assert backend_origin(environ={"KERAS_HOME": home}) == os.path.join(home, "keras.json")
    assert keras_backend(environ={"KERAS_HOME": home, "KERAS_BACKEND": "jax"}) == "jax"
    assert keras_backend(environ={"KERAS_HOME": home, "KERAS_BACKEND": ""}) == "torch"  # empty: ignored
    assert keras_backend("tensorflow", environ={"KERAS_HOME": home, "KERAS_BACKEND": "jax"}) == "tensorflow"
    (tmp_path / "keras-home" / "keras.json").write_text("{not json")
    assert keras_backend(environ={"KERAS_HOME": home}) == "tensorflow"
    (tmp_path / "keras-home" / "keras.json").write_text("{}")
    assert keras_backend(environ={"KERAS_HOME": home}) == "tensorflow"
    assert keras_backend(environ={"KERAS_HOME": str(tmp_path / "none")}) == "tensorflow"
    assert backend_origin(environ={"KERAS_HOME": str(tmp_path / "none")}) == "Keras's default"
    user = tmp_path / "user"
    (user / ".keras").mkdir(parents=True)
    (user / ".keras" / "keras.json").write_text(json.dumps({"backend": "jax"}))
    assert keras_backend(environ={"HOME": str(user)}) == "jax"  # no KERAS_HOME: ~/.keras


@agnostic
def test_backend_agrees_with_keras_itself(tmp_path):
    """A fresh process with ``keras.json`` saying jax and no ``KERAS_BACKEND`` loads what we say."""
    home = _keras_home(tmp_path, json.dumps({"backend": "jax"}))
    env = _env(KERAS_HOME=str(home))
    proc = subprocess.run([sys.executable, "-c", "import keras; print(keras.backend.backend())"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.stdout.strip() == keras_backend(environ=env) == "jax"


@agnostic
def test_readme_model_parallel_command_on_a_tensorflow_keras_json(tmp_path):
    """The README's command with keras.json saying tensorflow and no --backend: one line, exit 2,
    saying how to select JAX (it used to crash with ``KeyError: 'mesh'``); --help tells the truth."""
    env = _env(KERAS_HOME=str(_keras_home(tmp_path, json.dumps({"backend": "tensorflow"}))))
    cmd = [sys.executable, "-m", "reclayers", "train", "--model", "deepfm", "--distribute", "model",
           "--devices", "8", "--min-embedding-rows", "16", "--run-dir", str(tmp_path / "runs")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(proc.stderr.strip().splitlines()) == 1 and "--backend jax" in proc.stderr
    assert "got backend tensorflow" in proc.stderr and not (tmp_path / "runs").exists()
    helped = subprocess.run([sys.executable, "-m", "reclayers", "train", "--help"], capture_output=True,
                            text=True, env=env, timeout=120)
    text = " ".join(helped.stdout.split())
    assert "KERAS_BACKEND, then keras.json" in text and "here: tensorflow from" in text


@agnostic
def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out.strip()
    from reclayers import __version__

    assert out.startswith(f"reclayers {__version__} (keras {keras.__version__}, backend ")
    assert len(out.splitlines()) == 1


# --- the error policy ------------------------------------------------------------------------------
# On every backend (milliseconds): main() sets the backend up before it runs a command.
def test_only_usage_and_data_format_errors_are_one_line(monkeypatch, capsys):
    from reclayers.data import DataFormatError

    def raising(error):
        def run(args):
            raise error

        return run

    monkeypatch.setattr(cli, "_run", raising(UsageError("--thing must be positive; got -1")))
    assert main(["models"]) == 2
    assert capsys.readouterr().err == "reclayers: error: --thing must be positive; got -1\n"
    monkeypatch.setattr(cli, "_run", raising(DataFormatError("x.csv:1: not the declared format")))
    assert main(["models"]) == 2
    assert capsys.readouterr().err == "reclayers: error: x.csv:1: not the declared format\n"
    # A ValueError from inside a layer or an engine is a bug: it keeps its traceback (exit 1).
    monkeypatch.setattr(cli, "_run", raising(ValueError("shapes (3,) and (4,) are incompatible")))
    with pytest.raises(ValueError, match="incompatible"):
        main(["models"])
    assert capsys.readouterr().err == ""


# --- a run to export -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def file_run(tmp_path_factory, shared_data):
    """A tiny DeepFM run on the MovieLens sample: raw strings, numbers and a ``|``-separated
    multi-valued column (a sequence feature), fitted vocabularies."""
    folder = tmp_path_factory.mktemp("movielens")
    data = shared_data / "deepctr" / "movielens_sample.txt"
    args = ["train", "--model", "deepfm", "--data", f"movielens:{data}", "--epochs", "1",
            "--run-dir", str(folder), *[a for a in TINY if a not in ("--examples", "600")]]
    assert main(args) == 0
    return _run_dir(folder, "deepfm"), data


SUPPORTED = {"saved_model": ("jax", "tensorflow"), "onnx": ("torch",)}


def test_export_unsupported_pairs_fail_in_one_line_before_any_work(file_run, tmp_path, capsys):
    run, _ = file_run
    refused = [[fmt] for fmt, ok in SUPPORTED.items() if BACKEND not in ok]
    refused.append(["onnx", "--with-preprocessing"])
    for fmt, *extra in refused:
        out = tmp_path / f"out-{fmt}"
        assert main(["export", str(run), "--format", fmt, *extra, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("reclayers: error: ") and len(err.strip().splitlines()) == 1, err
        assert not out.exists()


def test_commands_on_a_run_use_its_backend(file_run, tmp_path):
    """``evaluate`` and ``train --resume`` load the backend in the run's config.json, whatever
    KERAS_BACKEND says; ``export`` refuses a pair in terms of the run's backend."""
    run = tmp_path / "run"
    shutil.copytree(file_run[0], run)
    other = {"jax": "torch", "tensorflow": "jax", "torch": "tensorflow"}[BACKEND]
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "backend": other}))
    script = (
        "import sys; from reclayers import cli\n"
        "cli._run = lambda args: print(args.command, __import__('keras').backend.backend()) or 0\n"
        f"assert cli.main(['train', '--resume', {str(run)!r}]) == 0\n"
        f"assert cli.main(['evaluate', {str(run)!r}]) == 0\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=_env(KERAS_BACKEND=BACKEND), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["train", other, "evaluate", other]
    refused = next(fmt for fmt, ok in SUPPORTED.items() if other not in ok)
    proc = subprocess.run([sys.executable, "-m", "reclayers", "export", str(run), "--format", refused],
                          capture_output=True, text=True, env=_env(KERAS_BACKEND=BACKEND), timeout=300)
    assert proc.returncode == 2 and f"got backend {other}" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.skipif(BACKEND == "torch", reason="a TensorFlow SavedModel is written from jax or tensorflow")
def test_export_with_preprocessing_equals_predict_on_raw_rows(file_run, tmp_path, capsys):
    from reclayers import data
    from reclayers.models.serving import load_serving, serving_inputs

    run, path = file_run
    assert main(["predict", str(run), "--data", f"movielens:{path}", "--out", str(tmp_path / "p.csv")]) == 0
    predicted = np.genfromtxt(tmp_path / "p.csv", delimiter=",", names=True)["label"]  # named after the label
    serving = tmp_path / "serving"
    assert main(["export", str(run), "--format", "saved_model", "--with-preprocessing",
                 "--out", str(serving)]) == 0
    assert "-> OK" in capsys.readouterr().out
    pre = data.Preprocessor.load(run / "preprocessor.json")
    assert any(f.kind == "sequence" for f in pre.schema.features)
    raw = data.movielens(str(path)).read_all()
    got = load_serving(serving)(**serving_inputs(pre, raw))
    assert sorted(got) == ["label"] and got["label"].shape == predicted.shape == (200,)
    np.testing.assert_allclose(got["label"], predicted, atol=2e-6)  # predict writes 6 digits


# --- compare ---------------------------------------------------------------------------------------
@agnostic
def test_compare_refuses_options_that_do_not_apply_before_training(tmp_path, capsys):
    cases = [
        (["--set", "cross_layers=1"], "'cross_layers' applies to dcn_v2 but not to lr"),
        (["--config", json.dumps({"cross_layers": 1})], "'cross_layers' applies to dcn_v2 but not to lr"),
        (["--config", json.dumps({"models": {"nope": {}}})], "names a model that is not in the zoo"),
        (["--config", json.dumps({"models": {"lr": {"cross_layers": 1}}})], "--config: keys must be among"),
        (["--set", "weight_norm=maybe"], "key 'weight_norm' of 'lr' must be true or false; got 'maybe'"),
        (["--set", 'batch_norm="false"'], "key 'batch_norm' of 'lr' must be true or false; got 'false'"),
    ]
    for i, (extra, message) in enumerate(cases):
        if extra[0] == "--config":
            path = tmp_path / f"config{i}.json"
            path.write_text(extra[1])
            extra = ["--config", str(path)]
        code = main(["compare", "--models", "lr,dcn_v2", *extra, "--run-dir", str(tmp_path / "runs")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()  # nothing trained, nothing written


@agnostic
def test_train_refuses_a_boolean_key_that_is_not_true_or_false(tmp_path, capsys):
    """``--set weight_norm="false"`` (a JSON string) would read as true: one line, exit 2, no run."""
    code = main(["train", "--model", "dcn_v2", "--set", 'weight_norm="false"',
                 "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "config key 'weight_norm' of 'dcn_v2' must be true or false; got 'false'" in err
    assert not (tmp_path / "r").exists()


@agnostic
def test_compare_per_model_sections_and_a_failing_model(tmp_path, capsys):
    """Shared keys and per-model sections reach each run; a model that fails is reported in the
    leaderboard, the others still train, and the exit code says a model failed."""
    config = tmp_path / "compare.json"
    config.write_text(json.dumps({"epochs": 1, "models": {"mlp": {"dropout": 2.0},
                                                          "lr": {"learning_rate": 0.01}}}))
    code = main(["compare", "--models", "mlp,lr", "--config", str(config), "--run-dir", str(tmp_path), *TINY])
    assert code == 1
    folder = next(tmp_path.glob("compare-*"))
    board = json.loads((folder / "leaderboard.json").read_text())
    assert [r["model"] for r in board["rows"]] == ["lr"] and board["rows"][0]["epochs"] == 1
    assert [f["model"] for f in board["failed"]] == ["mlp"] and "rate" in board["failed"][0]["error"]
    run = json.loads((Path(board["rows"][0]["run_dir"]) / "config.json").read_text())
    assert run["model_config"]["learning_rate"] == 0.01 and run["model_config"]["embedding_dim"] == 4
    assert "| — | mlp | failed: ValueError" in (folder / "leaderboard.md").read_text()
    assert (folder / "leaderboard.png").stat().st_size > 0
    assert "1 of 2 models failed: mlp" in capsys.readouterr().out


# --- make demo -------------------------------------------------------------------------------------
@agnostic
def test_make_demo_command_and_config_are_valid():
    """The Makefile's demo command parses, and examples/demo.json is a valid config of its model."""
    import shlex

    from reclayers import models
    from reclayers.cli import _parser
    from reclayers.cli.train import run_config

    line = next(row for row in (ROOT / "Makefile").read_text().splitlines() if "reclayers train" in row)
    line = line.replace("$(BIN)/reclayers", "").replace("examples/", str(ROOT / "examples") + "/")
    argv = shlex.split(line)
    args = _parser().parse_args(argv)
    config = run_config(args, models.MODELS[args.model])
    assert args.model == "dcn_v2" and config["examples"] >= 100_000 and config["epochs"] >= 1
