"""``reclayers train`` / ``evaluate`` / ``predict``: fit a zoo model and keep a run directory.

A run directory holds::

    config.json          the resolved run config (model, model config, data, epochs, ...)
    schema.json          the fitted schema (table sizes)
    preprocessor.json    preprocessing statistics (vocabularies, dense fills)
    metrics.json         test metrics of the best checkpoint (AUC, logloss, group AUC)
    history.json         per-epoch train loss and validation metrics
    curves.png           learning curves (when matplotlib is installed)
    best.keras           the checkpoint with the best validation AUC
    model.keras          the final model
    checkpoint/          the last mid-epoch checkpoint (``last.keras`` + ``state.json``) for --resume
    architecture.json    (nas only) the embedding sizes chosen by the search
    distribution.json    (--distribute only) mode, devices, processes, batch split, sharded weights
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from reclayers.cli import distributed
from reclayers.cli.datasets import UsageError, data_options, prepare, write_data_report

USER_FEATURES = ("user", "user_id", "userid", "uid")


class RunInterruptedError(Exception):
    """Raised by the test hook ``--interrupt-after N`` (simulates a killed run)."""


# --- metrics ---------------------------------------------------------------------------------------
def group_auc(y, p, groups) -> float:
    """Impression-weighted mean of per-group AUC over groups having both classes."""
    from reclayers.data import auc

    y, p, groups = np.asarray(y).ravel(), np.asarray(p).ravel(), np.asarray(groups).ravel()
    order = np.argsort(groups, kind="stable")
    g_sorted = groups[order]
    cuts = np.flatnonzero(np.diff(g_sorted)) + 1
    total, weight = 0.0, 0
    for idx in np.split(order, cuts):
        yy = y[idx]
        if 0 < yy.sum() < len(yy):
            total += len(idx) * auc(yy, p[idx])
            weight += len(idx)
    return float(total / weight) if weight else float("nan")


def score(schema, arrays, predictions: dict) -> dict:
    """``{label: {auc, logloss, gauc?, rate, n}}`` of predictions against ``arrays``' labels."""
    from reclayers.data import auc, logloss

    out = {}
    user = next((u for u in USER_FEATURES if u in arrays.features), None)
    for lab in schema.label_names:
        y = np.asarray(arrays.labels[lab]).ravel()
        p = np.asarray(predictions[lab], np.float64).ravel()
        m = {"auc": auc(y, p), "logloss": logloss(y, p), "rate": float(y.mean()), "n": int(len(y))}
        if user is not None:
            m["gauc"] = group_auc(y, p, arrays.features[user])
        out[lab] = m
    return out


def predict(model, arrays, batch_size: int = 4096, shards: int = 1) -> dict:
    """Predictions per label. ``shards`` > 1 (a JAX distribution splits each batch in that many
    equal pieces): rows are padded to a multiple of it and the padding's predictions dropped."""
    from reclayers.data import keras_dataset

    n = len(arrays)
    if shards > 1:
        batch_size = shards * max(1, batch_size // shards)
        pad = -n % shards
        if pad:
            arrays = arrays.take(np.concatenate([np.arange(n), np.zeros(pad, np.int64)]))
    pred = model.predict(keras_dataset(arrays, batch_size, shuffle=False, label_format="dict"), verbose=0)
    return {k: np.asarray(v).reshape(-1)[:n] for k, v in pred.items()}


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if v != v else f"{v:.4f}"
    return str(v)


def metrics_table(metrics: dict, bayes: dict | None = None) -> str:
    """A Markdown table of ``{label: {auc, logloss, gauc}}`` (plus the Bayes-optimal AUC)."""
    cols = ["auc", "logloss"] + (["gauc"] if any("gauc" in m for m in metrics.values()) else [])
    head = ["label"] + cols + (["bayes_auc"] if bayes else []) + ["n"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lab, m in metrics.items():
        cells = [lab] + [_fmt(m.get(c, float("nan"))) for c in cols]
        if bayes:
            cells.append(_fmt(bayes.get(lab, float("nan"))))
        rows.append("| " + " | ".join(cells + [str(m["n"])]) + " |")
    return "\n".join(rows)


# --- run directory ---------------------------------------------------------------------------------
def _json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, default=str))


