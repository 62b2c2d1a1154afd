"""``reclayers train`` / ``evaluate`` / ``predict``: fit a zoo model and keep a run directory.

``train`` is a thin layer over :class:`reclayers.training.Trainer`. A run directory holds::

    config.json          the resolved run config (model, model config, data, options, backend,
                         status: running | complete | failed)
    schema.json          the fitted schema (table sizes)
    preprocessor.json    preprocessing statistics (vocabularies, dense fills)
    data_report.json     the data passes: rows read and malformed rows skipped per pass and file
                         (counts per reason, the first example lines), split sizes, the cache
    train.log            what was printed (without terminal escape codes)
    metrics.json         test metrics of the best checkpoint (AUC, logloss, group AUC), counters
    history.json/.csv    per-epoch train loss, learning rate and validation metrics per label
    tensorboard/         TensorBoard event files (--tensorboard, on by default)
    curves.png           learning curves (when matplotlib is installed)
    best.keras           the checkpoint with the best monitored validation metric
    model.keras          the final model (the best one after an early stop)
    checkpoint/          the latest resumable checkpoint (LATEST names it) for --resume
    checkpoint_best/     the best epoch's model and optimizer state (what --warm-start continues)
    architecture.json    (nas only) the embedding sizes chosen by the search
    distribution.json    (--distribute only) mode, devices, processes, batch split, sharded weights
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from reclayers.cli import distributed
from reclayers.cli.datasets import UsageError, data_options, prepare, write_data_report
from reclayers.metrics import group_auc, json_safe
from reclayers.training import (
    OptionError,
    RunInterruptedError,
    Tee,
    Trainer,
    TrainingOptions,
    metrics_table,
    predict,
    score,
)
from reclayers.training.evaluation import USER_FEATURES
from reclayers.training.runs import load_model as _load_model
from reclayers.training.warm_start import WarmStartError, parent_checkpoint

__all__ = ["USER_FEATURES", "RunInterruptedError", "group_auc", "load_run", "metrics_table", "predict",
           "read_config", "run_config", "score", "train", "train_run"]

# run-config keys and their defaults (model config keys come from the zoo)
RUN_KEYS: dict[str, Any] = {
    "epochs": 5,
    "batch_size": 256,
    "seed": 0,
    "examples": 20000,
    "split": [0.8, 0.1, 0.1],
    "checkpoint_every": 0,
    "jit_compile": "auto",
    "optimizer": "adam",
    "embedding_optimizer": None,
    "embedding_learning_rate": None,
    "lr_schedule": "constant",
    "warmup_steps": None,
    "lr_decay_rate": 0.5,
    "plateau_patience": 1,
    "clip_norm": None,
    "monitor": "valid_auc",
    "early_stopping": None,
    "tensorboard": True,
}
# run keys taken from the command line when given (argparse dest == key)
_FLAG_KEYS = ("epochs", "batch_size", "seed", "examples", "checkpoint_every", "optimizer",
              "embedding_optimizer",
              "embedding_learning_rate", "lr_schedule", "warmup_steps", "lr_decay_rate", "plateau_patience",
              "clip_norm", "monitor", "early_stopping", "tensorboard")


# --- run directory ---------------------------------------------------------------------------------
def _json(path: Path, obj) -> None:
    """Strict JSON (no NaN): undefined metrics are ``null``."""
    path.write_text(json.dumps(json_safe(obj), indent=2, default=str, allow_nan=False))


def load_run(run_dir) -> dict:
    run = Path(run_dir)
    if not (run / "config.json").exists():
        raise UsageError(
            f"RUN_DIR must be a reclayers run directory (with config.json); got {str(run_dir)!r}"
        )
    return json.loads((run / "config.json").read_text())


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def read_config(path: str | None) -> dict:
    """The ``--config`` mapping (JSON, or YAML by its suffix); ``{}`` without one. A missing or
    unparsable file, or one that does not hold a mapping, raises ``UsageError``."""
    if not path:
        return {}
    file = Path(path)
    if not file.exists():
        raise UsageError(f"--config: file not found: {path}")
    try:
        if file.suffix in (".yaml", ".yml"):
            import yaml

            config = yaml.safe_load(file.read_text()) or {}
        else:
            config = json.loads(file.read_text())
    except Exception as e:  # noqa: BLE001 - any parse error is a usage error
        raise UsageError(f"--config {path}: not valid JSON/YAML ({e})") from e
    if not isinstance(config, dict):
        raise UsageError(f"--config {path}: must hold a mapping; got {type(config).__name__}")
    return config


def run_config(args: argparse.Namespace, spec) -> dict:
    """The run config: model defaults < ``--config FILE`` < command-line options."""
    from reclayers import models

    model_cfg = models.default_config(spec.name)
    file_cfg = read_config(getattr(args, "config", None))
    unknown = sorted(set(file_cfg) - set(model_cfg) - set(RUN_KEYS))
    if unknown:
        raise UsageError(
            f"--config: keys must be among {sorted(set(model_cfg) | set(RUN_KEYS))}; got {unknown}"
        )
    cfg = {**RUN_KEYS, **{k: v for k, v in file_cfg.items() if k in RUN_KEYS}}
    model_cfg.update({k: v for k, v in file_cfg.items() if k in model_cfg})
    return _with_flags(cfg, model_cfg, args, spec)


def _with_flags(cfg: dict, model_cfg: dict, args: argparse.Namespace, spec) -> dict:
    """``cfg`` and ``model_cfg`` overridden by the command line's options (checked)."""
    for key in _FLAG_KEYS:
        value = getattr(args, key, None)
        if value is not None:
            cfg[key] = value
    if getattr(args, "split", None):
        try:
            cfg["split"] = [float(x) for x in args.split.split(",")]
        except ValueError as e:
            raise UsageError(f"--split must be comma-separated fractions; got {args.split!r}") from e
    if getattr(args, "no_jit", False):
        cfg["jit_compile"] = False
    if getattr(args, "learning_rate", None) is not None:
        model_cfg["learning_rate"] = args.learning_rate
    for item in getattr(args, "set", None) or []:
        key, sep, value = item.partition("=")
        if not sep or key not in model_cfg:
            raise UsageError(f"--set must be KEY=VALUE with KEY among {sorted(model_cfg)}; got {item!r}")
        try:
            model_cfg[key] = json.loads(value)
        except json.JSONDecodeError:
            model_cfg[key] = value
    from reclayers import models

    try:  # the model's own checks (booleans, renamed keys), before any work
        models.resolved_config(spec.name, **model_cfg)
    except ValueError as e:
        raise UsageError(str(e)) from None
    cfg["model"], cfg["model_config"] = spec.name, model_cfg
    training_options(cfg, None)  # every option checked before any work (labels: once data is read)
    return cfg


