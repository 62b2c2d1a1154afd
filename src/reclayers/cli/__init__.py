"""The ``reclayers`` command line: train, evaluate, predict, compare and export zoo models.

.. code-block:: text

    reclayers train --model dcn_v2 --data synthetic --epochs 3
    reclayers train --resume runs/20260101-120000-dcn_v2-jax
    reclayers train --model dcn_v2 --distribute model --devices 8 --backend jax
    reclayers evaluate RUN_DIR --data frappe:test.csv
    reclayers predict RUN_DIR --data criteo:day_1.tsv --out predictions.csv
    reclayers compare --models lr,deepfm,dcn_v2,xdeepfm,autoint --data synthetic
    reclayers export RUN_DIR --format saved_model

The backend is chosen with ``--backend`` (or ``KERAS_BACKEND``) before Keras is imported. Bad
arguments print one line and exit with code 2. See ``docs/guides/cli.md``.
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["main"]

_DATA_HELP = (
    "synthetic[:N] | criteo:PATH | avazu:PATH | movielens:PATH | ml100k:DIR | frappe:PATH | "
    "sequences:PATH | amazon:PATH | alimama:PATH | census:PATH | aliccp:PATH"
)


class _Parser(argparse.ArgumentParser):
    """Errors as one line (``reclayers: error: ...``), exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        sys.stderr.write(f"reclayers: error: {message}\n")
        raise SystemExit(2)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=["jax", "tensorflow", "torch"],
        default=None,
        help="Keras backend (default: KERAS_BACKEND or jax)",
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
        help="save a resumable checkpoint every N batches (default: max(50, batches per epoch / 4))",
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


def _options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("optimization and run control")
    g.add_argument("--optimizer", default=None, metavar="NAME",
                   help="adam | adamw | adagrad | sgd | ftrl | rmsprop: the dense weights' optimizer "
                        "(default adam)")
    g.add_argument("--embedding-optimizer", dest="embedding_optimizer", default=None, metavar="NAME",
                   help="the embedding tables' own optimizer: sgd | adagrad | rowwise_adagrad | lazy_adam | "
                        "adam | ftrl (default: the dense one)")
    g.add_argument("--embedding-learning-rate", dest="embedding_learning_rate", type=float, default=None,
                   help="the embedding optimizer's learning rate (default: --learning-rate)")
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


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="reclayers", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("train", help="train a zoo model and write a run directory")
    p.add_argument("--model", default="mlp", help="zoo model name (reclayers models lists them)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted run")
    _training(p)
    _distributed(p)
    _common(p)
    p = sub.add_parser("evaluate", help="score a run's best model on data")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--data", default=None, help=_DATA_HELP + " (default: the run's test split)")
    p.add_argument("--checkpoint", choices=["best", "final"], default="best")
    _common(p)
    p = sub.add_parser("predict", help="write a run's predictions on data to a CSV file")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--data", default=None, help=_DATA_HELP)
    p.add_argument("--out", required=True, help="output CSV")
    p.add_argument("--checkpoint", choices=["best", "final"], default="best")
    _common(p)
    p = sub.add_parser("compare", help="train several models on the same data and print a leaderboard")
    p.add_argument("--models", required=True, help="comma-separated model names")
    _training(p)
    _common(p)
    p = sub.add_parser("export", help="export a run's model (saved_model or onnx) and check its predictions")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--format", choices=["saved_model", "onnx"], required=True)
    p.add_argument("--out", default=None, help="output path (default inside RUN_DIR)")
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
    if args.command == "train":
        from reclayers.cli.train import train

        return train(args)
    if args.command == "evaluate":
        from reclayers.cli.train import evaluate

        return evaluate(args)
    if args.command == "predict":
        from reclayers.cli.train import predict_cmd

        return predict_cmd(args)
    if args.command == "compare":
        from reclayers.cli.compare import compare

        return compare(args)
    from reclayers.cli.compare import export

    return export(args)


def main(argv: list[str] | None = None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    from reclayers.cli.distributed import run_backend

    backend = run_backend(args)  # train --resume: the run's recorded backend
    if from_command_line and "keras" not in sys.modules:
        from reclayers.cli.allocator import reexec_with_tuned_malloc

        # PyTorch on glibc: keep freed memory in the process (see reclayers.cli.allocator).
        reexec_with_tuned_malloc(argv, backend or os.environ.get("KERAS_BACKEND"))
    if backend:
        if "keras" in sys.modules:
            import keras

            if keras.backend.backend() != backend:
                sys.stderr.write(
                    f"reclayers: error: --backend {backend} cannot be used: Keras is already "
                    f"loaded with backend {keras.backend.backend()!r} in this process\n"
                )
                return 2
        os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from reclayers.cli.datasets import UsageError

    try:
        if args.command == "train":  # device flags act before Keras (and the engines) start
            from reclayers.cli.distributed import prepare

            launched = prepare(args, argv)
            if launched is not None:
                return launched
        return _run(args)
    except UsageError as e:
        sys.stderr.write(f"reclayers: error: {e}\n")
        return 2
    except (FileNotFoundError, NotADirectoryError) as e:
        sys.stderr.write(f"reclayers: error: {e}\n")
        return 2
    except ValueError as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        sys.stderr.write(f"reclayers: error: {msg}\n")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