def plot_curves(history: list, path: Path) -> bool:
    """Train loss and validation AUC per epoch as a PNG; ``False`` without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    if not history:
        return False
    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(epochs, [h["loss"] for h in history], "o-", label="train loss")
    a.plot(epochs, [h["valid_logloss"] for h in history], "s-", label="valid logloss")
    a.set_xlabel("epoch")
    a.legend()
    b.plot(epochs, [h["valid_auc"] for h in history], "o-", color="tab:green", label="valid AUC")
    b.set_xlabel("epoch")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def load_run(run_dir) -> dict:
    run = Path(run_dir)
    if not (run / "config.json").exists():
        raise UsageError(
            f"RUN_DIR must be a reclayers run directory (with config.json); got {str(run_dir)!r}"
        )
    return json.loads((run / "config.json").read_text())


def _load_model(path: Path):
    import keras

    import reclayers.layers  # noqa: F401  (registers the layers before deserialising)
    import reclayers.models  # noqa: F401  (registers the zoo's helper layers)

    return keras.saving.load_model(path)


# --- training --------------------------------------------------------------------------------------
def _keras_callback(
    checkpoint_dir: Path, every: int, epoch: int, start_batch: int, state: dict, interrupt_after: int | None,
    ctx: distributed.Context,
):
    import keras

    class Checkpointer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            done = start_batch + batch + 1
            state["global_batches"] += 1
            if every and done % every == 0:
                save_checkpoint(distributed.host_model(self.model, ctx), checkpoint_dir,
                                {**state, "epoch": epoch, "batch": done})
            if interrupt_after is not None and state["global_batches"] >= interrupt_after:
                raise RunInterruptedError(f"interrupted after {state['global_batches']} batches")

    return Checkpointer()


def save_checkpoint(model, checkpoint_dir: Path, state: dict) -> None:
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    tmp = checkpoint_dir / "last.tmp.keras"
    model.save(tmp)
    tmp.replace(checkpoint_dir / "last.keras")
    _json(checkpoint_dir / "state.json", state)


def fit_epochs(
    model,
    prepared,
    run: Path,
    cfg: dict,
    state: dict,
    quiet: bool,
    interrupt_after: int | None = None,
    tag: str = "",
    ctx: distributed.Context | None = None,
) -> dict:
    """Epoch loop with mid-epoch checkpoints, validation after each epoch and the best checkpoint.

    Under ``--distribute`` (``ctx``) every step has the full global batch (the last incomplete one
    is dropped) and each process feeds its share of it."""
    from reclayers.data import keras_dataset

    ctx = ctx or distributed.Context()
    train, valid = prepared.splits["train"], prepared.splits.get("valid")
    ckpt = run / "checkpoint"
    bs, seed = cfg["batch_size"], cfg["seed"]
    drop = ctx.active
    if drop and train.num_batches(bs, drop_remainder=True) < 1:
        raise UsageError(f"--batch-size {bs} (the global batch) must be at most the {len(train)} "
                         "training rows")
    every = cfg.get("checkpoint_every") or max(50, train.num_batches(bs, drop) // 4)
    shards = ctx.batch_shards if ctx.backend == "jax" and ctx.processes == 1 else 1
    while state["epoch"] < cfg["epochs"]:
        epoch, start = state["epoch"], state["batch"]
        if not quiet:
            print(f"{tag}epoch {epoch + 1}/{cfg['epochs']}" + (f" (from batch {start})" if start else ""))
        ds = keras_dataset(
            train, bs, shuffle=True, seed=seed, start_epoch=epoch, start_batch=start, label_format="dict",
            drop_remainder=drop,
        )
        t0 = time.time()
        hist = model.fit(
            distributed.share(ds, ctx),
            epochs=1,
            shuffle=False,  # the rows are already permuted per epoch; Keras would reorder the batches
            verbose=0 if quiet else 1,
            callbacks=[_keras_callback(ckpt, every, epoch, start, state, interrupt_after, ctx)],
        )
        seconds = time.time() - t0
        used = train.num_batches(bs, True) * bs if drop else len(train)
        examples = used - min(used, start * bs)
        state["train_seconds"] += seconds
        state["train_examples"] += examples
        loss = distributed.mean_over_processes(float(hist.history["loss"][-1]), ctx)
        # Per-epoch time and examples: the first epoch includes tracing/compilation.
        row = {"epoch": epoch + 1, "loss": loss, "train_seconds": round(seconds, 3),
               "train_examples": examples}
        host = distributed.host_model(model, ctx)
        if valid is not None and len(valid):
            with distributed.local(ctx):
                m = score(prepared.schema, valid, predict(host, valid, shards=shards))
            first = prepared.schema.label_names[0]
            row.update({"valid_auc": m[first]["auc"], "valid_logloss": m[first]["logloss"]})
            if not (row["valid_auc"] <= state["best_auc"]):  # first epoch, better, or NaN on tiny data
                state["best_auc"] = row["valid_auc"] if row["valid_auc"] == row["valid_auc"] else -1.0
                state["best_epoch"] = epoch + 1
                host.save(run / "best.keras")
        state["history"].append(row)
        state["epoch"], state["batch"] = epoch + 1, 0
        save_checkpoint(host, ckpt, state)
    return state


def _new_state() -> dict:
    return {
        "epoch": 0,
        "batch": 0,
        "global_batches": 0,
        "history": [],
        "best_auc": -1.0,
        "best_epoch": 0,
        "train_seconds": 0.0,
        "train_examples": 0,
    }


def run_config(args: argparse.Namespace, spec) -> dict:
    """The run config: model defaults < ``--config FILE`` < command-line options."""
    from reclayers import models

    model_cfg = models.default_config(spec.name)
    file_cfg: dict = {}
    if getattr(args, "config", None):
        path = Path(args.config)
        if not path.exists():
            raise UsageError(f"--config: file not found: {args.config}")
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                file_cfg = yaml.safe_load(path.read_text()) or {}
            else:
                file_cfg = json.loads(path.read_text())
        except Exception as e:  # noqa: BLE001 - any parse error is a usage error
            raise UsageError(f"--config {args.config}: not valid JSON/YAML ({e})") from e
        if not isinstance(file_cfg, dict):
            raise UsageError(f"--config {args.config}: must hold a mapping; got {type(file_cfg).__name__}")
    run_keys = {
        "epochs": 5,
        "batch_size": 256,
        "seed": 0,
        "examples": 20000,
        "split": [0.8, 0.1, 0.1],
        "checkpoint_every": 0,
        "jit_compile": "auto",
    }
    unknown = sorted(set(file_cfg) - set(model_cfg) - set(run_keys))
    if unknown:
        raise UsageError(
            f"--config: keys must be among {sorted(set(model_cfg) | set(run_keys))}; got {unknown}"
        )
    cfg = {**run_keys, **{k: v for k, v in file_cfg.items() if k in run_keys}}
    model_cfg.update({k: v for k, v in file_cfg.items() if k in model_cfg})
    for key in ("epochs", "batch_size", "seed", "examples", "checkpoint_every"):
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
    if getattr(args, "learning_rate", None):
        model_cfg["learning_rate"] = args.learning_rate
    for item in getattr(args, "set", None) or []:
        key, sep, value = item.partition("=")
        if not sep or key not in model_cfg:
            raise UsageError(f"--set must be KEY=VALUE with KEY among {sorted(model_cfg)}; got {item!r}")
        try:
            model_cfg[key] = json.loads(value)
        except json.JSONDecodeError:
            model_cfg[key] = value
    if cfg["epochs"] < 1 or cfg["batch_size"] < 1:
        raise UsageError(f"--epochs and --batch-size must be >= 1; got {cfg['epochs']}, {cfg['batch_size']}")
    cfg["model"], cfg["model_config"] = spec.name, model_cfg
    return cfg


def _compile(model, schema, cfg):
    from reclayers import models

    eager = cfg.get("jit_compile") is False
    return models.compile_model(
        model,
        schema,
        cfg["model_config"]["learning_rate"],
        jit_compile=cfg.get("jit_compile", "auto"),
        run_eagerly=eager,
    )


def _build(spec, schema, cfg):
    from reclayers import models

    mc = {k: v for k, v in cfg["model_config"].items()}
    if spec.two_stage:
        mc["seed"] = cfg["seed"]
    return models.get_model(spec.name, schema, **mc)


def train_run(args: argparse.Namespace) -> tuple[int, dict]:
    """Runs ``train`` (or ``--resume``); returns ``(exit code, metrics)``."""
    import keras

    from reclayers import models

    resume = getattr(args, "resume", None)
    if resume:
        run = Path(resume)
        cfg = load_run(run)
        spec = models.MODELS[cfg["model"]]
        if args.epochs is not None:
            cfg["epochs"] = args.epochs
    else:
        try:
            spec = models.MODELS[models.resolve_name(args.model)]
        except ValueError as e:
            raise UsageError(f"--model must be one of {', '.join(models.MODELS)}; got {args.model!r}") from e
        cfg = run_config(args, spec)
        cfg["data"] = args.data
        cfg["data_options"] = data_options(args)
    ctx = distributed.start(args, cfg["batch_size"])
    keras.utils.set_random_seed(cfg["seed"])
    prepared = prepare(
        cfg["data"],
        ratios=cfg["split"],
        seed=cfg["seed"],
        examples=cfg["examples"],
        needs_sequence=spec.needs_sequence or getattr(args, "_sequence", False),
        multi_task=spec.multi_task or getattr(args, "_multi_task", False),
        **cfg.get("data_options", {}),
    )
    if spec.needs_sequence and not prepared.schema.sequence:
        raise UsageError(
            f"--model {spec.name} needs behaviour sequences; got data {cfg['data']!r} without any "
            "(use sequences:PATH, amazon:PATH, alimama:PATH or synthetic)"
        )
    quiet = getattr(args, "quiet", False) or not ctx.chief
    scratch = None
    if not ctx.chief:  # only process 0 writes the run directory; the others write to a scratch copy
        import shutil
        import tempfile

        scratch = Path(tempfile.mkdtemp(prefix=f"reclayers-rank{ctx.rank}-"))
        if resume:
            run = scratch / "run"
            shutil.copytree(resume, run)
            resume = str(run)
        else:
            args = argparse.Namespace(**{**vars(args), "run_dir": str(scratch)})
    if not resume:
        backend = keras.backend.backend()
        run = Path(args.run_dir) / f"{time.strftime('%Y%m%d-%H%M%S')}-{spec.name}-{backend}"
        n = 1
        while run.exists():
            n += 1
            run = run.with_name(f"{run.name.split('~')[0]}~{n}")
        run.mkdir(parents=True)
        cfg["backend"] = backend
        cfg["data_info"] = prepared.info
        if ctx.active:
            cfg["distribute"] = {k: v for k, v in ctx.info.items() if k != "sharded_weights"}
        _json(run / "config.json", cfg)
        prepared.schema.save(run / "schema.json")
        prepared.preprocessor.save(run / "preprocessor.json")
        write_data_report(prepared, run)
    interrupt = getattr(args, "interrupt_after", None)

    try:
        return _train_stages(args, spec, cfg, prepared, run, resume, quiet, interrupt, ctx)
    except RunInterruptedError as e:
        if ctx.chief:
            print(f"reclayers train: {e}; resume with: reclayers train --resume {run}")
        return 130, {"run_dir": str(run)}
    finally:
        if scratch is not None:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)


def _new_model(spec, schema, cfg, ctx: distributed.Context, args, run: Path, path: Path | None = None):
    """Build (or load from ``path``) and compile the model where ``ctx`` wants it."""
    initial = None
    if ctx.strategy is not None and path is None:
        # Initial values drawn outside the strategy (inside it the initializers draw others), so
        # that a distributed run starts where the single-device run does.
        with distributed.same_random_state():
            initial = _build(spec, schema, cfg).get_weights()
    with ctx.scope():
        if path is not None and ctx.mode == "model":
            # Sharded resume: lay the fresh model (and its optimizer) out, then load the values.
            model = _build(spec, schema, cfg)
            distributed.model_parallel(model, ctx, args)
            model = _compile(model, schema, cfg)
            model.optimizer.build(model.trainable_variables)
            model.load_weights(path)
        elif path is not None:
            model = _load_model(path)
            if cfg.get("jit_compile") is False:
                model.jit_compile, model.run_eagerly = False, True
        else:
            model = _build(spec, schema, cfg)
            if initial is not None:
                model.set_weights(initial)
        if path is None:
            if ctx.mode == "model":
                distributed.model_parallel(model, ctx, args)
            model = _compile(model, schema, cfg)
    distributed.torch_sync(model, ctx)
    ctx.rebuild = lambda: _compile(_build(spec, schema, cfg), schema, cfg)
    if ctx.active:
        _json(run / "distribution.json", ctx.info)
        if args is not None and not getattr(args, "quiet", False) and ctx.chief:
            print(distributed.report(ctx))
    return model


def _train_stages(args, spec, cfg, prepared, run, resume, quiet, interrupt, ctx) -> tuple[int, dict]:
    import keras

    from reclayers import models

    prepared = distributed.pad_tables(prepared, ctx, args)
    # --- two-stage (nas): search, read the architecture, retrain -------------------------------
    if spec.two_stage and "embedding_sizes" not in _read(run / "architecture.json"):
        search_cfg = {**cfg, "epochs": cfg["model_config"]["search_epochs"]}
        search_dir = run / "search"
        search_dir.mkdir(exist_ok=True)
        sstate = _resume_state(search_dir) if resume else None
        model = _new_model(spec, prepared.schema, cfg, ctx, args, run,
                           search_dir / "checkpoint" / "last.keras" if sstate else None)
        sstate = fit_epochs(
            model, prepared, search_dir, search_cfg, sstate or _new_state(), quiet, interrupt, tag="search ",
            ctx=ctx,
        )
        host = distributed.host_model(model, ctx)
        sizes = models.nas_architecture(host, prepared.schema)
        _json(
            run / "architecture.json",
            {"embedding_sizes": sizes, "choices": host.get_layer("nas_selection").get_architecture()},
        )
        if not quiet:
            print(f"search chose embedding sizes {sizes}")
        resume = None  # the retrain starts fresh
    if spec.two_stage:
        cfg["model_config"]["embedding_sizes"] = _read(run / "architecture.json")["embedding_sizes"]

    state = _resume_state(run) if resume else None
    if state:
        model = _new_model(spec, prepared.schema, cfg, ctx, args, run, run / "checkpoint" / "last.keras")
        if not quiet:
            print(f"resuming {run} at epoch {state['epoch'] + 1}, batch {state['batch']}")
    else:
        state = _new_state()
        model = _new_model(spec, prepared.schema, cfg, ctx, args, run)
    state = fit_epochs(model, prepared, run, cfg, state, quiet, interrupt, ctx=ctx)
    host = distributed.host_model(model, ctx)
    host.save(run / "model.keras")
    _json(run / "config.json", cfg)
    shards = ctx.batch_shards if ctx.backend == "jax" and ctx.processes == 1 else 1
    if ctx.backend == "jax" and ctx.processes > 1:
        keras.distribution.set_distribution(None)  # score a local copy (global arrays span processes)
    best = _load_model(run / "best.keras") if (run / "best.keras").exists() else host
    test = prepared.splits.get("test")
    metrics: dict[str, Any] = {
        "model": spec.name,
        "backend": keras.backend.backend(),
        "data": cfg["data"],
        "run_dir": str(run),
        "epochs": cfg["epochs"],
        "best_epoch": state["best_epoch"],
        "parameters": int(model.count_params()),
        "train_seconds": round(state["train_seconds"], 2),
        "examples_per_second": round(state["train_examples"] / max(state["train_seconds"], 1e-9), 1),
    }
    if test is not None and len(test):
        metrics["test"] = score(prepared.schema, test, predict(best, test, shards=shards))
        metrics["bayes_optimal_auc"] = prepared.bayes.get("test", {})
    if ctx.active:
        metrics["distribute"] = {k: v for k, v in ctx.info.items() if k != "sharded_weights"}
    _json(run / "metrics.json", metrics)
    _json(run / "history.json", state["history"])
    png = plot_curves(state["history"], run / "curves.png")
    if ctx.chief:  # the metrics table is printed even with --quiet
        print()
        if "test" in metrics:
            print(f"held-out test metrics ({len(test)} rows, best epoch {state['best_epoch']}):")
            print(metrics_table(metrics["test"], metrics["bayes_optimal_auc"]))
            first = prepared.schema.label_names[0]
            print(
                f"AUC on held-out data: {metrics['test'][first]['auc']:.4f} (model {spec.name}, "
                f"backend {metrics['backend']})"
            )
        print(
            f"parameters {metrics['parameters']}, train time {metrics['train_seconds']} s, "
            f"{metrics['examples_per_second']} examples/s"
            + ("" if png else " (no curves.png: matplotlib missing)")
        )
        print(f"run directory: {run}")
    return 0, metrics


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _resume_state(run: Path) -> dict | None:
    state = run / "checkpoint" / "state.json"
    if not state.exists() or not (run / "checkpoint" / "last.keras").exists():
        return None
    return json.loads(state.read_text())


def train(args: argparse.Namespace) -> int:
    return train_run(args)[0]