def training_options(cfg: dict, labels) -> TrainingOptions:
    """The :class:`TrainingOptions` of a run config, validated (a bad one is a ``UsageError``).

    ``labels=None`` checks everything but the label of ``--monitor METRIC:LABEL``."""
    keys = set(TrainingOptions.keys()) - {"learning_rate"}
    options = TrainingOptions(learning_rate=cfg["model_config"].get("learning_rate", 1e-3),
                              **{k: cfg[k] for k in keys if k in cfg})
    try:
        if labels is None:
            options.validate([options.monitor.partition(":")[2]])
        else:
            options.validate(labels)
    except OptionError as e:
        raise UsageError(str(e)) from e
    return options


def _build(spec, schema, cfg):
    from reclayers import models

    mc = {k: v for k, v in cfg["model_config"].items()}
    if spec.two_stage:
        mc["seed"] = cfg["seed"]
    return models.get_model(spec.name, schema, **mc)


class _CaptureDataReport(logging.Handler):
    """Keeps the data readers' warnings (the malformed-row report) for the run directory."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def _data_report():
    handler = _CaptureDataReport()
    log = logging.getLogger("reclayers.data")
    log.addHandler(handler)
    try:
        yield handler.lines
    finally:
        log.removeHandler(handler)


def train_run(args: argparse.Namespace) -> tuple[int, dict]:
    """Runs ``train`` (or ``--resume``); returns ``(exit code, metrics)``."""
    import keras

    from reclayers import models

    resume = getattr(args, "resume", None)
    online = _online_options(args)
    if resume:
        run = Path(resume)
        cfg = load_run(run)
        spec = models.MODELS[cfg["model"]]
        if getattr(args, "epochs", None) is not None:
            cfg["epochs"] = args.epochs
        if any(v for k, v in online.items() if k != "warm_from"):
            raise UsageError("--warm-start, --min-count, --oov-buckets, --expire-after and --progressive are "
                             "a new run's options; --resume continues a run with its own")
    elif online["warm_start"]:
        parent = _parent_run(online["warm_start"])
        spec = models.MODELS[parent["model"]]
        if args.model is not None and _resolve(args.model) != spec.name:
            raise UsageError(f"--warm-start: the parent run trained {spec.name}; got --model {args.model}")
        if getattr(args, "config", None):
            raise UsageError("--config applies to a new run; --warm-start continues the parent's config "
                             "(override single options with flags and --set)")
        cfg = _with_flags({**RUN_KEYS, **{k: parent[k] for k in RUN_KEYS if k in parent}},
                          dict(parent["model_config"]), args, spec)
        cfg["data"] = args.data
        cfg["data_options"] = data_options(args)
        cfg["parent"] = str(Path(online["warm_start"]).resolve())
        cfg["warm_from"] = online["warm_from"] or "best"
    else:
        spec = models.MODELS[_resolve(args.model or "mlp")]
        cfg = run_config(args, spec)
        cfg["data"] = args.data
        cfg["data_options"] = data_options(args)
    if not resume:
        cfg["growth"] = {k: online[k] for k in ("min_count", "oov_buckets", "expire_after")} \
            if any(online[k] for k in ("warm_start", "min_count", "oov_buckets", "expire_after")) else None
        if online["warm_from"] and not online["warm_start"]:
            raise UsageError(f"--warm-from {online['warm_from']} chooses the parent's checkpoint; it needs "
                             "--warm-start RUN_DIR")
        cfg["progressive"] = online["progressive"]
        if online["progressive"]:
            if getattr(args, "epochs", None) not in (None, 1):
                raise UsageError(f"--progressive is one ordered pass; got --epochs {args.epochs}")
            cfg["epochs"] = 1
    growth = _growth(cfg)
    strategy = distributed.start(args, cfg["batch_size"])
    if strategy.backend == "tensorflow" and strategy.engine is not None \
            and str(cfg.get("embedding_optimizer") or "adam").lower() != "adam":
        from reclayers.models.sparse import TF_STRATEGY_REFUSED

        raise UsageError(TF_STRATEGY_REFUSED)
    keras.utils.set_random_seed(cfg["seed"])
    with _data_report() as report:
        prepared = prepare(
            cfg["data"],
            ratios=cfg["split"],
            seed=cfg["seed"],
            examples=cfg["examples"],
            needs_sequence=spec.needs_sequence or getattr(args, "_sequence", False),
            multi_task=spec.multi_task or getattr(args, "_multi_task", False),
            growth=growth,
            **cfg.get("data_options", {}),
        )
    if spec.needs_sequence and not prepared.schema.sequence:
        raise UsageError(
            f"--model {spec.name} needs behaviour sequences; got data {cfg['data']!r} without any "
            "(use sequences:PATH, amazon:PATH, alimama:PATH or synthetic)"
        )
    options = training_options(cfg, prepared.schema.label_names)
    quiet = getattr(args, "quiet", False) or not strategy.chief
    scratch = None
    if not strategy.chief:  # only process 0 writes the run directory; the others write to a scratch copy
        import tempfile

        scratch = Path(tempfile.mkdtemp(prefix=f"reclayers-rank{strategy.rank}-"))
        if resume:
            run = scratch / "run"
            shutil.copytree(resume, run)
            resume = str(run)
        else:
            args = argparse.Namespace(**{**vars(args), "run_dir": str(scratch)})
    created = False
    if not resume:
        backend = keras.backend.backend()
        run = Path(args.run_dir) / f"{time.strftime('%Y%m%d-%H%M%S')}-{spec.name}-{backend}"
        n = 1
        while run.exists():
            n += 1
            run = run.with_name(f"{run.name.split('~')[0]}~{n}")
        run.mkdir(parents=True)
        created = True
        if cfg.get("parent"):
            parent_backend = load_run(cfg["parent"]).get("backend")
            if parent_backend and parent_backend != backend:
                raise UsageError(f"--warm-start: the parent run trained on {parent_backend}; got backend "
                                 f"{backend} (the optimizer's variables differ between backends)")
        cfg["backend"] = backend
        cfg["data_info"] = prepared.info
        cfg["status"] = "running"
        if strategy.active:
            cfg["distribute"] = {k: v for k, v in strategy.info.items() if k != "sharded_weights"}
        _json(run / "config.json", cfg)
        prepared.schema.save(run / "schema.json")
        prepared.preprocessor.save(run / "preprocessor.json")
        write_data_report(prepared, run)
        if prepared.info.get("tables"):  # table sizes and admissions of a growing vocabulary
            _json(run / "tables.json", prepared.info["tables"])
    log = Tee.capture(run / "train.log") if strategy.chief else contextlib.nullcontext()
    try:
        with log:
            if report and not quiet:
                print("\n".join(report))
            return _train_stages(args, spec, cfg, prepared, run, quiet, options, strategy)
    except RunInterruptedError as e:
        if strategy.chief:
            print(f"reclayers train: {e}; resume with: reclayers train --resume {run}")
        return 130, {"run_dir": str(run)}
    except (UsageError, WarmStartError) as e:
        if created:  # a bad option found late: leave nothing behind
            shutil.rmtree(run, ignore_errors=True)
        if isinstance(e, WarmStartError):
            raise UsageError(f"--warm-start {cfg.get('parent')}: {e}") from e
        raise
    except BaseException as e:
        if strategy.chief and (run / "config.json").exists():
            _json(run / "config.json", {**cfg, "status": "failed", "error": f"{type(e).__name__}: {e}"[:500]})
        raise
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _trainer(spec, cfg, prepared, run: Path, options: TrainingOptions, strategy, quiet: bool,
             args) -> Trainer:
    schema = prepared.schema
    progressive, train = _progressive_block(cfg, prepared)
    return Trainer(
        lambda: _build(spec, schema, cfg), schema, train, prepared.splits.get("valid"),
        run,
        options, strategy, quiet=quiet, log=False, title=f"{spec.name} on {cfg['data']} ({strategy.backend})",
        interrupt_after=getattr(args, "interrupt_after", None),
        warm_start=(*parent_checkpoint(cfg["parent"], cfg.get("warm_from", "best")),
                    prepared.preprocessor.recycled_ids()) if cfg.get("parent") else None,
        progressive=progressive,
    )


# --- day-after-day training (--warm-start, --min-count, --oov-buckets, --expire-after, --progressive) -
def _resolve(name: str) -> str:
    from reclayers import models

    try:
        return models.resolve_name(name)
    except ValueError as e:
        raise UsageError(f"--model must be one of {', '.join(models.MODELS)}; got {name!r}") from e


def _online_options(args: argparse.Namespace) -> dict:
    """The day-after-day flags, checked."""
    opts = {k: getattr(args, k, None) for k in ("warm_start", "min_count", "oov_buckets", "progressive",
                                                "expire_after", "warm_from")}
    if opts["expire_after"] is not None and opts["expire_after"] < 1:
        raise UsageError(f"--expire-after must be >= 1 (warm starts, or days for data with a time column, "
                         f"an id may go unseen before its row is recycled); got {opts['expire_after']}")
    if opts["min_count"] is not None and opts["min_count"] < 1:
        raise UsageError(f"--min-count must be >= 1 (sightings before an id gets its own row); "
                         f"got {opts['min_count']}")
    if opts["oov_buckets"] is not None and opts["oov_buckets"] < 0:
        raise UsageError(f"--oov-buckets must be >= 0; got {opts['oov_buckets']}")
    if opts["progressive"] is not None:
        parse_block(opts["progressive"])
    return opts


def _parent_run(run_dir: str) -> dict:
    """The parent run's config, checked to be a finished run with a checkpoint and preprocessing."""
    run = Path(run_dir)
    if not (run / "config.json").exists():
        raise UsageError(f"--warm-start needs a reclayers run directory (with config.json); got {run_dir!r}")
    cfg = json.loads((run / "config.json").read_text())
    if cfg.get("status") != "complete":
        raise UsageError(f"--warm-start: {run_dir} is not a finished run (status {cfg.get('status')!r}); "
                         f"finish it first: reclayers train --resume {run_dir}")
    missing = [f for f in ("preprocessor.json", "checkpoint/LATEST") if not (run / f).exists()]
    if missing:
        raise UsageError(f"--warm-start: {run_dir} lacks {', '.join(missing)}")
    return cfg


