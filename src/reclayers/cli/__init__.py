"""The ``reclayers`` command line: train, evaluate, predict, compare and export zoo models.

.. code-block:: text

    reclayers train --model dcn_v2 --data synthetic --epochs 3
    reclayers train --resume runs/20260101-120000-dcn_v2-jax
    reclayers train --model dcn_v2 --distribute model --devices 8 --backend jax
    reclayers evaluate RUN_DIR --data frappe:test.csv
    reclayers predict RUN_DIR --data criteo:day_1.tsv --out predictions.csv
    reclayers compare --models lr,deepfm,dcn_v2,xdeepfm,autoint --data synthetic
    reclayers export RUN_DIR --format saved_model

The backend is decided before Keras is imported: ``--backend``, else (``evaluate``, ``predict``,
``export``, ``train --resume``) the run's own, else as Keras decides it (``KERAS_BACKEND``, then
``keras.json`` in ``KERAS_HOME`` or ``~/.keras``, then ``tensorflow``); see
:mod:`reclayers.cli.backend`. Bad arguments and unreadable data files print one line and exit with
code 2; any other error keeps its traceback (exit code 1). See ``docs/guides/cli.md``.
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["main"]

_DATA_HELP = (
    "synthetic[:N][,days=D][,day=K] | csv:PATH | tsv:PATH | parquet:PATH (with --schema) | "
    "criteo:PATH | avazu:PATH | movielens:PATH | ml100k:DIR | frappe:PATH | "
    "sequences:PATH | amazon:PATH | alimama:PATH | census:PATH | aliccp:PATH"
)


class _Parser(argparse.ArgumentParser):
    """Errors as one line (``reclayers: error: ...``), exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        sys.stderr.write(f"reclayers: error: {message}\n")
        raise SystemExit(2)


BACKENDS = ("jax", "tensorflow", "torch")
#: Commands that act on an existing run: they run on the run's backend unless --backend says otherwise.
_RUN_COMMANDS = ("evaluate", "predict", "export")


