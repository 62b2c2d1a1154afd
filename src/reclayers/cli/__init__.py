"""The ``reclayers`` command line.

``reclayers train --model mlp --data synthetic`` trains a model and prints held-out metrics.
The backend is chosen with ``--backend`` (or ``KERAS_BACKEND``) before Keras is imported.
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reclayers", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a model and report held-out AUC / logloss")
    train.add_argument("--model", default="mlp", choices=["mlp"], help="model to train")
    train.add_argument("--data", default="synthetic", help="data source (built-in: synthetic)")
    train.add_argument("--backend", choices=["jax", "tensorflow", "torch"], default=None)
    train.add_argument("--epochs", type=int, default=5)
    train.add_argument("--batch-size", type=int, default=256)
    train.add_argument("--examples", type=int, default=20000, help="synthetic data size")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--run-dir", default="runs", help="parent folder of the run directory")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.command == "train":
        from reclayers.cli.train import train

        return train(args)
    return 2  # pragma: no cover - argparse enforces the sub-command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