def _growth(cfg: dict) -> dict | None:
    """``prepare``'s growth argument of a run config (the parent's preprocessor loaded)."""
    from reclayers.data import Preprocessor

    if not cfg.get("growth"):
        return None
    parent = Preprocessor.load(Path(cfg["parent"]) / "preprocessor.json") if cfg.get("parent") else None
    return {**cfg["growth"], "parent": parent}


def tables_line(tables: dict) -> str:
    """One line: each vocabulary table's size, ids in use, ids admitted (and expired, recycled)
    and values still pending."""
    parts = [f"{t} {r['size']} rows ({r['used']} used, +{r['admitted']}"
             + (f", -{r['expired']} expired, {r['recycled']} recycled"
               if r.get("expired") or r.get("recycled") else "") + f", {r['pending']} pending)"
             for t, r in tables.items()]
    total = sum(r["size"] for r in tables.values())
    return f"tables ({total} rows in all): " + "; ".join(parts[:8]) + ("; ..." if len(parts) > 8 else "")


def parse_block(text: str) -> tuple[str, float]:
    """``--progressive`` → ``("rows", n)`` or ``("seconds", s)`` (``1d``, ``6h``, ``30m``, ``90s``)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = str(text).strip().lower()
    if t.isdigit() and int(t) >= 1:
        return "rows", int(t)
    if len(t) > 1 and t[-1] in units:
        try:
            value = float(t[:-1])
        except ValueError:
            value = 0
        if value > 0:
            return "seconds", value * units[t[-1]]
    raise UsageError(f"--progressive must be a row count (e.g. 10000) or a duration (e.g. 1d, 6h); "
                     f"got {text!r}")


def _progressive_block(cfg: dict, prepared) -> tuple:
    """``(the trainer's progressive argument, the training split)``: rows, or ``(seconds, times of
    the training rows)``. A duration needs rows in time order: a training split that is not (a
    time split keeps the file's order within its time range, e.g. Amazon logs grouped by user) is
    put in time order (stable; held in memory)."""
    train = prepared.splits["train"]
    if not cfg.get("progressive"):
        return None, train
    kind, value = parse_block(cfg["progressive"])
    if kind == "rows":
        return int(value), train
    times = getattr(train, "time", None)
    if times is None:
        raise UsageError(f"--progressive {cfg['progressive']}: a duration needs data with a time column; got "
                         f"{cfg['data']!r} without one (give a row count instead)")
    times = np.asarray(times)
    if cfg["data"].startswith("synthetic"):  # the synthetic day column counts days
        times = times * 86400.0
    elif np.issubdtype(times.dtype, np.datetime64):
        times = times.astype("datetime64[s]").astype(np.float64)
    times = times.astype(np.float64)
    if times.size and (np.diff(times) < 0).any():
        order = np.argsort(times, kind="stable")
        train, times = train.take(order), times[order]
    return (float(value), times), train


def _train_stages(args, spec, cfg, prepared, run, quiet, options, strategy) -> tuple[int, dict]:
    import keras

    from reclayers import models

    prepared = dataclasses.replace(prepared, schema=strategy.pad_schema(prepared.schema))
    # --- two-stage (nas): search, read the architecture, retrain -------------------------------
    if spec.two_stage and "embedding_sizes" not in _read(run / "architecture.json"):
        search = dataclasses.replace(options, epochs=cfg["model_config"]["search_epochs"],
                                     early_stopping=None)
        trainer = _trainer(spec, cfg, prepared, run / "search", search, strategy, quiet, args)
        trainer.fit()
        host = strategy.gather(trainer.model)
        sizes = models.nas_architecture(host, prepared.schema)
        _json(
            run / "architecture.json",
            {"embedding_sizes": sizes, "choices": host.get_layer("nas_selection").get_architecture()},
        )
        if not quiet:
            print(f"search chose embedding sizes {sizes}")
    if spec.two_stage:
        cfg["model_config"]["embedding_sizes"] = _read(run / "architecture.json")["embedding_sizes"]

    trainer = _trainer(spec, cfg, prepared, run, options, strategy, quiet, args)
    if prepared.info.get("tables") and not quiet:
        print(tables_line(prepared.info["tables"]))
    state = trainer.fit()
    if strategy.active:
        _json(run / "distribution.json", strategy.info)
        if not quiet:
            print(strategy.report())
    host = strategy.gather(trainer.model)
    test = prepared.splits.get("test")
    metrics: dict[str, Any] = {
        "model": spec.name,
        "backend": keras.backend.backend(),
        "data": cfg["data"],
        "run_dir": str(run),
        "epochs": cfg["epochs"],
        "epochs_trained": state["epoch"],
        "best_epoch": state["best_epoch"],
        "stopped_early": state["stopped_early"],
        "monitor": {"name": options.monitor, "best": state["best_value"]},
        "parameters": int(trainer.model.count_params()),
        "optimizer_state": _optimizer_state(trainer.model),
        "train_examples": state["train_examples"],
        "train_steps": state["global_batches"],
        "train_seconds": round(state["train_seconds"], 2),
        "examples_per_second": round(state["train_examples"] / max(state["train_seconds"], 1e-9), 1),
    }
    if prepared.info.get("tables"):
        metrics["tables"] = prepared.info["tables"]
    if cfg.get("parent"):
        metrics["warm_start"] = {"parent": cfg["parent"], **(trainer.warm_report or {"resumed": True})}
    if state.get("progressive"):
        metrics["progressive"] = state["progressive"]
    host.save(run / "model.keras")  # every process (a collective with several JAX processes)
    with strategy.local():
        # the best checkpoint is the final model when the last epoch was the best: score the model
        # in memory (its prediction step is already compiled by validation) instead of loading it
        final_is_best = state["best_epoch"] == state["epoch"] and not state.get("progressive")
        best = _load_model(run / "best.keras") if (run / "best.keras").exists() and not final_is_best \
            else host
        if test is not None and len(test):
            pred = predict(best, test, shards=strategy.predict_shards)
            metrics["test"] = score(prepared.schema, test, pred)
            metrics["bayes_optimal_auc"] = prepared.bayes.get("test", {})
    if strategy.active:
        metrics["distribute"] = {k: v for k, v in strategy.info.items() if k != "sharded_weights"}
    cfg["status"] = "complete"
    _json(run / "config.json", cfg)
    _json(run / "metrics.json", metrics)
    if strategy.chief:  # the metrics table is printed even with --quiet
        print()
        if "test" in metrics:
            print(f"held-out test metrics ({len(test)} rows, best epoch {state['best_epoch']}):")
            print(metrics_table(metrics["test"], metrics["bayes_optimal_auc"]))
            first = prepared.schema.label_names[0]
            auc = metrics["test"][first]["auc"]
            print(
                f"AUC on held-out data: {'undefined' if auc is None else f'{auc:.4f}'} (model {spec.name}, "
                f"backend {metrics['backend']})"
            )
        png = (run / "curves.png").exists()
        epochs = state["epoch"]
        print(
            f"parameters {metrics['parameters']:,}; training: {metrics['examples_per_second']:,.0f} "
            f"examples/s ({metrics['train_examples']:,} training examples over {epochs} "
            f"epoch{'s' * (epochs != 1)} in {metrics['train_seconds']} s of training passes, "
            f"compilation included, end-of-epoch validation excluded)"
            + (f"; curves: {run / 'curves.png'}" if png else " (no curves.png: matplotlib missing)")
        )
        print(metrics["optimizer_state"]["summary"])
        print(f"run directory: {run}")
    return 0, metrics


def _optimizer_state(model) -> dict:
    """What the optimizer keeps: per embedding table rows × state floats per row, and the bytes."""
    from reclayers.models import optimizer_memory

    memory = optimizer_memory(model)
    return {"summary": memory.summary(), "optimizer": memory.optimizer,
            "tables": [{"name": n, "rows": r, "dim": d, "state_floats_per_row": k}
                       for n, r, d, k in memory.tables],
            "table_state_bytes": memory.table_state_bytes, "table_bytes": memory.table_bytes,
            "dense_state_bytes": memory.dense_state_bytes}


def train(args: argparse.Namespace) -> int:
    return train_run(args)[0]