def _common(p: argparse.ArgumentParser) -> None:
    """``--backend`` and ``--quiet``."""
    from reclayers.cli.backend import backend_origin, keras_backend

    command = p.prog.split()[-1]
    run_default = (
        "the run's backend (its config.json), else " if command in _RUN_COMMANDS
        else "with --resume the run's backend, else " if command == "train" else ""
    )
    default = (
        f"{run_default}as Keras decides: KERAS_BACKEND, then keras.json in KERAS_HOME or ~/.keras, "
        f"then tensorflow; here: {keras_backend()} from {backend_origin()}"
    )
    p.add_argument(
        "--backend",
        choices=list(BACKENDS),
        default=None,
        help=f"Keras backend (default: {default})".replace("%", "%%"),
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _training(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="synthetic", help=_DATA_HELP)
    p.add_argument("--epochs", type=int, default=None, help="epochs (default 5)")
    p.add_argument(
        "--batch-size",
        dest="batch_size",
        type=int,
        default=None,
        help="global batch size, split over all devices/processes under --distribute (default 256)",
    )
    p.add_argument("--config", default=None, help="JSON/YAML file: model config keys and run keys")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one model config key")
    p.add_argument("--learning-rate", dest="learning_rate", type=float, default=None,
                   help="the dense optimizer's (peak) learning rate (default: the model's, usually 1e-3)")
    p.add_argument("--examples", type=int, default=None, help="synthetic data size (default 20000)")
    p.add_argument("--split", default=None, help="train,valid,test fractions (default 0.8,0.1,0.1)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--run-dir", dest="run_dir", default="runs", help="parent folder of run directories")
    p.add_argument(
        "--checkpoint-every",
        dest="checkpoint_every",
        type=int,
        default=None,
        help="save a resumable checkpoint every N batches (default: max(50, batches per epoch / 4), "
             "each one once training has run 20x as long as the last checkpoint took to write)",
    )
    p.add_argument(
        "--no-jit",
        dest="no_jit",
        action="store_true",
        help="run eagerly, without XLA/graph compilation (faster start on tiny data)",
    )
    _options(p)
    p.add_argument(
        "--interrupt-after", dest="interrupt_after", type=int, default=None, help=argparse.SUPPRESS
    )  # test hook: stop after N batches as if killed


# --- data options (issue 15: out-of-core data) ------------------------------------------------------
def _online(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("day-after-day training", "continue a finished run on new data with growing "
                             "vocabularies (docs/guides/online.md)")
    g.add_argument("--warm-start", dest="warm_start", default=None, metavar="RUN_DIR",
                   help="start from this finished run's model and optimizer in a new run directory; its "
                   "vocabularies grow with the new data's ids (existing ids keep their rows)")
    g.add_argument("--min-count", dest="min_count", type=int, default=None, metavar="N",
                   help="an id gets its own embedding row once seen N times over all runs so far")
    g.add_argument("--oov-buckets", dest="oov_buckets", type=int, default=None, metavar="K",
                   help="ids not (yet) admitted share K hashed fallback rows instead of one")
    g.add_argument("--warm-from", dest="warm_from", choices=("best", "last"), default=None,
                   help="with --warm-start: continue the parent's best epoch (default; the model it kept as "
                   "best.keras) or its last")
    g.add_argument("--expire-after", dest="expire_after", type=int, default=None, metavar="D",
                   help="ids not seen in the last D warm starts (or D days, for data with a time column) "
                   "are dropped and their rows recycled for new ids")
    g.add_argument("--progressive", default=None, metavar="BLOCK",
                   help="one ordered pass scoring each block before training on it: a row count, or a "
                   "duration such as 1d (data with a time column); writes progressive.csv")


def _data_files(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data files", "files are encoded once into an on-disk cache (two streaming "
                             "passes) that later runs, evaluate and predict reuse")
    g.add_argument("--valid", default=None, metavar="FORMAT:PATH",
                   help="a separate validation file (then --data is all training rows)")
    g.add_argument("--test", default=None, metavar="FORMAT:PATH", help="a separate test file")
    g.add_argument("--schema", default=None, metavar="FILE",
                   help="schema file (JSON/YAML, the shape of a run's schema.json) for csv:/tsv:/parquet: "
                        "data; start from: reclayers schema infer csv:PATH")
    g.add_argument("--split-by", dest="split_by", choices=["random", "time"], default=None,
                   help="random (a seeded hash of each row, default) or time (earliest rows train; formats "
                        "with a time column)")
    _cache_dir(g)


def _cache_dir(p) -> None:
    p.add_argument("--cache-dir", dest="cache_dir", default=None, metavar="DIR",
                   help="parent folder of the data caches (default: RECLAYERS_CACHE_DIR or "
                        "~/.cache/reclayers)")


def _schema_command(sub) -> None:
    p = sub.add_parser("schema", help="schema files for csv:/tsv:/parquet: data")
    ssub = p.add_subparsers(dest="schema_command", required=True, parser_class=_Parser)
    q = ssub.add_parser("infer", help="print a starting schema guessed from a file's header and first rows")
    q.add_argument("data", metavar="FORMAT:PATH", help="csv:PATH, tsv:PATH or parquet:PATH")
    q.add_argument("--label", default=None, help="comma-separated label columns (default: guessed by name)")
    q.add_argument("--rows", type=int, default=10000, help="rows looked at (default 10000)")
    q.add_argument("--out", default=None, help="write to this file (.json or .yaml) instead of printing")


def _options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("optimization and run control")
    g.add_argument("--optimizer", default=None, metavar="NAME",
                   help="adam | adamw | adagrad | sgd | ftrl | rmsprop: the dense weights' optimizer "
                        "(default adam)")
    g.add_argument("--embedding-optimizer", dest="embedding_optimizer", default=None, metavar="NAME",
                   help="the embedding tables' own optimizer: sgd | adagrad | rowwise_adagrad | lazy_adam | "
                        "adam | ftrl (default: the dense one)")
    g.add_argument("--embedding-learning-rate", dest="embedding_learning_rate", type=float, default=None,
                   help="the embedding optimizer's learning rate, constant (default: --learning-rate, "
                        "following --lr-schedule)")
    g.add_argument("--lr-schedule", dest="lr_schedule", default=None, metavar="NAME",
                   help="constant | warmup_cosine | exponential | plateau (default constant)")
    g.add_argument("--warmup-steps", dest="warmup_steps", type=int, default=None,
                   help="warmup_cosine: linear warm-up steps before the cosine decay (default 0)")
    g.add_argument("--lr-decay-rate", dest="lr_decay_rate", type=float, default=None,
                   help="exponential: factor per epoch; plateau: factor when the monitor stalls "
                        "(default 0.5)")
    g.add_argument("--plateau-patience", dest="plateau_patience", type=int, default=None,
                   help="plateau: epochs without improvement before lowering the rate (default 1)")
    g.add_argument("--clip-norm", dest="clip_norm", type=float, default=None,
                   help="clip each step's gradients to this global norm")
    g.add_argument("--monitor", default=None,
                   help="the metric choosing the best epoch: valid_auc | valid_logloss, optionally :LABEL "
                        "(default valid_auc, the mean over labels)")
    g.add_argument("--early-stopping", dest="early_stopping", type=int, default=None, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without a better --monitor and restore the best weights")
    g.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None,
                   help="write TensorBoard event files to RUN/tensorboard (default on)")


def _distributed(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "distributed training",
        "--batch-size is the global batch, split over every device of every process; the last "
        "incomplete global batch of an epoch is dropped. Process 0 writes the run directory.",
    )
    g.add_argument("--distribute", choices=["data", "model"], default=None,
                   help="data: replicate the model, split the batch (JAX DataParallel, TF "
                        "MirroredStrategy, torch: N processes averaging gradients); model: also shard "
                        "embedding tables and partitioned kernels over a device mesh (JAX only)")
    g.add_argument("--devices", type=int, default=None,
                   help="devices per process (default: all; on a CPU, JAX and TensorFlow make N virtual "
                        "devices, torch starts N local processes)")
    g.add_argument("--model-shards", dest="model_shards", type=int, default=None,
                   help="--distribute model: size of the mesh's model axis (default: all devices); the "
                        "batch axis gets the rest")
    g.add_argument("--min-embedding-rows", dest="min_embedding_rows", type=int, default=1024,
                   help="--distribute model: shard embedding tables with at least this many rows "
                        "(default 1024)")
    g.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="JAX multi-host: address of process 0 (or KERAS_DISTRIBUTION_JOB_ADDRESSES)")
    g.add_argument("--num-processes", dest="num_processes", type=int, default=None,
                   help="JAX multi-host: number of processes (or KERAS_DISTRIBUTION_NUM_PROCESSES)")
    g.add_argument("--process-id", dest="process_id", type=int, default=None,
                   help="JAX multi-host: this process's index, 0 is the chief (or "
                        "KERAS_DISTRIBUTION_PROCESS_ID)")


class _Version(argparse.Action):
    """``--version``: one unwrapped line on stdout, exit 0."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(_version())
        raise SystemExit(0)


def _version() -> str:
    """``reclayers X.Y.Z (keras A.B.C, backend B from WHERE)``, without importing Keras."""
    from importlib import metadata

    from reclayers import __version__
    from reclayers.cli.backend import backend_origin, keras_backend

    try:
        keras_version = metadata.version("keras")
    except metadata.PackageNotFoundError:
        keras_version = "not installed"
    return (f"reclayers {__version__} (keras {keras_version}, backend {keras_backend()} "
            f"from {backend_origin()})")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="reclayers", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action=_Version, help="print the versions and the backend, then exit")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("train", help="train a zoo model and write a run directory")
    p.add_argument("--model", default=None, help="zoo model name (reclayers models lists them; default mlp)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted run")
    _training(p)
    _online(p)
    _data_files(p)
    _distributed(p)
    _common(p)
    p = sub.add_parser("evaluate", help="score a run's best model on its test split or on a file")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--data", default=None,
                   help=_DATA_HELP + " (default: the run's test split; a file is scored whole)")
    p.add_argument("--checkpoint", choices=["best", "final"], default="best")
    _cache_dir(p)
    _common(p)
    p = sub.add_parser("predict", help="write a run's predictions on data (labeled or not) to CSV/Parquet")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--data", default=None, help=_DATA_HELP + " (default: the run's test split)")
    p.add_argument("--out", required=True, help="output file: CSV, or Parquet when it ends in .parquet")
    p.add_argument("--keep-columns", dest="keep_columns", default=None, metavar="COL,...",
                   help="input columns copied next to the probabilities (e.g. an id)")
    p.add_argument("--checkpoint", choices=["best", "final"], default="best")
    _common(p)
    _schema_command(sub)
    p = sub.add_parser("compare", help="train several models on the same data and print a leaderboard")
    p.add_argument("--models", required=True, help="comma-separated model names")
    _training(p)
    _common(p)
    p = sub.add_parser("export", help="export a run's model (saved_model or onnx) and check its predictions")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--format", choices=["saved_model", "onnx"], required=True,
                   help="saved_model (backends jax and tensorflow) or onnx (backend torch)")
    p.add_argument("--out", default=None, help="output path (default inside RUN_DIR)")
    p.add_argument("--with-preprocessing", dest="with_preprocessing", action="store_true",
                   help="the exported model takes raw feature values (strings and numbers as in the "
                        "data file) and applies the run's fitted preprocessing itself")
    _common(p)
    sub.add_parser("models", help="list the zoo models and their default configs")
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "models":
        import json

        from reclayers.models import MODELS

        for name, spec in MODELS.items():
            print(f"{name:10s} {spec.summary}\n           {json.dumps(spec.defaults)}")
        return 0
    if args.command == "schema":
        from reclayers.cli.datasets import schema_infer

        return schema_infer(args)
    if args.command == "train":
        from reclayers.cli.train import train

        return train(args)
    if args.command == "evaluate":
        from reclayers.cli.score import evaluate

        return evaluate(args)
    if args.command == "predict":
        from reclayers.cli.score import predict_cmd

        return predict_cmd(args)
    if args.command == "compare":
        from reclayers.cli.compare import compare

        return compare(args)
    from reclayers.cli.export import export

    return export(args)


def _select_backend(args: argparse.Namespace) -> str:
    """The backend this command runs on: ``--backend``, else the run's (commands acting on a run),
    else the one Keras would load. Raises ``UsageError`` when it cannot be used."""
    import json

    from reclayers.cli.backend import backend_origin, keras_backend
    from reclayers.cli.datasets import UsageError

    requested, origin = getattr(args, "backend", None), "--backend"
    run_dir = args.run_dir if args.command in _RUN_COMMANDS else \
        getattr(args, "resume", None) or getattr(args, "warm_start", None)
    if not requested and run_dir and "keras" not in sys.modules:
        config = os.path.join(run_dir, "config.json")
        try:
            with open(config) as fh:
                requested, origin = json.load(fh).get("backend"), f"the run's {config}"
        except (OSError, ValueError, AttributeError):
            pass  # not a run directory: the command itself reports it
    backend = keras_backend(requested)
    origin = origin if requested else backend_origin()
    if backend not in BACKENDS:
        raise UsageError(f"the Keras backend must be one of {', '.join(BACKENDS)}; got {backend!r} "
                         f"from {origin} (choose one with --backend)")
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise UsageError(f"--backend {backend} cannot be used: Keras is already loaded with backend "
                             f"{keras.backend.backend()!r} in this process")
    return backend


def _one_line(error: BaseException) -> bool:
    """Errors reported as ``reclayers: error: ...`` (exit 2): bad arguments and unreadable data
    files. Anything else is a bug or an engine failure and keeps its traceback (exit 1)."""
    from reclayers.cli.datasets import UsageError

    if isinstance(error, UsageError):
        return True
    from reclayers.data import DataFormatError

    return isinstance(error, DataFormatError)


def _check_model_name(args: argparse.Namespace) -> None:
    """``--model`` checked against the zoo's names before any engine loads (a typo fails at once)."""
    from reclayers._model_names import MODEL_NAMES, canonical_name
    from reclayers.cli.datasets import UsageError

    name = getattr(args, "model", None)
    if name is not None and canonical_name(name) is None:
        raise UsageError(f"--model must be one of {', '.join(MODEL_NAMES)}; got {name!r}")


def main(argv: list[str] | None = None) -> int:
    """Runs ``reclayers ARGS`` (``argv``, default ``sys.argv[1:]``); returns the exit code."""
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        _check_model_name(args)
        backend = _select_backend(args)
        if from_command_line and "keras" not in sys.modules:
            from reclayers.cli.allocator import reexec_with_tuned_malloc

            # glibc: keep freed memory in the process, every thread's (see reclayers.cli.allocator).
            reexec_with_tuned_malloc(argv, backend)
            from reclayers.cli.engines import keep_unused_engines_out

            # Keras imports every installed engine; a torch run needs neither JAX nor TensorFlow.
            keep_unused_engines_out(backend, os.environ)
            from reclayers.cli.compile_cache import compilation_cache_environment
            from reclayers.cli.datasets import cache_folder

            # JAX: compiled steps kept on disk for the next command (see reclayers.cli.compile_cache).
            cache_root = cache_folder(getattr(args, "cache_dir", None))
            os.environ.update(compilation_cache_environment(backend, os.environ, cache_root))
        # Keras (and any worker process started below) loads exactly the backend checked here.
        os.environ["KERAS_BACKEND"] = args.backend = backend
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if from_command_line:
            from reclayers.cli.engines import import_tensorflow_quietly

            import_tensorflow_quietly(os.environ)  # TensorFlow's import ignores TF_CPP_MIN_LOG_LEVEL
        if args.command == "train":  # device flags act before Keras (and the engines) start
            from reclayers.cli.distributed import prepare

            launched = prepare(args, argv)
            if launched is not None:
                return launched
        return _run(args)
    except ValueError as e:
        if not _one_line(e):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        sys.stderr.write(f"reclayers: error: {msg}\n")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
